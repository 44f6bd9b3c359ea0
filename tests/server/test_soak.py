"""Soak: a bounded mix of imports, issuance, check-ins and identity syncs from several threads against a real server
(uvicorn, two workers) on its own PostgreSQL database, then consistency checks on what was committed.

Duration: ``CARDSVC_SOAK_SECONDS`` (default 60). No request may end in a server error, and afterwards: no card
without a member, no duplicate accepted check-in per (event, member, sequence), at most one current card per member,
an audit entry for every card issued (its own, or its batch chunk's naming it) and every import.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cardsvc.services import chapters, events, keys, officers, stations
from cardsvc.services.context import system_actor
from cardsvc.settings import Settings
from tests.conftest import BACKEND, PASSWORD, TEST_KEK, TEST_SECRET, id_number_for
from tests.server.servers import fresh_postgres, uvicorn_server

pytestmark = pytest.mark.postgres_only

SOAK_DATABASE = "cardsvc_soak"
SECONDS = float(os.environ.get("CARDSVC_SOAK_SECONDS", "60"))
STATIONS = 6
SYSTEM = system_actor("soak-test")
FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Võ", "Đặng", "Bùi")
MIDDLE = ("Thị", "Thị Thu", "Thị Ngọc", "Thị Minh", "Thị Thanh")
GIVEN = ("Lan", "Hoa", "Huệ", "Mai", "Thảo", "Hạnh", "Yến", "Nga", "Phương", "Trang")


@dataclass
class SoakServer:
    url: str
    engine: Engine
    root_id: int
    commune_ids: list[int]
    event_id: int
    station_tokens: list[str]


@dataclass
class Tally:
    """Answers per (kind, status), shared by the worker threads."""

    counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, response: httpx.Response) -> httpx.Response:
        with self.lock:
            self.counts[(kind, response.status_code)] += 1
            if response.status_code >= 500:
                self.errors.append(f"{kind} {response.request.method} {response.request.url.path}: "
                                   f"{response.status_code} {response.text[:300]}")
        return response

    def ok(self, kind: str) -> int:
        return sum(n for (k, status), n in self.counts.items() if k == kind and 200 <= status < 300)


def _seed(engine: Engine, settings: Settings) -> tuple[int, list[int], int, list[str]]:
    with Session(engine, expire_on_commit=False) as session:
        root = chapters.create_chapter(session, SYSTEM, code="SOAK", name="Hội LHPN Soak", level="province",
                                       parent_id=None)
        communes = [chapters.create_chapter(session, SYSTEM, code=f"SOAK-{index}", name=f"Phường {index}",
                                            level="commune", parent_id=root.id).id for index in range(4)]
        for purpose in ("trust", "card"):
            keys.create_key(session, SYSTEM, settings.kek, purpose=purpose)
        officers.create_officer(session, SYSTEM, username="soak.admin", password=PASSWORD, role="admin",
                                chapter_id=None, permissions=["pii"])
        now = datetime.now(UTC)
        event = events.create_event(session, SYSTEM, events.EventSpec(
            chapter_id=root.id, title="Ngày 20 tháng 10", venue="Hội trường", starts_at=now,
            ends_at=now + timedelta(hours=3)))
        tokens = []
        for index in range(STATIONS):
            code = stations.register_station(session, SYSTEM, event.id, f"Cửa {index + 1}").provisioning_code
            tokens.append(stations.provision(session, code).device_token)
        return root.id, communes, event.id, tokens


@pytest.fixture(scope="module")
def soak_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoakServer]:
    if BACKEND != "postgresql" or not database_url.startswith("postgresql"):
        pytest.fail("test_soak needs PostgreSQL: run it with CARDSVC_TEST_BACKEND=postgresql "
                    "(`make test` does, and deselects it from the SQLite pass)")
    url, engine = fresh_postgres(database_url, SOAK_DATABASE)
    settings = Settings(environment="test", database_url=url, secret_key=TEST_SECRET, key_encryption_key=TEST_KEK,
                        _env_file=None)  # type: ignore[call-arg]
    root_id, communes, event_id, tokens = _seed(engine, settings)
    env = {"CARDSVC_REGISTRY_MODE": "stub", "CARDSVC_STATUS_LIST_SIZE": "4096"}
    try:
        with uvicorn_server(url, tmp_path_factory.mktemp("soak"), env=env) as base:
            yield SoakServer(base, engine, root_id, communes, event_id, tokens)
    finally:
        engine.dispose()


_id_lock = threading.Lock()


def _member_file(rows: int, rng: random.Random) -> bytes:
    lines = ["Họ và tên,Ngày sinh,Số CCCD,Điện thoại"]
    for _ in range(rows):
        birth = date(rng.randint(1950, 2004), rng.randint(1, 12), rng.randint(1, 28))
        with _id_lock:
            id_number = id_number_for(birth)
        name = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
        lines.append(f"{name},{birth.strftime('%d/%m/%Y')},{id_number},09{rng.randint(10_000_000, 99_999_999)}")
    return ("\n".join(lines) + "\n").encode()


def _worker(until: float, body: Callable[[httpx.Client, random.Random], None], base: str, headers: dict[str, str],
            seed: int, tally: Tally) -> Callable[[], None]:
    def run() -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            while time.monotonic() < until:
                try:
                    body(http, rng)
                except httpx.HTTPError as exc:
                    with tally.lock:
                        tally.errors.append(f"transport: {type(exc).__name__}: {exc}")
    return run


def test_soak_mixed_load_stays_consistent(soak_server: SoakServer) -> None:
    server = soak_server
    tally = Tally()
    token = httpx.post(f"{server.url}/v1/auth/token", data={"username": "soak.admin", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    credentials: list[str] = []
    imported_files: list[tuple[int, bytes]] = []
    until = time.monotonic() + SECONDS

    def importer(http: httpx.Client, rng: random.Random) -> None:
        commune = rng.choice(server.commune_ids)
        if imported_files and rng.random() < 0.25:
            commune, data = rng.choice(imported_files)  # the same file again: updates, never duplicates
        else:
            data = _member_file(rng.randint(20, 120), rng)
        code = f"SOAK-{server.commune_ids.index(commune)}"
        response = tally.add("import", http.post("/v1/members/import", data={"chapter_code": code, "dry_run": "false"},
                                                 files={"file": ("ds.csv", data, "text/csv")}))
        if response.status_code == 200:
            imported_files.append((commune, data))

    def issuer(http: httpx.Client, rng: random.Random) -> None:
        if rng.random() < 0.15:
            tally.add("batch", http.post(f"/v1/chapters/{rng.choice(server.commune_ids)}/cards/batch",
                                         json={"subtree": False}))
            return
        found = tally.add("search", http.get("/v1/members", params={
            "chapter_id": server.root_id, "limit": 50, "offset": rng.randint(0, 400)}))
        if found.status_code != 200 or not found.json():
            time.sleep(0.2)
            return
        member = rng.choice(found.json())
        issued = tally.add("issue", http.post(f"/v1/members/{member['id']}/cards", json={}))
        if issued.status_code in (200, 201):
            credential = tally.add("credential", http.get(f"/v1/cards/{issued.json()['card_id']}/credential"))
            if credential.status_code == 200:
                credentials.append(credential.json()["qr_text"])
        if rng.random() < 0.1:
            tally.add("consent", http.post(f"/v1/members/{member['id']}/consents",
                                           json={"purpose": "identity_verification", "method": "paper_form"}))

    def scanner(http: httpx.Client, rng: random.Random) -> None:
        if not credentials:
            time.sleep(0.2)
            return
        qr_text = rng.choice(credentials[-200:])
        station = rng.choice(server.station_tokens)
        nonce = f"soak-{rng.getrandbits(64):016x}"
        for _ in range(2 if rng.random() < 0.2 else 1):  # a retry with the same nonce now and then
            tally.add("checkin", http.post(f"/v1/events/{server.event_id}/checkins",
                                           headers={"Authorization": f"Bearer {station}"},
                                           json={"source": "qr_scanner", "client_nonce": nonce, "payload": qr_text}))

    def syncer(http: httpx.Client, rng: random.Random) -> None:
        started = tally.add("sync", http.post("/v1/identity/sync-runs",
                                              json={"chapter_id": rng.choice(server.commune_ids)}))
        if started.status_code == 202:
            tally.add("sync_status", http.get(f"/v1/identity/sync-runs/{started.json()['id']}"))
        time.sleep(2)

    plan = [(importer, 2), (issuer, 3), (scanner, 3), (syncer, 1)]
    threads = [threading.Thread(target=_worker(until, body, server.url, headers, seed * 100 + index, tally))
               for seed, (body, count) in enumerate(plan) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 180)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"

    summary = dict(sorted(tally.counts.items()))
    assert not tally.errors, "\n".join(tally.errors[:20]) + f"\n{summary}"
    for kind in ("import", "issue", "checkin", "sync"):
        assert tally.ok(kind) > 0, f"no successful {kind}: {summary}"

    with server.engine.connect() as conn:
        def scalar(sql: str) -> int:
            return int(conn.scalar(text(sql)) or 0)

        assert scalar("SELECT count(*) FROM cards c LEFT JOIN members m ON m.id = c.member_id "
                      "WHERE m.id IS NULL") == 0
        assert scalar("SELECT count(*) FROM (SELECT event_id, member_id, seq FROM checkins WHERE result = 'ok' "
                      "GROUP BY event_id, member_id, seq HAVING count(*) > 1) d") == 0
        assert scalar("SELECT count(*) FROM (SELECT member_id FROM cards WHERE status IN ('active', 'suspended') "
                      "GROUP BY member_id HAVING count(*) > 1) d") == 0
        # A card issued alone has its card.issue entry; a batch's card is named in its chunk's card.batch_issue.
        assert scalar("SELECT count(*) FROM cards c WHERE NOT EXISTS (SELECT 1 FROM audit_log a "
                      "WHERE a.action = 'card.issue' AND a.target_type = 'card' AND a.target_id = c.card_id) "
                      "AND NOT EXISTS (SELECT 1 FROM audit_log a, json_array_elements(a.details::json -> 'cards') e "
                      "WHERE a.action = 'card.batch_issue' AND a.target_type = 'job' "
                      "AND a.target_id = c.job_id::text AND e ->> 0 = c.card_id)") == 0
        assert scalar("SELECT count(*) FROM audit_log WHERE action = 'member.import'") == tally.ok("import")
        assert scalar("SELECT count(*) FROM (SELECT id_number_index FROM members WHERE id_number_index IS NOT NULL "
                      "GROUP BY id_number_index HAVING count(*) > 1) d") == 0
        assert scalar("SELECT count(*) FROM checkins WHERE result = 'ok'") > 0
