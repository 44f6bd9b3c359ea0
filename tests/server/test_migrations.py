"""The migrated schema matches the models, the audit log refuses changes at the database level, and data migrations
move stored values safely."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from cardsvc.db.migrate import alembic_config, schema_differences
from cardsvc.db.session import make_engine
from cardsvc.security import PiiCipher


def test_migrations_and_models_agree(engine: Engine) -> None:
    assert schema_differences(engine) == []


def test_chapter_levels_are_seeded(connection: Connection) -> None:
    levels = set(connection.scalars(text("SELECT code FROM chapter_levels")))
    assert levels == {"central", "province", "commune", "branch", "group", "special"}


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"])
def test_audit_log_is_append_only(connection: Connection, statement: str) -> None:
    connection.execute(text(
        "INSERT INTO audit_log (at, actor_type, actor_name, action, target_type, details) "
        "VALUES (CURRENT_TIMESTAMP, 'system', 'test', 'test.entry', 'test', '{}')"
    ))
    savepoint = connection.begin_nested()
    with pytest.raises(DBAPIError, match="append-only"):
        connection.execute(text(statement))
    savepoint.rollback()


@contextmanager
def _scratch_database(database_url: str, tmp_path: Path) -> Iterator[Connection]:
    """An empty database in one transaction that is rolled back: a SQLite file, or a PostgreSQL schema."""
    postgres = not database_url.startswith("sqlite")
    engine = make_engine(database_url if postgres else f"sqlite:///{tmp_path / 'scratch.sqlite3'}")
    with engine.connect() as connection:
        transaction = connection.begin()
        if postgres:
            connection.execute(text("CREATE SCHEMA scratch_migration"))
            connection.execute(text("SET LOCAL search_path TO scratch_migration"))
        yield connection
        transaction.rollback()
    engine.dispose()


def test_0012_encrypts_the_stored_phone_numbers_with_the_service_secret(
        database_url: str, tmp_path: Path, cipher: PiiCipher) -> None:
    before = ScriptDirectory.from_config(alembic_config()).get_revision("0012").down_revision
    assert isinstance(before, str)
    with _scratch_database(database_url, tmp_path) as connection:
        command.upgrade(alembic_config(connection=connection), before)
        connection.execute(text(
            "INSERT INTO chapters (id, code, name, level, path, depth, status, created_at, updated_at) "
            "VALUES (1, 'M-1', 'Chi hội', 'branch', '/1/', 0, 'active', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        connection.execute(text(
            "INSERT INTO members (member_number, full_name, name_search, sort_key, birth_date, birth_date_precision, "
            "gender, phone, chapter_id, status, honorary, created_at, updated_at) VALUES "
            "(:number, 'Lê Thị Hoa', ' le thi hoa ', 'hoa le thi hoa', '1980-01-02', 'day', 'female', :phone, 1, "
            "'active', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
            [{"number": "0000000018", "phone": "+84912345678"}, {"number": "0000000026", "phone": None}])

        refused = connection.begin_nested()
        with pytest.raises(RuntimeError, match="needs the service secret"):
            command.upgrade(alembic_config(connection=connection), "0012")
        refused.rollback()

        command.upgrade(alembic_config(connection=connection, cipher=cipher), "0012")
        rows = connection.execute(text("SELECT member_number, phone_ciphertext, phone_index, phone_masked "
                                       "FROM members ORDER BY member_number")).all()
        assert [(r[0], r[2], r[3]) for r in rows] == [
            ("0000000018", cipher.blind_index("phone", "+84912345678"), "+84******678"), ("0000000026", None, None)]
        assert cipher.decrypt("phone", rows[0][1]) == "+84912345678" and rows[1][1] is None
        assert "phone" not in {c["name"] for c in inspect(connection).get_columns("members")}

        command.downgrade(alembic_config(connection=connection, cipher=cipher), before)
        assert connection.execute(text("SELECT phone FROM members ORDER BY member_number")).scalars().all() == [
            "+84912345678", None]


def test_0016_adds_job_chunks_to_a_database_with_jobs(database_url: str, tmp_path: Path,
                                                      cipher: PiiCipher) -> None:
    with _scratch_database(database_url, tmp_path) as connection:
        command.upgrade(alembic_config(connection=connection, cipher=cipher), "0015")
        connection.execute(text(
            "INSERT INTO chapters (id, code, name, level, path, depth, status, created_at, updated_at) "
            "VALUES (1, 'M-1', 'Chi hội', 'branch', '/1/', 0, 'active', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        connection.execute(text(
            "INSERT INTO members (id, member_number, full_name, name_search, sort_key, birth_date, "
            "birth_date_precision, gender, chapter_id, status, honorary, created_at, updated_at) VALUES "
            "(7, '0000000018', 'Lê Thị Hoa', ' le thi hoa ', 'hoa le thi hoa', '1980-01-02', 'day', 'female', 1, "
            "'active', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        connection.execute(text(
            "INSERT INTO jobs (id, kind, status, params, total, done, failed, chapter_path, created_at, updated_at) "
            "VALUES (3, 'card_batch', 'failed', '{\"chapter_id\": 1, \"subtree\": false}', 1, 0, 1, '/1/', "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        connection.execute(text(
            "INSERT INTO job_failures (job_id, member_id, code, message_en, message_vi, created_at) "
            "VALUES (3, 7, 'too_long', 'too long', 'quá dài', CURRENT_TIMESTAMP)"))

        command.upgrade(alembic_config(connection=connection, cipher=cipher), "0016")
        assert "job_chunks" in inspect(connection).get_table_names()
        connection.execute(text(
            "INSERT INTO job_chunks (job_id, first_member_id, last_member_id, planned, status, issued, failed) "
            "VALUES (3, 7, 7, 1, 'pending', 0, 0)"))
        assert connection.execute(text("SELECT status, failed FROM jobs WHERE id = 3")).one() == ("failed", 1)
        assert connection.execute(text("SELECT count(*) FROM job_failures")).scalar() == 1

        command.downgrade(alembic_config(connection=connection, cipher=cipher), "0015")
        assert "job_chunks" not in inspect(connection).get_table_names()
        assert connection.execute(text("SELECT count(*) FROM jobs")).scalar() == 1
