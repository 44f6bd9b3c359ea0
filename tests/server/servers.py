"""Real servers for tests that need another process: a fresh PostgreSQL database and uvicorn serving it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from cardsvc.db.migrate import upgrade
from cardsvc.db.session import make_engine
from cardsvc.services import events, stations
from cardsvc.services.context import Actor
from tests.conftest import TEST_KEK, TEST_SECRET
from tests.web.harness import free_port

REPO = Path(__file__).resolve().parents[2]


def fresh_postgres(test_url: str, database: str) -> tuple[str, Engine]:
    """A migrated, empty database ``database`` next to the test database (created if missing)."""
    url = make_url(test_url).set(database=database)
    admin = make_engine(str(url.set(database="postgres")), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}) is None:
            conn.execute(text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    rendered = url.render_as_string(hide_password=False)
    engine = make_engine(rendered)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    return rendered, engine


@contextmanager
def uvicorn_server(database_url: str, log_dir: Path, *, workers: int = 2,
                   env: Mapping[str, str] | None = None) -> Iterator[str]:
    """``cardsvc serve`` (uvicorn workers) on ``database_url`` with the test secrets; yields the base URL."""
    with serving_process(database_url, log_dir, workers=workers, env=env) as (_server, base):
        yield base


@contextmanager
def serving_process(database_url: str, log_dir: Path, *, workers: int = 2, env: Mapping[str, str] | None = None
                    ) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The same, yielding the ``cardsvc serve`` process too (to signal it).

    The log goes to a file, never a pipe: a server that logs a lot must not block on a pipe nobody reads.
    """
    port = free_port()
    full_env = {**os.environ, "CARDSVC_DATABASE_URL": database_url, "CARDSVC_SECRET_KEY": TEST_SECRET,
                "CARDSVC_KEY_ENCRYPTION_KEY": TEST_KEK, "CARDSVC_ENVIRONMENT": "test", "CARDSVC_LOG_LEVEL": "WARNING",
                **(env or {})}
    log_path = log_dir / "uvicorn.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "cardsvc.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers)],
            cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # Two workers importing everything on a loaded 2-core machine.
        while True:
            if server.poll() is not None:
                pytest.fail(f"uvicorn exited with {server.returncode}: {log_path.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"uvicorn did not answer /healthz: {log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield server, base
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


def event_with_stations(session: Session, actor: Actor, chapter_id: int, count: int) -> tuple[int, list[str]]:
    """An event of the chapter, open now for a few hours, and ``count`` provisioned stations' device tokens."""
    now = datetime.now(UTC)
    event = events.create_event(session, actor, events.EventSpec(
        chapter_id=chapter_id, title="Đại hội", venue="Hội trường", starts_at=now, ends_at=now + timedelta(hours=4)))
    tokens = []
    for index in range(count):
        code = stations.register_station(session, actor, event.id, f"Cửa {index + 1}").provisioning_code
        tokens.append(stations.provision(session, code).device_token)
    return event.id, tokens


# A call for all_at_once: method, path, bearer token, JSON body.
Call = tuple[str, str, str, dict[str, Any]]


def all_at_once(base: str, calls: Sequence[Call]) -> list[httpx.Response]:
    """Send every call from its own thread and connection, all released at the same instant; the answers in order.

    Fails the test if a call got no answer.
    """
    barrier = threading.Barrier(len(calls))
    results: list[httpx.Response | BaseException | None] = [None] * len(calls)

    def caller(index: int) -> None:
        method, path, token, body = calls[index]
        with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
            client.get("/healthz")  # Open the connection before the start signal.
            barrier.wait(timeout=60)
            try:
                results[index] = client.request(method, path, json=body)
            except BaseException as exc:  # Reported below: one failed thread must not hang the others.
                results[index] = exc

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    failures = [r for r in results if not isinstance(r, httpx.Response)]
    assert not failures, failures[:3]
    return [r for r in results if isinstance(r, httpx.Response)]
