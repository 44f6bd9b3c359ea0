"""A pilot day, the officer's side, in headless Chromium against a live server with no public address configured.

The officer opens the officer pages at a venue laptop's LAN address (``http://192.168.1.20:PORT``: Chromium sends
every non-loopback request to the live server as its proxy, so nothing leaves this machine): a station's set-up QR
and link carry that address, and the same page opened at 127.0.0.1 warns that phones cannot use it. Then manual
check-in with a reason, invitations by search, pasted numbers and an uploaded list, the downloads, an NFC write
request, and a member's card link created, printed, opened, sent and revoked. Every officer page, the login page
and the member's card page are scanned with axe-core (no serious or critical violation), for a visible keyboard
focus and for use at 200 % zoom. Screenshots: var/test-artifacts/pilot-*.png (the README's "A pilot day").
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import zxingcpp
from openpyxl import load_workbook
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from cardsvc.days import VIETNAM_TZ
from cardsvc.security import PiiCipher
from cardsvc.services import chapters, consents, events, keys, members, officers
from cardsvc.settings import Settings
from tests.conftest import PASSWORD, SYSTEM, id_number_for
from tests.web.harness import (
    SERVER_KEK,
    SERVER_SECRET,
    LiveServer,
    accessibility_violations,
    chromium,
    live_server,
    screenshot,
    submit,
    wait_for,
)

LAN_HOST = "192.168.1.20"


@dataclass
class Pilot:
    server: LiveServer
    lan: str
    meeting_id: int
    training_id: int
    members: dict[str, tuple[int, str]]  # name → (id, member number)


def _seed(server: LiveServer) -> Pilot:
    settings = Settings(environment="test", database_url=server.database_url, secret_key=SERVER_SECRET,
                        key_encryption_key=SERVER_KEK, _env_file=None)
    cipher = PiiCipher.from_settings(settings)
    with server.session() as session:
        for purpose in ("trust", "card"):
            keys.create_key(session, SYSTEM, settings.kek, purpose=purpose)
        central = chapters.create_chapter(session, SYSTEM, code="P-TW", name="Trung ương Hội", level="central",
                                          parent_id=None)
        province = chapters.create_chapter(session, SYSTEM, code="P-HNI", name="Hội LHPN Hà Nội", level="province",
                                           parent_id=central.id)
        commune = chapters.create_chapter(session, SYSTEM, code="P-HNI-BD", name="Phường Ba Đình", level="commune",
                                          parent_id=province.id)
        branch = chapters.create_chapter(session, SYSTEM, code="P-HNI-BD-01", name="Chi hội Phúc Xá",
                                         level="branch", parent_id=commune.id)
        officers.create_officer(session, SYSTEM, username="p.officer", password=PASSWORD, role="officer",
                                chapter_id=province.id, full_name="Phạm Thị Hằng")
        made = {}
        for name, birth in (("Nguyễn Thị Lan", date(1962, 5, 17)), ("Trần Thị Mai", date(1975, 9, 30)),
                            ("Lê Thị Hồng", date(1981, 2, 3)), ("Đỗ Thị Thu", date(1990, 12, 1))):
            member, _ = members.create_member(session, SYSTEM, cipher, chapter_id=branch.id, fields={
                "full_name": name, "birth_date": birth, "gender": "female", "id_number": id_number_for(birth),
                "phone": "0912345678", "join_date": date(2010, 3, 8)})
            made[name] = (member.id, member.member_number)
        consents.record_consent(session, SYSTEM, made["Trần Thị Mai"][0], purpose="digital_card_messaging",
                                method="paper_form", evidence_ref="phiếu 7")
        start = datetime.now(VIETNAM_TZ).replace(second=0, microsecond=0) - timedelta(minutes=10)
        meeting = events.create_event(session, SYSTEM, events.EventSpec(
            chapter_id=commune.id, title="Hội nghị thí điểm thẻ", venue="Nhà văn hoá phường", starts_at=start,
            ends_at=start + timedelta(hours=3)))
        training = events.create_event(session, SYSTEM, events.EventSpec(
            chapter_id=commune.id, title="Tập huấn cán bộ chi hội", venue="Hội trường", starts_at=start,
            ends_at=start + timedelta(hours=3), eligibility="invite"))
        port = server.url.rsplit(":", 1)[1]
        return Pilot(server, f"http://{LAN_HOST}:{port}", meeting.id, training.id, made)


@pytest.fixture(scope="module")
def pilot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pilot]:
    with live_server(tmp_path_factory.mktemp("pilot-live"), public_base_url=False) as server:
        yield _seed(server)


@pytest.fixture
def browser(pilot: Pilot, tmp_path: Path) -> Iterator[webdriver.Chrome]:
    driver = chromium(user_data_dir=tmp_path / "chromium", proxy=pilot.server.url)
    try:
        yield driver
    finally:
        driver.quit()


def _sign_in(driver: webdriver.Chrome, base: str) -> None:
    driver.get(f"{base}/admin")
    wait_for(driver, "login-submit")
    driver.find_element(By.ID, "username").send_keys("p.officer")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    submit(driver, "login-submit", "logout")


def _show(driver: webdriver.Chrome, element_id: str, shot: str) -> None:
    driver.execute_script("arguments[0].scrollIntoView()", driver.find_element(By.ID, element_id))
    screenshot(driver, shot)


def _cookies(driver: webdriver.Chrome) -> dict[str, str]:
    return {c["name"]: c["value"] for c in driver.get_cookies()}


def _station(driver: webdriver.Chrome, pilot: Pilot, base: str, name: str) -> str:
    """Register a station on the meeting's page; the set-up link it shows."""
    driver.get(f"{base}/admin/events/{pilot.meeting_id}")
    wait_for(driver, "station-name")
    driver.find_element(By.ID, "station-name").send_keys(name)
    submit(driver, "station-submit", "provisioning-qr")
    return str(driver.find_element(By.ID, "provisioning-url").get_attribute("value"))


def test_setup_from_a_lan_address_and_the_warning_on_loopback(pilot: Pilot, browser: webdriver.Chrome) -> None:
    _sign_in(browser, pilot.lan)
    url = _station(browser, pilot, pilot.lan, "Cửa chính")
    assert url.startswith(f"{pilot.lan}/checkin#setup=")
    qr = browser.find_element(By.ID, "provisioning-qr")
    browser.execute_script("arguments[0].scrollIntoView()", qr)
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.screenshot_as_png)))
    assert [d.text for d in decoded] == [url]
    assert browser.find_element(By.ID, "provisioning-link").get_attribute("href") == url
    code = url.split("#setup=", 1)[1]
    assert browser.find_element(By.ID, "provisioning-code").get_attribute("value") == code
    assert browser.find_elements(By.CSS_SELECTOR, "[data-address-problem=plain_http]")
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-address-problem=loopback]")
    _show(browser, "provisioning", "pilot-01-station-setup-lan")
    # The copy button puts the link on the clipboard (or selects it where the page is not secure).
    browser.find_element(By.CSS_SELECTOR, "button[data-copy=provisioning-url]").click()
    WebDriverWait(browser, 5).until(lambda d: d.find_element(
        By.CSS_SELECTOR, "button[data-copy=provisioning-url]").text == "Đã sao chép")

    # The same page at the server's own address: a phone could not open what it shows, and it says so.
    _sign_in(browser, pilot.server.url)
    loopback = _station(browser, pilot, pilot.server.url, "Cửa phụ")
    assert loopback.startswith(f"{pilot.server.url}/checkin#setup=")
    warning = browser.find_element(By.CSS_SELECTOR, "[data-address-problem=loopback]")
    assert "điện thoại không mở" in warning.text
    _show(browser, "provisioning", "pilot-02-loopback-warning")

    # One phone, one officer: the link opens the steward's set-up page at the LAN address (as it is today).
    browser.get(url)
    WebDriverWait(browser, 10).until(lambda d: d.current_url.startswith(f"{pilot.lan}/checkin"))
    browser.set_window_size(390, 844)
    screenshot(browser, "pilot-03-steward-page-today")


def test_manual_checkin_invitations_downloads_and_an_nfc_write(pilot: Pilot, browser: webdriver.Chrome,
                                                               tmp_path: Path) -> None:
    _sign_in(browser, pilot.lan)
    lan_id, _lan_number = pilot.members["Nguyễn Thị Lan"]

    # Manual check-in: found by an unaccented name, a reason, one press.
    browser.get(f"{pilot.lan}/admin/events/{pilot.meeting_id}?q=nguyen+thi+lan#manual")
    wait_for(browser, f"checkin-{lan_id}")
    browser.find_element(By.CSS_SELECTOR, f"#reason-{lan_id} option[value=unreadable]").click()
    submit(browser, f"checkin-{lan_id}", "checkin-result")
    assert browser.find_element(By.ID, "checkin-result").text == "Đã điểm danh: Nguyễn Thị Lan."
    assert browser.current_url.endswith(f"/admin/events/{pilot.meeting_id}")  # a reload posts nothing
    _show(browser, "manual", "pilot-04-manual-checkin")
    browser.refresh()
    wait_for(browser, "checked-in")
    assert browser.find_element(By.ID, "checked-in").text == "1"

    # Downloads of the same page, with the officer's session.
    links = {what: browser.find_element(By.ID, f"download-{what}").get_attribute("href")
             for what in ("attendance-csv", "attendance-xlsx", "denied-csv", "denied-xlsx")}
    assert all(str(href).startswith(pilot.lan) for href in links.values())
    cookies = _cookies(browser)

    def fetch(href: str | None) -> httpx.Response:
        return httpx.get(str(href).replace(pilot.lan, pilot.server.url), cookies=cookies)

    attendance = fetch(links["attendance-csv"])
    assert attendance.status_code == 200
    rows = list(csv.reader(io.StringIO(attendance.content.decode("utf-8-sig"))))
    assert any("Nguyễn Thị Lan" in row for row in rows[1:])
    sheet = load_workbook(io.BytesIO(fetch(links["attendance-xlsx"]).content)).active
    assert sheet is not None and any("Nguyễn Thị Lan" in row for row in sheet.iter_rows(values_only=True))
    assert fetch(links["denied-csv"]).status_code == 200 and fetch(links["denied-xlsx"]).content.startswith(b"PK")
    _show(browser, "reports", "pilot-05-downloads")

    # The invite-only training: 0/0 until people are invited — by search, pasted numbers and a list file.
    browser.get(f"{pilot.lan}/admin/events/{pilot.training_id}")
    wait_for(browser, "invite-numbers")
    assert browser.find_element(By.ID, "eligible").text == "0"
    mai_number = pilot.members["Trần Thị Mai"][1]
    hong_number = pilot.members["Lê Thị Hồng"][1]
    browser.find_element(By.ID, "invite-numbers").send_keys(f"{mai_number}\n{hong_number}\n1234567890")
    submit(browser, "invite-submit", "invite-report")
    assert "Đã mời thêm 2 người" in browser.find_element(By.ID, "invite-report").text
    assert "1234567890" in browser.find_element(By.ID, "invite-not-found").text
    listing = tmp_path / "danh-sach-moi.csv"
    listing.write_text(f"Họ và tên;Mã hội viên\r\nĐỗ Thị Thu;{pilot.members['Đỗ Thị Thu'][1]}\r\n",
                       encoding="utf-8-sig")
    browser.find_element(By.ID, "invite-file").send_keys(str(listing))
    submit(browser, "invite-submit", "invite-report")
    assert "Đã mời thêm 1 người" in browser.find_element(By.ID, "invite-report").text
    browser.get(f"{pilot.lan}/admin/events/{pilot.training_id}?q=nguyen+thi+lan#manual")
    wait_for(browser, f"invite-{lan_id}")
    submit(browser, f"invite-{lan_id}", "invite-report")
    assert browser.find_element(By.ID, "eligible").text == "4"
    _show(browser, "invites", "pilot-06-invitations")

    # An NFC tag for Lan, written by the door station at the meeting (set up with its QR's code).
    browser.get(f"{pilot.lan}/admin/members/{lan_id}")
    wait_for(browser, "member-name")
    if browser.find_elements(By.ID, "issue-card"):
        submit(browser, "issue-card", "current-card")
    url = _station(browser, pilot, pilot.lan, "Bàn cấp thẻ NFC")
    provisioned = httpx.post(f"{pilot.server.url}/v1/devices/provision", json={"code": url.split("#setup=", 1)[1]})
    assert provisioned.status_code == 200, provisioned.text
    station_id = provisioned.json()["station_id"]
    browser.get(f"{pilot.lan}/admin/events/{pilot.meeting_id}")
    wait_for(browser, f"station-{station_id}")
    browser.find_element(By.CSS_SELECTOR, f"#station-{station_id} summary").click()
    browser.find_element(By.ID, f"nfc-member-{station_id}").send_keys(pilot.members["Nguyễn Thị Lan"][1])
    submit(browser, f"nfc-submit-{station_id}", "done")
    assert "Đã gửi yêu cầu ghi thẻ" in browser.find_element(By.ID, "done").text
    assert browser.find_element(By.CSS_SELECTOR, f"#station-{station_id} tr.nfc-write").get_attribute(
        "data-status") == "pending"
    pending = httpx.get(f"{pilot.server.url}/v1/devices/nfc-writes",
                        headers={"Authorization": f"Bearer {provisioned.json()['device_token']}"})
    assert len(pending.json()) == 1  # the station receives it
    _show(browser, f"station-{station_id}", "pilot-07-nfc-write-request")


def test_a_card_link_is_created_printed_opened_sent_and_revoked(pilot: Pilot, browser: webdriver.Chrome) -> None:
    _sign_in(browser, pilot.lan)
    mai_id, _ = pilot.members["Trần Thị Mai"]
    browser.get(f"{pilot.lan}/admin/members/{mai_id}")
    wait_for(browser, "issue-card")
    submit(browser, "issue-card", "link-paper")
    submit(browser, "link-paper", "link-qr")
    url = browser.find_element(By.ID, "link-url").text
    assert url.startswith(f"{pilot.lan}/m/")
    qr = browser.find_element(By.ID, "link-qr")
    assert [d.text for d in zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.screenshot_as_png)))] == [url]
    screenshot(browser, "pilot-08-card-link-to-print")
    browser.execute_script("window.print = () => { document.body.dataset.printed = 'yes'; }")
    browser.find_element(By.ID, "link-print").click()
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-printed") == "yes"

    # The member opens it on her phone.
    browser.set_window_size(390, 844)
    browser.get(url)
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "name").text == "Trần Thị Mai")
    screenshot(browser, "pilot-09-member-card-on-phone")
    browser.set_window_size(1280, 1000)

    # She agreed to card messages: the link goes out by SMS (a new link; the printed one stops working).
    browser.get(f"{pilot.lan}/admin/members/{mai_id}")
    wait_for(browser, "link-sms")
    submit(browser, "link-sms", "done", confirm=True)
    assert browser.find_element(By.ID, "done").text == "Đã gửi đường link qua SMS."
    assert "gửi qua SMS" in browser.find_element(By.ID, "link-state").text
    assert httpx.get(url.replace(pilot.lan, pilot.server.url)).status_code == 404
    _show(browser, "card-link", "pilot-10-card-link-sent")
    submit(browser, "link-revoke", "done", confirm=True)
    assert browser.find_element(By.ID, "done").text == "Đã thu hồi đường link."


OFFICER_PAGES = ("/admin", "/admin/members?q=thi", "/admin/members/{member}", "/admin/events",
                 "/admin/events/new", "/admin/events/{meeting}?q=nguyen#manual", "/admin/events/{training}",
                 "/admin/import", "/admin/print", "/admin/tls", "/admin/members/999999")


def _page_problems(driver: webdriver.Chrome, path: str) -> list[str]:
    """axe-core's serious and critical violations, a missing focus ring, and sideways scrolling at 200 % zoom."""
    problems = [f"{path}: {v['rule']} ({v['impact']}) {v['help']} {v['nodes']}"
                for v in accessibility_violations(driver)]
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    ring = driver.execute_script("const s = getComputedStyle(document.activeElement);"
                                 "return [s.outlineStyle, parseFloat(s.outlineWidth)];")
    if ring[0] == "none" or ring[1] < 2:
        problems.append(f"{path}: no visible focus on {driver.execute_script('return document.activeElement.id')}")
    return problems


def test_accessibility_of_every_officer_page_the_login_and_the_member_card(pilot: Pilot,
                                                                           browser: webdriver.Chrome) -> None:
    problems: list[str] = []
    browser.get(f"{pilot.server.url}/admin/login")
    wait_for(browser, "login-submit")
    problems += _page_problems(browser, "/admin/login")
    _sign_in(browser, pilot.server.url)
    member_id, _ = pilot.members["Lê Thị Hồng"]
    paths = [path.format(member=member_id, meeting=pilot.meeting_id, training=pilot.training_id)
             for path in OFFICER_PAGES]
    for zoom in ("100", "200"):
        # 200 % zoom of a 1280-pixel window is a 640-pixel one: nothing may need sideways scrolling.
        browser.set_window_size(1280 if zoom == "100" else 640, 1000)
        for path in paths:
            browser.get(f"{pilot.server.url}{path}")
            wait_for(browser, "logout")
            if zoom == "100":
                problems += _page_problems(browser, path)
            wide = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
            if wide > 1:
                problems.append(f"{path}: {wide} px sideways scrolling at 200 % zoom")
    browser.set_window_size(1280, 1000)
    # The pages that answer a form: a station's set-up code and a card link to print.
    _station(browser, pilot, pilot.server.url, "Cửa kiểm tra")
    problems += _page_problems(browser, "station set-up answer")
    browser.get(f"{pilot.server.url}/admin/members/{member_id}")
    wait_for(browser, "link-paper")
    submit(browser, "link-paper", "link-qr")
    card_link = browser.find_element(By.ID, "link-url").text
    problems += _page_problems(browser, "card link answer")
    browser.get(card_link)
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "name").text == "Lê Thị Hồng")
    problems += _page_problems(browser, "/m/… (member card)")
    assert problems == []
