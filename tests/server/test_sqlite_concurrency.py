"""The embedded default holds concurrent writes: a real server (uvicorn, two workers) on a SQLite file.

Fifty door scans from ten provisioned stations (25 cards, each scanned twice from different stations) and twenty
officer edits of twenty different members start at the same instant (a barrier), each from its own thread and
connection. On SQLite a transaction that starts reading and then writes must upgrade its lock, and SQLite refuses
that at once (no busy wait) when another connection committed in between; every transaction therefore takes the
write lock when it begins (``BEGIN IMMEDIATE``, cardsvc/db/session.py) and waits for it instead. No answer may be a
server error, and exactly-once must still hold: one ``ok`` per card.

This test runs its own SQLite file whatever the test backend is: it is about SQLite.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cardsvc.db.migrate import upgrade
from cardsvc.db.models import Checkin, Member
from cardsvc.db.session import make_engine
from cardsvc.security import PiiCipher
from cardsvc.services import cards, chapters, keys, members, officers
from cardsvc.services.context import system_actor
from cardsvc.services.keys import KeyRing
from cardsvc.services.pii import stored_value
from cardsvc.services.printing import credential_of
from cardsvc.settings import Settings
from tests.conftest import PASSWORD, TEST_KEK, TEST_SECRET
from tests.server.servers import Call, all_at_once, event_with_stations, uvicorn_server

CARDS = 25
STATIONS = 10
EDITS = 20
SYSTEM = system_actor("sqlite-race")


@dataclass
class Seeded:
    url: str
    engine: Engine
    event_id: int
    tokens: list[str]
    qr_texts: list[str]
    member_ids: list[int]
    cipher: PiiCipher


def _seed(engine: Engine, settings: Settings) -> tuple[int, list[str], list[str], list[int]]:
    """Committed data through the services: members with cards, an event with stations, an officer."""
    cipher = PiiCipher.from_settings(settings)
    keyring = KeyRing(settings.kek)
    with Session(engine, expire_on_commit=False) as session:
        root = chapters.create_chapter(session, SYSTEM, code="SQ", name="SQLite", level="central", parent_id=None)
        for purpose in ("trust", "card"):
            keys.create_key(session, SYSTEM, settings.kek, purpose=purpose)
        officers.create_officer(session, SYSTEM, username="sq.admin", password=PASSWORD, role="admin",
                                chapter_id=None, permissions=[])
        qr_texts, member_ids = [], []
        given = ["Lan", "Hoa", "Mai", "Cúc", "Đào", "Huệ", "Hương", "Thảo", "Hạnh", "Nga"]
        for number in range(max(CARDS, EDITS)):
            member, _ = members.create_member(session, SYSTEM, cipher, chapter_id=root.id, fields={
                "full_name": f"Nguyễn Thị {given[number % 10]} {given[number // 10]}",
                "birth_date": date(1985, 4, 12), "gender": "female", "id_number": f"0011851{number:05d}",
                "join_date": date(2010, 3, 8)})
            member_ids.append(member.id)
            if number < CARDS:
                card = cards.issue_card(session, SYSTEM, keyring, member.id, validity_years=5, list_size=4096)
                qr_texts.append(credential_of(card).qr_text)
        event_id, tokens = event_with_stations(session, SYSTEM, root.id, STATIONS)
        return event_id, tokens, qr_texts, member_ids


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("sqlite-race")
    url = f"sqlite:///{folder / 'cardsvc.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    settings = Settings(environment="test", database_url=url, secret_key=TEST_SECRET, key_encryption_key=TEST_KEK,
                        _env_file=None)  # type: ignore[call-arg]
    event_id, tokens, qr_texts, member_ids = _seed(engine, settings)
    try:
        with uvicorn_server(url, folder) as base:
            yield Seeded(base, engine, event_id, tokens, qr_texts, member_ids, PiiCipher.from_settings(settings))
    finally:
        engine.dispose()


def _officer_token(base: str) -> str:
    response = httpx.post(f"{base}/v1/auth/token", data={"username": "sq.admin", "password": PASSWORD}, timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_scans_and_edits_at_once_all_succeed_and_each_card_enters_once(sqlite_server: Seeded) -> None:
    server = sqlite_server
    officer = _officer_token(server.url)
    scans: list[Call] = [("POST", f"/v1/events/{server.event_id}/checkins", server.tokens[(card + rush) % STATIONS],
              {"source": "qr_scanner", "client_nonce": f"sq-{card:03d}-{rush}", "payload": server.qr_texts[card]})
             for card in range(CARDS) for rush in (0, 1)]
    edits: list[Call] = [("PATCH", f"/v1/members/{member_id}", officer, {"phone": f"09123456{index:02d}"})
             for index, member_id in enumerate(server.member_ids[:EDITS])]

    answers = all_at_once(server.url, scans + edits)

    server_errors = [(a.status_code, a.text[:200]) for a in answers if a.status_code >= 500]
    assert server_errors == []
    scan_answers, edit_answers = answers[:len(scans)], answers[len(scans):]
    assert {a.status_code for a in scan_answers} == {200}
    assert {a.status_code for a in edit_answers} == {200}
    assert [a.json()["id"] for a in edit_answers] == server.member_ids[:EDITS]
    with Session(server.engine) as session:
        phones = {member_id: stored_value(session.get_one(Member, member_id), "phone", server.cipher)
                  for member_id in server.member_ids[:EDITS]}
    assert all(phone is not None and phone.endswith(f"123456{index:02d}")
               for index, phone in enumerate(phones.values()))
    tally = Counter(a.json()["reason"] or a.json()["result"] for a in scan_answers)
    assert tally == {"ok": CARDS, "already_checked_in": CARDS}
    with Session(server.engine) as session:
        ok_rows = session.scalar(select(func.count()).select_from(Checkin).where(
            Checkin.event_id == server.event_id, Checkin.result == "ok"))
        doubled = session.scalar(select(func.count()).select_from(
            select(Checkin.member_id).where(Checkin.event_id == server.event_id, Checkin.result == "ok")
            .group_by(Checkin.member_id).having(func.count() > 1).subquery()))
        recorded = session.scalar(select(func.count()).select_from(Checkin).where(
            Checkin.event_id == server.event_id, Checkin.client_nonce.like("sq-%")))
    assert (ok_rows, doubled, recorded) == (CARDS, 0, 2 * CARDS)
