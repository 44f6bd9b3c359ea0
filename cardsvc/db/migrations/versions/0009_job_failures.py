"""batch job failures per member (issue 12: cards and dates)

A batch job records each member it could not issue a card to (a name the card cannot carry, a member no longer
active, a card issued to her at the same moment), with the reason, and goes on. A new table only: the jobs table
keeps its statuses (a finished job is 'done', its 'failed' count says how many members got no card), so SQLite
need not rebuild a table that cards refer to.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db.base

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('job_failures',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('message_en', sa.String(length=300), nullable=False),
    sa.Column('message_vi', sa.String(length=300), nullable=False),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_failures_job_id_jobs')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_job_failures_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_failures')),
    sa.UniqueConstraint('job_id', 'member_id', name='uq_job_failures_job_member')
    )


def downgrade() -> None:
    op.drop_table('job_failures')
