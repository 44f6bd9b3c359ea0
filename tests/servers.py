"""Real servers for tests that need another process: a fresh PostgreSQL database and uvicorn serving it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from cardsvc.db.migrate import upgrade
from cardsvc.db.session import make_engine
from tests.conftest import TEST_KEK, TEST_SECRET
from tests.web.harness import free_port

REPO = Path(__file__).resolve().parent.parent


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
