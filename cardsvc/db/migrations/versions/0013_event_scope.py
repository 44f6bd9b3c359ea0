"""event eligibility scope (issue 13: scope leaks)

``events.scope_chapter_id``: the chapter subtree an event's eligible members lie in, recorded at creation; NULL is the
whole tree. Existing events get what the new rule would have recorded: their own chapter for ``subtree`` and
``invite`` events (invitees outside it stop being eligible), and for ``all`` events the chapter of the officer who
created them (the root of her scope), so that an officer's ``all`` event no longer spans the country. Only an ``all``
event created by an officer without a chapter (an administrator of the whole tree) or by the operator's command line
(no creator) keeps the whole tree.

The column is added with ``ALTER TABLE … ADD COLUMN`` on SQLite too (no batch rebuild), so the check-in
configuration triggers of migration 0007 on ``events`` stay in place; the downgrade rebuilds the table and creates
them again.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-14 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Alembic adds a foreign key only by rebuilding the table on SQLite; SQLite itself can add it inline.
        op.execute("ALTER TABLE events ADD COLUMN scope_chapter_id INTEGER "
                   "CONSTRAINT fk_events_scope_chapter_id_chapters REFERENCES chapters (id)")
    else:
        op.add_column('events', sa.Column('scope_chapter_id', sa.BigInteger(), nullable=True))
        op.create_foreign_key(op.f('fk_events_scope_chapter_id_chapters'), 'events', 'chapters',
                              ['scope_chapter_id'], ['id'])
    op.execute("UPDATE events SET scope_chapter_id = chapter_id WHERE eligibility <> 'all'")
    op.execute("UPDATE events SET scope_chapter_id = "
               "(SELECT officers.chapter_id FROM officers WHERE officers.id = events.created_by_id) "
               "WHERE eligibility = 'all'")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table('events', schema=None) as batch_op:
            batch_op.drop_column('scope_chapter_id')
        # The batch rebuild dropped the table's triggers of migration 0007.
        bump = "BEGIN UPDATE counters SET value = value + 1 WHERE name = 'checkin_config'; END"
        op.execute("CREATE TRIGGER events_checkin_config_0 AFTER UPDATE ON events " + bump)
        op.execute("CREATE TRIGGER events_checkin_config_1 AFTER DELETE ON events " + bump)
    else:
        op.drop_constraint(op.f('fk_events_scope_chapter_id_chapters'), 'events', type_='foreignkey')
        op.drop_column('events', 'scope_chapter_id')
