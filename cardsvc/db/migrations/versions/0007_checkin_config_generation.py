"""check-in configuration generation (issue 4: check-in load)

A counter that the database itself bumps whenever something a check-in decides with changes: a station's status,
token or event; an event; a chapter's path; a signing key. Check-in workers keep the card keys in memory and read
this counter in the query that authenticates the station, so a key marked compromised is refused by the very next
scan on every worker without reading the keys table on every scan. (On SQLite, a later migration that rebuilds one of
these tables in batch mode drops its triggers and must create them again.)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 15:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTER = "checkin_config"
BUMP = "UPDATE counters SET value = value + 1 WHERE name = 'checkin_config'"
# (table, PostgreSQL events, SQLite events): only columns that a check-in reads from a cached or joined row count.
WATCHED = (
    ("stations", "UPDATE OF status, token_hash, event_id OR DELETE", ("UPDATE OF status, token_hash, event_id",
                                                                      "DELETE")),
    ("events", "UPDATE OR DELETE", ("UPDATE", "DELETE")),
    ("chapters", "UPDATE OF path OR DELETE", ("UPDATE OF path", "DELETE")),
    ("signing_keys", "INSERT OR UPDATE OR DELETE", ("INSERT", "UPDATE", "DELETE")),
)


def upgrade() -> None:
    op.bulk_insert(sa.table("counters", sa.column("name"), sa.column("value")), [{"name": COUNTER, "value": 0}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE FUNCTION checkin_config_changed() RETURNS trigger LANGUAGE plpgsql AS "
                   f"$$ BEGIN {BUMP}; RETURN NULL; END $$")
        for table, pg_events, _ in WATCHED:
            op.execute(f"CREATE TRIGGER {table}_checkin_config AFTER {pg_events} ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION checkin_config_changed()")
    else:
        for table, _, sqlite_events in WATCHED:
            for index, event in enumerate(sqlite_events):
                op.execute(f"CREATE TRIGGER {table}_checkin_config_{index} AFTER {event} ON {table} "
                           f"BEGIN {BUMP}; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, _, _ in WATCHED:
            op.execute(f"DROP TRIGGER {table}_checkin_config ON {table}")
        op.execute("DROP FUNCTION checkin_config_changed()")
    else:
        for table, _, sqlite_events in WATCHED:
            for index in range(len(sqlite_events)):
                op.execute(f"DROP TRIGGER {table}_checkin_config_{index}")
    op.execute("DELETE FROM counters WHERE name = 'checkin_config'")
