"""batch jobs split into chunks of member ids that several workers claim (issue 18: national roll-out)

``job_chunks`` holds a batch job's ranges of member ids, each claimed by one worker at a time under a lease that
expires when the worker dies (another worker then takes it over), with its counts and times (the job's rate and
time left). A new table only: ``jobs`` and ``cards`` keep their shape, so SQLite rebuilds nothing.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db.base

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('job_chunks',
    sa.Column('id', BigId, nullable=False),
    sa.Column('job_id', BigId, nullable=False),
    sa.Column('first_member_id', BigId, nullable=False),
    sa.Column('last_member_id', BigId, nullable=False),
    sa.Column('planned', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('worker', sa.String(length=100), nullable=True),
    sa.Column('lease_expires_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('issued', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'running', 'done')", name=op.f('ck_job_chunks_status')),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_chunks_job_id_jobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_chunks')),
    sa.UniqueConstraint('job_id', 'first_member_id', name='uq_job_chunks_job_first')
    )
    op.create_index('ix_job_chunks_job_status', 'job_chunks', ['job_id', 'status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_job_chunks_job_status', table_name='job_chunks')
    op.drop_table('job_chunks')
