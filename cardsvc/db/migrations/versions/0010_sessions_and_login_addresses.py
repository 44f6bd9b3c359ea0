"""officer sessions and per-address login pauses (issue 13: accounts and sessions)

``officers.session_epoch`` is carried in access tokens: bumping it ends every token issued before. The officer
pages' sessions live in ``admin_sessions`` so that logout ends them on the server. ``login_addresses`` counts wrong
passwords per officer and client address (and remembers the addresses she signed in from), replacing the lock of the
whole account after a few failures.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-14 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db.base

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ALTER TABLE ADD COLUMN, on SQLite too: a batch operation would rebuild the table, which fails once other
    # tables (events, audit) point at officers.
    op.add_column('officers', sa.Column('session_epoch', sa.Integer(), server_default=sa.text('0'), nullable=False))

    op.create_table('admin_sessions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('officer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['officer_id'], ['officers.id'], name=op.f('fk_admin_sessions_officer_id_officers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_sessions'))
    )
    with op.batch_alter_table('admin_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_admin_sessions_officer_id'), ['officer_id'], unique=False)

    op.create_table('login_addresses',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('officer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('locked_until', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_failure_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['officer_id'], ['officers.id'], name=op.f('fk_login_addresses_officer_id_officers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_addresses')),
    sa.UniqueConstraint('officer_id', 'address', name='uq_login_addresses_officer_address')
    )


def downgrade() -> None:
    op.drop_table('login_addresses')
    with op.batch_alter_table('admin_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_admin_sessions_officer_id'))
    op.drop_table('admin_sessions')
    with op.batch_alter_table('officers', schema=None) as batch_op:
        batch_op.drop_column('session_epoch')
