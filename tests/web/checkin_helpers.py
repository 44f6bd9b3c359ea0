"""What the check-in page's browser tests and bench share: an event seeded through the services on a live server,
fake cameras made of real card QR codes (Y4M), and readers of the page's state.

The page exposes its state as data attributes (``#result[data-state][data-reason][data-sync][data-nonce]``,
``body[data-phase][data-camera][data-bundle][data-sound]``, ``#net[data-net]``); the helpers read those, never the
page's internals.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from PIL import Image, ImageFilter
from selenium import webdriver
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
from tests.web.harness import SERVER_KEK, SERVER_SECRET, LiveServer, chromium

SYSTEM = system_actor("browser-tests")
WIDTH, HEIGHT = 640, 480
T = TypeVar("T")


@dataclass
class Seeded:
    event_id: int
    codes: dict[str, str]  # station role -> provisioning code
    station_ids: dict[str, int]  # station role -> id
    station_names: dict[str, str]  # station role -> the name the officer gave it
    qr: dict[str, str]  # member key -> card QR text
    member_ids: dict[str, int]
    names: dict[str, str]


def y4m(frames: Sequence[Image.Image | None], path: Path, *, size: tuple[int, int] = (WIDTH, HEIGHT),
        fps: int = 10) -> Path:
    """A Y4M (YUV 4:2:0 planar, JPEG full-range) of these frames, each image centred on white (None: white only).
    Chromium's fake camera plays it at ``fps`` and loops it."""
    width, height = size
    header = f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode()
    assert len(header) <= 200
    half = (width // 2, height // 2)
    encoded: dict[int, bytes] = {}
    with path.open("wb") as out:
        out.write(header)
        for image in frames:
            key = id(image)
            if key not in encoded:
                canvas = Image.new("RGB", size, "white")
                if image is not None:
                    canvas.paste(image.convert("RGB"), ((width - image.width) // 2, (height - image.height) // 2))
                y, cb, cr = canvas.convert("YCbCr").split()
                encoded[key] = (b"FRAME\n" + y.tobytes() + cb.resize(half, Image.Resampling.BOX).tobytes()
                                + cr.resize(half, Image.Resampling.BOX).tobytes())
            out.write(encoded[key])
    return path


def y4m_frames(image: Image.Image | None, path: Path, frames: int = 4) -> Path:
    """``frames`` identical frames: ``image`` centred on white."""
    return y4m([image] * frames, path)


def qr_image(qr_text: str, module_px: int = 6) -> Image.Image:
    return Image.open(io.BytesIO(qr_png(qr_text, module_px=module_px)))


def card_camera(qr_text: str, path: Path) -> Path:
    image = qr_image(qr_text)
    assert image.width <= HEIGHT, "the QR must fit the frame"
    return y4m_frames(image, path)


def server_settings(server: LiveServer) -> Settings:
    """The live server's settings, for seeding its database through the services."""
    return Settings(database_url=server.database_url, secret_key=SERVER_SECRET, key_encryption_key=SERVER_KEK,
                    environment="test", public_base_url=server.url)


def seed(server: LiveServer, people: Mapping[str, str], station_roles: Sequence[str], *,
         revoked: Collection[str] = (), live_policy: str = "any") -> Seeded:
    """Signing keys, a chapter tree, one member with a card per entry of ``people`` (key -> full name; the cards of
    ``revoked`` keys are revoked), an event open now accepting the cards of ``live_policy``, and one registered
    station per role (named "Cửa <role>")."""
    settings = server_settings(server)
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
        qr: dict[str, str] = {}
        member_ids: dict[str, int] = {}
        for number, (key, name) in enumerate(people.items()):
            birth = date(1940 + number % 50, 5, 1)
            member, _warnings = members.create_member(db, SYSTEM, cipher, chapter_id=branch.id, fields={
                "full_name": name, "birth_date": birth, "gender": "female",
                "id_number": f"0011{birth.year % 100:02d}{number + 100:06d}", "phone": "0912345678",
                "join_date": date(2010, 3, 8),
            })
            card = cards.issue_card(db, SYSTEM, keyring, member.id, validity_years=5, list_size=4096)
            qr[key] = credential_of(card).qr_text
            member_ids[key] = member.id
            if key in revoked:
                cards.revoke_card(db, SYSTEM, card.card_id, reason="lost", note="mất thẻ")
        now = datetime.now(UTC)
        event = events.create_event(db, SYSTEM, events.EventSpec(
            chapter_id=commune.id, title="Hội nghị hội viên phường Ba Đình", venue="Nhà văn hóa phường",
            starts_at=now - timedelta(minutes=30), ends_at=now + timedelta(hours=3), live_policy=live_policy))
        registered = {role: stations.register_station(db, SYSTEM, event.id, f"Cửa {role}") for role in station_roles}
        db.commit()
        return Seeded(event.id, {role: r.provisioning_code for role, r in registered.items()},
                      {role: r.station.id for role, r in registered.items()},
                      {role: r.station.name for role, r in registered.items()}, qr, member_ids, dict(people))


def wait_for(driver: webdriver.Chrome, condition: Callable[[webdriver.Chrome], T | None], timeout: float = 20) -> T:
    value = WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)
    assert value is not None  # until() only returns a truthy value
    return value


def result_state(driver: webdriver.Chrome) -> dict[str, Any]:
    return dict(driver.execute_script("""
        const box = document.getElementById('result');
        const text = (id) => document.getElementById(id).textContent;
        return {state: box.dataset.state, reason: box.dataset.reason, sync: box.dataset.sync,
                nonce: box.dataset.nonce, title: text('result-title'), name: text('result-name'),
                first: text('result-first'), detail: text('result-detail'), syncText: text('result-sync'),
                phase: document.body.dataset.phase, camera: document.body.dataset.camera || null,
                bundle: document.body.dataset.bundle || null, net: document.getElementById('net').dataset.net,
                decoder: document.body.dataset.decoder || null};
    """))


def wait_result(driver: webdriver.Chrome, state: str, timeout: float = 25, sync: str | None = None) -> dict[str, Any]:
    """Wait until the panel shows ``state`` (and, when given, the sync state ``sync``)."""
    def seen(d: webdriver.Chrome) -> dict[str, Any] | None:
        current = result_state(d)
        return current if current["state"] == state and sync in (None, current["sync"]) else None
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


def served_shell(server_url: str) -> tuple[str, set[str]]:
    """The cache name and the shell paths the served service worker caches."""
    source = httpx.get(f"{server_url}/checkin/sw.js").text
    version = re.search(r'const VERSION = "([0-9a-f]+)";', source)
    shell = re.search(r"const SHELL = \[(.*?)\];", source, re.S)
    assert version is not None and shell is not None
    return f"checkin-shell-{version[1]}", set(re.findall(r'"(/[^"]*)"', shell[1]))


def cached_paths(driver: webdriver.Chrome, cache: str, expected: int) -> set[str]:
    """The paths in the service worker's cache ``cache`` once it holds ``expected`` entries (10 s at most)."""
    driver.set_script_timeout(20)
    found = driver.execute_async_script("""
        const [name, expected, done] = arguments;
        (async () => {
          await navigator.serviceWorker.ready;
          let keys = [];
          for (let i = 0; i < 100 && keys.length < expected; i += 1) {
            if (await caches.has(name)) keys = await (await caches.open(name)).keys();
            if (keys.length < expected) await new Promise((r) => setTimeout(r, 100));
          }
          return keys.map((request) => new URL(request.url).pathname);
        })().then(done, (e) => done([String(e)]));
    """, cache, expected)
    return set(found)


def card_photo(qr_text: str, path: Path) -> Path:
    """A phone camera's photo of a printed card (JPEG, 1600 × 1200): the card's QR on a white card, turned 8° on a
    brown table, slightly out of focus and lit unevenly."""
    card = Image.new("RGB", (856, 540), "white")
    code = qr_image(qr_text, module_px=6)
    card.paste(code.convert("RGB"), (856 - code.width - 30, (540 - code.height) // 2))
    for row in range(4):  # the printed name and number lines
        card.paste((90, 90, 90), (40, 120 + row * 70, 400 - row * 40, 140 + row * 70))
    photo = Image.new("RGB", (1600, 1200), (120, 84, 52))
    turned = card.rotate(8, expand=True, resample=Image.Resampling.BICUBIC, fillcolor=(120, 84, 52))
    photo.paste(turned, ((1600 - turned.width) // 2, (1200 - turned.height) // 2))
    light = Image.linear_gradient("L").resize(photo.size).point(lambda v: 150 + v * 105 // 255)
    photo = Image.composite(photo, Image.new("RGB", photo.size, "black"), light)
    photo = photo.filter(ImageFilter.GaussianBlur(1.2))
    photo.save(path, "JPEG", quality=82)
    return path


def set_up_phone(server_url: str, code: str, profile: Path) -> Path:
    """A phone profile set up from the provisioning link (camera showing nothing): it holds the verified bundle and
    the service worker's cache of the app shell when this returns."""
    driver = chromium(fake_camera=y4m_frames(None, profile.with_name(f"{profile.name}-blank.y4m")),
                      user_data_dir=profile)
    try:
        driver.get(f"{server_url}/checkin#setup={code}")
        wait_for(driver, lambda d: result_state(d)["bundle"] == "yes", 30)
        cache, shell = served_shell(server_url)
        assert cached_paths(driver, cache, len(shell)) == shell
    finally:
        driver.quit()
    return profile
