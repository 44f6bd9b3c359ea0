"""The steward's side of a pilot day (#15) in headless Chromium: the check-in page where the venue's network is plain
HTTP, slow or gone, where another door was faster, and where the camera is refused.

* plain HTTP under a name (``--host-resolver-rules`` maps ``checkin.venue.test`` to the live server): no secure
  context, so no camera stream; the page says so and a photo of a real card QR, given to the file input, is decoded
  in the page and decided by the server;
* CDP network throttling (400 kb/s, 300 ms RTT) and CDP offline: the verdict is decided on the phone first and
  reconciled afterwards (the timing is bench/checkin_page.py's business, not this file's);
* the badge follows the browser's online/offline events and a heartbeat (the server stopped, then back);
* a member let in at another door after the phone took its bundle: the phone's green turns into the server's amber,
  with a notice and a conflict count;
* a member already in when the phone took its bundle: amber (not red), with the first entry's time and station;
* camera permission denied: how to allow it on Android Chrome and iPhone Safari.

Every state is scanned by axe-core (tests/web/vendor/axe.min.js, injected through WebDriver) for serious or critical
violations; screenshots go to var/test-artifacts/ (checkin-*.png).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from cardsvc.services.checkins import conflict_of
from tests.web.checkin_helpers import (
    Seeded,
    card_camera,
    card_photo,
    checkin_rows,
    result_state,
    seed,
    set_up_phone,
    wait_for,
    wait_result,
    y4m_frames,
)
from tests.web.harness import LiveServer, chromium, live_server, screenshot

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
VENUE_HOST = "checkin.venue.test"
VIETNAM = timezone(timedelta(hours=7))
THROTTLED = {"offline": False, "latency": 300, "downloadThroughput": 400_000 / 8, "uploadThroughput": 400_000 / 8}
OFFLINE = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
ONLINE = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
# Every change of the result panel, recorded from the first line of the document on (before the page's scripts).
RESULT_LOG = """
window.resultLog = [];
new MutationObserver((changes) => {
  for (const change of changes) {
    const box = change.target;
    if (box.id !== "result") continue;
    window.resultLog.push({state: box.dataset.state, sync: box.dataset.sync, nonce: box.dataset.nonce});
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-state", "data-sync"]});
"""
ROLES = ("photo", "throttled", "badge", "conflict", "B", "already", "D", "denied")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("checkin-pilot")) as running:
        yield running


@pytest.fixture(scope="module")
def seeded(server: LiveServer) -> Seeded:
    people = {"photo": "Phạm Thị Thu", "throttled": "Vũ Thị Hạnh", "offline": "Đỗ Thị Ngọc",
              "conflict": "Bùi Thị Yến", "already": "Hoàng Thị Đào"}
    return seed(server, people, ROLES)


def axe_violations(driver: webdriver.Chrome, selector: str | None = None) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page (or inside ``selector``). The script is injected
    through WebDriver (the page's CSP does not apply), so no page serves it."""
    driver.set_script_timeout(60)
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(AXE.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = driver.execute_async_script("""
        const [selector, done] = arguments;
        axe.run(selector ? document.querySelector(selector) : document, {resultTypes: ["violations"]})
          .then((result) => done(result.violations
            .filter((v) => v.impact === "serious" || v.impact === "critical")
            .map((v) => ({rule: v.id, impact: v.impact, help: v.help,
                          nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" "))}))))
          .catch((error) => done([{rule: "axe-error", impact: "critical", help: String(error), nodes: []}]));
    """, selector)
    return found


def assert_accessible_while_shown(driver: webdriver.Chrome, shown: dict[str, Any]) -> None:
    """No serious violation in the result panel while it still shows ``shown`` (it returns to "ready" after a few
    seconds, so the scan is limited to the panel and checked to have seen that state)."""
    assert axe_violations(driver, "#result") == []
    assert result_state(driver)["nonce"] == shown["nonce"], "the panel changed while it was scanned"


def check_in_at(server: LiveServer, seeded: Seeded, role: str, member: str) -> dict[str, Any]:
    """Another door (station ``role``) checks ``member`` in through the API; its answer."""
    code = seeded.codes[role]
    token = httpx.post(f"{server.url}/v1/devices/provision", json={"code": code}).json()["device_token"]
    answer = httpx.post(f"{server.url}/v1/events/{seeded.event_id}/checkins",
                        headers={"Authorization": f"Bearer {token}"},
                        json={"source": "qr_scanner", "client_nonce": secrets.token_hex(8),
                              "payload": seeded.qr[member]}).json()
    assert answer["result"] == "ok"
    return dict(answer)


def vietnam_hhmm(at: str) -> str:
    """"08:05": an API time as the steward reads it (Vietnam time)."""
    moment = datetime.fromisoformat(at)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(VIETNAM).strftime("%H:%M")


def test_plain_http_says_what_to_do_and_a_photo_of_the_card_is_decided(server: LiveServer, seeded: Seeded,
                                                                       tmp_path: Path) -> None:
    port = server.url.rsplit(":", 1)[1]
    origin = f"http://{VENUE_HOST}:{port}"
    driver = chromium(user_data_dir=tmp_path / "profile", flags=(f"--host-resolver-rules=MAP {VENUE_HOST} 127.0.0.1",))
    try:
        driver.get(f"{origin}/checkin#setup={seeded.codes['photo']}")
        ready = wait_for(driver, lambda d: (s := result_state(d))["phase"] == "ready" and s["camera"] == "insecure"
                         and s)
        assert driver.execute_script("return window.isSecureContext") is False
        # It no longer pretends to be ready to scan, and it says what to do.
        assert ready["title"] != "Sẵn sàng quét" and "Chụp ảnh mã QR" in ready["title"]
        help_text = driver.find_element(By.ID, "camera-help").text
        assert "http://" in help_text and "https://" in help_text and "Chụp ảnh mã QR" in help_text
        assert driver.find_element(By.ID, "station-name").text == seeded.station_names["photo"]
        assert axe_violations(driver) == []
        screenshot(driver, "checkin-7-plain-http")

        driver.find_element(By.ID, "photo").send_keys(str(card_photo(seeded.qr["photo"], tmp_path / "photo.jpg")))
        result = wait_result(driver, "ok", sync="server")
        screenshot(driver, "checkin-8-plain-http-photo-ok")
        assert result["name"] == seeded.names["photo"] and result["syncText"] == "Đã ghi nhận trên máy chủ"
        rows = [r for r in checkin_rows(server, seeded.event_id) if r.client_nonce == result["nonce"]]
        assert len(rows) == 1
        # The server decided it (no WebCrypto without a secure context, so nothing was decided on the phone).
        assert (rows[0].result, rows[0].member_id, rows[0].offline) == ("ok", seeded.member_ids["photo"], False)
        assert_accessible_while_shown(driver, result)
    finally:
        driver.quit()


def test_verdicts_come_from_the_phone_first_when_throttled_and_offline(server: LiveServer, seeded: Seeded,
                                                                      tmp_path: Path) -> None:
    profile = set_up_phone(server.url, seeded.codes["throttled"], tmp_path / "profile")

    # 400 kb/s, 300 ms round trips: the phone's verdict is shown, then the server's confirmation follows.
    driver = chromium(fake_camera=card_camera(seeded.qr["throttled"], tmp_path / "a.y4m"), user_data_dir=profile)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", THROTTLED)
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RESULT_LOG})
        driver.get(f"{server.url}/checkin")
        result = wait_result(driver, "ok", sync="synced", timeout=40)
        screenshot(driver, "checkin-9-throttled-confirmed")
        log = [entry for entry in driver.execute_script("return window.resultLog")
               if entry["nonce"] == result["nonce"]]
        syncs = [entry["sync"] for entry in log]
        assert syncs[0] == "pending" and syncs[-1] == "synced", log
        row = next(r for r in checkin_rows(server, seeded.event_id) if r.client_nonce == result["nonce"])
        assert (row.result, row.offline, row.local_result) == ("ok", True, "ok")
    finally:
        driver.quit()

    # Offline: the verdict is the phone's, queued; back online, it is sent with its nonce and confirmed.
    driver = chromium(fake_camera=card_camera(seeded.qr["offline"], tmp_path / "b.y4m"), user_data_dir=profile)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", OFFLINE)
        driver.get(f"{server.url}/checkin")
        result = wait_result(driver, "ok", sync="queued")
        assert result["name"] == seeded.names["offline"] and result["net"] == "offline"
        assert driver.find_element(By.ID, "queue").get_attribute("data-count") == "1"
        assert driver.find_element(By.ID, "net").text == "Mất mạng"
        screenshot(driver, "checkin-10-offline-queued")
        assert not [r for r in checkin_rows(server, seeded.event_id) if r.client_nonce == result["nonce"]]
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", ONLINE)
        wait_for(driver, lambda d: d.find_element(By.ID, "queue").get_attribute("data-count") == "0", 20)
        row = next(r for r in checkin_rows(server, seeded.event_id) if r.client_nonce == result["nonce"])
        assert (row.result, row.member_id, row.offline, row.local_result) == (
            "ok", seeded.member_ids["offline"], True, "ok")
    finally:
        driver.quit()


def test_badge_follows_the_network_events_and_a_heartbeat(server: LiveServer, seeded: Seeded,
                                                          tmp_path: Path) -> None:
    driver = chromium(fake_camera=y4m_frames(None, tmp_path / "blank.y4m"), user_data_dir=tmp_path / "profile")

    def net(d: webdriver.Chrome) -> str:
        return str(result_state(d)["net"])

    try:
        driver.get(f"{server.url}/checkin#setup={seeded.codes['badge']}")
        wait_for(driver, lambda d: net(d) == "online")
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", OFFLINE)
        wait_for(driver, lambda d: net(d) == "offline", 5)  # the browser's offline event, no scan needed
        assert axe_violations(driver, "header") == []
        screenshot(driver, "checkin-11-badge-offline")
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", ONLINE)
        wait_for(driver, lambda d: net(d) == "online", 10)
        server.stop()
        try:
            wait_for(driver, lambda d: net(d) == "unreachable", 15)  # the heartbeat, again without a scan
            assert driver.find_element(By.ID, "net").text == "Không liên lạc được máy chủ"
            assert axe_violations(driver, "header") == []
            screenshot(driver, "checkin-12-badge-server-unreachable")
        finally:
            server.start()
        wait_for(driver, lambda d: net(d) == "online", 15)
    finally:
        driver.quit()


def test_another_door_was_first_the_server_wins_and_the_change_is_shown(server: LiveServer, seeded: Seeded,
                                                                        tmp_path: Path) -> None:
    profile = set_up_phone(server.url, seeded.codes["conflict"], tmp_path / "profile")
    # Door B lets her in after this phone took its bundle; the phone cannot get a newer one.
    first = check_in_at(server, seeded, "B", "conflict")
    driver = chromium(fake_camera=card_camera(seeded.qr["conflict"], tmp_path / "c.y4m"), user_data_dir=profile)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/bundle"]})
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RESULT_LOG})
        driver.get(f"{server.url}/checkin")
        axe_ready = axe_violations(driver)  # injects axe before the verdict, so the panel is scanned in time
        result = wait_result(driver, "already", sync="changed")
        assert_accessible_while_shown(driver, result)
        screenshot(driver, "checkin-13-conflict")
        assert axe_ready == []
        log = [entry for entry in driver.execute_script("return window.resultLog")
               if entry["nonce"] == result["nonce"]]
        assert (log[0]["state"], log[0]["sync"]) == ("ok", "pending"), log  # the phone's own green came first
        assert result["name"] == seeded.names["conflict"] and result["title"] == "ĐÃ VÀO RỒI"
        assert seeded.station_names["B"] in result["first"] and vietnam_hhmm(first["received_at"]) in result["first"]
        notice = driver.find_element(By.ID, "notice")
        assert notice.is_displayed() and seeded.names["conflict"] in notice.text and "đã cho vào" in notice.text
        conflicts = driver.find_element(By.ID, "conflicts")
        assert conflicts.is_displayed() and conflicts.get_attribute("data-count") == "1"
        row = next(r for r in checkin_rows(server, seeded.event_id) if r.client_nonce == result["nonce"])
        assert conflict_of(row.offline, row.local_result, row.result, row.reason) == "accepted_at_two_stations"
    finally:
        driver.quit()


def test_already_checked_in_is_amber_with_the_first_entry(server: LiveServer, seeded: Seeded,
                                                          tmp_path: Path) -> None:
    first = check_in_at(server, seeded, "D", "already")
    driver = chromium(fake_camera=card_camera(seeded.qr["already"], tmp_path / "d.y4m"),
                      user_data_dir=tmp_path / "profile")
    try:
        driver.get(f"{server.url}/checkin#setup={seeded.codes['already']}")
        wait_for(driver, lambda d: result_state(d)["phase"] == "ready")
        axe_violations(driver)  # injected before the verdict
        result = wait_result(driver, "already", sync="synced")
        assert_accessible_while_shown(driver, result)
        screenshot(driver, "checkin-14-already-checked-in")
        assert result["title"] == "ĐÃ VÀO RỒI" and result["reason"] == "already_checked_in"
        assert result["first"] == f"Đã vào lúc {vietnam_hhmm(first['received_at'])} tại {seeded.station_names['D']}"
        assert result["syncText"] == "Máy chủ xác nhận kết quả này"  # refused: never "recorded"
        colour = driver.execute_script("return getComputedStyle(document.getElementById('result')).backgroundColor")
        assert colour == "rgb(245, 180, 0)"  # amber, not the red of a refused or forged card
        page = driver.find_element(By.TAG_NAME, "body").text
        assert "already_checked_in" not in page and "mã lý do" not in page
        # The first tap after set-up turns the beep and vibration on.
        driver.find_element(By.ID, "sound").click()
        wait_for(driver, lambda d: d.execute_script("return document.body.dataset.sound") == "on", 5)
        assert not driver.find_element(By.ID, "sound").is_displayed()
    finally:
        driver.quit()


def test_camera_denied_says_how_to_allow_it(server: LiveServer, seeded: Seeded, tmp_path: Path) -> None:
    # A phone with a camera whose steward answered the permission prompt with "Block".
    driver = chromium(user_data_dir=tmp_path / "profile",
                      flags=("--use-fake-device-for-media-stream", "--deny-permission-prompts"))
    try:
        driver.get(f"{server.url}/checkin#setup={seeded.codes['denied']}")
        wait_for(driver, lambda d: result_state(d)["camera"] == "denied")
        help_text = driver.find_element(By.ID, "camera-help").text
        assert "Android (Chrome)" in help_text and "iPhone (Safari)" in help_text and "Cho phép" in help_text
        page = driver.find_element(By.TAG_NAME, "body").text
        assert "NotAllowedError" not in page and "Permission" not in page
        assert axe_violations(driver) == []
        screenshot(driver, "checkin-15-camera-denied")
        # The manual check-in is the officers' event page.
        link = driver.find_element(By.ID, "manual-link")
        assert link.get_attribute("href").endswith(f"/admin/events/{seeded.event_id}#manual")
        # Keyboard focus is visible on the photo button and the search field.
        for _ in range(12):
            ActionChains(driver).send_keys(Keys.TAB).perform()
            if driver.execute_script("return document.activeElement.id") == "photo":
                break
        assert driver.execute_script("""
            return getComputedStyle(document.querySelector('label[for=photo]')).outlineStyle""") == "solid"
        ActionChains(driver).send_keys(Keys.TAB).perform()
        assert driver.execute_script("return document.activeElement.id") == "search"
        assert driver.execute_script("return getComputedStyle(document.activeElement).outlineStyle") == "solid"
        # 200 % zoom of a 640-pixel-wide phone: 320 CSS pixels, and nothing needs sideways scrolling.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 320, "height": 640, "deviceScaleFactor": 2, "mobile": True})
        assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        assert axe_violations(driver) == []
        screenshot(driver, "checkin-16-camera-denied-200-percent")
    finally:
        driver.quit()
