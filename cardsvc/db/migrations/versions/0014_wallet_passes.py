"""wallet passes: members' Apple/Google passes, Apple device registrations, the outbox of pass updates (issue 17)

``wallet_passes`` holds one pass per member (random serial, hashed device token, update tag); ``wallet_registrations``
the devices that asked Apple's PassKit web service for updates; ``wallet_updates`` the changes still to push to Apple's
devices or Google's Wallet API, written in the same transaction as the card change. The ``wallet_tag`` counter row
hands out update tags.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-20 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db.base

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('wallet_passes',
    sa.Column('id', BigId, nullable=False),
    sa.Column('member_id', BigId, nullable=False),
    sa.Column('serial', sa.String(length=32), nullable=False),
    sa.Column('auth_token_hash', sa.String(length=64), nullable=False),
    sa.Column('apple_issued_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('google_issued_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('update_tag', BigId, nullable=False),
    sa.Column('modified_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_wallet_passes_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wallet_passes')),
    sa.UniqueConstraint('member_id', name=op.f('uq_wallet_passes_member_id')),
    sa.UniqueConstraint('serial', name=op.f('uq_wallet_passes_serial'))
    )
    op.create_table('wallet_registrations',
    sa.Column('id', BigId, nullable=False),
    sa.Column('pass_id', BigId, nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('push_token', sa.String(length=200), nullable=False),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['pass_id'], ['wallet_passes.id'], name=op.f('fk_wallet_registrations_pass_id_wallet_passes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wallet_registrations')),
    sa.UniqueConstraint('device_id', 'pass_id', name='uq_wallet_registrations_device_pass')
    )
    with op.batch_alter_table('wallet_registrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wallet_registrations_pass_id'), ['pass_id'], unique=False)

    op.create_table('wallet_updates',
    sa.Column('id', BigId, nullable=False),
    sa.Column('pass_id', BigId, nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('not_before', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('error', sa.String(length=100), nullable=True),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("channel IN ('apple', 'google')", name=op.f('ck_wallet_updates_channel')),
    sa.CheckConstraint("status IN ('pending', 'claimed', 'done', 'failed')", name=op.f('ck_wallet_updates_status')),
    sa.ForeignKeyConstraint(['pass_id'], ['wallet_passes.id'], name=op.f('fk_wallet_updates_pass_id_wallet_passes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wallet_updates'))
    )
    with op.batch_alter_table('wallet_updates', schema=None) as batch_op:
        batch_op.create_index('ix_wallet_updates_status_due', ['status', 'not_before'], unique=False)
        batch_op.create_index(batch_op.f('ix_wallet_updates_pass_id'), ['pass_id'], unique=False)
        batch_op.create_index('uq_wallet_updates_pending', ['pass_id', 'channel'], unique=True, sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))

    op.execute("INSERT INTO counters (name, value) VALUES ('wallet_tag', 0)")


def downgrade() -> None:
    op.execute("DELETE FROM counters WHERE name = 'wallet_tag'")
    with op.batch_alter_table('wallet_updates', schema=None) as batch_op:
        batch_op.drop_index('uq_wallet_updates_pending', sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))
        batch_op.drop_index(batch_op.f('ix_wallet_updates_pass_id'))
        batch_op.drop_index('ix_wallet_updates_status_due')
    op.drop_table('wallet_updates')
    with op.batch_alter_table('wallet_registrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wallet_registrations_pass_id'))
    op.drop_table('wallet_registrations')
    op.drop_table('wallet_passes')
