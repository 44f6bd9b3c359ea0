"""The migrated schema matches the models, and the audit log refuses changes at the database level."""

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from cardsvc.db.migrate import schema_differences


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
