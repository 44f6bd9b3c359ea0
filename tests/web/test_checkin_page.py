"""The phone check-in page in headless Chromium, fed a fake camera made from real card QR codes.

One live server (committed data seeded through the services) and three devices, each set up by opening its
provisioning URL (``/checkin#setup=<code>``):

* online: the camera shows a valid card → green with the member's name, and the check-in row is in the database with
  the nonce the page used;
* revoked: a revoked card → red, the Vietnamese label and ``data-reason="revoked"``;
* offline: the device is set up (service worker and event bundle stored), the server is stopped, the page is opened
  again with no server (served by the service worker), a third card verifies offline → green, "chưa đồng bộ"
  (queued); the server comes back and the queued scan arrives with the same nonce, marked offline with the phone's
  own verdict.

Screenshots of every step go to var/test-artifacts/ (checkin-*.png).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from cardsvc.db.models import Checkin
from cardsvc.security import PiiCipher
from cardsvc.services import cards, chapters, events, keys, members, stations
from cardsvc.services.context import system_actor
from cardsvc.services.keys import KeyRing
from cardsvc.services.printing import credential_of
from cardsvc.settings import Settings
from issuance.render import qr_png
from tests.web.harness import SERVER_KEK, SERVER_SECRET, LiveServer, chromium, live_server, screenshot

SYSTEM = system_actor("browser-tests")
WIDTH, HEIGHT = 640, 480
Y4M_HEADER = f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode()
T = TypeVar("T")


@dataclass
class Seeded:
    event_id: int
    codes: dict[str, str]  # station role -> provisioning code
    qr: dict[str, str]  # member key -> card QR text
    member_ids: dict[str, int]
    names: dict[str, str]


def y4m_frames(image: Image.Image | None, path: Path, frames: int = 4) -> Path:
    """A Y4M (YUV 4:2:0 planar, JPEG full-range) of ``frames`` identical frames: ``image`` centred on white."""
    canvas = Image.new("RGB", (WIDTH, HEIGHT), "white")
    if image is not None:
        canvas.paste(image.convert("RGB"), ((WIDTH - image.width) // 2, (HEIGHT - image.height) // 2))
    y, cb, cr = canvas.convert("YCbCr").split()
    half = (WIDTH // 2, HEIGHT // 2)
    frame = (b"FRAME\n" + y.tobytes() + cb.resize(half, Image.Resampling.BOX).tobytes()
             + cr.resize(half, Image.Resampling.BOX).tobytes())
    assert len(Y4M_HEADER) <= 200
    path.write_bytes(Y4M_HEADER + frame * frames)
    return path


def card_camera(qr_text: str, path: Path) -> Path:
    image = Image.open(io.BytesIO(qr_png(qr_text, module_px=6)))
    assert image.width <= HEIGHT, "the QR must fit the frame"
    return y4m_frames(image, path)


def seed(server: LiveServer) -> Seeded:
    settings = Settings(database_url=server.database_url, secret_key=SERVER_SECRET, key_encryption_key=SERVER_KEK,
                        environment="test", public_base_url=server.url)
    cipher = PiiCipher.from_settings(settings)
    keyring = KeyRing(settings.kek)
    with server.session() as db:
        for purpose in ("trust", "card"):
            keys.create_key(db, SYSTEM, settings.kek, purpose=purpose)
        db.commit()
        province = chapters.create_chapter(db, SYSTEM, code="W-HNI", name="Hội LHPN Hà Nội", level="province",
                                           parent_id=None)
        commune = chapters.create_chapter(db, SYSTEM, code="W-HNI-BD", name="Phường Ba Đình", level="commune",
                                          parent_id=province.id)
        branch = chapters.create_chapter(db, SYSTEM, code="W-HNI-BD-01", name="Chi hội 1", level="branch",
                                         parent_id=commune.id)
        people = {"online": "Nguyễn Thị Lan", "revoked": "Trần Thị Hoa", "offline": "Lê Thị Mai"}
        qr: dict[str, str] = {}
        member_ids: dict[str, int] = {}
        for number, (key, name) in enumerate(people.items()):
            member, _warnings = members.create_member(db, SYSTEM, cipher, chapter_id=branch.id, fields={
                "full_name": name, "birth_date": datetime(1980 + number, 5, 1).date(), "gender": "female",
                "id_number": f"00118{number}00012{number}", "phone": "0912345678",
                "join_date": datetime(2010, 3, 8).date(),
            })
            card = cards.issue_card(db, SYSTEM, keyring, member.id, validity_years=5, list_size=4096)
            qr[key] = credential_of(card).qr_text
            member_ids[key] = member.id
            if key == "revoked":
                cards.revoke_card(db, SYSTEM, card.card_id, reason="lost", note="mất thẻ")
        now = datetime.now(UTC)
        event = events.create_event(db, SYSTEM, events.EventSpec(
            chapter_id=commune.id, title="Hội nghị hội viên phường Ba Đình", venue="Nhà văn hóa phường",
            starts_at=now - timedelta(minutes=30), ends_at=now + timedelta(hours=3)))
        codes = {role: stations.register_station(db, SYSTEM, event.id, f"Cửa {role}").provisioning_code
                 for role in ("online", "revoked", "offline")}
        db.commit()
        return Seeded(event.id, codes, qr, member_ids, people)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("checkin-page")) as running:
        yield running


@pytest.fixture(scope="module")
def seeded(server: LiveServer) -> Seeded:
    return seed(server)


def wait_for(driver: webdriver.Chrome, condition: Callable[[webdriver.Chrome], T | None], timeout: float = 20) -> T:
    value = WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)
    assert value is not None  # until() only returns a truthy value
    return value


def result_state(driver: webdriver.Chrome) -> dict[str, Any]:
    return dict(driver.execute_script("""
        const box = document.getElementById('result');
        return {state: box.dataset.state, reason: box.dataset.reason, sync: box.dataset.sync,
                nonce: box.dataset.nonce, title: document.getElementById('result-title').textContent,
                name: document.getElementById('result-name').textContent,
                syncText: document.getElementById('result-sync').textContent,
                phase: document.body.dataset.phase, net: document.getElementById('net').dataset.net,
                decoder: document.body.dataset.decoder || null};
    """))


def wait_result(driver: webdriver.Chrome, state: str, timeout: float = 25) -> dict[str, Any]:
    def seen(d: webdriver.Chrome) -> dict[str, Any] | None:
        current = result_state(d)
        return current if current["state"] == state else None
    return wait_for(driver, seen, timeout)


def checkin_rows(server: LiveServer, event_id: int) -> list[Checkin]:
    with server.session() as db:
        rows = list(db.scalars(select(Checkin).where(Checkin.event_id == event_id).order_by(Checkin.id)))
        db.expunge_all()
        return rows


def rows_with_nonce(server: LiveServer, event_id: int, nonce: str, timeout: float = 30) -> list[Checkin]:
    """The check-in rows of a nonce, once the page's queue has delivered them (empty after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [r for r in checkin_rows(server, event_id) if r.client_nonce == nonce]
        if rows:
            return rows
        time.sleep(0.3)
    return []


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


def test_online_scan_checks_the_member_in(server: LiveServer, seeded: Seeded, tmp_path: Path) -> None:
    camera = card_camera(seeded.qr["online"], tmp_path / "online.y4m")
    driver = chromium(fake_camera=camera, user_data_dir=tmp_path / "profile")
    try:
        driver.get(f"{server.url}/checkin#setup={seeded.codes['online']}")
        result = wait_result(driver, "ok")
        screenshot(driver, "checkin-1-online-ok")
        assert result["name"] == seeded.names["online"]
        assert result["title"] == "HỢP LỆ – MỜI VÀO" and result["sync"] == "synced"
        assert result["decoder"] == "jsqr"  # no BarcodeDetector on Linux: the bundled decoder did it
        assert "setup=" not in driver.current_url  # the one-time code is dropped from the address bar
        rows = [r for r in checkin_rows(server, seeded.event_id) if r.client_nonce == result["nonce"]]
        assert len(rows) == 1
        row = rows[0]
        assert (row.result, row.member_id, row.source) == ("ok", seeded.member_ids["online"], "qr_camera")
        assert row.station_id is not None
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
        result = wait_result(driver, "error")
        screenshot(driver, "checkin-3-revoked")
        assert result["reason"] == "revoked"
        assert result["title"] == "Thẻ đã bị thu hồi"
        assert result["name"] == seeded.names["revoked"]  # the signature verified: the steward sees who it is
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
        wait_for(driver, lambda d: result_state(d)["phase"] == "ready")
        driver.set_script_timeout(20)
        cached = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            (async () => {
              await navigator.serviceWorker.ready;
              for (let i = 0; i < 100; i += 1) {
                const cache = await caches.open('checkin-shell-v1');
                if ((await cache.keys()).length >= 11) return (await cache.keys()).length;
                await new Promise((r) => setTimeout(r, 100));
              }
              return 0;
            })().then(done, (e) => done(String(e)));
        """)
        assert cached == 11
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
            result = wait_result(driver, "ok")
            screenshot(driver, "checkin-5-offline-queued")
            assert result["name"] == seeded.names["offline"]
            assert result["sync"] == "queued" and "Chưa đồng bộ" in result["syncText"]
            assert result["net"] == "offline"
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
