"""Exactly-once check-in against a real server: uvicorn with two worker processes on PostgreSQL.

Fifty stations' requests for the same card start at the same instant (a barrier), from fifty threads with their
own connections, and race in two processes: the database's unique constraints must give exactly one ``ok``. Then
fifty retries of one scan with the same nonce must all get the same answer and leave one row.

The server runs on its own database (``<test database>_checkin_race`` beside the test database), with committed data, so
that it never touches the rolled-back test transactions or the shared test database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from cardsvc.db.models import Checkin
from cardsvc.security import PiiCipher
from cardsvc.services import cards, chapters, keys, members
from cardsvc.services.context import system_actor
from cardsvc.services.keys import KeyRing
from cardsvc.services.printing import credential_of
from cardsvc.settings import Settings
from tests.conftest import BACKEND, TEST_KEK, TEST_SECRET
from tests.server.servers import all_at_once, event_with_stations, fresh_postgres, uvicorn_server

pytestmark = pytest.mark.postgres_only

RACERS = 50
STATIONS = 10
SYSTEM = system_actor("race-test")


@dataclass
class RaceServer:
    url: str
    engine: Engine
    event_id: int
    tokens: list[str]
    qr_texts: list[str]


def _seed(engine: Engine, settings: Settings) -> tuple[int, list[str], list[str]]:
    """Committed data through the services: a chapter, two members with cards, an event and its stations."""
    cipher = PiiCipher.from_settings(settings)
    keyring = KeyRing(settings.kek)
    with Session(engine, expire_on_commit=False) as session:
        root = chapters.create_chapter(session, SYSTEM, code="RACE", name="Race", level="central", parent_id=None)
        for purpose in ("trust", "card"):
            keys.create_key(session, SYSTEM, settings.kek, purpose=purpose)
        qr_texts = []
        for number, name in enumerate(("Nguyễn Thị Lan", "Trần Thị Hoa")):
            member, _ = members.create_member(session, SYSTEM, cipher, chapter_id=root.id, fields={
                "full_name": name, "birth_date": date(1985, 4, 12), "gender": "female",
                "id_number": f"00118512345{number}", "join_date": date(2010, 3, 8)})
            card = cards.issue_card(session, SYSTEM, keyring, member.id, validity_years=5, list_size=4096)
            qr_texts.append(credential_of(card).qr_text)
        event_id, tokens = event_with_stations(session, SYSTEM, root.id, STATIONS)
        return event_id, tokens, qr_texts


@pytest.fixture(scope="module")
def race_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RaceServer]:
    if BACKEND != "postgresql" or not database_url.startswith("postgresql"):
        pytest.fail("test_checkin_concurrency needs PostgreSQL: run it with CARDSVC_TEST_BACKEND=postgresql "
                    "(`make test` does, and deselects it from the SQLite pass)")
    url, engine = fresh_postgres(database_url, f"{make_url(database_url).database}_checkin_race")
    settings = Settings(environment="test", database_url=url, secret_key=TEST_SECRET, key_encryption_key=TEST_KEK,
                        _env_file=None)
    event_id, tokens, qr_texts = _seed(engine, settings)
    try:
        with uvicorn_server(url, tmp_path_factory.mktemp("race")) as base:
            yield RaceServer(base, engine, event_id, tokens, qr_texts)
    finally:
        engine.dispose()


def _race(server: RaceServer, payload: str, nonces: list[str]) -> list[dict[str, Any]]:
    """POST one check-in per nonce, each from its own thread and connection, all released at the same instant."""
    answers = all_at_once(server.url, [
        ("POST", f"/v1/events/{server.event_id}/checkins", server.tokens[index % len(server.tokens)],
         {"source": "qr_scanner", "client_nonce": nonce, "payload": payload}) for index, nonce in enumerate(nonces)])
    return [{"status": answer.status_code, **answer.json()} for answer in answers]


def _rows(server: RaceServer, *where: Any) -> int:
    with Session(server.engine) as session:
        return session.scalar(select(func.count()).select_from(Checkin).where(
            Checkin.event_id == server.event_id, *where)) or 0


def test_fifty_stations_scan_one_card_at_once_exactly_one_ok(race_server: RaceServer) -> None:
    answers = _race(race_server, race_server.qr_texts[0], [f"race-{i:04d}" for i in range(RACERS)])
    assert {a["status"] for a in answers} == {200}, answers[:3]
    tally = Counter(a["reason"] or a["result"] for a in answers)
    assert tally == {"ok": 1, "already_checked_in": RACERS - 1}
    winner = next(a for a in answers if a["result"] == "ok")
    for loser in (a for a in answers if a["result"] != "ok"):
        assert loser["first_checkin"]["at"] == winner["received_at"]
        assert loser["member"]["id"] == winner["member"]["id"]
    assert _rows(race_server, Checkin.result == "ok") == 1
    # One ok row and one denied row per loser: every scan is on record.
    assert _rows(race_server, Checkin.client_nonce.like("race-%")) == RACERS


def test_fifty_retries_with_one_nonce_get_one_answer_and_one_row(race_server: RaceServer) -> None:
    answers = _race(race_server, race_server.qr_texts[1], ["retry-same-nonce"] * RACERS)
    assert {a["status"] for a in answers} == {200}, answers[:3]
    shapes = {(a["result"], a["reason"], a["checkin_id"], a["received_at"]) for a in answers}
    assert len(shapes) == 1 and next(iter(shapes))[0] == "ok"
    assert sum(not a["replayed"] for a in answers) == 1
    assert _rows(race_server, Checkin.client_nonce == "retry-same-nonce") == 1
