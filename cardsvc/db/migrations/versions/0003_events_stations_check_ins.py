"""events, stations, check-ins

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 12:19:35.977311
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db.base

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('chapter_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('venue', sa.String(length=200), nullable=False),
    sa.Column('starts_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('checkin_opens_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('checkin_closes_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('eligibility', sa.String(length=10), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('allow_reentry', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("eligibility IN ('subtree', 'invite', 'all')", name=op.f('ck_events_eligibility')),
    sa.CheckConstraint("mode IN ('entry', 'entry_exit')", name=op.f('ck_events_mode')),
    sa.CheckConstraint("status IN ('open', 'closed')", name=op.f('ck_events_status')),
    sa.ForeignKeyConstraint(['chapter_id'], ['chapters.id'], name=op.f('fk_events_chapter_id_chapters')),
    sa.ForeignKeyConstraint(['created_by_id'], ['officers.id'], name=op.f('fk_events_created_by_id_officers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_chapter_id'), ['chapter_id'], unique=False)

    op.create_table('event_invites',
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_invites_event_id_events')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_event_invites_member_id_members')),
    sa.PrimaryKeyConstraint('event_id', 'member_id', name=op.f('pk_event_invites'))
    )
    op.create_table('stations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('provisioning_hash', sa.String(length=64), nullable=True),
    sa.Column('provisioning_expires_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('token_hash', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'active', 'revoked')", name=op.f('ck_stations_status')),
    sa.ForeignKeyConstraint(['created_by_id'], ['officers.id'], name=op.f('fk_stations_created_by_id_officers')),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_stations_event_id_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stations')),
    sa.UniqueConstraint('provisioning_hash', name=op.f('uq_stations_provisioning_hash')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_stations_token_hash'))
    )
    with op.batch_alter_table('stations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stations_event_id'), ['event_id'], unique=False)

    op.create_table('checkins',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('card_id', sa.String(length=16), nullable=True),
    sa.Column('result', sa.String(length=5), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('direction', sa.String(length=3), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=12), nullable=False),
    sa.Column('station_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('officer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('client_nonce', sa.String(length=64), nullable=False),
    sa.Column('payload_hash', sa.String(length=64), nullable=False),
    sa.Column('scanned_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('received_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('manual_reason', sa.String(length=200), nullable=True),
    sa.CheckConstraint("direction IN ('in', 'out')", name=op.f('ck_checkins_direction')),
    sa.CheckConstraint("result IN ('ok', 'error')", name=op.f('ck_checkins_result')),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_checkins_event_id_events')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_checkins_member_id_members')),
    sa.ForeignKeyConstraint(['officer_id'], ['officers.id'], name=op.f('fk_checkins_officer_id_officers')),
    sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name=op.f('fk_checkins_station_id_stations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkins')),
    sa.UniqueConstraint('event_id', 'client_nonce', name='uq_checkins_nonce')
    )
    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.create_index('ix_checkins_event_result', ['event_id', 'result'], unique=False)
        batch_op.create_index('uq_checkins_member_seq', ['event_id', 'member_id', 'seq'], unique=True, sqlite_where=sa.text("result = 'ok'"), postgresql_where=sa.text("result = 'ok'"))



def downgrade() -> None:
    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.drop_index('uq_checkins_member_seq', sqlite_where=sa.text("result = 'ok'"), postgresql_where=sa.text("result = 'ok'"))
        batch_op.drop_index('ix_checkins_event_result')

    op.drop_table('checkins')
    with op.batch_alter_table('stations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stations_event_id'))

    op.drop_table('stations')
    op.drop_table('event_invites')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_chapter_id'))

    op.drop_table('events')
