"""Engine and session factory, built from settings (never at import time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(database_url: str, *, statement_timeout_ms: int = 0, **kwargs: Any) -> Engine:
    """Create an engine; for SQLite, create the parent folder and turn on foreign keys, WAL and a busy timeout.

    On PostgreSQL, ``statement_timeout_ms`` (0: none) is every connection's ``statement_timeout``: a statement that
    runs longer is cancelled (SQLSTATE 57014), so that it fails fast instead of holding a connection and a thread.
    """
    # Statement parameters hold names, phone numbers and birth dates: keep them out of exception messages, which
    # end up in logs when a request fails.
    kwargs.setdefault("hide_parameters", True)
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        # One file, one writer: SQLite keeps SQLAlchemy's own pool choice.
        kwargs.pop("pool_size", None)
        kwargs.pop("max_overflow", None)
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()
            # The sqlite3 module's own transaction handling starts transactions late and lets a RELEASE SAVEPOINT
            # commit everything; take over and emit BEGIN ourselves (SQLAlchemy's documented recipe).
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            # IMMEDIATE: take the write lock now. A transaction that starts with a read and then writes (nearly all
            # of ours: authenticate, load, change) must otherwise upgrade its lock, and when another connection
            # committed in between SQLite refuses the upgrade at once, without waiting out the busy timeout: under
            # concurrent writes a third of the requests failed with "database is locked". Taken at BEGIN, the
            # lock is waited for like any other. Reads pay for it: a read-only transaction now waits while another
            # one writes, where WAL would have let it read beside the writer (docs/architecture.md, Databases).
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    if statement_timeout_ms and url.get_backend_name() == "postgresql":
        connect_args = kwargs.setdefault("connect_args", {})
        connect_args["options"] = f"{connect_args.get('options', '')} -c statement_timeout={statement_timeout_ms}"
    # No pre-ping: it would cost a round trip on every request. A connection found dead (server restarted) fails
    # its request with a 503 and makes the pool drop every connection older than it, so the next ones reconnect.
    return create_engine(url, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)
