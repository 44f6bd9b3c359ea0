"""The wallet outbox as a running server sends it: ``cardsvc serve`` (its lifespan starts the wallet worker thread)
with token-based APNs pointed at the fake HTTP/2 push service and the Google client at the fake Wallet API.

Nothing here calls the sending code directly. A pass is added and a device registered over HTTP; an officer suspends
the card over HTTP and the push and the Google object update arrive at the fakes by themselves. Then the server
stops, the card is revoked while it is down (the rows wait in the database), and a new server process sends them:
the pass comes back voided.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from cardsvc.db.migrate import upgrade
from cardsvc.db.models import WalletUpdate
from cardsvc.db.session import make_engine
from cardsvc.security import PiiCipher
from cardsvc.services import cards, chapters, keys, member_links, members, officers
from cardsvc.services.keys import KeyRing
from cardsvc.settings import Settings
from tests.conftest import BACKEND, PASSWORD, SYSTEM, TEST_KEK, TEST_SECRET
from tests.server.servers import fresh_postgres, serving_process
from tests.wallet.fakes import (
    APNS_KEY_ID,
    ISSUER_ID,
    PASS_TYPE_ID,
    TEAM_ID,
    FakeApns,
    FakeGoogleWallet,
    WalletPki,
    make_pki,
    running_fakes,
)

DEVICE = "w0rkerdev1ce0001"
PUSH_TOKEN = "cd" * 32
# How long a wait for the worker may take before the test fails (it polls every 0.2 s; the machine is loaded).
WAIT_SECONDS = 60


@dataclass
class Seeded:
    url: str
    engine: Engine
    settings: Settings
    card_id: str
    link: str


def _seed(url: str, engine: Engine) -> Seeded:
    settings = Settings(environment="test", database_url=url, secret_key=TEST_SECRET, key_encryption_key=TEST_KEK,
                        _env_file=None)  # type: ignore[call-arg]
    cipher = PiiCipher.from_settings(settings)
    with Session(engine) as session:
        root = chapters.create_chapter(session, SYSTEM, code="WW", name="Hội LHPN Thử", level="central",
                                       parent_id=None)
        for purpose in ("trust", "card"):
            keys.create_key(session, SYSTEM, settings.kek, purpose=purpose)
        officers.create_officer(session, SYSTEM, username="ww.admin", password=PASSWORD, role="admin",
                                chapter_id=None, permissions=[])
        member, _ = members.create_member(session, SYSTEM, cipher, chapter_id=root.id, fields={
            "full_name": "Lê Thị Bích Ngọc", "birth_date": date(1988, 2, 3), "gender": "female",
            "id_number": "001188012345", "join_date": date(2012, 5, 6)})
        card = cards.issue_card(session, SYSTEM, KeyRing(settings.kek), member.id, validity_years=5, list_size=4096)
        link = member_links.create_link(session, SYSTEM, cipher, member_links.LoggingMessenger(), member.id,
                                        channel="paper", base_url="https://the.example.vn")
        session.commit()
        return Seeded(url, engine, settings, card.card_id, link.token)


@pytest.fixture
def seeded(database_url: str, tmp_path: Path) -> Iterator[Seeded]:
    if BACKEND == "postgresql":
        url, engine = fresh_postgres(database_url, f"{make_url(database_url).database}_wallet_srv")
    else:
        url = f"sqlite:///{tmp_path / 'wallet-worker.sqlite3'}"
        engine = make_engine(url)
        upgrade(engine)
    try:
        yield _seed(url, engine)
    finally:
        engine.dispose()


def _server_env(pki: WalletPki, apns: FakeApns, google: FakeGoogleWallet, key_file: Path) -> dict[str, str]:
    return {"CARDSVC_WALLET_PASS_TYPE_ID": PASS_TYPE_ID, "CARDSVC_WALLET_TEAM_ID": TEAM_ID,
            "CARDSVC_WALLET_CERTIFICATE_FILE": str(pki.paths["certificate"]),
            "CARDSVC_WALLET_KEY_FILE": str(pki.paths["key"]), "CARDSVC_WALLET_WWDR_FILE": str(pki.paths["ca"]),
            # Token-based APNs: an ES256 JWT signed with the team's key, checked by the fake.
            "CARDSVC_WALLET_APNS_KEY_FILE": str(pki.paths["apns_key"]), "CARDSVC_WALLET_APNS_KEY_ID": APNS_KEY_ID,
            "CARDSVC_WALLET_GOOGLE_ISSUER_ID": ISSUER_ID, "CARDSVC_WALLET_GOOGLE_KEY_FILE": str(key_file),
            "CARDSVC_WALLET_CA_FILE": str(pki.paths["ca"]), "CARDSVC_WALLET_APNS_URL": apns.url,
            "CARDSVC_WALLET_GOOGLE_API_URL": google.url, "CARDSVC_WALLET_POLL_SECONDS": "0.2",
            "CARDSVC_PUBLIC_BASE_URL": "https://the.example.vn"}


def _until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"the server's wallet worker did not {what}")
        time.sleep(0.1)


def _statuses(engine: Engine) -> list[tuple[str, str]]:
    with Session(engine) as session:
        return [(u.channel, u.status) for u in session.scalars(select(WalletUpdate).order_by(WalletUpdate.id))]


def _pass_json(content: bytes) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(zipfile.ZipFile(io.BytesIO(content)).read("pass.json"))
    return body


def test_a_running_server_sends_the_outbox_and_a_restarted_one_finishes_it(seeded: Seeded, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    with running_fakes(pki) as (apns, google):
        key_file = pki.service_account(f"{google.url}/token")
        google.trust(key_file)
        env = _server_env(pki, apns, google, key_file)
        with serving_process(seeded.url, tmp_path, workers=1, env=env) as (_process, base), \
                httpx.Client(base_url=base, timeout=30) as http:
            # The member adds her card to both wallets from her page; her iPhone registers for updates.
            added = http.get(f"/m/{seeded.link}/wallet.pkpass")
            assert added.status_code == 200, added.text
            body = _pass_json(added.content)
            serial, auth = body["serialNumber"], {"Authorization": f"ApplePass {body['authenticationToken']}"}
            registrations = f"/wallet/apple/v1/devices/{DEVICE}/registrations/{PASS_TYPE_ID}"
            registered = http.post(f"{registrations}/{serial}", json={"pushToken": PUSH_TOKEN}, headers=auth)
            assert registered.status_code == 201
            tag = http.get(registrations).json()["lastUpdated"]
            save = http.get(f"/m/{seeded.link}/wallet/google", follow_redirects=False).headers["location"]
            claims = jwt.decode(save.rsplit("/", 1)[1], options={"verify_signature": False})
            (saved,) = claims["payload"]["genericObjects"]
            google.objects[saved["id"]] = saved  # she tapped "save" on Google's page

            token = http.post("/v1/auth/token", data={"username": "ww.admin", "password": PASSWORD})
            officer = {"Authorization": f"Bearer {token.json()['access_token']}"}
            suspended = http.post(f"/v1/cards/{seeded.card_id}/suspend", json={}, headers=officer)
            assert suspended.status_code == 200, suspended.text
            _until("push to the device", lambda: len(apns.pushes) == 1)
            _until("update the Google object", lambda: len(google.updates) == 1)
            _until("finish both rows", lambda: _statuses(seeded.engine) == [("apple", "done"), ("google", "done")])
            (push,) = apns.pushes
            assert push.token == PUSH_TOKEN and push.headers["authorization"].startswith("bearer ")
            assert google.updates[0][1]["state"] == "INACTIVE"
            changed = http.get(registrations, params={"passesUpdatedSince": tag})
            assert changed.status_code == 200 and changed.json()["serialNumbers"] == [serial]
            tag = changed.json()["lastUpdated"]

        # The server is down: the card is revoked by another process; the updates wait in the database.
        with Session(seeded.engine) as session:
            cards.revoke_card(session, SYSTEM, seeded.card_id, reason="stolen", note=None)
        assert _statuses(seeded.engine)[2:] == [("apple", "pending"), ("google", "pending")]

        with serving_process(seeded.url, tmp_path, workers=1, env=env) as (_process, base), \
                httpx.Client(base_url=base, timeout=30) as http:
            _until("push again after the restart", lambda: len(apns.pushes) == 2)
            _until("finish the rows left by the restart",
                   lambda: [s for _c, s in _statuses(seeded.engine)] == ["done"] * 4)
            assert google.updates[-1][1]["state"] == "INACTIVE" and "barcode" not in google.updates[-1][1]
            changed = http.get(registrations, params={"passesUpdatedSince": tag})
            assert changed.status_code == 200 and changed.json()["serialNumbers"] == [serial]
            latest = http.get(f"/wallet/apple/v1/passes/{PASS_TYPE_ID}/{serial}", headers=auth)
            assert latest.status_code == 200
            voided = _pass_json(latest.content)
            assert voided["voided"] is True and "barcodes" not in voided
