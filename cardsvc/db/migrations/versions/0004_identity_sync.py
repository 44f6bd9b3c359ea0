"""identity sync, reviews, registry cursor, membership publications

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 12:34:58.099658
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db.base

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('registry_cursors',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('cursor', sa.String(length=200), nullable=True),
    sa.Column('updated_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_registry_cursors'))
    )
    op.create_table('identity_sync_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('chapter_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('chapter_path', sa.String(length=1000).with_variant(sa.String(length=1000, collation='C'), 'postgresql'), nullable=True),
    sa.Column('force', sa.Boolean(), nullable=False),
    sa.Column('officer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('skipped_no_consent', sa.Integer(), nullable=False),
    sa.Column('skipped_recent', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_identity_sync_runs_status')),
    sa.ForeignKeyConstraint(['chapter_id'], ['chapters.id'], name=op.f('fk_identity_sync_runs_chapter_id_chapters')),
    sa.ForeignKeyConstraint(['officer_id'], ['officers.id'], name=op.f('fk_identity_sync_runs_officer_id_officers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identity_sync_runs'))
    )
    op.create_table('membership_publications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('published_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('card_id', sa.String(length=16), nullable=True),
    sa.Column('fact_digest', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_membership_publications_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_membership_publications')),
    sa.UniqueConstraint('member_id', name=op.f('uq_membership_publications_member_id'))
    )
    op.create_table('identity_sync_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('claimed_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('differing_fields', sa.JSON(), nullable=False),
    sa.Column('registry_request_id', sa.String(length=40), nullable=True),
    sa.Column('error', sa.String(length=64), nullable=True),
    sa.Column('checked_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'claimed', 'done', 'failed')", name=op.f('ck_identity_sync_items_status')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_identity_sync_items_member_id_members')),
    sa.ForeignKeyConstraint(['run_id'], ['identity_sync_runs.id'], name=op.f('fk_identity_sync_items_run_id_identity_sync_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identity_sync_items')),
    sa.UniqueConstraint('run_id', 'member_id', name='uq_identity_sync_items_run_member')
    )
    with op.batch_alter_table('identity_sync_items', schema=None) as batch_op:
        batch_op.create_index('ix_identity_sync_items_member_checked', ['member_id', 'checked_at'], unique=False)
        batch_op.create_index('ix_identity_sync_items_run_status', ['run_id', 'status'], unique=False)

    op.create_table('identity_reviews',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source', sa.String(length=12), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('sync_item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('notification_id', sa.String(length=64), nullable=True),
    sa.Column('differing_fields', sa.JSON(), nullable=False),
    sa.Column('registry_values', sa.JSON(), nullable=False),
    sa.Column('new_id_number_ciphertext', sa.LargeBinary(), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('decided_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('decided_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('mismatch', 'name_diacritics', 'deceased', 'name_change', 'id_number_change')", name=op.f('ck_identity_reviews_kind')),
    sa.CheckConstraint("source IN ('sync', 'notification')", name=op.f('ck_identity_reviews_source')),
    sa.CheckConstraint("status IN ('open', 'accepted', 'kept', 'flagged')", name=op.f('ck_identity_reviews_status')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['officers.id'], name=op.f('fk_identity_reviews_decided_by_id_officers')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_identity_reviews_member_id_members')),
    sa.ForeignKeyConstraint(['sync_item_id'], ['identity_sync_items.id'], name=op.f('fk_identity_reviews_sync_item_id_identity_sync_items')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identity_reviews')),
    sa.UniqueConstraint('notification_id', name=op.f('uq_identity_reviews_notification_id'))
    )
    with op.batch_alter_table('identity_reviews', schema=None) as batch_op:
        batch_op.create_index('ix_identity_reviews_member_status', ['member_id', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('identity_reviews', schema=None) as batch_op:
        batch_op.drop_index('ix_identity_reviews_member_status')

    op.drop_table('identity_reviews')
    with op.batch_alter_table('identity_sync_items', schema=None) as batch_op:
        batch_op.drop_index('ix_identity_sync_items_run_status')
        batch_op.drop_index('ix_identity_sync_items_member_checked')

    op.drop_table('identity_sync_items')
    op.drop_table('membership_publications')
    op.drop_table('identity_sync_runs')
    op.drop_table('registry_cursors')
