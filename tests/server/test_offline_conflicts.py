"""Offline check-ins uploaded later: stored as offline with the station's verdict, and the conflicts (a member let in
offline at two stations, or after her card was revoked) flagged in the answer, the stats and the conflicts report."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from cardsvc.db.models import Checkin
from cardsvc.security import PiiCipher
from cardsvc.services import cards
from tests.conftest import SYSTEM, Tree, login, make_member
from tests.server.test_checkins import Door, issue, make_door, make_event, nonce, scan, verdict

pytestmark = pytest.mark.usefixtures("signing_keys")
BOM = b"\xef\xbb\xbf"


def offline_scan(client: TestClient, door: Door, qr: str, *, local_result: str = "ok",
                 local_reason: str | None = None, nonce_: str | None = None) -> dict[str, object]:
    response = scan(client, door, qr, nonce_=nonce_ or nonce(), offline=True, local_result=local_result,
                    local_reason=local_reason, scanned_at=(datetime.now(UTC) - timedelta(minutes=5)).isoformat())
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_accepted_offline_at_two_stations_is_a_conflict_in_the_answer_stats_and_report(
        client: TestClient, app: FastAPI, db: Session, tree: Tree, cipher: PiiCipher) -> None:
    event = make_event(db, tree.commune_a.id)
    gate, side = make_door(client, db, event, "Cổng chính"), make_door(client, db, event, "Cửa phụ")
    member = make_member(db, cipher, tree.branch_a, full_name="Trần Thị Hoa")
    _card, qr = issue(app, db, member)

    first = offline_scan(client, gate, qr)
    assert (first["result"], first["conflict"]) == ("ok", None)
    retry_nonce = nonce()
    second = offline_scan(client, side, qr, nonce_=retry_nonce)
    assert (second["result"], second["reason"], second["conflict"]) == (
        "error", "already_checked_in", "accepted_at_two_stations")
    replay = offline_scan(client, side, qr, nonce_=retry_nonce)
    assert replay["replayed"] is True and replay["conflict"] == "accepted_at_two_stations"

    row = db.get(Checkin, second["checkin_id"])
    assert row is not None and row.offline and (row.local_result, row.local_reason) == ("ok", None)

    officer = login(client, "t.officer.a")
    stats = client.get(f"/v1/events/{event.id}/stats", headers=officer).json()
    assert stats["conflicts"] == 1 and stats["denied"] == 1
    report = client.get(f"/v1/events/{event.id}/conflicts", headers=officer)
    assert report.status_code == 200 and report.headers["cache-control"] == "no-store"
    (conflict,) = report.json()
    assert conflict["conflict"] == "accepted_at_two_stations" and conflict["reason"] == "already_checked_in"
    assert conflict["station_name"] == "Cửa phụ" and conflict["first_station_name"] == "Cổng chính"
    assert conflict["member_number"] == member.member_number and conflict["full_name"] == "Trần Thị Hoa"
    assert conflict["first_at"] is not None

    exported = client.get(f"/v1/events/{event.id}/conflicts?format=csv", headers=officer)
    assert exported.status_code == 200 and exported.content.startswith(BOM)
    header, line = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert header[:4] == ["Thời gian", "Điểm quét", "Loại xung đột", "Mã xung đột"]
    assert line[2] == "Cho vào ngoại tuyến ở hai điểm quét" and line[3] == "accepted_at_two_stations"
    workbook = client.get(f"/v1/events/{event.id}/conflicts?format=xlsx", headers=officer)
    sheet = load_workbook(io.BytesIO(workbook.content)).active
    assert sheet is not None and sheet.title == "Xung đột ngoại tuyến"
    assert sheet.cell(2, 7).value == member.member_number


def test_accepted_offline_after_a_revocation_and_other_refusals(
        client: TestClient, app: FastAPI, db: Session, tree: Tree, cipher: PiiCipher) -> None:
    event = make_event(db, tree.commune_a.id)
    door = make_door(client, db, event)
    revoked, revoked_qr = issue(app, db, make_member(db, cipher, tree.branch_a))
    cards.revoke_card(db, SYSTEM, revoked.card_id, reason="lost", note=None)
    outsider_qr = issue(app, db, make_member(db, cipher, tree.branch_b))[1]

    after = offline_scan(client, door, revoked_qr)
    assert (after["reason"], after["conflict"]) == ("revoked", "accepted_after_revocation")
    refused = offline_scan(client, door, outsider_qr)
    assert (refused["reason"], refused["conflict"]) == ("not_eligible", "accepted_but_refused")
    agreed = offline_scan(client, door, revoked_qr, local_result="error", local_reason="revoked")
    assert (agreed["reason"], agreed["conflict"]) == ("revoked", None)
    online = verdict(scan(client, door, revoked_qr))
    assert online == ("error", "revoked")

    report = client.get(f"/v1/events/{event.id}/conflicts", headers=login(client, "t.admin")).json()
    assert [(c["conflict"], c["first_at"]) for c in report] == [
        ("accepted_after_revocation", None), ("accepted_but_refused", None)]
    assert client.get(f"/v1/events/{event.id}/conflicts", headers=login(client, "t.officer.b")).status_code == 404


def test_offline_fields_are_validated(client: TestClient, app: FastAPI, db: Session, tree: Tree,
                                      cipher: PiiCipher) -> None:
    door = make_door(client, db, make_event(db, tree.commune_a.id))
    qr = issue(app, db, make_member(db, cipher, tree.branch_a))[1]
    not_offline = scan(client, door, qr, local_result="ok")
    assert not_offline.status_code == 422 and not_offline.json()["details"][0]["field"] == "offline"
    assert scan(client, door, qr, offline=True, local_result="maybe").status_code == 422
    assert scan(client, door, qr, offline=True, local_result="error", local_reason="x" * 33).status_code == 422
    plain = scan(client, door, qr)
    assert verdict(plain) == ("ok", None) and plain.json()["conflict"] is None
    row = db.get(Checkin, plain.json()["checkin_id"])
    assert row is not None and not row.offline and row.local_result is None
