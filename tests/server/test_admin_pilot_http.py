"""The officer's side of a pilot day over HTTP (TestClient, rolled-back database): the addresses set-up QRs and card
links are built from, manual check-in, invitations, downloads, NFC write requests and card links on the officer
pages — each with its CSRF, read-only and scope checks and the audit entries the API writes — plus the words on
those pages and how static files are sent. The browser walk-through is tests/web/test_pilot_day.py."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import Request

from cardsvc import tls
from cardsvc.addresses import address_problems, request_base_url
from cardsvc.days import VIETNAM_TZ
from cardsvc.db.models import AuditEntry, Checkin, EventInvite, MemberLink, NfcWriteRequest
from cardsvc.errors import ValidationFailed
from cardsvc.security import PiiCipher
from cardsvc.services import cards, consents, stations
from cardsvc.settings import Settings, SettingsError
from cardsvc.web.admin import pages
from cardsvc.web.admin.context import error_messages
from tests.conftest import SYSTEM, Tree, make_member
from tests.server.test_admin_pages_http import _decode_svg_qr, csrf_of, page_login
from tests.server.test_checkins import issue, make_door, make_event

pytestmark = pytest.mark.usefixtures("signing_keys")
REFUSED_CSRF = "Biểu mẫu đã cũ"


@contextmanager
def configured(app: FastAPI, **changes: Any) -> Iterator[Settings]:
    """The app with some settings changed for one test (the app is shared by the session)."""
    original = app.state.settings
    app.state.settings = original.model_copy(update=changes)
    try:
        yield app.state.settings
    finally:
        app.state.settings = original


def _count(db: Session, model: type[Any], *where: Any) -> int:
    return db.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _actions(db: Session, action: str) -> list[AuditEntry]:
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def _setup_url(html: str) -> str:
    match = re.search(r'<input id="provisioning-url" value="([^"]+)"', html)
    assert match, "no set-up link on the page"
    return match.group(1)


# Addresses ----------------------------------------------------------------------------------------------------------


def test_the_setup_qr_carries_the_address_the_officer_uses_and_warns_when_a_phone_cannot(
        client: TestClient, db: Session, tree: Tree) -> None:
    event = make_event(db, tree.commune_a.id)
    token = page_login(client, "t.officer.a")

    def register(host: str, **headers: str) -> str:
        answer = client.post(f"/admin/events/{event.id}/stations", data={"csrf_token": token, "name": "Cửa chính"},
                             headers={"host": host, **headers})
        assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
        return answer.text

    lan = register("192.168.1.20:8000")
    url = _setup_url(lan)
    assert url.startswith("http://192.168.1.20:8000/checkin#setup=")
    svg = re.search(r'<div class="qr" id="provisioning-qr">(<svg.*?</svg>)</div>', lan, re.S)
    assert svg and _decode_svg_qr(svg.group(1)) == url
    assert f'id="provisioning-link" href="{url}"' in lan
    code = url.split("#setup=", 1)[1]
    assert f'<input id="provisioning-code" value="{code}"' in lan
    # Plain HTTP on a LAN address: it opens, but the camera needs HTTPS (a note, not a warning).
    assert 'data-address-problem="plain_http"' in lan and 'data-address-problem="loopback"' not in lan

    loopback = register("127.0.0.1:8000")
    assert 'data-address-problem="loopback"' in loopback and "điện thoại không mở" in loopback
    assert 'data-address-problem="plain_http_named_host"' in register("cards.example.vn")
    # The test client is no trusted proxy: what it forwards changes nothing.
    assert 'data-address-problem="plain_http_named_host"' in register("cards.example.vn",
                                                                      **{"x-forwarded-proto": "https"})
    forged = register("192.168.1.20:8000", **{"x-forwarded-host": "evil.example", "x-forwarded-proto": "https"})
    assert _setup_url(forged).startswith("http://192.168.1.20:8000/")

    # The device that scans it is told the same server.
    provisioned = client.post("/v1/devices/provision", json={"code": code}, headers={"host": "192.168.1.20:8000"})
    assert provisioned.status_code == 200 and provisioned.json()["server"] == "http://192.168.1.20:8000"


def test_a_configured_public_address_wins_and_is_shown_without_warning(app: FastAPI, client: TestClient,
                                                                        db: Session, tree: Tree) -> None:
    event = make_event(db, tree.commune_a.id)
    token = page_login(client, "t.officer.a")  # over http: the configured https address makes cookies Secure
    with configured(app, public_base_url="https://the.union.example"):
        answer = client.post(f"/admin/events/{event.id}/stations", data={"csrf_token": token, "name": "Cửa 2"},
                             headers={"host": "127.0.0.1:8000"})
        assert _setup_url(answer.text).startswith("https://the.union.example/checkin#setup=")
        assert "data-address-problem" not in answer.text


def _request(headers: dict[str, str], peer: str, scheme: str = "http") -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "scheme": scheme, "client": (peer, 5000),
                    "server": ("10.0.0.9", 8000), "query_string": b"",
                    "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]})


def test_forwarded_headers_count_only_from_trusted_proxies() -> None:
    proxies = Settings(trusted_proxies="10.0.0.0/24, 127.0.0.1", _env_file=None).trusted_proxy_networks  # type: ignore[call-arg]
    forwarded = {"host": "10.0.0.9:8000", "x-forwarded-proto": "https", "x-forwarded-host": "cards.example.vn"}
    assert request_base_url(_request(forwarded, "10.0.0.5"), proxies) == "https://cards.example.vn"
    assert request_base_url(_request(forwarded, "192.168.1.7"), proxies) == "http://10.0.0.9:8000"
    assert request_base_url(_request(forwarded, "10.0.0.5"), ()) == "http://10.0.0.9:8000"
    # A host that could smuggle a path, credentials or another host is not used; the listening address is.
    for bad in ("evil.example/x", "a@b", "x y", ""):
        assert request_base_url(_request({"host": bad}, "192.168.1.7"), proxies) == "http://10.0.0.9:8000"
        assert request_base_url(_request({"host": "10.0.0.9:8000", "x-forwarded-host": bad}, "10.0.0.5"),
                                proxies) == "http://10.0.0.9:8000"
    with pytest.raises(SettingsError):
        _ = Settings(trusted_proxies="not an address", _env_file=None).trusted_proxy_networks  # type: ignore[call-arg]


def test_address_problems() -> None:
    assert address_problems("http://127.0.0.1:8000") == ["loopback"]
    assert address_problems("https://localhost") == ["loopback"]
    assert address_problems("http://[::1]:8000") == ["loopback"]
    assert address_problems("http://cards.example.vn") == ["plain_http_named_host"]
    assert address_problems("http://192.168.1.20:8000") == ["plain_http"]
    assert address_problems("https://192.168.1.20:8443") == []
    assert address_problems("https://cards.example.vn") == []


def test_public_base_url_is_optional_and_checked() -> None:
    assert Settings(_env_file=None).public_base_url is None  # type: ignore[call-arg]
    assert Settings(public_base_url=" https://a.example/ ", _env_file=None).public_base_url == "https://a.example"  # type: ignore[call-arg]
    assert Settings(public_base_url="", _env_file=None).public_base_url is None  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="https://"):
        Settings(public_base_url="cards.example.vn", _env_file=None)  # type: ignore[call-arg]


def test_bundles_name_one_issuer_whatever_address_a_verifier_uses(app: FastAPI, client: TestClient, db: Session,
                                                                  tree: Tree, cipher: PiiCipher) -> None:
    issue(app, db, make_member(db, cipher, tree.branch_a))  # a status list exists

    def claims(host: str) -> dict[str, Any]:
        token = client.get("/.well-known/cardsvc-trust-bundle", headers={"host": host}).text
        return dict(jwt.decode(token, options={"verify_signature": False}))

    lan, loopback = claims("192.168.1.20:8000"), claims("127.0.0.1:8000")
    assert lan["iss"] == loopback["iss"] == "cardsvc"
    assert lan["status_lists"] == loopback["status_lists"]
    assert all(entry["uri"] == f"/v1/status-lists/{entry['id']}" for entry in lan["status_lists"])
    with configured(app, public_base_url="https://the.union.example"):
        configured_claims = claims("127.0.0.1:8000")
    assert configured_claims["iss"] == "https://the.union.example"
    assert configured_claims["status_lists"][0]["uri"].startswith("https://the.union.example/v1/status-lists/")


# Manual check-in ----------------------------------------------------------------------------------------------------


def _checkin_form(html: str, member_id: int) -> dict[str, str]:
    nonce = re.search(rf'name="nonce" value="([^"]+-{member_id})"', html)
    assert nonce, "no check-in form for the member"
    return {"csrf_token": csrf_of(html), "member": str(member_id), "nonce": nonce.group(1)}


def test_manual_checkin_from_the_event_page(client: TestClient, db: Session, tree: Tree, cipher: PiiCipher) -> None:
    event = make_event(db, tree.commune_a.id)
    lan = make_member(db, cipher, tree.branch_a, full_name="Nguyễn Thị Lan")
    page_login(client, "t.officer.a")
    found = client.get(f"/admin/events/{event.id}", params={"q": "nguyen thi lan"})
    assert found.status_code == 200 and 'id="manual-results"' in found.text
    form = _checkin_form(found.text, lan.id)

    refused = client.post(f"/admin/events/{event.id}/checkins", data={**form, "csrf_token": "forged",
                                                                     "reason": "forgot_card"})
    assert refused.status_code == 403 and REFUSED_CSRF in refused.text
    other = client.post(f"/admin/events/{event.id}/checkins", data={**form, "reason": "other", "note": " "})
    assert other.status_code == 422 and "Lý do: chưa điền" in other.text
    assert _count(db, Checkin, Checkin.event_id == event.id) == 0

    done = client.post(f"/admin/events/{event.id}/checkins", data={**form, "reason": "forgot_card"})
    assert done.status_code == 200 and done.headers["cache-control"] == "no-store"
    assert "Đã điểm danh: Nguyễn Thị Lan" in done.text and 'data-replace-url' in done.text
    row = db.scalars(select(Checkin).where(Checkin.event_id == event.id)).one()
    assert (row.result, row.source, row.member_id, row.manual_reason) == ("ok", "manual", lan.id, "Quên thẻ")
    assert [e.details["member_id"] for e in _actions(db, "checkin.manual")] == [lan.id]
    # The same form again (a double tap, a reload) is the same check-in.
    again = client.post(f"/admin/events/{event.id}/checkins", data={**form, "reason": "forgot_card"})
    assert "Đã điểm danh: Nguyễn Thị Lan" in again.text
    assert _count(db, Checkin, Checkin.event_id == event.id) == 1
    # A new form is a new scan: refused in Vietnamese, with her first entry, never the reason's code.
    second = client.post(f"/admin/events/{event.id}/checkins",
                         data={**_checkin_form(found.text.replace(form["nonce"], "x" * 16 + f"-{lan.id}"), lan.id),
                               "reason": "other", "note": "hỏi lại"})
    assert "Không điểm danh được Nguyễn Thị Lan: Đã điểm danh trước đó" in second.text
    assert "already_checked_in" not in second.text and "Lần vào đầu:" in second.text
    assert db.scalars(select(Checkin.manual_reason).where(Checkin.result == "error")).one() == "Lý do khác: hỏi lại"

    stats = client.get(f"/admin/events/{event.id}/stats.json").json()
    assert stats["checked_in"] == 1


def test_manual_checkin_keeps_scope_and_read_only_accounts(client: TestClient, db: Session, tree: Tree,
                                                            cipher: PiiCipher) -> None:
    event = make_event(db, tree.commune_a.id)
    elsewhere = make_event(db, tree.commune_b.id)
    outside = make_member(db, cipher, tree.branch_b, full_name="Lê Thị Hoa")
    inside = make_member(db, cipher, tree.branch_a)
    token = page_login(client, "t.officer.a")
    data = {"csrf_token": token, "reason": "unreadable", "nonce": "n" * 16 + "-1"}
    assert "Lê Thị Hoa" not in client.get(f"/admin/events/{event.id}", params={"q": "le thi hoa"}).text
    assert client.post(f"/admin/events/{event.id}/checkins", data={**data, "member": str(outside.id)}
                       ).status_code == 404
    assert client.post(f"/admin/events/{elsewhere.id}/checkins", data={**data, "member": str(inside.id)}
                       ).status_code == 404
    assert client.get(f"/admin/events/{elsewhere.id}").status_code == 404

    client.cookies.clear()
    viewer = page_login(client, "t.viewer.a")
    page = client.get(f"/admin/events/{event.id}", params={"q": "nguyen"})
    assert 'id="manual"' not in page.text and 'id="station-submit"' not in page.text
    refused = client.post(f"/admin/events/{event.id}/checkins", data={**data, "csrf_token": viewer,
                                                                     "member": str(inside.id)})
    assert refused.status_code == 403 and "chỉ được xem" in refused.text
    assert _count(db, Checkin) == 0


# Invitations --------------------------------------------------------------------------------------------------------


def _xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_invitees_by_search_paste_and_upload(client: TestClient, db: Session, tree: Tree, cipher: PiiCipher) -> None:
    event = make_event(db, tree.commune_a.id, eligibility="invite")
    first, second, third = (make_member(db, cipher, tree.branch_a, full_name=name)
                            for name in ("Nguyễn Thị Lan", "Trần Thị Mai", "Phạm Thị Hoa"))
    outside = make_member(db, cipher, tree.branch_b, full_name="Lê Thị Hoa")
    token = page_login(client, "t.officer.a")
    page = client.get(f"/admin/events/{event.id}")
    assert 'id="invites"' in page.text and 'id="eligible">0<' in page.text  # stuck at 0/0 until invitations

    found = client.get(f"/admin/events/{event.id}", params={"q": "nguyen thi lan"})
    assert f'id="invite-{first.id}"' in found.text
    assert client.post(f"/admin/events/{event.id}/invites", data={"member": str(first.id)}).status_code == 403
    invited = client.post(f"/admin/events/{event.id}/invites", data={"csrf_token": token, "member": str(first.id)})
    assert invited.status_code == 200 and "Đã mời thêm 1 người" in invited.text

    pasted = client.post(f"/admin/events/{event.id}/invites/list", data={
        "csrf_token": token,
        "numbers": f"{second.member_number}, {first.member_number}\n{outside.member_number} 0000000000 12345",
    })
    assert pasted.status_code == 200
    assert "Đã mời thêm 1 người; 1 người đã có trong danh sách." in pasted.text
    not_found = re.search(r'id="invite-not-found">([^<]+)<', pasted.text)
    assert not_found and outside.member_number in not_found.group(1) and "0000000000" in not_found.group(1)

    # Excel dropped the leading zeros of the number cell; the name column is ignored.
    sheet = _xlsx([["STT", "Họ và tên", "Mã hội viên"], [1, third.full_name, int(third.member_number)]])
    uploaded = client.post(f"/admin/events/{event.id}/invites/list", data={"csrf_token": token},
                           files={"file": ("moi.xlsx", sheet, "application/octet-stream")})
    assert "Đã mời thêm 1 người" in uploaded.text
    listed = "Mã hội viên;Họ tên\r\n" + f"{third.member_number};{third.full_name}\r\n"
    csv_upload = client.post(f"/admin/events/{event.id}/invites/list", data={"csrf_token": token},
                             files={"file": ("moi.csv", listed.encode("utf-8-sig"), "text/csv")})
    assert "Đã mời thêm 0 người; 1 người đã có trong danh sách." in csv_upload.text

    invitees = set(db.scalars(select(EventInvite.member_id).where(EventInvite.event_id == event.id)))
    assert invitees == {first.id, second.id, third.id}
    assert len(_actions(db, "event.invite")) == 4
    assert client.get(f"/admin/events/{event.id}/stats.json").json()["eligible"] == 3

    empty = client.post(f"/admin/events/{event.id}/invites/list", data={"csrf_token": token, "numbers": "abc"})
    assert empty.status_code == 422 and "Không thấy mã hội viên nào" in empty.text
    broken = client.post(f"/admin/events/{event.id}/invites/list", data={"csrf_token": token},
                         files={"file": ("x.xlsx", b"PK\x03\x04 not a workbook", "application/octet-stream")})
    assert broken.status_code == 422 and "Không đọc được tệp Excel" in broken.text


def test_invitations_need_an_invite_event_write_rights_and_scope(client: TestClient, db: Session, tree: Tree,
                                                                 cipher: PiiCipher) -> None:
    open_event = make_event(db, tree.commune_a.id)
    invite_event = make_event(db, tree.commune_a.id, eligibility="invite")
    elsewhere = make_event(db, tree.commune_b.id, eligibility="invite")
    member = make_member(db, cipher, tree.branch_a)
    token = page_login(client, "t.officer.a")
    forged = client.post(f"/admin/events/{invite_event.id}/invites/list", data={"numbers": member.member_number})
    assert forged.status_code == 403 and REFUSED_CSRF in forged.text
    wrong = client.post(f"/admin/events/{open_event.id}/invites/list",
                        data={"csrf_token": token, "numbers": member.member_number})
    assert wrong.status_code == 409 and "không dùng danh sách mời" in wrong.text
    assert 'id="invites"' not in client.get(f"/admin/events/{open_event.id}").text
    assert client.post(f"/admin/events/{elsewhere.id}/invites/list",
                       data={"csrf_token": token, "numbers": member.member_number}).status_code == 404
    client.cookies.clear()
    viewer = page_login(client, "t.viewer.a")
    assert 'id="invite-submit"' not in client.get(f"/admin/events/{invite_event.id}").text
    assert client.post(f"/admin/events/{invite_event.id}/invites/list",
                       data={"csrf_token": viewer, "numbers": member.member_number}).status_code == 403
    assert _count(db, EventInvite) == 0


# Downloads ----------------------------------------------------------------------------------------------------------


def test_attendance_and_denied_scans_download_as_csv_and_xlsx(client: TestClient, db: Session, tree: Tree,
                                                              cipher: PiiCipher) -> None:
    event = make_event(db, tree.commune_a.id)
    member = make_member(db, cipher, tree.branch_a, full_name="Nguyễn Thị Lan")
    page_login(client, "t.officer.a")
    page = client.get(f"/admin/events/{event.id}", params={"q": "nguyen thi lan"})
    for what in ("attendance", "denied"):
        for fmt in ("csv", "xlsx"):
            assert f'id="download-{what}-{fmt}" href="/admin/events/{event.id}/{what}.{fmt}"' in page.text
    client.post(f"/admin/events/{event.id}/checkins", data={**_checkin_form(page.text, member.id),
                                                           "reason": "no_card"})

    attendance = client.get(f"/admin/events/{event.id}/attendance.csv")
    assert attendance.status_code == 200 and attendance.headers["content-type"].startswith("text/csv")
    assert attendance.headers["cache-control"] == "no-store"
    assert f'filename="event-{event.id}-attendance.csv"' in attendance.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(attendance.content.decode("utf-8-sig"))))
    assert any("Nguyễn Thị Lan" in row for row in rows)
    workbook = client.get(f"/admin/events/{event.id}/denied.xlsx")
    assert workbook.status_code == 200 and workbook.content.startswith(b"PK")
    assert client.get(f"/admin/events/{event.id}/attendance.pdf").status_code == 404

    client.cookies.clear()
    page_login(client, "t.viewer.a")  # reading is allowed to viewers
    assert client.get(f"/admin/events/{event.id}/denied.csv").status_code == 200
    client.cookies.clear()
    page_login(client, "t.officer.b")
    outside = client.get(f"/admin/events/{event.id}/attendance.csv")
    assert outside.status_code == 404 and outside.headers["content-type"].startswith("text/html")
    client.cookies.clear()
    assert client.get(f"/admin/events/{event.id}/attendance.csv", follow_redirects=False).status_code == 303


# NFC write requests -------------------------------------------------------------------------------------------------


def test_an_nfc_write_request_from_the_event_page(app: FastAPI, client: TestClient, db: Session, tree: Tree,
                                                  cipher: PiiCipher) -> None:
    event = make_event(db, tree.commune_a.id)
    door = make_door(client, db, event, "Bàn cấp thẻ")
    pending = stations.register_station(db, SYSTEM, event.id, "Chưa cài").station
    member = make_member(db, cipher, tree.branch_a)
    without_card = make_member(db, cipher, tree.branch_a, full_name="Trần Thị Mai")
    outside = make_member(db, cipher, tree.branch_b)
    card, _qr = issue(app, db, member)
    issue(app, db, outside)
    token = page_login(client, "t.officer.a")
    assert f'id="nfc-submit-{door.station_id}"' in client.get(f"/admin/events/{event.id}").text
    url = f"/admin/events/{event.id}/stations/{door.station_id}/nfc-writes"

    assert client.post(url, data={"member": member.member_number}).status_code == 403
    sent = client.post(url, data={"csrf_token": token, "member": member.member_number, "lock": "yes"},
                       follow_redirects=False)
    assert sent.status_code == 303
    assert sent.headers["location"] == f"/admin/events/{event.id}?done=nfc_requested#station-{door.station_id}"
    request = db.scalars(select(NfcWriteRequest)).one()
    assert (request.card_id, request.station_id, request.lock, request.status) == (
        card.card_id, door.station_id, True, "pending")
    assert [e.target_id for e in _actions(db, "card.nfc_write_requested")] == [card.card_id]
    shown = client.get(sent.headers["location"])
    assert "Đã gửi yêu cầu ghi thẻ" in shown.text and "Đang chờ máy ghi" in shown.text

    no_card = client.post(url, data={"csrf_token": token, "member": without_card.member_number})
    assert no_card.status_code == 409 and "không có thẻ đang dùng" in no_card.text
    assert client.post(url, data={"csrf_token": token, "member": outside.member_number}).status_code == 404
    not_set_up = client.post(f"/admin/events/{event.id}/stations/{pending.id}/nfc-writes",
                             data={"csrf_token": token, "member": member.member_number})
    assert not_set_up.status_code == 409 and "chưa được cài đặt" in not_set_up.text
    client.cookies.clear()
    viewer = page_login(client, "t.viewer.a")
    assert client.post(url, data={"csrf_token": viewer, "member": member.member_number}).status_code == 403
    assert _count(db, NfcWriteRequest) == 1


# Card links ---------------------------------------------------------------------------------------------------------


def test_a_card_link_is_created_printed_sent_and_revoked_from_the_member_page(
        app: FastAPI, client: TestClient, db: Session, tree: Tree, cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a, full_name="Nguyễn Thị Lan")
    issue(app, db, member)
    token = page_login(client, "t.officer.a")
    page = client.get(f"/admin/members/{member.id}")
    assert 'id="link-paper"' in page.text and 'id="link-sms"' not in page.text
    assert "chưa đồng ý nhận tin nhắn" in page.text

    assert client.post(f"/admin/members/{member.id}/links", data={"channel": "paper"}).status_code == 403
    paper = client.post(f"/admin/members/{member.id}/links", data={"csrf_token": token, "channel": "paper"},
                        headers={"host": "192.168.1.20:8000"})
    assert paper.status_code == 200 and paper.headers["cache-control"] == "no-store"
    url = re.search(r'<a href="([^"]+)" id="link-url">', paper.text).group(1)  # type: ignore[union-attr]
    assert url.startswith("http://192.168.1.20:8000/m/")
    svg = re.search(r'<div class="qr" id="link-qr">(<svg.*?</svg>)</div>', paper.text, re.S)
    assert svg and _decode_svg_qr(svg.group(1)) == url
    assert client.get(url.split("8000", 1)[1]).status_code == 200  # the member's page opens
    assert [e.details["channel"] for e in _actions(db, "member_link.create")] == ["paper"]

    refused = client.post(f"/admin/members/{member.id}/links", data={"csrf_token": token, "channel": "sms"})
    assert refused.status_code == 409 and "chưa đồng ý nhận tin nhắn" in refused.text
    consents.record_consent(db, SYSTEM, member.id, purpose="digital_card_messaging", method="paper_form",
                            evidence_ref="form 12")
    assert 'id="link-zalo"' in client.get(f"/admin/members/{member.id}").text
    sent = client.post(f"/admin/members/{member.id}/links", data={"csrf_token": token, "channel": "zalo"},
                       follow_redirects=False)
    assert sent.headers["location"] == f"/admin/members/{member.id}?done=link_sent_zalo"
    shown = client.get(sent.headers["location"])
    assert "Đã gửi đường link qua Zalo" in shown.text and "gửi qua Zalo" in shown.text
    assert len(_actions(db, "member_link.send")) == 1
    assert client.get(url.split("8000", 1)[1]).status_code == 404  # the paper link was replaced

    revoked = client.post(f"/admin/members/{member.id}/links/revoke", data={"csrf_token": token})
    assert "Đã thu hồi đường link" in revoked.text and "Chưa có đường link nào đang dùng" in revoked.text
    assert _count(db, MemberLink, MemberLink.member_id == member.id, MemberLink.revoked_at.is_(None)) == 0


def test_card_links_keep_scope_and_read_only_accounts(client: TestClient, db: Session, tree: Tree,
                                                      cipher: PiiCipher) -> None:
    inside = make_member(db, cipher, tree.branch_a)
    outside = make_member(db, cipher, tree.branch_b)
    token = page_login(client, "t.officer.a")
    assert client.post(f"/admin/members/{inside.id}/links/revoke", data={}).status_code == 403
    assert client.post(f"/admin/members/{outside.id}/links", data={"csrf_token": token}).status_code == 404
    assert client.post(f"/admin/members/{outside.id}/links/revoke", data={"csrf_token": token}).status_code == 404
    client.cookies.clear()
    viewer = page_login(client, "t.viewer.a")
    assert 'id="link-paper"' not in client.get(f"/admin/members/{inside.id}").text
    assert client.post(f"/admin/members/{inside.id}/links", data={"csrf_token": viewer}).status_code == 403
    assert _count(db, MemberLink) == 0


# Words --------------------------------------------------------------------------------------------------------------


def test_search_says_when_a_page_of_results_is_not_all(client: TestClient, db: Session, tree: Tree,
                                                       cipher: PiiCipher, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    for name in ("Nguyễn Thị An", "Nguyễn Thị Bình", "Nguyễn Thị Cúc"):
        make_member(db, cipher, tree.branch_a, full_name=name)
    page_login(client, "t.officer.a")
    first = client.get("/admin/members", params={"q": "nguyen"})
    assert "Đang hiện 1–2; còn nữa" in first.text and "Tìm thấy 2" not in first.text
    last = client.get("/admin/members", params={"q": "nguyen", "offset": 2})
    assert "Đang hiện 3–3 (hết danh sách)" in last.text
    assert "Tìm thấy 1 hội viên" in client.get("/admin/members", params={"q": "nguyen thi cuc"}).text


def test_a_partial_member_number_finds_the_member(client: TestClient, db: Session, tree: Tree,
                                                  cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a, full_name="Nguyễn Thị Lan")
    outside = make_member(db, cipher, tree.branch_b, full_name="Lê Thị Hoa")
    page_login(client, "t.officer.a")
    prefix = member.member_number[:7]
    found = client.get("/admin/members", params={"q": prefix})
    assert f"/admin/members/{member.id}" in found.text
    assert "Lê Thị Hoa" not in client.get("/admin/members", params={"q": outside.member_number[:9]}).text
    assert "Không tìm thấy" in client.get("/admin/members", params={"q": "99999999999"}).text


def test_after_a_revocation_the_member_page_says_the_card_was_revoked(app: FastAPI, client: TestClient,
                                                                      db: Session, tree: Tree,
                                                                      cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    card, _qr = issue(app, db, member)
    cards.revoke_card(db, SYSTEM, card.card_id, reason="lost", note=None)
    page_login(client, "t.officer.a")
    page = client.get(f"/admin/members/{member.id}")
    assert "Hội viên này chưa có thẻ" not in page.text
    notice = re.search(r'id="no-current-card">([^<]+)<', page.text)
    assert notice and "Đã thu hồi — Mất thẻ" in notice.group(1) and "lần cấp 1" in notice.group(1)
    assert "Cấp thẻ mới" in page.text


def test_the_event_page_shows_the_checkin_window_in_vietnam_time(client: TestClient, db: Session,
                                                                 tree: Tree) -> None:
    start = datetime(2030, 3, 8, 1, 0, tzinfo=UTC)  # 08:00 in Vietnam
    event = make_event(db, tree.commune_a.id, starts_at=start, ends_at=start + timedelta(hours=3))
    page_login(client, "t.officer.a")
    window = re.search(r'id="checkin-window">([^<]+)<', client.get(f"/admin/events/{event.id}").text)
    assert window and window.group(1) == "Giờ điểm danh: 08/03/2030 06:00 – 08/03/2030 11:00 (giờ Việt Nam, UTC+7)"
    assert event.checkin_opens_at.astimezone(VIETNAM_TZ).hour == 6


def test_error_lines_never_show_internal_names_or_english_on_a_vietnamese_page() -> None:
    failure = ValidationFailed("bad", details=[
        {"field": "some_internal_field", "code": "weird_code", "message": "must be a thing"},
        {"field": "birth_date", "code": "required", "message": "missing"},
    ])
    _headline, lines = error_messages("vi", failure)
    assert lines == ["không hợp lệ", "Ngày sinh: chưa điền"]
    assert error_messages("en", failure)[1] == ["must be a thing", "Date of birth: is missing"]


# HTTPS help page ----------------------------------------------------------------------------------------------------


def test_the_certificate_page_and_download(app: FastAPI, client: TestClient, tmp_path: Path) -> None:
    with configured(app, tls_dir=tmp_path / "tls"):
        none = client.get("/admin/tls")
        assert none.status_code == 200 and 'id="tls-none"' in none.text
        assert client.get("/admin/tls/ca.crt").status_code == 404
        tls.prepare(tmp_path / "tls", ["192.168.1.20"])
        page = client.get("/admin/tls", headers={"host": "192.168.1.20:8443"})
        authority = tls.authority_certificate(tmp_path / "tls")
        assert authority is not None
        assert tls.fingerprint(authority) in page.text and "Chứng chỉ CA" in page.text and "iPhone" in page.text
        svg = re.search(r'<div class="qr" id="tls-qr">(<svg.*?</svg>)</div>', page.text, re.S)
        assert svg and _decode_svg_qr(svg.group(1)) == "http://192.168.1.20:8443/admin/tls"
        download = client.get("/admin/tls/ca.crt")
    assert download.status_code == 200 and download.headers["content-type"] == "application/x-x509-ca-cert"
    assert x509.load_der_x509_certificate(download.content) == authority


def test_the_event_page_links_the_certificate_help_over_https_with_a_local_authority(
        app: FastAPI, client: TestClient, db: Session, tree: Tree, tmp_path: Path) -> None:
    event = make_event(db, tree.commune_a.id)
    tls.prepare(tmp_path, ["192.168.1.20"])
    plain_token = page_login(client, "t.officer.a")
    with configured(app, tls_dir=tmp_path), TestClient(app, base_url="https://192.168.1.20:8443") as secure:
        token = page_login(secure, "t.officer.a")
        answer = secure.post(f"/admin/events/{event.id}/stations", data={"csrf_token": token, "name": "Cửa"})
        plain = client.post(f"/admin/events/{event.id}/stations", data={"csrf_token": plain_token, "name": "Cửa"},
                            headers={"host": "192.168.1.20:8000"})
    assert 'id="tls-help"' in answer.text and "data-address-problem" not in answer.text
    assert _setup_url(answer.text).startswith("https://192.168.1.20:8443/checkin#setup=")
    assert 'id="provisioning-qr"' in plain.text and 'id="tls-help"' not in plain.text  # plain HTTP: no such help


# Static files -------------------------------------------------------------------------------------------------------


def test_static_files_are_compressed_cached_with_a_version_and_there_is_a_favicon(client: TestClient,
                                                                                   tree: Tree) -> None:
    decoder = client.get("/static/checkin/vendor/jsQR.js", headers={"accept-encoding": "gzip"})
    assert decoder.status_code == 200 and decoder.headers["content-encoding"] == "gzip"
    assert decoder.num_bytes_downloaded * 3 < len(decoder.content)
    assert decoder.headers["cache-control"] == "no-cache" and decoder.headers["etag"]
    revalidated = client.get("/static/checkin/vendor/jsQR.js", headers={"if-none-match": decoder.headers["etag"]})
    assert revalidated.status_code == 304 and revalidated.headers["cache-control"] == "no-cache"

    login_page = client.get("/admin/login").text
    versioned = re.search(r'href="(/static/admin/admin\.css\?v=[0-9a-f]{12})"', login_page)
    assert versioned, "the stylesheet's address carries no version"
    css = client.get(versioned.group(1))
    assert css.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert re.search(r'src="/static/admin/admin\.js\?v=[0-9a-f]{12}"', login_page)
    favicon = client.get("/favicon.ico")
    assert favicon.status_code == 200 and favicon.headers["content-type"] == "image/png"
    assert 'rel="icon"' in login_page


def test_invite_numbers_are_read_from_text_and_files() -> None:
    from cardsvc.importing.numbers import member_numbers_in_file, member_numbers_in_text

    assert member_numbers_in_text("0000000125, 12345678901 1234567890\n0000000125") == ["0000000125", "1234567890"]
    assert member_numbers_in_file("Mã\r\n0000000125\r\n".encode("utf-16")) == ["0000000125"]
    assert member_numbers_in_file(_xlsx([["Mã hội viên"], [125], ["1234567890"]])) == ["0000000125", "1234567890"]

