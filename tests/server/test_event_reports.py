"""Offline event bundles and event reports: verified with only the published anchor, no personal data beyond the
roster's needs, live counts after accepted and denied scans, CSV and XLSX exports for Vietnamese offices."""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from cardsvc.api.schemas import EventOut
from cardsvc.db.models import Event, Member
from cardsvc.security import PiiCipher
from cardsvc.services import events
from cardsvc.services.reports import to_csv, to_xlsx
from tests.conftest import Tree, login, make_member
from verification.entry import EntryRules
from verification.errors import TrustError
from verification.event_bundle import EVENT_BUNDLE_TYP, EventBundle, verify_event_bundle
from verification.format import VIETNAM_TZ, credential_from_text, parse_credential
from verification.trust import TrustAnchor
from verification.verify import StatusLists, verify

pytestmark = pytest.mark.usefixtures("signing_keys")
BOM = b"\xef\xbb\xbf"
_nonces = itertools.count(1)


@dataclass
class Scene:
    event_id: int
    officer: dict[str, str]
    device: dict[str, str]
    station_id: int
    inside: Member  # branch A, active card
    revoked: Member  # branch A, card revoked
    no_card: Member  # commune A itself, no card yet
    outside: Member  # province B: not eligible
    qr: dict[int, str]  # member id -> QR text


def _event(client: TestClient, headers: dict[str, str], chapter_id: int, **extra: object) -> int:
    now = datetime.now(UTC)
    body = {"chapter_id": chapter_id, "title": "Hội nghị  chi hội", "venue": "Nhà văn hoá phường",
            "starts_at": (now - timedelta(hours=1)).isoformat(), "ends_at": (now + timedelta(hours=3)).isoformat(),
            **extra}
    response = client.post("/v1/events", json=body, headers=headers)
    assert response.status_code == 201, response.text
    event_id: int = response.json()["id"]
    return event_id


def _device(client: TestClient, headers: dict[str, str], event_id: int, name: str) -> tuple[dict[str, str], int]:
    registered = client.post(f"/v1/events/{event_id}/stations", json={"name": name}, headers=headers)
    assert registered.status_code == 201, registered.text
    provisioned = client.post("/v1/devices/provision", json={"code": registered.json()["provisioning_code"]})
    assert provisioned.status_code == 200, provisioned.text
    return {"Authorization": f"Bearer {provisioned.json()['device_token']}"}, provisioned.json()["station_id"]


def _card_qr(client: TestClient, headers: dict[str, str], member: Member) -> tuple[str, str]:
    card = client.post(f"/v1/members/{member.id}/cards", json={}, headers=headers)
    assert card.status_code == 201, card.text
    card_id = card.json()["card_id"]
    qr = client.get(f"/v1/cards/{card_id}/credential", headers=headers).json()["qr_text"]
    return card_id, qr


def _scan(client: TestClient, headers: dict[str, str], event_id: int, payload: str) -> dict[str, object]:
    response = client.post(f"/v1/events/{event_id}/checkins", headers=headers,
                           json={"source": "qr_scanner", "client_nonce": f"nonce-{next(_nonces):08d}",
                                 "payload": payload})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


@pytest.fixture
def scene(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> Scene:
    officer = login(client, "t.officer.a")
    inside = make_member(db, cipher, tree.branch_a, full_name="Nguyễn Thị Phương Thảo")
    revoked = make_member(db, cipher, tree.branch_a, full_name="Trần Thị Bích")
    no_card = make_member(db, cipher, tree.commune_a, full_name="Lê Thị Hoa", phone="0987654321")
    outside = make_member(db, cipher, tree.branch_b, full_name="Phạm Thị Mai")
    qr = {}
    for member in (inside, revoked, outside):
        card_id, qr[member.id] = _card_qr(client, officer if member is not outside else login(client, "t.admin"),
                                          member)
        if member is revoked:
            response = client.post(f"/v1/cards/{card_id}/revoke", json={"reason": "lost"}, headers=officer)
            assert response.status_code == 200, response.text
    event_id = _event(client, officer, tree.commune_a.id)
    device, station_id = _device(client, officer, event_id, "Cổng chính")
    return Scene(event_id, officer, device, station_id, inside, revoked, no_card, outside, qr)


def _anchor(client: TestClient) -> TrustAnchor:
    return TrustAnchor.from_jwk(client.get("/.well-known/cardsvc-trust-anchor.json").json())


def _bundle(client: TestClient, scene: Scene) -> tuple[str, EventBundle]:
    response = client.get(f"/v1/events/{scene.event_id}/bundle", headers=scene.device)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/jwt")
    assert response.headers["cache-control"] == "no-store"
    return response.text, verify_event_bundle(response.text, _anchor(client), datetime.now(UTC))


def _payload(token: str) -> str:
    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def test_bundle_verifies_offline_with_only_the_published_anchor(client: TestClient, scene: Scene,
                                                                db: Session) -> None:
    token, bundle = _bundle(client, scene)
    assert jwt.get_unverified_header(token)["typ"] == EVENT_BUNDLE_TYP
    event = db.get(Event, scene.event_id)
    assert event is not None
    assert bundle.event.id == scene.event_id
    assert bundle.event.title == "Hội nghị chi hội"
    assert bundle.event.rules == event.rules
    # The API shows the same rule fields, from the same rules type.
    rule_fields = set(EntryRules.__dataclass_fields__)
    assert EventOut.of(event).model_dump(include=rule_fields) == asdict(bundle.event.rules)
    assert (bundle.event.rules.mode, bundle.event.rules.eligibility, bundle.event.rules.allow_reentry) == (
        "entry", "subtree", False)
    # Valid until a day after check-in closes, never more than a week, and never beyond the trust bundle.
    assert bundle.expires_at <= event.checkin_closes_at + timedelta(days=1)
    assert bundle.expires_at <= bundle.issued_at + timedelta(days=7)
    assert bundle.expires_at.timestamp() <= bundle.trust.expires_at

    # The roster: eligible members only (the member of province B is not in it), with current cards only.
    roster = {entry.member_number: entry for entry in bundle.roster}
    assert set(roster) == {scene.inside.member_number, scene.revoked.member_number, scene.no_card.member_number}
    assert roster[scene.inside.member_number].name == "Nguyễn Thị Phương Thảo"
    assert roster[scene.inside.member_number].chapter_code == "T-HNI-BD-01"
    assert roster[scene.no_card.member_number].card_ids == ()
    assert roster[scene.revoked.member_number].card_ids == ()
    assert roster[scene.inside.member_number].photo_url is None

    # A station decides offline from the bundle alone, as the server would.
    now = datetime.now(UTC)
    status = StatusLists(bundle.status_lists)
    verdict = verify(scene.qr[scene.inside.id], bundle.trust, status, now)
    assert verdict.ok and verdict.claims is not None
    holder = bundle.member_for_card(verdict.claims.card_id)
    assert holder is not None and holder.member_number == scene.inside.member_number
    revoked = verify(scene.qr[scene.revoked.id], bundle.trust, status, now)
    assert (revoked.ok, revoked.reason, revoked.status_checked) == (False, "revoked", True)
    claims = parse_credential(credential_from_text(scene.qr[scene.revoked.id])).claims
    assert bundle.status_lists[claims.status_list].status(claims.status_index) == 1
    # The card of an ineligible member verifies as a card but belongs to nobody on the roster.
    stranger = verify(scene.qr[scene.outside.id], bundle.trust, status, now)
    assert stranger.ok and stranger.claims is not None
    assert bundle.member_for_card(stranger.claims.card_id) is None


def test_bundle_has_no_id_numbers_birth_dates_or_phones(client: TestClient, scene: Scene, cipher: PiiCipher) -> None:
    token, _verified = _bundle(client, scene)
    payload = _payload(token)
    for member in (scene.inside, scene.revoked, scene.no_card):
        secrets = [cipher.decrypt("id_number", member.id_number_ciphertext or b""),
                   cipher.decrypt("phone", member.phone_ciphertext or b""),
                   member.id_number_masked or "", member.birth_date.isoformat(),
                   member.birth_date.strftime("%d/%m/%Y")]
        for secret in secrets:
            assert secret and secret not in payload
    claims = json.loads(payload)
    assert {key for entry in claims["roster"] for key in entry} == {
        "member_number", "name", "chapter_code", "chapter_name", "card_ids", "photo_url"}


def test_bundle_refuses_tampering_other_anchors_and_expiry(client: TestClient, scene: Scene,
                                                           signing_keys: dict[str, object]) -> None:
    token, bundle = _bundle(client, scene)
    anchor = _anchor(client)
    header, _payload_part, signature = token.split(".")
    claims = json.loads(_payload(token))
    claims["roster"].append({"member_number": "0000000000", "name": "X", "chapter_code": "X", "chapter_name": "X",
                             "card_ids": [], "photo_url": None})
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(TrustError):
        verify_event_bundle(f"{header}.{forged}.{signature}", anchor, datetime.now(UTC))
    with pytest.raises(TrustError):
        verify_event_bundle(token, anchor, bundle.expires_at + timedelta(seconds=1))
    # The trust bundle is not an event bundle even though the same key signs it.
    with pytest.raises(TrustError):
        verify_event_bundle(client.get("/.well-known/cardsvc-trust-bundle").text, anchor, datetime.now(UTC))
    # Still usable offline hours later, although the embedded status lists' own lifetime (2 × TTL) has passed.
    later = verify_event_bundle(token, anchor, datetime.now(UTC) + timedelta(hours=5))
    assert set(later.status_lists) == set(bundle.status_lists)


def test_bundle_access(client: TestClient, scene: Scene, tree: Tree) -> None:
    url = f"/v1/events/{scene.event_id}/bundle"
    other_event = _event(client, scene.officer, tree.branch_a.id)
    other_device, _station = _device(client, scene.officer, other_event, "Cổng phụ")
    response = client.get(url, headers=other_device)
    assert response.status_code == 403 and response.json()["code"] == "wrong_event"
    assert client.get(url, headers=login(client, "t.officer.b")).status_code == 404
    assert client.get(url, headers=login(client, "t.viewer.a")).status_code == 200
    assert client.get(url, headers=scene.officer).status_code == 200
    assert client.get(url).status_code == 401
    assert client.get("/v1/events/999999/bundle", headers=scene.officer).status_code == 404


def _scan_everything(client: TestClient, scene: Scene) -> None:
    e, device = scene.event_id, scene.device
    assert _scan(client, device, e, scene.qr[scene.inside.id])["result"] == "ok"
    assert _scan(client, device, e, scene.qr[scene.inside.id])["reason"] == "already_checked_in"
    assert _scan(client, device, e, scene.qr[scene.revoked.id])["reason"] == "revoked"
    assert _scan(client, device, e, scene.qr[scene.outside.id])["reason"] == "not_eligible"
    assert _scan(client, device, e, "8401" + "0" * 30)["reason"] == "malformed"


def test_stats_after_accepted_and_denied_scans(client: TestClient, scene: Scene, tree: Tree, db: Session) -> None:
    _scan_everything(client, scene)
    response = client.get(f"/v1/events/{scene.event_id}/stats", headers=login(client, "t.viewer.a"))
    assert response.status_code == 200, response.text
    stats = response.json()
    event = db.get(Event, scene.event_id)
    assert event is not None
    assert stats["eligible"] == len(events.eligible_members(db, event)) == 3
    assert (stats["checked_in"], stats["denied"], stats["present"]) == (1, 4, None)
    assert stats["denied_by_reason"] == {"already_checked_in": 1, "malformed": 1, "not_eligible": 1, "revoked": 1}
    assert [(c["code"], c["eligible"], c["checked_in"]) for c in stats["chapters"]] == [
        ("T-HNI-BD", 1, 0), ("T-HNI-BD-01", 2, 1)]
    assert client.get(f"/v1/events/{scene.event_id}/stats", headers=login(client, "t.officer.b")).status_code == 404

    attendance = client.get(f"/v1/events/{scene.event_id}/attendance", headers=scene.officer).json()
    assert [(a["member_number"], a["station_name"], a["last_out"], a["entries"]) for a in attendance] == [
        (scene.inside.member_number, "Cổng chính", None, 1)]
    denied = client.get(f"/v1/events/{scene.event_id}/denied", headers=scene.officer).json()
    # The member from province B lies outside the event's scope (and the officer's): her scan names nobody.
    assert [(d["reason"], d["member_number"]) for d in denied] == [
        ("already_checked_in", scene.inside.member_number), ("revoked", scene.revoked.member_number),
        ("not_eligible", None), ("malformed", None)]
    assert all(len(d["payload_hash_prefix"]) == 12 and d["station_name"] == "Cổng chính" for d in denied)

    # The bundle carries the accepted check-in for stations that come online later.
    _token, bundle = _bundle(client, scene)
    assert [(c.member_number, c.seq, c.direction, c.station_id) for c in bundle.checkins] == [
        (scene.inside.member_number, 1, "in", scene.station_id)]


def test_entry_exit_counts_presence_and_exit_times(client: TestClient, scene: Scene, tree: Tree) -> None:
    event_id = _event(client, scene.officer, tree.commune_a.id, mode="entry_exit")
    device, _station = _device(client, scene.officer, event_id, "Cửa ra vào")
    assert _scan(client, device, event_id, scene.qr[scene.inside.id])["direction"] == "in"
    assert _scan(client, device, event_id, scene.qr[scene.inside.id])["direction"] == "out"
    stats = client.get(f"/v1/events/{event_id}/stats", headers=scene.officer).json()
    assert (stats["checked_in"], stats["present"]) == (1, 0)
    attendance = client.get(f"/v1/events/{event_id}/attendance", headers=scene.officer).json()
    assert attendance[0]["last_out"] is not None
    workbook = load_workbook(io.BytesIO(client.get(f"/v1/events/{event_id}/attendance?format=xlsx",
                                                   headers=scene.officer).content))
    sheet = workbook.active
    assert sheet is not None
    assert [cell.value for cell in sheet[1]][-1] == "Giờ ra"
    assert isinstance(sheet.cell(row=2, column=7).value, datetime)


def test_csv_exports_open_in_excel(client: TestClient, scene: Scene) -> None:
    _scan_everything(client, scene)
    response = client.get(f"/v1/events/{scene.event_id}/attendance?format=csv", headers=scene.officer)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="event-{scene.event_id}-attendance.csv"'
    body = response.content
    assert body.startswith(BOM)
    assert body.count(b"\r\n") == 2 and b"\n" not in body.replace(b"\r\n", b"")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["Mã hội viên", "Họ và tên", "Mã chi hội", "Chi hội", "Giờ vào", "Điểm quét"]
    number, name, code, chapter, entered, station = rows[1]
    assert (number, name, code, chapter, station) == (
        scene.inside.member_number, "Nguyễn Thị Phương Thảo", "T-HNI-BD-01", "Chi hội 1", "Cổng chính")
    entered_at = datetime.strptime(entered, "%d/%m/%Y %H:%M:%S").replace(tzinfo=VIETNAM_TZ)
    assert abs(entered_at - datetime.now(UTC)) < timedelta(minutes=5)

    denied = client.get(f"/v1/events/{scene.event_id}/denied?format=csv", headers=scene.officer).content
    denied_rows = list(csv.reader(io.StringIO(denied.decode("utf-8-sig"), newline="")))
    assert denied_rows[0] == ["Thời gian", "Điểm quét", "Nguồn", "Lý do", "Mã lý do", "Mã hội viên",
                              "Mã băm dữ liệu quét"]
    assert [row[4] for row in denied_rows[1:]] == ["already_checked_in", "revoked", "not_eligible", "malformed"]
    assert denied_rows[2][3] == "Thẻ đã bị thu hồi"

    stats = client.get(f"/v1/events/{scene.event_id}/stats?format=csv", headers=scene.officer).content
    stats_rows = list(csv.reader(io.StringIO(stats.decode("utf-8-sig"), newline="")))
    assert stats_rows[0] == ["Mã chi hội", "Chi hội", "Đủ điều kiện", "Đã điểm danh"]
    assert stats_rows[-1] == ["", "Tổng cộng", "3", "1"]
    assert client.get(f"/v1/events/{scene.event_id}/denied?format=pdf", headers=scene.officer).status_code == 422


def test_xlsx_export_has_headers_text_and_real_times(client: TestClient, scene: Scene) -> None:
    _scan_everything(client, scene)
    response = client.get(f"/v1/events/{scene.event_id}/attendance?format=xlsx", headers=scene.officer)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response.headers["content-disposition"].endswith('.xlsx"')
    sheet = load_workbook(io.BytesIO(response.content)).active
    assert sheet is not None
    assert [cell.value for cell in sheet[1]] == ["Mã hội viên", "Họ và tên", "Mã chi hội", "Chi hội", "Giờ vào",
                                                 "Điểm quét"]
    assert all(cell.font.bold for cell in sheet[1])
    values = [cell.value for cell in sheet[2]]
    assert values[:4] == [scene.inside.member_number, "Nguyễn Thị Phương Thảo", "T-HNI-BD-01", "Chi hội 1"]
    assert isinstance(values[0], str) and values[0].isdigit() and len(values[0]) == 10
    entered = values[4]
    assert isinstance(entered, datetime) and entered.tzinfo is None
    # Vietnam wall-clock time, as the office sees it.
    assert abs(entered.replace(tzinfo=VIETNAM_TZ) - datetime.now(UTC)) < timedelta(minutes=5)
    assert sheet.cell(row=2, column=5).number_format == "dd/mm/yyyy hh:mm:ss"
    assert sheet.column_dimensions["B"].width >= len("Nguyễn Thị Phương Thảo")
    assert values[5] == "Cổng chính"


def test_exports_never_run_formulas() -> None:
    rows = [("=HYPERLINK(\"http://x\")", "+84912", "Bình thường", 7, None)]
    headers = ("A", "B", "C", "D", "E")
    parsed = list(csv.reader(io.StringIO(to_csv(rows, headers).decode("utf-8-sig"), newline="")))
    assert parsed[1] == ["'=HYPERLINK(\"http://x\")", "'+84912", "Bình thường", "7", ""]
    sheet = load_workbook(io.BytesIO(to_xlsx(rows, headers))).active
    assert sheet is not None
    cell = sheet.cell(row=2, column=1)
    assert (cell.value, cell.data_type) == ("=HYPERLINK(\"http://x\")", "s")
    assert sheet.cell(row=2, column=4).value == 7
