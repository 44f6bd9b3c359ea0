"""The live card end to end in headless Chromium: a member's phone and a door's phone, with no server at the door.

1. The member's page (one browser) activates the live card with the officer's one-time code: a real WebCrypto key,
   non-extractable, kept in IndexedDB; the page then draws a live code, and the static QR is hidden.
2. The check-in page (a second browser) is set up online for a ``live_required`` event, then the server stops.
3. The live QR, captured from the member's screen, is the check-in page's fake camera: accepted offline, marked live.
4. A copy of the bound credential read from the member's IndexedDB (all a thief gets: the key does not export) is
   refused (``holder_proof_invalid``); the same capture shown after its window is refused (``stale_live_code``).
5. The server comes back: the queued live scan is recorded, and confirmed by the server at the scan's time.
6. A second phone is activated: the first phone's page says the card now lives on another phone.

Screenshots go to var/test-artifacts/live-card-*.png.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.by import By

from cardsvc.db.models import CardBinding
from cardsvc.security import PiiCipher
from cardsvc.services import bindings, member_links
from issuance.render import qr_png
from tests.vectors.make_vectors import qr_version_ecc_m
from tests.web.checkin_helpers import (
    SYSTEM,
    result_state,
    rows_with_nonce,
    seed,
    server_settings,
    wait_for,
    wait_result,
    y4m_frames,
)
from tests.web.harness import LiveServer, chromium, live_server, screenshot
from verification.format import to_qr_text
from verification.live import live_code_from_text, parse_live_code, time_step_at

# The door phone's clock runs this far ahead for the stale capture: past the window of docs/card-format.md §8.4.
LATER_MS = 120_000
# The member's phone clock runs this far behind in the wrong-clock test: 14 time steps, far outside the window.
PHONE_BEHIND_MS = 7 * 60_000


@dataclass
class LiveSeeded:
    member_url: str
    member_id: int
    member_name: str
    event_id: int
    setup_code: str
    activation_code: str


def _seed(server: LiveServer) -> LiveSeeded:
    """A member with a card and a card link, her officer's activation code, and a live_required event with a door."""
    name = "Nguyễn Thị Phương Thảo Vy"
    seeded = seed(server, {"member": name}, ["main"], live_policy="live_required")
    member_id = seeded.member_ids["member"]
    cipher = PiiCipher.from_settings(server_settings(server))
    with server.session() as db:
        link = member_links.create_link(db, SYSTEM, cipher, member_links.LoggingMessenger(), member_id,
                                        channel="paper", base_url=server.url)
        code = bindings.create_code(db, SYSTEM, member_id).code
        db.commit()
    return LiveSeeded(link.url, member_id, name, seeded.event_id, seeded.codes["main"], code)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("live-card")) as running:
        yield running


def _camera(image: Image.Image, path: Path) -> Path:
    """The image, scaled to fit the 640×480 fake camera with a margin, as a looping Y4M."""
    scale = min(1.0, 440 / max(image.size))
    return y4m_frames(image.resize((round(image.width * scale), round(image.height * scale)),
                                   Image.Resampling.LANCZOS), path)


def _clock(driver: webdriver.Chrome, clock_ms: int) -> None:
    """The pages the browser opens from now on see a clock ``clock_ms`` off (ahead when positive)."""
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": f"""
        (() => {{
          const Real = Date;
          class Skewed extends Real {{
            constructor(...args) {{ if (args.length) super(...args); else super(Real.now() + {clock_ms}); }}
            static now() {{ return Real.now() + {clock_ms}; }}
          }}
          globalThis.Date = Skewed;
        }})();"""})


def _activate_and_capture(seeded: LiveSeeded, profile: Path, code: str, *, clock_ms: int = 0
                          ) -> tuple[Image.Image, str, bytes]:
    """The member's phone (its clock ``clock_ms`` off): activate, then the live QR as pixels, its text (decoded), and
    the bound credential read from IndexedDB as a thief with the phone's storage would."""
    phone = chromium(user_data_dir=profile)
    if clock_ms:
        _clock(phone, clock_ms)
    try:
        phone.set_window_size(412, 915)
        phone.get(seeded.member_url)
        field = wait_for(phone, lambda d: d.find_elements(By.ID, "live-code"))[0]
        field.send_keys(code)
        phone.find_element(By.ID, "live-on").click()
        qr = wait_for(phone, lambda d: d.find_elements(By.CSS_SELECTOR, "#live-qr[data-step]"))[0]
        wait_for(phone, lambda d: d.execute_script("const i = document.getElementById('live-qr');"
                                                   "return i.complete && i.naturalWidth > 0"))
        assert qr.get_attribute("data-algorithm") == "Ed25519"  # Chromium has WebCrypto Ed25519
        assert phone.find_element(By.ID, "card").get_attribute("data-live") == "on"
        assert not phone.find_element(By.ID, "qr-box").is_displayed()  # the static QR gives way
        screenshot(phone, "live-card-1-member-phone")
        image = Image.open(io.BytesIO(qr.screenshot_as_png)).convert("RGB")
        phone.set_script_timeout(20)
        stolen = phone.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const open = indexedDB.open("cardsvc-live", 1);
            open.onsuccess = () => {
              const get = open.result.transaction("phones").objectStore("phones").get(location.pathname);
              get.onsuccess = async () => {
                const record = get.result;
                let exported = "refused";
                try { await crypto.subtle.exportKey("pkcs8", record.privateKey); exported = "exported"; }
                catch (e) { exported = "refused"; }
                done({credential: Array.from(record.credential), extractable: record.privateKey.extractable,
                      exported});
              };
            };
        """)
    finally:
        phone.quit()
    assert stolen["extractable"] is False and stolen["exported"] == "refused"
    found = zxingcpp.read_barcodes(image)
    assert len(found) == 1 and found[0].text.startswith("8402")
    return image, found[0].text, bytes(stolen["credential"])


def _door(profile: Path, camera: Path, url: str, *, clock_ms: int = 0) -> webdriver.Chrome:
    door = chromium(fake_camera=camera, user_data_dir=profile)
    if clock_ms:
        _clock(door, clock_ms)
    door.get(url)
    return door


def test_live_card_from_the_member_phone_to_an_offline_door(server: LiveServer, tmp_path: Path) -> None:
    seeded = _seed(server)
    door_profile = tmp_path / "door"
    # The door: set up online for the event, with an empty view; the app shell and the bundle are kept.
    door = _door(door_profile, y4m_frames(None, tmp_path / "blank.y4m"), f"{server.url}/checkin#setup="
                 f"{seeded.setup_code}")
    try:
        wait_for(door, lambda d: result_state(d)["phase"] == "ready")
        wait_for(door, lambda d: d.execute_script("return !!navigator.serviceWorker.controller"))
    finally:
        door.quit()

    image, text, bound = _activate_and_capture(seeded, tmp_path / "member", seeded.activation_code)
    assert qr_version_ecc_m(text) <= 13
    captured_at = time.monotonic()
    server.stop()
    try:
        # 1. The capture, seconds old, on an offline door: accepted and marked live.
        door = _door(door_profile, _camera(image, tmp_path / "live.y4m"), f"{server.url}/checkin")
        try:
            result = wait_result(door, "ok", sync="queued")
            assert time.monotonic() - captured_at < 60  # still inside the window it was shown in
            screenshot(door, "live-card-2-door-offline-ok")
            assert result["name"] == seeded.member_name and result["sync"] == "queued"
            assert door.find_element(By.ID, "result").get_attribute("data-live") == "1"
            assert "Thẻ động" in door.find_element(By.ID, "result-detail").text
            nonce = result["nonce"]
        finally:
            door.quit()

        # 2. The bound credential copied out of the member's phone, shown without her key.
        copy = Image.open(io.BytesIO(qr_png(to_qr_text(bound), module_px=4)))
        door = _door(door_profile, _camera(copy, tmp_path / "copy.y4m"), f"{server.url}/checkin")
        try:
            result = wait_result(door, "error")
            screenshot(door, "live-card-3-door-copy-refused")
            assert result["reason"] == "holder_proof_invalid"
        finally:
            door.quit()

        # 3. The same capture two minutes later: outside its window.
        door = _door(door_profile, _camera(image, tmp_path / "stale.y4m"), f"{server.url}/checkin",
                     clock_ms=LATER_MS)
        try:
            result = wait_result(door, "error")
            screenshot(door, "live-card-4-door-stale-refused")
            assert result["reason"] == "stale_live_code"
            assert result["name"] == seeded.member_name  # a genuine card's capture: the steward sees whose
        except BaseException:
            door.quit()
            raise
    finally:
        server.start()

    # 4. Back online, the queued live scan reaches the server, which decides it at the scan's own time.
    try:
        rows = rows_with_nonce(server, seeded.event_id, nonce)
        assert len(rows) == 1
        assert (rows[0].result, rows[0].member_id, rows[0].offline) == ("ok", seeded.member_id, True)
    finally:
        door.quit()

    # 5. She activates another phone: the first phone's page says so and forgets its key and credential.
    with server.session() as db:
        code = bindings.create_code(db, SYSTEM, seeded.member_id).code
    _activate_and_capture(seeded, tmp_path / "second-phone", code)
    phone = chromium(user_data_dir=tmp_path / "member")
    try:
        phone.get(seeded.member_url)
        wait_for(phone, lambda d: d.find_element(By.ID, "live").get_attribute("data-live-state") == "superseded")
        assert "điện thoại khác" in phone.find_element(By.ID, "live-message").text
        assert phone.find_elements(By.ID, "live-qr") == [] and phone.find_elements(By.ID, "live-form")
        screenshot(phone, "live-card-5-first-phone-superseded")
    finally:
        phone.quit()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path / "server") as running:
        yield running


def test_a_phone_with_a_wrong_clock_shows_a_live_code_the_door_accepts_and_turns_it_off_in_one_tap(
        fresh_server: LiveServer, tmp_path: Path) -> None:
    """The phone's clock is minutes off (far outside the verifier's window of §8.4): activating online teaches the
    page the server's time, so its live code is drawn for the right time step and the door takes it. Then one tap on
    "Tắt thẻ động" ends the binding on the server and leaves no key or credential on the phone."""
    server = fresh_server
    seeded = _seed(server)
    door_profile = tmp_path / "door"
    door = _door(door_profile, y4m_frames(None, tmp_path / "blank.y4m"), f"{server.url}/checkin#setup="
                 f"{seeded.setup_code}")
    try:
        wait_for(door, lambda d: result_state(d)["phase"] == "ready")
    finally:
        door.quit()

    image, text, _bound = _activate_and_capture(seeded, tmp_path / "member", seeded.activation_code,
                                                clock_ms=-PHONE_BEHIND_MS)
    # Drawn for the server's time step, not the phone's (which is 14 steps behind and would be stale at any door).
    drawn = parse_live_code(live_code_from_text(text)).time_step
    assert abs(drawn - time_step_at(time.time())) <= 1
    assert time_step_at(time.time()) - time_step_at(time.time() - PHONE_BEHIND_MS / 1000) >= 14
    with server.session() as db:
        binding = bindings.page_binding(db, seeded.member_url.rsplit("/", 1)[1])
        assert binding is not None and binding.status == "active"
        binding_id = binding.id
    door = _door(door_profile, _camera(image, tmp_path / "live.y4m"), f"{server.url}/checkin")
    try:
        result = wait_result(door, "ok")
        screenshot(door, "live-card-6-wrong-phone-clock-ok")
        assert result["name"] == seeded.member_name
        assert door.find_element(By.ID, "result").get_attribute("data-live") == "1"
    finally:
        door.quit()

    phone = chromium(user_data_dir=tmp_path / "member")
    _clock(phone, -PHONE_BEHIND_MS)
    try:
        phone.get(seeded.member_url)
        wait_for(phone, lambda d: d.find_elements(By.ID, "live-off"))[0].click()
        wait_for(phone, lambda d: d.find_element(By.ID, "live").get_attribute("data-live-state") == "ended")
        assert "đã tắt" in phone.find_element(By.ID, "live-message").text
        assert phone.find_elements(By.ID, "live-qr") == [] and phone.find_elements(By.ID, "live-form")
        phone.set_script_timeout(20)
        kept = phone.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const open = indexedDB.open("cardsvc-live", 1);
            open.onsuccess = () => {
              const get = open.result.transaction("phones").objectStore("phones").get(location.pathname);
              get.onsuccess = () => done(get.result === undefined ? null : "kept");
            };
        """)
        assert kept is None
        screenshot(phone, "live-card-7-member-turned-it-off")
    finally:
        phone.quit()
    deadline = time.monotonic() + 20  # the page's DELETE is sent as the tap clears the phone
    while True:
        with server.session() as db:
            ended = db.get(CardBinding, binding_id)
            assert ended is not None
            if ended.status != "active":
                break
        assert time.monotonic() < deadline, "the member's tap did not end the binding on the server"
        time.sleep(0.2)
    assert (ended.status, ended.ended_by) == ("revoked", "member")
