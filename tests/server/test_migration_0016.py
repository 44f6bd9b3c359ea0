"""Migration 0016 (job chunks) upgrades and downgrades a database that holds members, cards' jobs and failures."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from sqlalchemy import Connection, inspect, text

from cardsvc.db.migrate import alembic_config
from cardsvc.db.session import make_engine
from cardsvc.security import PiiCipher


@contextmanager
def _scratch_database(database_url: str, tmp_path: Path) -> Iterator[Connection]:
    """An empty database in one transaction that is rolled back: a SQLite file, or a PostgreSQL schema."""
    postgres = not database_url.startswith("sqlite")
    engine = make_engine(database_url if postgres else f"sqlite:///{tmp_path / 'scratch-0016.sqlite3'}")
    with engine.connect() as connection:
        transaction = connection.begin()
        if postgres:
            connection.execute(text("CREATE SCHEMA scratch_migration_0016"))
            connection.execute(text("SET LOCAL search_path TO scratch_migration_0016"))
        yield connection
        transaction.rollback()
    engine.dispose()


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
