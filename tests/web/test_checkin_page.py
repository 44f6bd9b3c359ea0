"""The phone check-in page in headless Chromium, fed a fake camera made from real card QR codes.

One live server (committed data seeded through the services) and three devices, each set up by opening its
provisioning URL (``/checkin#setup=<code>``):

* online: the camera shows a valid card → green with the member's name, decided on the phone and then confirmed by
  the server: the check-in row is in the database with the nonce the page used and the phone's own verdict;
* revoked: a revoked card → red, the Vietnamese label and ``data-reason="revoked"``;
* offline: the device is set up (service worker and event bundle stored), the server is stopped, the page is opened
  again with no server (served by the service worker), a third card verifies offline → green, "chưa đồng bộ"
  (queued); the server comes back and the queued scan arrives with the same nonce, marked offline with the phone's
  own verdict.

Screenshots of every step go to var/test-artifacts/ (checkin-*.png).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from cardsvc.web.checkin import STATIC, shell_version
from tests.web.checkin_helpers import (
    Seeded,
    cached_paths,
    card_camera,
    checkin_rows,
    result_state,
    rows_with_nonce,
    seed,
    served_shell,
    wait_for,
    wait_result,
    y4m_frames,
)
from tests.web.harness import LiveServer, chromium, live_server, screenshot


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("checkin-page")) as running:
        yield running


@pytest.fixture(scope="module")
def seeded(server: LiveServer) -> Seeded:
    people = {"online": "Nguyễn Thị Lan", "revoked": "Trần Thị Hoa", "offline": "Lê Thị Mai"}
    return seed(server, people, ("online", "revoked", "offline"), revoked={"revoked"})


def test_page_headers_and_service_worker_scope(server: LiveServer) -> None:
    import httpx

    page = httpx.get(f"{server.url}/checkin")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "worker-src 'self' blob:", "connect-src 'self'",
                      "frame-ancestors 'none'", "img-src 'self' data: blob:", "media-src 'self' blob:"):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp.replace("wasm-unsafe-eval", "")
    worker = httpx.get(f"{server.url}/checkin/sw.js")
    assert worker.headers["service-worker-allowed"] == "/checkin"
    assert worker.headers["content-type"].startswith("text/javascript")
    manifest = httpx.get(f"{server.url}/checkin/manifest.webmanifest")
    assert manifest.headers["content-type"] == "application/manifest+json"
    assert manifest.json()["start_url"] == "/checkin"
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert not any(path.startswith("/checkin") for path in schema["paths"])
    assert httpx.get(f"{server.url}/static/checkin/vendor/jsQR.js").status_code == 200


def test_service_worker_caches_every_module_and_the_decoder_under_a_content_version(server: LiveServer) -> None:
    cache, shell = served_shell(server.url)
    assert cache == f"checkin-shell-{shell_version()}"
    # Every script, style and icon the page loads offline, the decoder worker and jsQR included.
    served_elsewhere = {"sw.js", "selftest.js", "decoder-worker.js"}
    static = {f"/static/checkin/{path.relative_to(STATIC).as_posix()}" for path in STATIC.rglob("*")
              if path.suffix in {".js", ".css", ".png"} and path.name not in served_elsewhere}
    assert static | {"/checkin", "/checkin/manifest.webmanifest", "/checkin/decoder-worker.js"} == shell


def test_online_scan_checks_the_member_in(server: LiveServer, seeded: Seeded, tmp_path: Path) -> None:
    camera = card_camera(seeded.qr["online"], tmp_path / "online.y4m")
    driver = chromium(fake_camera=camera, user_data_dir=tmp_path / "profile")
    try:
        driver.get(f"{server.url}/checkin#setup={seeded.codes['online']}")
        result = wait_result(driver, "ok", sync="synced")
        screenshot(driver, "checkin-1-online-ok")
        assert result["name"] == seeded.names["online"]
        assert result["title"] == "HỢP LỆ – MỜI VÀO" and result["syncText"] == "Đã ghi nhận trên máy chủ"
        # The server's answer says which kind of card it was: a printed card, no identity check at an "any" event.
        assert result["detail"].endswith("Thẻ in / mã tĩnh")
        assert result["decoder"] == "jsqr"  # no BarcodeDetector on Linux: the bundled decoder did it
        assert "setup=" not in driver.current_url  # the one-time code is dropped from the address bar
        rows = [r for r in checkin_rows(server, seeded.event_id) if r.client_nonce == result["nonce"]]
        assert len(rows) == 1
        row = rows[0]
        assert (row.result, row.member_id, row.source) == ("ok", seeded.member_ids["online"], "qr_camera")
        assert row.station_id == seeded.station_ids["online"]
        # Decided on the phone from the bundle first, then sent with that verdict (the conflicts report reads it).
        assert (row.offline, row.local_result) == (True, "ok")
        # The card stays in front of the camera: no second scan, and the page is ready again without a tap.
        wait_for(driver, lambda d: result_state(d)["state"] == "ready", 10)
        assert [r.member_id for r in checkin_rows(server, seeded.event_id)].count(seeded.member_ids["online"]) == 1
        # Manual search, accent-insensitive: the steward sees the match and that she is already in.
        search = driver.find_element(By.ID, "search")
        search.send_keys("nguyen thi lan")
        match = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#matches li"))
        assert seeded.names["online"] in match[0].text and match[0].get_attribute("data-entered") == "1"
        screenshot(driver, "checkin-2-manual-search")
    finally:
        driver.quit()


def test_revoked_card_shows_the_revoked_reason(server: LiveServer, seeded: Seeded, tmp_path: Path) -> None:
    camera = card_camera(seeded.qr["revoked"], tmp_path / "revoked.y4m")
    driver = chromium(fake_camera=camera, user_data_dir=tmp_path / "profile")
    try:
        driver.get(f"{server.url}/checkin#setup={seeded.codes['revoked']}")
        result = wait_result(driver, "error", sync="synced")
        screenshot(driver, "checkin-3-revoked")
        assert result["reason"] == "revoked"
        assert result["title"] == "Thẻ đã bị thu hồi"
        assert result["name"] == seeded.names["revoked"]  # the signature verified: the steward sees who it is
        # A refusal never reads as "recorded", and no reason code is shown.
        assert "ghi nhận" not in result["syncText"] and "revoked" not in driver.find_element(By.ID, "result").text
        rows = [r for r in checkin_rows(server, seeded.event_id) if r.client_nonce == result["nonce"]]
        assert len(rows) == 1 and (rows[0].result, rows[0].reason) == ("error", "revoked")
    finally:
        driver.quit()


def test_offline_scan_is_verified_locally_and_synced_later(server: LiveServer, seeded: Seeded,
                                                           tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    # 1. Set up the device online with an empty camera view; wait for the shell cache and the stored bundle.
    driver = chromium(fake_camera=y4m_frames(None, tmp_path / "blank.y4m"), user_data_dir=profile)
    try:
        driver.get(f"{server.url}/checkin#setup={seeded.codes['offline']}")
        wait_for(driver, lambda d: result_state(d)["bundle"] == "yes")
        cache, shell = served_shell(server.url)
        assert cached_paths(driver, cache, len(shell)) == shell
        screenshot(driver, "checkin-4-offline-device-ready")
    finally:
        driver.quit()

    # 2. No server: the page comes from the service worker, the bundle from IndexedDB, the verdict from verify.js.
    server.stop()
    try:
        camera = card_camera(seeded.qr["offline"], tmp_path / "offline.y4m")
        driver = chromium(fake_camera=camera, user_data_dir=profile)
        try:
            driver.get(f"{server.url}/checkin")
            result = wait_result(driver, "ok", sync="queued")
            screenshot(driver, "checkin-5-offline-queued")
            assert result["name"] == seeded.names["offline"]
            assert "Chưa đồng bộ" in result["syncText"]
            # The phone has a network, the server does not answer: the heartbeat says so.
            wait_for(driver, lambda d: result_state(d)["net"] == "unreachable", 15)
            nonce = result["nonce"]
            assert driver.find_element(By.ID, "queue").get_attribute("data-count") == "1"
        except BaseException:
            driver.quit()
            raise
    finally:
        server.start()

    # 3. The server is back: the queued scan is sent with the same nonce and recorded once.
    try:
        rows = rows_with_nonce(server, seeded.event_id, nonce)
        assert len(rows) == 1
        assert (rows[0].result, rows[0].member_id) == ("ok", seeded.member_ids["offline"])
        assert rows[0].scanned_at is not None  # the offline scan time travelled with it
        # It arrives as an offline decision with the verdict the phone showed (the conflicts report reads these).
        assert (rows[0].offline, rows[0].local_result, rows[0].local_reason) == (True, "ok", None)
        wait_for(driver, lambda d: d.find_element(By.ID, "queue").get_attribute("data-count") == "0", 15)
        wait_for(driver, lambda d: d.find_element(
            By.CSS_SELECTOR, f'#recent li[data-nonce="{nonce}"]').get_attribute("data-sync") == "synced", 15)
        screenshot(driver, "checkin-6-offline-synced")
    finally:
        driver.quit()
