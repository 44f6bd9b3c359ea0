"""The member's card page in headless Chromium against a live server.

The QR on screen must decode (from a screenshot, with zxing-cpp) to the card's current credential; the page must
still show the card with the server stopped; after a reissue it must show the new credential and say so; after a
revocation it must say the card is revoked; after the link is revoked it must say the link is dead and forget the
card. Screenshots land in ``var/test-artifacts/member-card-*.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from cardsvc.security import PiiCipher
from cardsvc.services import cards, chapters, keys, member_links, members
from cardsvc.services.context import system_actor
from cardsvc.services.keys import KeyRing
from cardsvc.settings import Settings
from issuance.credential import credential_qr_text
from tests.web.harness import SERVER_KEK, SERVER_SECRET, LiveServer, chromium, live_server, screenshot

SYSTEM = system_actor("browser-tests")


@dataclass
class Seeded:
    server: LiveServer
    settings: Settings
    member_id: int
    card_id: str
    qr_text: str
    url: str


def _settings(server: LiveServer) -> Settings:
    return Settings(environment="test", database_url=server.database_url, secret_key=SERVER_SECRET,
                    key_encryption_key=SERVER_KEK, status_list_size=4096, public_base_url=server.url,
                    _env_file=None)


def _seed(server: LiveServer) -> Seeded:
    """Keys, a chapter tree, a member with a card and her paper link, all committed through the services."""
    settings = _settings(server)
    with server.session() as session:
        for purpose in ("trust", "card"):
            keys.create_key(session, SYSTEM, settings.kek, purpose=purpose)
        parent_id = None
        for code, name, level in (("TW", "Trung ương Hội", "central"), ("HNI", "Hội LHPN Hà Nội", "province"),
                                  ("HNI-BADINH", "Phường Ba Đình", "commune"),
                                  ("HNI-BADINH-01", "Chi hội Phúc Xá", "branch")):
            parent_id = chapters.create_chapter(session, SYSTEM, code=code, name=name, level=level,
                                                parent_id=parent_id).id
        assert parent_id is not None
        fields = {"full_name": "Nguyễn Thị Phương Thảo", "birth_date": date(1987, 9, 21), "gender": "female",
                  "id_number": "001187004321", "phone": "0912345678"}
        member, _ = members.create_member(session, SYSTEM, PiiCipher.from_settings(settings), chapter_id=parent_id,
                                          fields=fields)
        card = cards.issue_card(session, SYSTEM, KeyRing(settings.kek), member.id, validity_years=5, list_size=4096)
        link = member_links.create_link(session, SYSTEM, PiiCipher.from_settings(settings),
                                        member_links.LoggingMessenger(), member.id, channel="paper",
                                        base_url=server.url)
        return Seeded(server, settings, member.id, card.card_id, credential_qr_text(card.credential), link.url)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    with live_server(tmp_path_factory.mktemp("member-card")) as server:
        yield _seed(server)


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    browser = chromium(user_data_dir=tmp_path / "chromium")
    try:
        yield browser
    finally:
        browser.quit()


def _wait(driver: webdriver.Chrome, script: str, timeout: float = 15) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script(script))


def _shown_card_id(driver: webdriver.Chrome) -> str | None:
    value: str | None = driver.execute_script(
        "var img = document.getElementById('qr');"
        "return img && img.complete && img.naturalWidth > 0 && !document.getElementById('qr-box').hidden"
        " ? img.getAttribute('data-card-id') : null;")
    return value


def _decode_screenshot(driver: webdriver.Chrome, name: str) -> str:
    path = screenshot(driver, name)
    found = zxingcpp.read_barcodes(Image.open(path))
    assert len(found) == 1, f"{len(found)} QR codes found in {path}"
    text: str = found[0].text
    return text


def _text(driver: webdriver.Chrome, element_id: str) -> str:
    text: str = driver.find_element(By.ID, element_id).text
    return text


def test_member_card_online_offline_reissued_revoked(seeded: Seeded, driver: webdriver.Chrome) -> None:
    server = seeded.server
    driver.get(seeded.url)
    WebDriverWait(driver, 15).until(lambda d: _shown_card_id(d) == seeded.card_id)
    # Installed: the service worker is active and has cached the page and its files.
    _wait(driver, "return !!navigator.serviceWorker.controller")
    cached = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "caches.keys().then(function (names) { return caches.open(names[0]); })"
        ".then(function (cache) { return cache.keys(); })"
        ".then(function (requests) { done(requests.map(function (r) { return new URL(r.url).pathname; })); });")
    page = seeded.url.removeprefix(server.url)
    assert {page, "/static/member/card.js", "/static/member/card.css"} <= set(cached)
    assert _text(driver, "name") == "Nguyễn Thị Phương Thảo"
    assert _text(driver, "chapter") == "Chi hội Phúc Xá"
    assert _text(driver, "status") == "Còn hiệu lực"
    assert "độ sáng" in _text(driver, "qr-box")
    assert _decode_screenshot(driver, "member-card-online") == seeded.qr_text
    # A small Android phone's viewport: the QR still fills the width and decodes.
    driver.set_window_size(412, 915)
    assert _decode_screenshot(driver, "member-card-phone") == seeded.qr_text
    driver.set_window_size(1280, 1000)

    # No network at all: the service worker serves the page, the page shows the card it saved.
    server.stop()
    driver.refresh()
    WebDriverWait(driver, 15).until(lambda d: _shown_card_id(d) == seeded.card_id)
    _wait(driver, "return document.getElementById('sync').textContent.indexOf('Không có mạng') === 0")
    assert _decode_screenshot(driver, "member-card-offline") == seeded.qr_text

    # Renewed while the phone was offline; back online, a reload shows the new credential and says so.
    with server.session() as session:
        renewed = cards.renew_card(session, SYSTEM, KeyRing(seeded.settings.kek), seeded.card_id, validity_years=5,
                                   list_size=4096)
        renewed_id, renewed_qr = renewed.card_id, credential_qr_text(renewed.credential)
    server.start()
    driver.refresh()
    WebDriverWait(driver, 15).until(lambda d: _shown_card_id(d) == renewed_id)
    assert "Đã cấp thẻ mới (lần 2)" in _text(driver, "notice")
    assert _decode_screenshot(driver, "member-card-reissued") == renewed_qr != seeded.qr_text

    driver.find_element(By.ID, "lang").click()
    assert _text(driver, "status") == "Valid" and "new card was issued" in _text(driver, "notice")
    screenshot(driver, "member-card-english")
    driver.find_element(By.ID, "lang").click()

    with server.session() as session:
        cards.revoke_card(session, SYSTEM, renewed_id, reason="lost", note=None)
    driver.refresh()
    _wait(driver, "return document.getElementById('card').getAttribute('data-state') === 'revoked'")
    assert _text(driver, "status") == "Đã thu hồi"
    assert "thu hồi" in _text(driver, "banner")
    assert _shown_card_id(driver) is None
    screenshot(driver, "member-card-revoked")
    assert zxingcpp.read_barcodes(Image.open(screenshot(driver, "member-card-revoked"))) == []

    # The officer revokes the link (a lost phone): the page says so and the phone forgets the card.
    with server.session() as session:
        member_links.revoke_links(session, SYSTEM, seeded.member_id)
    driver.refresh()
    _wait(driver, "return document.getElementById('card').getAttribute('data-state') === 'gone'")
    assert "không còn hiệu lực" in driver.find_element(By.TAG_NAME, "main").text
    _wait(driver, "return localStorage.length <= 1")  # only the language choice may stay
    screenshot(driver, "member-card-link-revoked")
