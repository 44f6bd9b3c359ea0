"""One outside system down never takes the service down (issue #12, item 1), against real servers.

The population registry is down in two ways: a port that accepts connections and never answers (the registry's read
timeout in these servers is two minutes), and a port that refuses them. While one officer starts twenty
publications and sync runs, a second client asks for the JWKS, ``/v1/me``, a member list, ``/readyz`` and checks a
card in: every one of those answers, and the twenty starts are answered too (202), each within ``ANSWER_BOUND``
seconds — far below the registry's timeout and the 30 s that a request waiting for a database connection or lock
would take. Registry work runs on its own threads and holds no database connection while it waits.

The CLI says within seconds, in Vietnamese and English, that the registry does not answer, and exits non-zero; the
run resumes later. SIGTERM stops a server with registry calls in flight within its grace period. On PostgreSQL, a
slow statement is cancelled by the statement budget (``CARDSVC_DB_STATEMENT_TIMEOUT_MS``) with a clean 503 while the
other requests answer.

The servers run on their own database (a SQLite file, or ``cardsvc_resilience_srv`` beside the PostgreSQL test
database) with committed data.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from cardsvc.db.migrate import upgrade
from cardsvc.db.session import make_engine
from cardsvc.security import PiiCipher
from cardsvc.services import cards, chapters, consents, keys, members, officers
from cardsvc.services.context import system_actor
from cardsvc.services.keys import KeyRing
from cardsvc.services.printing import credential_of
from cardsvc.settings import Settings
from tests.conftest import BACKEND, PASSWORD, TEST_KEK, TEST_SECRET
from tests.server.servers import REPO, event_with_stations, fresh_postgres, serving_process

# Generous on a loaded 2-core machine, and still far below every wait that would mean "blocked": the registry's
# read timeout here (REGISTRY_HOLD_SECONDS), the pool's and SQLite's 30 s.
ANSWER_BOUND = 10.0
REGISTRY_HOLD_SECONDS = 120
GRACE_SECONDS = 3
STARTS = 20
SYSTEM = system_actor("resilience-test")
SERVER_DATABASE = "cardsvc_resilience_srv"
NOT_ANSWERING_VI = "Cơ sở dữ liệu quốc gia về dân cư không trả lời"
NOT_ANSWERING_EN = "the population registry is not answering"


class HungRegistry:
    """A registry that accepts every connection and never answers; it counts the connections it holds."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._listener.settimeout(0.2)
        self.held: list[socket.socket] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="hung-registry", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                connection, _address = self._listener.accept()
            except TimeoutError:
                continue
            self.held.append(connection)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5)
        for connection in [*self.held, self._listener]:
            connection.close()


def refusing_url() -> str:
    """An address where nothing listens: every connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@dataclass
class Seeded:
    url: str
    engine: Engine
    chapter_a: int
    chapter_b_code: str
    event_id: int
    station_token: str
    qr_texts: list[str]


def _seed(url: str, engine: Engine, settings: Settings) -> Seeded:
    """Two chapters of consenting members with cards (A for the servers, B for the CLI), an event with a station,
    an administrator."""
    cipher = PiiCipher.from_settings(settings)
    keyring = KeyRing(settings.kek)
    with Session(engine, expire_on_commit=False) as session:
        root = chapters.create_chapter(session, SYSTEM, code="RS", name="Resilience", level="central", parent_id=None)
        chapter_a = chapters.create_chapter(session, SYSTEM, code="RS-A", name="Chi hội A", level="branch",
                                            parent_id=root.id)
        chapter_b = chapters.create_chapter(session, SYSTEM, code="RS-B", name="Chi hội B", level="branch",
                                            parent_id=root.id)
        for purpose in ("trust", "card"):
            keys.create_key(session, SYSTEM, settings.kek, purpose=purpose)
        officers.create_officer(session, SYSTEM, username="rs.admin", password=PASSWORD, role="admin",
                                chapter_id=None, permissions=[])
        qr_texts = []
        names = ["Lan", "Hoa", "Mai", "Cúc", "Đào", "Huệ", "Hương", "Thảo"]
        for number, given in enumerate(names):
            chapter = chapter_a if number < 5 else chapter_b
            member, _ = members.create_member(session, SYSTEM, cipher, chapter_id=chapter.id, fields={
                "full_name": f"Nguyễn Thị {given}", "birth_date": date(1985, 4, 12), "gender": "female",
                "id_number": f"00118512{number:04d}", "join_date": date(2010, 3, 8)})
            for purpose in ("identity_verification", "registry_publication"):
                consents.record_consent(session, SYSTEM, member.id, purpose=purpose, method="paper_form",
                                        evidence_ref="PHIEU-1")
            card = cards.issue_card(session, SYSTEM, keyring, member.id, validity_years=5, list_size=4096)
            qr_texts.append(credential_of(card).qr_text)
        event_id, tokens = event_with_stations(session, SYSTEM, root.id, 1)
        return Seeded(url, engine, chapter_a.id, chapter_b.code, event_id, tokens[0], qr_texts)


@pytest.fixture(scope="module")
def seeded(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    if BACKEND == "postgresql":
        url, engine = fresh_postgres(database_url, SERVER_DATABASE)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('resilience') / 'cardsvc.sqlite3'}"
        engine = make_engine(url)
        upgrade(engine)
    settings = Settings(environment="test", database_url=url, secret_key=TEST_SECRET, key_encryption_key=TEST_KEK,
                        _env_file=None)  # type: ignore[call-arg]
    try:
        yield _seed(url, engine, settings)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def hung_registry() -> Iterator[HungRegistry]:
    registry = HungRegistry()
    try:
        yield registry
    finally:
        registry.close()


def _server_env(registry_url: str) -> dict[str, str]:
    return {
        "CARDSVC_REGISTRY_BASE_URL": registry_url,
        "CARDSVC_REGISTRY_TIMEOUT_SECONDS": str(REGISTRY_HOLD_SECONDS),
        # Few connections per worker: twenty requests waiting on the registry with a connection each would take
        # them all (that was the outage), and the other requests would wait 30 s for one.
        "CARDSVC_DB_POOL_SIZE": "3",
        "CARDSVC_DB_MAX_OVERFLOW": "2",
        "CARDSVC_DB_STATEMENT_TIMEOUT_MS": "1000",
        "CARDSVC_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
        "CARDSVC_CHECKIN_RATE_PER_SECOND": "0",
    }


@dataclass
class Server:
    base: str
    registry: str
    seeded: Seeded
    hung: HungRegistry | None


@pytest.fixture(scope="module", params=["hangs", "refuses"])
def server(request: pytest.FixtureRequest, seeded: Seeded, hung_registry: HungRegistry,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    hangs = request.param == "hangs"
    registry_url = hung_registry.url if hangs else refusing_url()
    with serving_process(seeded.url, tmp_path_factory.mktemp(f"server-{request.param}"),
                         env=_server_env(registry_url)) as (_process, base):
        yield Server(base, request.param, seeded, hung_registry if hangs else None)


def _token(base: str) -> str:
    response = httpx.post(f"{base}/v1/auth/token", data={"username": "rs.admin", "password": PASSWORD},
                          timeout=ANSWER_BOUND * 3)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@dataclass
class Timed:
    what: str
    status: int | None
    seconds: float
    body: Any = None


def _timed(client: httpx.Client, what: str, method: str, path: str, **kwargs: Any) -> Timed:
    started = time.monotonic()
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TimeoutException:
        return Timed(what, None, time.monotonic() - started)
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else None
    return Timed(what, response.status_code, time.monotonic() - started, body)


def _start_registry_work(base: str, token: str, chapter_id: int, count: int) -> tuple[list[Timed], threading.Thread]:
    """``count`` publications and sync runs, each from its own thread and connection; the thread that waits for
    them all is returned running."""
    results: list[Timed] = []
    lock = threading.Lock()

    def start(index: int) -> None:
        path = "/v1/identity/publish" if index % 2 == 0 else "/v1/identity/sync-runs"
        body: dict[str, Any] = {"chapter_id": chapter_id} if index % 2 == 0 else {"chapter_id": chapter_id,
                                                                                 "force": True}
        with httpx.Client(base_url=base, timeout=REGISTRY_HOLD_SECONDS * 2,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            answer = _timed(client, path, "POST", path, json=body)
        with lock:
            results.append(answer)

    # Daemon threads: when the test fails because the starts hang, they must not hold up the test run too.
    starters = [threading.Thread(target=start, args=(i,), daemon=True) for i in range(count)]

    def run_all() -> None:
        for starter in starters:
            starter.start()
        for starter in starters:
            starter.join()

    waiter = threading.Thread(target=run_all, name="registry-starts", daemon=True)
    waiter.start()
    return results, waiter


def test_a_registry_that_is_down_holds_up_no_other_request(server: Server) -> None:
    seeded = server.seeded
    token = _token(server.base)
    starts, waiter = _start_registry_work(server.base, token, seeded.chapter_a, STARTS)

    answers: list[Timed] = []
    officer = httpx.Client(base_url=server.base, timeout=REGISTRY_HOLD_SECONDS,
                           headers={"Authorization": f"Bearer {token}"})
    station = httpx.Client(base_url=server.base, timeout=REGISTRY_HOLD_SECONDS,
                           headers={"Authorization": f"Bearer {seeded.station_token}"})
    with officer, station:
        for round_number in range(5):
            answers.append(_timed(officer, "jwks", "GET", "/.well-known/jwks.json"))
            answers.append(_timed(officer, "me", "GET", "/v1/me"))
            answers.append(_timed(officer, "members", "GET", f"/v1/members?chapter_id={seeded.chapter_a}"))
            answers.append(_timed(officer, "readyz", "GET", "/readyz"))
            answers.append(_timed(station, "checkin", "POST", f"/v1/events/{seeded.event_id}/checkins", json={
                "source": "qr_scanner", "client_nonce": f"rs-{server.registry}-{round_number}-{time.time_ns()}",
                "payload": seeded.qr_texts[round_number]}))
            time.sleep(0.2)
        waiter.join(ANSWER_BOUND * 3)
        if server.hung is not None:
            assert server.hung.held, "no registry call was in flight: the test proves nothing"

        slow = [(a.what, a.status, round(a.seconds, 2)) for a in answers if a.status != 200 or
                a.seconds >= ANSWER_BOUND]
        assert slow == []
        assert {a.body["result"] for a in answers if a.what == "checkin"} <= {"ok", "error"}
        assert len(starts) == STARTS, f"{STARTS - len(starts)} starts still wait on the registry"
        late = [(a.what, a.status, round(a.seconds, 2)) for a in starts if a.status != 202 or
                a.seconds >= ANSWER_BOUND]
        assert late == []

        publication = next(a.body["id"] for a in starts if a.what == "/v1/identity/publish")
        job = officer.get(f"/v1/jobs/{publication}").json()
        if server.hung is not None:
            assert job["status"] in ("queued", "running")  # Still waiting on the registry, on its own thread.
        else:
            _wait_until_failed(officer, f"/v1/jobs/{publication}")
            run = next(a.body["id"] for a in starts if a.what == "/v1/identity/sync-runs")
            _wait_until_failed(officer, f"/v1/identity/sync-runs/{run}")


def _wait_until_failed(client: httpx.Client, path: str) -> None:
    """A refused registry fails the job in seconds, with the reason for officers."""
    deadline = time.monotonic() + 60
    while (found := client.get(path).json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"{path} still {found['status']} after 60 s"
        time.sleep(0.5)
    assert found["status"] == "failed"
    assert NOT_ANSWERING_VI in found["error"] and NOT_ANSWERING_EN in found["error"]


def _cli(seeded: Seeded, registry: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARDSVC_DATABASE_URL": seeded.url, "CARDSVC_SECRET_KEY": TEST_SECRET,
           "CARDSVC_KEY_ENCRYPTION_KEY": TEST_KEK, "CARDSVC_ENVIRONMENT": "test", "CARDSVC_LOG_LEVEL": "WARNING",
           **registry}
    return subprocess.run([sys.executable, "-m", "cardsvc.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=90)


@pytest.mark.parametrize("registry", ["hangs", "refuses"])
def test_the_cli_says_at_once_that_the_registry_does_not_answer_and_the_run_resumes(
        seeded: Seeded, hung_registry: HungRegistry, registry: str) -> None:
    down = {"CARDSVC_REGISTRY_BASE_URL": hung_registry.url if registry == "hangs" else refusing_url(),
            "CARDSVC_REGISTRY_TIMEOUT_SECONDS": "2"}
    for args in (("sync-identities", "--chapter", seeded.chapter_b_code, "--force"),
                 ("registry-publish", "--chapter", seeded.chapter_b_code)):
        started = time.monotonic()
        command = _cli(seeded, down, *args)
        # The interpreter's start-up included, on a loaded machine: far below the minutes a hang would take.
        assert time.monotonic() - started < 60
        assert command.returncode == 1, command.stdout + command.stderr
        assert NOT_ANSWERING_VI in command.stderr and NOT_ANSWERING_EN in command.stderr
        assert "Traceback" not in command.stderr

    # The registry is back (the in-process stand-in answers from the members table): the failed run resumes.
    resumed = _cli(seeded, {"CARDSVC_REGISTRY_MODE": "stub"}, "sync-identities", "--chapter", seeded.chapter_b_code)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming identity sync run" in resumed.stdout and ": done;" in resumed.stdout


def test_sigterm_stops_a_server_with_registry_calls_in_flight(seeded: Seeded, hung_registry: HungRegistry,
                                                             tmp_path: Path) -> None:
    with serving_process(seeded.url, tmp_path, env=_server_env(hung_registry.url)) as (process, base):
        held_before = len(hung_registry.held)
        token = _token(base)
        starts, waiter = _start_registry_work(base, token, seeded.chapter_a, 6)
        waiter.join(ANSWER_BOUND * 3)
        deadline = time.monotonic() + ANSWER_BOUND
        while len(hung_registry.held) == held_before:
            assert time.monotonic() < deadline, "no registry call started"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        # Grace period, the jobs' wind-down (3 s) and the supervisor's margin, with room for a loaded machine;
        # the registry calls in flight would hold the server for minutes.
        process.wait(timeout=GRACE_SECONDS + 17)
        assert time.monotonic() - stopping < GRACE_SECONDS + 17
        assert process.returncode == 0
        assert {a.status for a in starts} == {202}


@pytest.mark.postgres_only
def test_a_slow_statement_is_cancelled_with_a_503_while_other_requests_answer(server: Server) -> None:
    if BACKEND != "postgresql":
        pytest.fail("the statement budget is PostgreSQL's: run this test with CARDSVC_TEST_BACKEND=postgresql")
    budgeted = make_engine(server.seeded.url, statement_timeout_ms=200)
    try:
        with budgeted.connect() as connection, pytest.raises(OperationalError) as cancelled:
            connection.execute(text("SELECT pg_sleep(5)"))
        assert getattr(cancelled.value.orig, "sqlstate", None) == "57014"
    finally:
        budgeted.dispose()

    token = _token(server.base)
    results: list[Timed] = []
    client = httpx.Client(base_url=server.base, timeout=REGISTRY_HOLD_SECONDS,
                          headers={"Authorization": f"Bearer {token}"})
    with server.seeded.engine.connect() as holder, client:
        holder.execute(text("LOCK TABLE signing_keys IN ACCESS EXCLUSIVE MODE"))  # JWKS reads it: it has to wait.

        def blocked() -> None:
            with httpx.Client(base_url=server.base, timeout=REGISTRY_HOLD_SECONDS) as own:
                results.append(_timed(own, "jwks", "GET", "/.well-known/jwks.json"))

        threads = [threading.Thread(target=blocked) for _ in range(6)]
        for thread in threads:
            thread.start()
        others = [_timed(client, "me", "GET", "/v1/me"),
                  _timed(client, "members", "GET", f"/v1/members?chapter_id={server.seeded.chapter_a}")]
        for thread in threads:
            thread.join(ANSWER_BOUND * 3)
        holder.rollback()
    assert [(a.what, a.status) for a in others if a.status != 200 or a.seconds >= ANSWER_BOUND] == []
    assert len(results) == 6
    assert {(a.status, a.body["code"]) for a in results} == {(503, "database_timeout")}
    assert max(a.seconds for a in results) < ANSWER_BOUND
    assert httpx.get(f"{server.base}/.well-known/jwks.json", timeout=ANSWER_BOUND).status_code == 200
