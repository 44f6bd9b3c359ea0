"""Test fixtures: a real database (SQLite or PostgreSQL), migrated once, each test inside a rolled-back transaction.

Choose the backend with ``CARDSVC_TEST_BACKEND=sqlite|postgresql`` (``make test`` runs both). PostgreSQL is reached
at ``CARDSVC_TEST_DATABASE_URL`` (default: a ``cardsvc_test`` database created next to ``test`` on 127.0.0.1).
Under ``CI=true`` an unreachable PostgreSQL fails the run instead of being skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from anyio import CapacityLimiter
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from cardsvc.app import create_app
from cardsvc.db.migrate import upgrade
from cardsvc.db.models import Chapter, Member, Officer, SigningKey
from cardsvc.db.session import make_engine
from cardsvc.ratelimit import RateLimits
from cardsvc.security import PiiCipher
from cardsvc.services import chapters, members, officers
from cardsvc.services.checkins import TrustCache
from cardsvc.services.context import Actor, system_actor
from cardsvc.services.jobs import InlineJobRunner
from cardsvc.services.status_lists import StatusListCache
from cardsvc.settings import Settings

BACKEND = os.environ.get("CARDSVC_TEST_BACKEND", "sqlite")
# CI runs the same examples every time (a red build must be reproducible); local runs keep exploring.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI", "").lower() == "true":
    hypothesis_settings.load_profile("ci")
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/cardsvc_test"
TEST_SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
TEST_KEK = "test-key-encryption-key-0123456789-abcdefghij"
PASSWORD = "correct horse battery"
# 88 characters but 119 bytes of UTF-8: within a 100-character limit, too long for the card's 100 bytes.
NAME_TOO_LONG_FOR_CARD = "Tôn Nữ Hoàng Phương Thảo Nguyễn Ngọc Diễm Quỳnh Hương Trần Lê Huỳnh Đặng Thị Vy Yến Trâm"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that touches the database under test ``database``, so that new tests get the marker without
    anyone remembering it: every database fixture (``engine``, ``connection``, ``db``, ``settings``, ``cipher``,
    ``app``, ``client`` and the servers and seeders built on them) derives from ``database_url``, so a test whose
    fixture closure holds it uses the backend; so does a test of a module that reads ``BACKEND`` itself (the
    PostgreSQL races, restarts and soak), and every ``postgres_only`` test. `make test` runs everything on SQLite,
    then only ``-m database`` on PostgreSQL: the pure and browser tests (their live servers use SQLite files of their
    own) do not run twice."""
    for item in items:
        module = getattr(item, "module", None)
        if ("database_url" in getattr(item, "fixturenames", ()) or getattr(module, "BACKEND", None) is BACKEND
                or item.get_closest_marker("postgres_only") is not None):
            item.add_marker(pytest.mark.database)


def _postgres_url() -> str:
    url = os.environ.get("CARDSVC_TEST_DATABASE_URL", DEFAULT_PG_URL)
    if "CARDSVC_TEST_DATABASE_URL" not in os.environ:
        # Create the dedicated test database beside the machine's 'test' database.
        admin = make_engine(str(make_url(url).set(database="test")), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                if conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = 'cardsvc_test'")) is None:
                    conn.execute(text("CREATE DATABASE cardsvc_test"))
        except Exception as exc:  # Any connection failure: report it as the fixture's failure below.
            pytest.fail(f"PostgreSQL is not reachable at {url}: {exc}")
        finally:
            admin.dispose()
    return url


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing() -> Iterator[None]:
    """Argon2 at production cost takes ~50 ms a hash; the suite hashes thousands. Hashes stay real Argon2id."""
    import cardsvc.security as security

    production = security._password_hasher
    security._password_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    security._password_hasher = production


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if BACKEND == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'cardsvc.sqlite3'}"
    if BACKEND == "postgresql":
        return _postgres_url()
    raise pytest.UsageError(f"unknown CARDSVC_TEST_BACKEND {BACKEND!r}")


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(environment="test", database_url=database_url, secret_key=TEST_SECRET,
                    key_encryption_key=TEST_KEK, status_list_size=4096,
                    import_download_dir=tmp_path_factory.mktemp("import-downloads"),
                    _env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def cipher(settings: Settings) -> PiiCipher:
    return PiiCipher.from_settings(settings)


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """One connection per test with an outer transaction that is rolled back at the end."""
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        if outer.is_active:
            outer.rollback()


def _session_for(connection: Connection) -> Session:
    # Service commits become savepoint releases, so the test's outer transaction still undoes everything.
    return Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def db(connection: Connection) -> Iterator[Session]:
    session = _session_for(connection)
    yield session
    session.close()


@pytest.fixture(scope="session")
def app(settings: Settings, engine: Engine) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI, connection: Connection) -> Iterator[TestClient]:
    app.state.session_factory = lambda: _session_for(connection)
    # Jobs run inside the request in tests, on the test's connection (the server uses a worker thread).
    app.state.job_runner = InlineJobRunner()
    app.state.registry_runner = InlineJobRunner()
    # Caches keyed by ids that a rolled-back test may reuse start empty for every test.
    app.state.status_list_cache = StatusListCache()
    app.state.trust_cache = TrustCache()
    # An anyio limiter belongs to the event loop that first used it; every TestClient runs its own loop.
    app.state.checkin_limiter = CapacityLimiter(app.state.settings.checkin_concurrency)
    # Rate limits count per process: every test starts with full buckets.
    app.state.rate_limits = RateLimits.from_settings(app.state.settings)
    with TestClient(app, raise_server_exceptions=True) as test_client:
        yield test_client


SYSTEM = system_actor("tests")


@dataclass
class Tree:
    """central → two provinces (A, B) → communes → branches, plus officers of every kind."""

    central: Chapter
    prov_a: Chapter
    prov_b: Chapter
    commune_a: Chapter
    commune_a2: Chapter
    commune_b: Chapter
    branch_a: Chapter
    branch_b: Chapter
    officers: dict[str, Officer]

    def actor(self, name: str) -> Actor:
        from cardsvc.services.officers import actor_for

        return actor_for(self.officers[name])


@pytest.fixture
def tree(db: Session) -> Tree:
    return build_tree(db)


def build_tree(db: Session) -> Tree:
    """The chapters and officers of :class:`Tree`, made through the services."""

    def chapter(code: str, name: str, level: str, parent: Chapter | None) -> Chapter:
        return chapters.create_chapter(db, SYSTEM, code=code, name=name, level=level,
                                       parent_id=parent.id if parent else None)

    central = chapter("T-TW", "Trung ương Hội", "central", None)
    prov_a = chapter("T-HNI", "Hội LHPN Hà Nội", "province", central)
    prov_b = chapter("T-HCM", "Hội LHPN TP Hồ Chí Minh", "province", central)
    commune_a = chapter("T-HNI-BD", "Phường Ba Đình", "commune", prov_a)
    commune_a2 = chapter("T-HNI-HK", "Phường Hoàn Kiếm", "commune", prov_a)
    commune_b = chapter("T-HCM-SG", "Phường Sài Gòn", "commune", prov_b)
    branch_a = chapter("T-HNI-BD-01", "Chi hội 1", "branch", commune_a)
    branch_b = chapter("T-HCM-SG-01", "Chi hội 1", "branch", commune_b)
    specs: list[tuple[str, str, Chapter | None, list[str]]] = [
        ("t.admin", "admin", None, ["pii"]),
        ("t.officer.a", "officer", prov_a, []),
        ("t.officer.a.pii", "officer", prov_a, ["pii"]),
        ("t.viewer.a", "viewer", prov_a, []),
        ("t.officer.b", "officer", prov_b, []),
        ("t.officer.commune", "officer", commune_a, []),
    ]
    made = {}
    for username, role, scope, perms in specs:
        made[username] = officers.create_officer(
            db, SYSTEM, username=username, password=PASSWORD, role=role,
            chapter_id=scope.id if scope else None, permissions=perms,
        )
    return Tree(central, prov_a, prov_b, commune_a, commune_a2, commune_b, branch_a, branch_b, made)


@pytest.fixture
def signing_keys(db: Session, settings: Settings) -> dict[str, SigningKey]:
    return make_signing_keys(db, settings)


def make_signing_keys(db: Session, settings: Settings) -> dict[str, SigningKey]:
    """An active trust key and an active Ed25519 card key."""
    from cardsvc.services import keys

    return {purpose: keys.create_key(db, SYSTEM, settings.kek, purpose=purpose) for purpose in ("trust", "card")}


_sequence = iter(range(100_000, 999_999))


def id_number_for(birth: date, *, province: str = "001", female: bool = True) -> str:
    century = (birth.year // 100 - 19) * 2 + (1 if female else 0)
    return f"{province}{century}{birth.year % 100:02d}{next(_sequence):06d}"


def make_member(db: Session, cipher: PiiCipher, chapter: Chapter, **fields: Any) -> Member:
    birth = fields.pop("birth_date", date(1985, 4, 12))
    values: dict[str, Any] = {
        "full_name": "Nguyễn Thị Lan",
        "birth_date": birth,
        "gender": "female",
        "id_number": id_number_for(birth),
        "phone": "0912345678",
        "join_date": date(2010, 3, 8),
    }
    values.update(fields)
    member, _warnings = members.create_member(db, SYSTEM, cipher, chapter_id=chapter.id, fields=values)
    return member


def login(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post("/v1/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def tmp_var(tmp_path: Path) -> Path:
    return tmp_path / "var"
