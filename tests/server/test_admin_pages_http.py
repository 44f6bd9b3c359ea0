"""Officer pages over HTTP (TestClient, rolled-back database): session cookie, CSRF, scope, roles, friendly errors,
imports, events and the provisioning QR. The browser walk-through is in tests/web/test_admin_pages.py."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import zxingcpp
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cardsvc.db.models import AdminSession, Card, Member, SigningKey
from cardsvc.security import PiiCipher
from cardsvc.settings import Settings
from cardsvc.web.admin.i18n import CATALOGUE
from cardsvc.web.admin.session import COOKIE_NAME, SessionCodec
from tests.conftest import NAME_TOO_LONG_FOR_CARD, PASSWORD, Tree, id_number_for, login, make_member

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def page_login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign in through the login form; returns the CSRF token of the signed-in session."""
    form = client.get("/admin/login")
    response = client.post("/admin/login", data={"username": username, "password": password,
                                                 "csrf_token": csrf_of(form.text)}, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/admin"
    return csrf_of(client.get("/admin").text)


def test_login_sets_a_strict_http_only_cookie_and_logout_ends_the_session(client: TestClient, tree: Tree) -> None:
    form = client.get("/admin/login")
    assert form.status_code == 200
    csp = form.headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
                      "form-action 'self'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "<script>" not in form.text and "style=" not in form.text
    anonymous_token = csrf_of(form.text)

    response = client.post("/admin/login", data={"username": "t.officer.a", "password": PASSWORD,
                                                 "csrf_token": anonymous_token}, follow_redirects=False)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert f"{COOKIE_NAME}=" in cookie and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert "Secure" not in cookie  # The test server's public URL is http.
    home = client.get("/admin")
    assert home.status_code == 200 and "t.officer.a" in home.text
    signed_in_token = csrf_of(home.text)
    assert signed_in_token != anonymous_token  # A new nonce at login: no session fixation.

    logout = client.post("/admin/logout", data={"csrf_token": signed_in_token}, follow_redirects=False)
    assert logout.status_code == 303 and logout.headers["location"] == "/admin/login"
    after = client.get("/admin", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"] == "/admin/login"


def test_logout_is_final_an_old_cookie_no_longer_works(client: TestClient, tree: Tree, db: Session) -> None:
    token = page_login(client, "t.officer.a")
    stolen = client.cookies[COOKIE_NAME]
    client.post("/admin/logout", data={"csrf_token": token}, follow_redirects=False)
    client.cookies.set(COOKIE_NAME, stolen)
    after = client.get("/admin", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"] == "/admin/login"
    session = db.scalars(select(AdminSession).where(AdminSession.officer_id == tree.officers["t.officer.a"].id)).one()
    assert session.ended_at is not None


def test_a_session_ends_after_idle_time_and_at_its_limit(client: TestClient, tree: Tree, db: Session,
                                                          settings: Settings) -> None:
    page_login(client, "t.officer.a")
    session = db.scalars(select(AdminSession).where(AdminSession.officer_id == tree.officers["t.officer.a"].id)).one()
    now = datetime.now(UTC)
    session.last_seen_at = now - timedelta(minutes=settings.access_token_minutes - 1)
    db.commit()
    assert client.get("/admin", follow_redirects=False).status_code == 200
    db.refresh(session)
    assert session.last_seen_at > now - timedelta(minutes=1)  # each visit keeps it alive
    session.created_at = now - timedelta(hours=settings.session_max_hours, minutes=1)
    db.commit()
    assert client.get("/admin", follow_redirects=False).status_code == 303

    page_login(client, "t.officer.a")
    latest = db.scalars(select(AdminSession).where(AdminSession.ended_at.is_(None))
                        .order_by(AdminSession.id.desc())).first()
    assert latest is not None
    latest.last_seen_at = now - timedelta(minutes=settings.access_token_minutes + 1)
    db.commit()
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_sign_out_everywhere_ends_every_page_session_and_token(app: FastAPI, client: TestClient,
                                                               tree: Tree) -> None:
    other_browser = TestClient(app)
    page_login(other_browser, "t.officer.a")
    api = login(client, "t.officer.a")
    token = page_login(client, "t.officer.a")
    assert 'id="sign-out-everywhere"' in client.get("/admin").text
    done = client.post("/admin/sign-out-everywhere", data={"csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/admin/login"
    for browser in (client, other_browser):
        assert browser.get("/admin", follow_redirects=False).status_code == 303
    assert client.get("/v1/me", headers=api).status_code == 401


def test_a_password_change_or_a_disable_ends_page_sessions(client: TestClient, tree: Tree) -> None:
    page_login(client, "t.officer.a")
    api = login(client, "t.officer.a")
    assert client.post("/v1/me/password", json={"current_password": PASSWORD, "new_password": "a new long password"},
                       headers=api).status_code == 204
    assert client.get("/admin", follow_redirects=False).status_code == 303

    page_login(client, "t.officer.b")
    officer_id = tree.officers["t.officer.b"].id
    admin = login(client, "t.admin")
    assert client.post(f"/v1/officers/{officer_id}/active", json={"is_active": False}, headers=admin).status_code \
        == 200
    assert client.post(f"/v1/officers/{officer_id}/active", json={"is_active": True}, headers=admin).status_code \
        == 200
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_wrong_password_is_a_friendly_message_and_a_paused_login_looks_the_same(client: TestClient, tree: Tree,
                                                                                settings: Settings) -> None:
    token = csrf_of(client.get("/admin/login").text)

    def attempt(username: str, password: str) -> tuple[int, str]:
        response = client.post("/admin/login", data={"username": username, "password": password,
                                                      "csrf_token": token})
        assert "retry-after" not in response.headers
        error = re.search(r'id="login-error">([^<]*)<', response.text)
        assert error, response.text
        return response.status_code, error.group(1)

    wrong = attempt("t.officer.a", "not the password")
    assert wrong[0] == 401
    assert "Sai tên đăng nhập hoặc mật khẩu" in wrong[1]
    for _ in range(settings.login_max_failures):
        assert attempt("t.officer.a", "nope nope nope") == wrong
    assert attempt("t.officer.a", PASSWORD) == wrong
    assert attempt("no.such.officer", PASSWORD) == wrong


def test_pages_need_a_session(client: TestClient, tree: Tree) -> None:
    for path in ("/admin", "/admin/members?q=lan", "/admin/events", "/admin/import"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/admin/login", path


def test_a_tampered_or_expired_cookie_is_no_session(settings: Settings) -> None:
    codec = SessionCodec.from_settings(settings)
    session = codec.new(42, now=1_000_000)
    value = codec.encode(session)
    assert codec.decode(value, now=1_000_010) == session
    assert codec.decode(value, now=1_000_000 + settings.session_max_hours * 3600 + 1) is None
    payload, signature = value.split(".")
    forged = SessionCodec(b"another key" * 3, lifetime=codec.lifetime, idle=codec.idle, secure=False).encode(session)
    assert codec.decode(forged, now=1_000_010) is None
    assert codec.decode(payload + "." + signature[:-2] + "AA", now=1_000_010) is None
    assert not codec.csrf_ok(session, None) and not codec.csrf_ok(session, "x")
    assert codec.csrf_ok(session, codec.csrf_token(session))
    https = SessionCodec.from_settings(settings.model_copy(update={"public_base_url": "https://the.union"}))
    assert https.secure and not codec.secure


def test_post_without_or_with_a_wrong_csrf_token_is_refused(client: TestClient, tree: Tree, db: Session,
                                                            cipher: PiiCipher,
                                                            signing_keys: dict[str, SigningKey]) -> None:
    member = make_member(db, cipher, tree.branch_a)
    page_login(client, "t.officer.a")
    for data in ({}, {"csrf_token": "forged"}):
        refused = client.post(f"/admin/members/{member.id}/cards", data={"reason": "issue", **data})
        assert refused.status_code == 403
        assert "Biểu mẫu đã cũ" in refused.text
    assert db.scalar(select(func.count()).select_from(Card).where(Card.member_id == member.id)) == 0
    # The login form needs its token as well (no login CSRF).
    client.cookies.clear()
    assert client.post("/admin/login", data={"username": "t.officer.a", "password": PASSWORD}).status_code == 403


def test_search_is_accent_insensitive_and_issue_print_and_card_lifecycle(
        client: TestClient, tree: Tree, db: Session, cipher: PiiCipher, signing_keys: dict[str, SigningKey]) -> None:
    member = make_member(db, cipher, tree.branch_a, full_name="Nguyễn Thị Lan")
    make_member(db, cipher, tree.branch_a, full_name="Trần Thị Mai")
    token = page_login(client, "t.officer.a")

    found = client.get("/admin/members", params={"q": "nguyen thi lan"})
    assert found.status_code == 200
    assert f"/admin/members/{member.id}" in found.text and "Trần Thị Mai" not in found.text
    by_chapter = client.get("/admin/members", params={"chapter": tree.branch_a.id})
    assert "Nguyễn Thị Lan" in by_chapter.text and "Trần Thị Mai" in by_chapter.text

    detail = client.get(f"/admin/members/{member.id}")
    assert 'id="issue-card"' in detail.text
    issued = client.post(f"/admin/members/{member.id}/cards", data={"reason": "issue", "csrf_token": token},
                         follow_redirects=False)
    assert issued.status_code == 303
    card = db.scalars(select(Card).where(Card.member_id == member.id)).one()
    page = client.get(issued.headers["location"])
    assert "Đã cấp thẻ mới" in page.text and f'data-card-id="{card.card_id}"' in page.text

    pdf = client.get(f"/admin/cards/{card.card_id}/card.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")

    assert client.post(f"/admin/cards/{card.card_id}/suspend", data={"csrf_token": token}).status_code == 200
    db.refresh(card)
    assert card.status == "suspended"
    client.post(f"/admin/cards/{card.card_id}/reinstate", data={"csrf_token": token})
    db.refresh(card)
    assert card.status == "active"
    reissued = client.post(f"/admin/members/{member.id}/cards", data={"reason": "damaged", "csrf_token": token})
    assert reissued.status_code == 200
    db.refresh(card)
    assert card.status == "superseded"
    current = db.scalars(select(Card).where(Card.member_id == member.id, Card.status == "active")).one()
    revoked = client.post(f"/admin/cards/{current.card_id}/revoke",
                          data={"reason": "lost", "note": "mất ở chợ", "csrf_token": token})
    assert "Đã thu hồi thẻ" in revoked.text
    db.refresh(current)
    assert current.status == "revoked" and current.status_reason == "lost"
    # A second revocation is a friendly 409 page, not a 500.
    again = client.post(f"/admin/cards/{current.card_id}/revoke", data={"reason": "lost", "csrf_token": token})
    assert again.status_code == 409 and "Không thể đổi trạng thái" in again.text
    assert again.headers["content-type"].startswith("text/html")


def test_an_officer_gets_404_for_a_member_of_another_province(client: TestClient, tree: Tree, db: Session,
                                                               cipher: PiiCipher) -> None:
    other = make_member(db, cipher, tree.branch_b, full_name="Nguyễn Thị Lan")
    page_login(client, "t.officer.a")
    response = client.get(f"/admin/members/{other.id}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "ngoài phạm vi" in response.text and "Nguyễn Thị Lan" not in response.text
    assert "Nguyễn Thị Lan" not in client.get("/admin/members", params={"q": "nguyen thi lan"}).text
    assert client.get("/admin/members/not-a-number").status_code == 404


def test_a_viewer_sees_no_write_buttons_and_her_posts_are_refused(
        client: TestClient, tree: Tree, db: Session, cipher: PiiCipher, signing_keys: dict[str, SigningKey]) -> None:
    member = make_member(db, cipher, tree.branch_a)
    token = page_login(client, "t.viewer.a")
    detail = client.get(f"/admin/members/{member.id}")
    assert detail.status_code == 200
    assert 'id="issue-card"' not in detail.text and "/cards\"" not in detail.text
    assert "/admin/import" not in client.get("/admin").text
    refused = client.post(f"/admin/members/{member.id}/cards", data={"reason": "issue", "csrf_token": token})
    assert refused.status_code == 403 and "chỉ được xem" in refused.text
    assert db.scalar(select(func.count()).select_from(Card).where(Card.member_id == member.id)) == 0


def test_a_probable_duplicate_is_shown_on_the_member_page_and_merged_with_csrf_in_scope(
        client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    birth = date(1979, 11, 2)
    survivor = make_member(db, cipher, tree.branch_a, full_name="Dương Thị Ánh", birth_date=birth)
    duplicate = make_member(db, cipher, tree.branch_a, full_name="Duong Thi Anh", birth_date=birth, id_number=None,
                            old_id_number="031456789")
    elsewhere = make_member(db, cipher, tree.branch_b, full_name="Dương Thị Ánh", birth_date=birth,
                            id_number=None, old_id_number="079456789")
    viewer_token = page_login(client, "t.viewer.a")
    seen = client.get(f"/admin/members/{survivor.id}")
    assert f'data-member-id="{duplicate.id}"' in seen.text and "/merge" not in seen.text
    assert client.post(f"/admin/members/{survivor.id}/merge",
                       data={"duplicate": str(duplicate.id), "csrf_token": viewer_token}).status_code == 403
    client.cookies.clear()
    token = page_login(client, "t.officer.a")
    page = client.get(f"/admin/members/{survivor.id}")
    assert "Có thể trùng hồ sơ" in page.text and f'data-member-id="{elsewhere.id}"' not in page.text
    assert client.post(f"/admin/members/{survivor.id}/merge", data={"duplicate": str(duplicate.id)}).status_code == 403
    outside = client.post(f"/admin/members/{survivor.id}/merge",
                          data={"duplicate": str(elsewhere.id), "csrf_token": token})
    assert outside.status_code == 404
    merged = client.post(f"/admin/members/{survivor.id}/merge",
                         data={"duplicate": str(duplicate.id), "csrf_token": token}, follow_redirects=False)
    assert merged.status_code == 303 and merged.headers["location"].endswith("?done=merged")
    assert "Đã gộp hồ sơ trùng" in client.get(merged.headers["location"]).text
    closed = client.get(f"/admin/members/{duplicate.id}")
    assert 'id="merged-into"' in closed.text and f"/admin/members/{survivor.id}" in closed.text
    again = client.post(f"/admin/members/{survivor.id}/merge",
                        data={"duplicate": str(duplicate.id), "csrf_token": token})
    assert again.status_code == 409 and "đã được gộp" in again.text
    db.expire_all()
    assert db.get_one(Member, duplicate.id).merged_into_id == survivor.id


def test_import_dry_run_shows_the_row_report_and_writes_nothing(client: TestClient, tree: Tree,
                                                               db: Session) -> None:
    token = page_login(client, "t.officer.a")
    birth = date(1988, 2, 3)
    text = ("Họ và tên,Ngày sinh,Số CCCD\n"
            f"Trần Thị Mai,03/02/1988,{id_number_for(birth)}\n"
            "Lê Thị Hoa,31/02/1990,\n")
    before = db.scalar(select(func.count()).select_from(Member)) or 0
    response = client.post("/admin/import", data={"csrf_token": token, "chapter": str(tree.branch_a.id),
                                                  "mode": "dry_run"},
                           files={"file": ("danh-sach.csv", text.encode("utf-8-sig"), "text/csv")})
    assert response.status_code == 200, response.text
    assert "Kết quả kiểm tra (chưa lưu gì)" in response.text
    assert re.search(r'id="count-rows">2<', response.text) and re.search(r'id="count-created">1<', response.text)
    assert re.search(r'id="count-failed">1<', response.text)
    assert 'id="import-problems"' in response.text and "<td>3</td>" in response.text
    assert db.scalar(select(func.count()).select_from(Member)) == before

    english = client.get("/admin/language/en", params={"back": "/admin/import"}, follow_redirects=False)
    assert english.status_code == 303 and english.headers["location"] == "/admin/import"
    response = client.post("/admin/import", data={"csrf_token": token, "chapter": str(tree.branch_a.id),
                                                  "mode": "import"},
                           files={"file": ("danh-sach.csv", text.encode("utf-8-sig"), "text/csv")})
    assert "Result" in response.text and "Rows to correct" in response.text
    assert db.scalar(select(func.count()).select_from(Member)) == before + 1

    unreadable = client.post("/admin/import", data={"csrf_token": token, "mode": "dry_run"},
                             files={"file": ("x.csv", b"", "text/csv")})
    assert unreadable.status_code == 422 and 'id="import-error"' in unreadable.text
    missing = client.post("/admin/import", data={"csrf_token": token, "mode": "dry_run"})
    assert missing.status_code == 422 and "Please choose a file" in missing.text


def test_import_report_counts_problems_and_links_the_file_with_an_error_column(client: TestClient, tree: Tree
                                                                              ) -> None:
    token = page_login(client, "t.officer.a")
    rows = "".join(f"Trần Thị Mai,31/02/1988,{id_number_for(date(1988, 2, 3 + n % 20))}\n" for n in range(30))
    text = "DANH SÁCH HỘI VIÊN\nHọ và tên,Ngày sinh,Số CCCD/CMND,Quê quán\n" + rows + "Tổng cộng: 30\n"
    response = client.post("/admin/import", data={"csrf_token": token, "chapter": str(tree.branch_a.id),
                                                  "mode": "dry_run"},
                           files={"file": ("danh-sach.csv", text.encode("utf-8-sig"), "text/csv")})
    assert response.status_code == 200, response.text
    assert re.search(r'id="count-failed">30<', response.text)
    assert "Dòng tên cột: dòng 2" in response.text and "Các cột không dùng: Quê quán" in response.text
    assert "Bỏ qua 1 × Dòng tiêu đề" in response.text and "Bỏ qua 1 × Dòng tổng cộng" in response.text
    counts = response.text.split('id="import-problem-counts"')[1].split("</table>")[0]
    assert "<td>30</td>" in counts and "Cột &#39;Ngày sinh&#39; (B)" in counts
    listed = response.text.split('id="import-problems"')[1].split("</table>")[0]
    assert listed.count("<tr class=") == 20 and "birth_date" not in response.text
    assert "Còn 10 vấn đề nữa" in response.text
    link = re.search(r'href="(/admin/import/errors/[A-Za-z0-9_-]+\?format=xlsx)"', response.text)
    assert link is not None
    download = client.get(link.group(1).replace("&amp;", "&"))
    assert download.status_code == 200 and download.content.startswith(b"PK")
    assert "attachment" in download.headers["content-disposition"]


def _decode_svg_qr(svg: str) -> str:
    """Rasterise the ``qrcode`` path SVG (one ``M x,y H V H z`` square per dark module) and decode it."""
    size = int(re.search(r'viewBox="0 0 (\d+) \d+"', svg).group(1))  # type: ignore[union-attr]
    scale = 8
    image = Image.new("L", (size * scale, size * scale), 255)
    draw = ImageDraw.Draw(image)
    for x, y, x2, y2 in re.findall(r"M(\d+),(\d+)H(\d+)V(\d+)H\d+z", svg):
        draw.rectangle((int(x) * scale, int(y) * scale, int(x2) * scale - 1, int(y2) * scale - 1), fill=0)
    results = zxingcpp.read_barcodes(image)
    assert len(results) == 1
    return str(results[0].text)


def test_event_creation_and_station_registration_shows_a_scannable_provisioning_qr(
        client: TestClient, tree: Tree) -> None:
    token = page_login(client, "t.officer.a")
    assert 'id="new-event"' in client.get("/admin/events").text
    start = date.today() + timedelta(days=3)
    created = client.post("/admin/events", data={
        "csrf_token": token, "chapter": str(tree.commune_a.id), "title": "Hội nghị chi hội", "venue": "Nhà văn hoá",
        "starts_at": f"{start.isoformat()}T08:00", "ends_at": f"{start.isoformat()}T11:30",
        "eligibility": "subtree", "mode": "entry",
    }, follow_redirects=False)
    assert created.status_code == 303
    event_url = created.headers["location"]
    event_page = client.get(event_url)
    assert "Hội nghị chi hội" in event_page.text and "08:00" in event_page.text  # Shown in Vietnam time.
    event_id = int(event_url.rsplit("/", 1)[1])

    registered = client.post(f"/admin/events/{event_id}/stations", data={"csrf_token": token, "name": "Cửa chính"})
    assert registered.status_code == 200
    svg = re.search(r'<div class="qr" id="provisioning-qr">(<svg.*?</svg>)</div>', registered.text, re.S)
    assert svg, "no inline SVG QR"
    url = re.search(r'<input id="provisioning-url" value="([^"]+)"', registered.text).group(1)  # type: ignore[union-attr]
    # No public address configured: the address the officer's browser used (the test client's).
    assert url.startswith("http://testserver/checkin#setup=")
    assert f'id="provisioning-link" href="{url}"' in registered.text
    assert _decode_svg_qr(svg.group(1)) == url
    # The code in the QR is the one the station exchanges for its device token.
    code = url.split("#setup=", 1)[1]
    provisioned = client.post("/v1/devices/provision", json={"code": code})
    assert provisioned.status_code == 200, provisioned.text
    assert "Cửa chính" in client.get(event_url).text

    stats = client.get(f"/admin/events/{event_id}/stats.json")
    assert stats.status_code == 200 and stats.json()["checked_in"] == 0
    client.cookies.clear()
    assert client.get(f"/admin/events/{event_id}/stats.json", follow_redirects=False).status_code == 303


def test_an_invalid_form_is_a_friendly_page(client: TestClient, tree: Tree) -> None:
    token = page_login(client, "t.officer.a")
    response = client.post("/admin/events", data={
        "csrf_token": token, "chapter": str(tree.commune_a.id), "title": "Họp", "starts_at": "2030-03-08T10:00",
        "ends_at": "2030-03-08T09:00",
    })
    assert response.status_code == 422
    assert "Thông tin chưa đúng" in response.text and "phải sau giờ bắt đầu" in response.text
    assert 'value="Họp"' in response.text  # What she typed is kept.
    garbled = client.post("/admin/events", data={"csrf_token": token, "chapter": str(tree.commune_a.id),
                                                 "title": "Họp", "starts_at": "ngày mai", "ends_at": ""})
    assert garbled.status_code == 422 and "ngày giờ không đúng" in garbled.text
    outside = client.post("/admin/events", data={"csrf_token": token, "chapter": str(tree.commune_b.id),
                                                 "title": "Họp", "starts_at": "2030-03-08T08:00",
                                                 "ends_at": "2030-03-08T09:00"})
    assert outside.status_code == 404 and outside.headers["content-type"].startswith("text/html")


def test_a_chapter_number_no_id_can_be_is_no_chapter(client: TestClient, tree: Tree) -> None:
    """A chapter id beyond 64 bits in a query or form used to reach the database driver (a 500)."""
    csrf = page_login(client, "t.admin")
    search = client.get("/admin/members", params={"chapter": "9" * 20})
    assert search.status_code == 200
    for path in ("/admin/print", "/admin/events"):
        posted = client.post(path, data={"csrf_token": csrf, "chapter": str(2**64), "title": "Họp",
                                         "starts_at": "2026-12-01T08:00", "ends_at": "2026-12-01T10:00"})
        assert posted.status_code == 422, path


def test_language_switch_stays_inside_the_officer_pages(client: TestClient, tree: Tree) -> None:
    page_login(client, "t.officer.a")
    for back in ("//evil.example/", "https://evil.example/admin", "/v1/members"):
        response = client.get("/admin/language/en", params={"back": back}, follow_redirects=False)
        assert response.headers["location"] == "/admin"
    assert "Find a member" in client.get("/admin").text
    client.get("/admin/language/vi")
    assert "Tìm hội viên" in client.get("/admin").text


def test_pages_stay_out_of_the_openapi_schema(app: FastAPI) -> None:
    assert not [path for path in app.openapi()["paths"] if path.startswith("/admin")]


def test_catalogues_have_the_same_keys() -> None:
    assert set(CATALOGUE["vi"]) == set(CATALOGUE["en"])


def test_static_files_are_served(client: TestClient) -> None:
    assert client.get("/static/admin/admin.js").status_code == 200
    assert client.get("/static/admin/admin.css").status_code == 200


def test_printing_a_chapter_issues_its_cards_and_gives_a4_sheets(
        client: TestClient, tree: Tree, db: Session, cipher: PiiCipher, signing_keys: dict[str, SigningKey]) -> None:
    make_member(db, cipher, tree.branch_a, full_name="Nguyễn Thị Lan")
    make_member(db, cipher, tree.branch_a, full_name="Trần Thị Mai")
    token = page_login(client, "t.officer.a")
    assert 'id="print-submit"' in client.get("/admin/print").text
    started = client.post("/admin/print", data={"csrf_token": token, "chapter": str(tree.commune_a.id),
                                                "subtree": "yes"}, follow_redirects=False)
    assert started.status_code == 303
    job_url = started.headers["location"]
    job_page = client.get(job_url)  # Tests run jobs inline: the job is done already.
    assert "Đã cấp 2 / 2 thẻ" in job_page.text
    assert client.get(f"{job_url}/progress.json").json()["status"] == "done"
    sheets = client.get(f"{job_url}/sheets.pdf")
    assert sheets.status_code == 200 and sheets.content.startswith(b"%PDF")
    missing_chapter = client.post("/admin/print", data={"csrf_token": token})
    assert missing_chapter.status_code == 422 and "Chi hội" in missing_chapter.text


def test_the_job_page_lists_the_members_who_got_no_card(
        client: TestClient, tree: Tree, db: Session, cipher: PiiCipher, signing_keys: dict[str, SigningKey]) -> None:
    make_member(db, cipher, tree.branch_a, full_name="Nguyễn Thị Lan")
    legacy = make_member(db, cipher, tree.branch_a, full_name="Trần Thị Mai")
    db.execute(update(Member).where(Member.id == legacy.id).values(full_name=NAME_TOO_LONG_FOR_CARD))
    token = page_login(client, "t.officer.a")
    started = client.post("/admin/print", data={"csrf_token": token, "chapter": str(tree.branch_a.id)},
                          follow_redirects=False)
    job_url = started.headers["location"]
    progress = client.get(f"{job_url}/progress.json").json()
    assert (progress["status"], progress["done"], progress["failed"]) == ("done", 1, 1)
    assert progress["label"] == "Xong, còn hội viên chưa có thẻ"
    page = client.get(job_url).text
    assert 'id="job-failures"' in page and "1 hội viên chưa được cấp thẻ" in page
    assert f'<a href="/admin/members/{legacy.id}">{legacy.member_number}</a>' in page
    assert "Họ tên quá dài để ghi lên thẻ" in page
    assert 'id="job-sheets" href' in page and 'job-sheets" hidden' not in page
    assert client.get(f"{job_url}/sheets.pdf").content.startswith(b"%PDF")


def test_the_import_page_explains_a_name_too_long_for_the_card(client: TestClient, tree: Tree) -> None:
    token = page_login(client, "t.officer.a")
    text = f"Họ và tên,Ngày sinh,Số CCCD\n{NAME_TOO_LONG_FOR_CARD},03/02/1988,{id_number_for(date(1988, 2, 3))}\n"
    response = client.post("/admin/import", data={"csrf_token": token, "chapter": str(tree.branch_a.id),
                                                  "mode": "dry_run"},
                           files={"file": ("danh-sach.csv", text.encode("utf-8-sig"), "text/csv")})
    assert response.status_code == 200, response.text
    assert re.search(r'id="count-failed">1<', response.text)
    assert "Họ tên quá dài để ghi lên thẻ" in response.text


def test_issuing_a_card_for_a_stored_name_the_card_cannot_carry_says_what_to_correct(
        client: TestClient, tree: Tree, db: Session, cipher: PiiCipher, signing_keys: dict[str, SigningKey]) -> None:
    member = make_member(db, cipher, tree.branch_a)
    db.execute(update(Member).where(Member.id == member.id).values(full_name=NAME_TOO_LONG_FOR_CARD))
    token = page_login(client, "t.officer.a")
    response = client.post(f"/admin/members/{member.id}/cards", data={"csrf_token": token, "reason": "issue"})
    assert response.status_code == 409
    assert "Chưa cấp được thẻ" in response.text and "Họ và tên: Họ tên quá dài để ghi lên thẻ" in response.text
