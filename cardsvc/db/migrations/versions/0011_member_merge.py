"""member merge: members.merged_into_id (issue 13, item 4)

A duplicate member record merged into another member's stays as a row pointing at the survivor. The column is added
with a plain ``ALTER TABLE … ADD COLUMN … REFERENCES`` on SQLite: a batch rebuild of ``members`` would drop the table
that every member-keyed table references, which SQLite refuses once those tables hold rows. For the same reason the
SQLite downgrade (a batch rebuild) only works on a database whose member-keyed tables are empty.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MERGED = sa.text("merged_into_id IS NOT NULL")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE members ADD COLUMN merged_into_id INTEGER "
                   "CONSTRAINT fk_members_merged_into_id_members REFERENCES members (id)")
    else:
        op.add_column('members', sa.Column('merged_into_id', sa.BigInteger(), nullable=True))
        op.create_foreign_key(op.f('fk_members_merged_into_id_members'), 'members', 'members', ['merged_into_id'],
                              ['id'])
    op.create_index('ix_members_merged_into_id', 'members', ['merged_into_id'], unique=False,
                    sqlite_where=MERGED, postgresql_where=MERGED)


def downgrade() -> None:
    op.drop_index('ix_members_merged_into_id', table_name='members', sqlite_where=MERGED, postgresql_where=MERGED)
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table('members', schema=None) as batch_op:
            batch_op.drop_column('merged_into_id')
    else:
        op.drop_constraint(op.f('fk_members_merged_into_id_members'), 'members', type_='foreignkey')
        op.drop_column('members', 'merged_into_id')
