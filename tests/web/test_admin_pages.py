"""The officer pages in a real browser: sign in, find a member by her unaccented name, issue a card, see it in the
card history, download the PDF; then create an event and register a station whose set-up QR must scan.

Each step leaves a screenshot in var/test-artifacts/ (admin-*.png).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import pypdfium2
import pytest
import zxingcpp
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import update

from cardsvc.days import VIETNAM_TZ
from cardsvc.db.models import Member
from cardsvc.security import PiiCipher
from cardsvc.services import chapters, keys, members, officers
from cardsvc.settings import Settings
from tests.conftest import NAME_TOO_LONG_FOR_CARD, PASSWORD, SYSTEM, id_number_for
from tests.web.harness import (
    ARTIFACTS,
    SERVER_KEK,
    SERVER_SECRET,
    LiveServer,
    chromium,
    live_server,
    screenshot,
    wait_for,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("admin-live")) as running:
        _seed(running)
        yield running


def _seed(server: LiveServer) -> None:
    """Committed data in the live server's database, written through the services."""
    settings = Settings(environment="test", database_url=server.database_url, secret_key=SERVER_SECRET,
                        key_encryption_key=SERVER_KEK, _env_file=None)
    cipher = PiiCipher.from_settings(settings)
    with server.session() as session:
        central = chapters.create_chapter(session, SYSTEM, code="W-TW", name="Trung ương Hội", level="central",
                                          parent_id=None)
        province = chapters.create_chapter(session, SYSTEM, code="W-HNI", name="Hội LHPN Hà Nội", level="province",
                                           parent_id=central.id)
        commune = chapters.create_chapter(session, SYSTEM, code="W-HNI-BD", name="Phường Ba Đình", level="commune",
                                          parent_id=province.id)
        branch = chapters.create_chapter(session, SYSTEM, code="W-HNI-BD-01", name="Chi hội 1", level="branch",
                                         parent_id=commune.id)
        officers.create_officer(session, SYSTEM, username="w.officer", password=PASSWORD, role="officer",
                                chapter_id=province.id, full_name="Phạm Thị Hằng")
        for name, birth in (("Nguyễn Thị Lan", date(1962, 5, 17)), ("Nguyễn Thị Lan Anh", date(1990, 1, 2)),
                            ("Trần Thị Mai", date(1975, 9, 30))):
            members.create_member(session, SYSTEM, cipher, chapter_id=branch.id, fields={
                "full_name": name, "birth_date": birth, "gender": "female", "id_number": id_number_for(birth),
                "phone": "0912345678", "join_date": date(2010, 3, 8),
            })
        for purpose in ("trust", "card"):
            keys.create_key(session, SYSTEM, settings.kek, purpose=purpose)
        # A branch where one member's name was stored before names were checked against the card's 100 bytes.
        printing = chapters.create_chapter(session, SYSTEM, code="W-HNI-BD-02", name="Chi hội 2", level="branch",
                                           parent_id=commune.id)
        for name, birth in (("Lê Thị Hoa", date(1970, 2, 3)), ("Lê Thị Mai", date(1971, 4, 5))):
            member, _warnings = members.create_member(session, SYSTEM, cipher, chapter_id=printing.id, fields={
                "full_name": name, "birth_date": birth, "gender": "female", "id_number": id_number_for(birth)})
        session.execute(update(Member).where(Member.id == member.id).values(full_name=NAME_TOO_LONG_FOR_CARD))
        session.commit()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    driver = chromium(user_data_dir=tmp_path / "chromium")
    try:
        yield driver
    finally:
        driver.quit()


def _sign_in(driver: webdriver.Chrome, server: LiveServer, shot: str | None = None) -> None:
    driver.get(f"{server.url}/admin")
    wait_for(driver, "login-submit")
    assert driver.current_url.endswith("/admin/login")
    if shot:
        screenshot(driver, shot)
    driver.find_element(By.ID, "username").send_keys("w.officer")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-submit").click()
    wait_for(driver, "logout")


def test_an_officer_finds_a_member_issues_a_card_and_downloads_the_pdf(server: LiveServer,
                                                                       browser: webdriver.Chrome) -> None:
    _sign_in(browser, server, shot="admin-01-login")
    assert "Phạm Thị Hằng" in browser.page_source
    screenshot(browser, "admin-02-home")

    search = browser.find_element(By.ID, "q")
    search.send_keys("nguyen thi lan")
    search.submit()
    wait_for(browser, "results")
    results = browser.find_elements(By.CSS_SELECTOR, "#results a.result")
    names = [r.find_element(By.TAG_NAME, "strong").text for r in results]
    # Accent-insensitive, the last word a prefix, sorted by given name (Anh before Lan) as Vietnamese lists are.
    assert names == ["Nguyễn Thị Lan Anh", "Nguyễn Thị Lan"]
    screenshot(browser, "admin-03-search")

    results[1].click()
    wait_for(browser, "member-name")
    assert browser.find_element(By.ID, "member-name").text == "Nguyễn Thị Lan"
    screenshot(browser, "admin-04-member")

    browser.find_element(By.ID, "issue-card").click()
    wait_for(browser, "done")
    assert "Đã cấp thẻ mới" in browser.find_element(By.ID, "done").text
    rows = browser.find_elements(By.CSS_SELECTOR, "#card-history tr.card-row")
    assert len(rows) == 1 and "Đang dùng" in rows[0].text
    screenshot(browser, "admin-05-card-issued")

    pdf_url = browser.find_element(By.ID, "print-card").get_attribute("href")
    assert pdf_url
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    response = httpx.get(pdf_url, cookies=cookies)
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert httpx.get(pdf_url, follow_redirects=False).status_code == 303  # Without the session: to the login.
    # The card as it will print, kept with the screenshots.
    document = pypdfium2.PdfDocument(response.content)
    card_image = document[0].render(scale=4).to_pil()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    card_image.save(ARTIFACTS / "admin-06-card-pdf.png")
    assert zxingcpp.read_barcodes(card_image), "the printed card's QR does not scan"

    browser.set_window_size(390, 844)  # A phone.
    browser.refresh()
    wait_for(browser, "member-name")
    screenshot(browser, "admin-07-member-phone")


def test_an_officer_creates_an_event_and_a_station_scans_its_setup_qr(server: LiveServer,
                                                                      browser: webdriver.Chrome) -> None:
    _sign_in(browser, server)
    browser.get(f"{server.url}/admin/events/new")
    wait_for(browser, "event-submit")
    # The meeting has just begun (Vietnam time), so that a check-in now counts.
    start = datetime.now(VIETNAM_TZ).replace(second=0, microsecond=0) - timedelta(minutes=10)
    browser.find_element(By.ID, "title").send_keys("Hội nghị chi hội tháng 3")
    browser.find_element(By.ID, "venue").send_keys("Nhà văn hoá phường")
    for field, moment in (("starts_at", start), ("ends_at", start + timedelta(hours=3))):
        # datetime-local inputs take typed digits in the browser's locale order; set the value directly instead.
        browser.execute_script("arguments[0].value = arguments[1]", browser.find_element(By.ID, field),
                               moment.strftime("%Y-%m-%dT%H:%M"))
    screenshot(browser, "admin-08-event-form")
    browser.find_element(By.ID, "event-submit").click()
    wait_for(browser, "event-title")
    assert browser.find_element(By.ID, "checked-in").text == "0"

    browser.find_element(By.ID, "station-name").send_keys("Cửa chính")
    browser.find_element(By.ID, "station-submit").click()
    wait_for(browser, "provisioning-qr")
    qr = browser.find_element(By.ID, "provisioning-qr")
    browser.execute_script("arguments[0].scrollIntoView()", qr)
    screenshot(browser, "admin-09-station-qr")
    image = Image.open(io.BytesIO(qr.screenshot_as_png))
    decoded = zxingcpp.read_barcodes(image)
    assert [d.text for d in decoded] == [browser.find_element(By.ID, "provisioning-url").get_attribute("value")]
    code = decoded[0].text.split("#setup=", 1)[1]
    provisioned = httpx.post(f"{server.url}/v1/devices/provision", json={"code": code})
    assert provisioned.status_code == 200, provisioned.text
    # The answer took the plain page's address: reloading shows the event again and registers nothing more.
    event_id = browser.current_url.rstrip("/").split("/")[-1]
    assert browser.current_url.endswith(f"/admin/events/{event_id}")
    browser.refresh()
    wait_for(browser, "event-title")
    assert not browser.find_elements(By.ID, "provisioning-qr")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#stations li")) == 1

    # A check-in at the door (here a manual one through the API) shows up in the live count without a reload.
    token = httpx.post(f"{server.url}/v1/auth/token", data={"username": "w.officer", "password": PASSWORD})
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    found = httpx.get(f"{server.url}/v1/members", params={"q": "tran thi mai"}, headers=bearer).json()
    checkin = httpx.post(f"{server.url}/v1/events/{event_id}/checkins", headers=bearer, json={
        "source": "manual", "client_nonce": "admin-browser-1", "member_id": found[0]["id"],
        "manual_reason": "quên thẻ",
    })
    assert checkin.json()["result"] == "ok", checkin.text
    WebDriverWait(browser, 15).until(lambda d: d.find_element(By.ID, "checked-in").text == "1")
    live = browser.find_element(By.ID, "checked-in")
    browser.execute_script("arguments[0].scrollIntoView()", live)
    screenshot(browser, "admin-10-live-count")


def test_printing_a_branch_lists_the_member_who_got_no_card(server: LiveServer, browser: webdriver.Chrome) -> None:
    _sign_in(browser, server)
    browser.get(f"{server.url}/admin/print")
    wait_for(browser, "print-submit")
    choice = Select(browser.find_element(By.ID, "chapter"))
    choice.select_by_value(next(str(o.get_attribute("value")) for o in choice.options if "(W-HNI-BD-02)" in o.text))
    browser.find_element(By.ID, "print-submit").click()
    # The job runs in the server's worker thread; the page follows it and shows who got no card once it ends.
    wait_for(browser, "job-failures")
    rows = browser.find_elements(By.CSS_SELECTOR, "#job-failures tbody tr")
    assert len(rows) == 1 and "Họ tên quá dài để ghi lên thẻ" in rows[0].text
    assert "Xong, còn hội viên chưa có thẻ" in browser.page_source
    WebDriverWait(browser, 10).until(expected_conditions.visibility_of_element_located((By.ID, "job-sheets")))
    screenshot(browser, "admin-11-job-with-failures")
