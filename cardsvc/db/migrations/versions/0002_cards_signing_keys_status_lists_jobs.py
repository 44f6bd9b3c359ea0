"""cards, signing keys, status lists, jobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 12:06:37.259271
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db.base

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('signing_keys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kid', sa.String(length=4), nullable=False),
    sa.Column('purpose', sa.String(length=8), nullable=False),
    sa.Column('algorithm', sa.String(length=8), nullable=False),
    sa.Column('public_key', sa.LargeBinary(), nullable=False),
    sa.Column('private_key_encrypted', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('retired_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("algorithm IN ('EdDSA', 'ES256')", name=op.f('ck_signing_keys_algorithm')),
    sa.CheckConstraint("purpose IN ('card', 'trust')", name=op.f('ck_signing_keys_purpose')),
    sa.CheckConstraint("status IN ('active', 'retired', 'compromised')", name=op.f('ck_signing_keys_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_signing_keys')),
    sa.UniqueConstraint('kid', name=op.f('uq_signing_keys_kid'))
    )
    with op.batch_alter_table('signing_keys', schema=None) as batch_op:
        batch_op.create_index('uq_signing_keys_active_purpose', ['purpose'], unique=True, sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))

    op.create_table('status_lists',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('allocated', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_status_lists'))
    )
    op.create_table('jobs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('officer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('chapter_path', sa.String(length=1000).with_variant(sa.String(length=1000, collation='C'), 'postgresql'), nullable=True),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_jobs_status')),
    sa.ForeignKeyConstraint(['officer_id'], ['officers.id'], name=op.f('fk_jobs_officer_id_officers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    op.create_table('cards',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('card_id', sa.String(length=16), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('signing_key_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('status_reason', sa.String(length=32), nullable=True),
    sa.Column('status_note', sa.String(length=200), nullable=True),
    sa.Column('status_changed_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status_list_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status_index', sa.Integer(), nullable=False),
    sa.Column('credential', sa.LargeBinary(), nullable=False),
    sa.Column('job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('active', 'suspended', 'revoked', 'superseded')", name=op.f('ck_cards_status')),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_cards_job_id_jobs')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_cards_member_id_members')),
    sa.ForeignKeyConstraint(['signing_key_id'], ['signing_keys.id'], name=op.f('fk_cards_signing_key_id_signing_keys')),
    sa.ForeignKeyConstraint(['status_list_id'], ['status_lists.id'], name=op.f('fk_cards_status_list_id_status_lists')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cards')),
    sa.UniqueConstraint('card_id', name=op.f('uq_cards_card_id')),
    sa.UniqueConstraint('status_list_id', 'status_index', name='uq_cards_status_slot')
    )
    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cards_job_id'), ['job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cards_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cards_signing_key_id'), ['signing_key_id'], unique=False)
        batch_op.create_index('uq_cards_current_member', ['member_id'], unique=True, sqlite_where=sa.text("status IN ('active', 'suspended')"), postgresql_where=sa.text("status IN ('active', 'suspended')"))



def downgrade() -> None:
    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.drop_index('uq_cards_current_member', sqlite_where=sa.text("status IN ('active', 'suspended')"), postgresql_where=sa.text("status IN ('active', 'suspended')"))
        batch_op.drop_index(batch_op.f('ix_cards_signing_key_id'))
        batch_op.drop_index(batch_op.f('ix_cards_member_id'))
        batch_op.drop_index(batch_op.f('ix_cards_job_id'))

    op.drop_table('cards')
    op.drop_table('jobs')
    op.drop_table('status_lists')
    with op.batch_alter_table('signing_keys', schema=None) as batch_op:
        batch_op.drop_index('uq_signing_keys_active_purpose', sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))

    op.drop_table('signing_keys')
