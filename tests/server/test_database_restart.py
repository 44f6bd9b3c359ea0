"""PostgreSQL restarts under a running server: connections are not pinged before use (that would cost a round trip
on every request), so a worker finds out when it uses one. It must answer that request with a clear 503, drop every
stale connection at once, and serve the next request normally (docs/operations.md §1)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cardsvc.app import create_app
from cardsvc.db.session import make_engine
from cardsvc.settings import Settings
from tests.conftest import BACKEND, TEST_KEK, TEST_SECRET
from tests.server.servers import fresh_postgres

pytestmark = pytest.mark.postgres_only

RESTART_DATABASE = "cardsvc_test_restart"


def _terminate_connections(url: str) -> int:
    """What a PostgreSQL restart does to the server's open connections."""
    admin = make_engine(str(make_url(url).set(database="postgres")), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return len(conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"
                " AND pid <> pg_backend_pid()"), {"name": RESTART_DATABASE}).all())
    finally:
        admin.dispose()


def test_restarted_database_costs_one_503_then_the_worker_reconnects(database_url: str) -> None:
    if BACKEND != "postgresql" or not database_url.startswith("postgresql"):
        pytest.fail("test_database_restart needs PostgreSQL: run it with CARDSVC_TEST_BACKEND=postgresql "
                    "(`make test` does, and deselects it from the SQLite pass)")
    url, engine = fresh_postgres(database_url, RESTART_DATABASE)
    engine.dispose()
    settings = Settings(environment="test", database_url=url, secret_key=TEST_SECRET, key_encryption_key=TEST_KEK,
                        db_pool_size=3, db_max_overflow=0, _env_file=None)  # type: ignore[call-arg]
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            # Several connections in the pool, as a busy worker has.
            for _ in range(3):
                assert client.get("/.well-known/jwks.json").status_code == 200
            assert _terminate_connections(url) >= 1
            failed = client.get("/.well-known/jwks.json")
            assert failed.status_code == 503, failed.text
            assert failed.json()["code"] == "database_unavailable"
            # The pool dropped every connection older than the failure: no second 503 from another stale one.
            for _ in range(5):
                assert client.get("/.well-known/jwks.json").status_code == 200
    finally:
        app.state.engine.dispose()
