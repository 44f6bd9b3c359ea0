"""offline check-ins and NFC write requests (issue 5)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 13:27:43.928718
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db.base

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('nfc_write_requests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('station_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('card_id', sa.String(length=16), nullable=False),
    sa.Column('lock', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('requested_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('requested_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.String(length=200), nullable=True),
    sa.Column('tag_uid', sa.String(length=32), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'done', 'failed')", name=op.f('ck_nfc_write_requests_status')),
    sa.ForeignKeyConstraint(['card_id'], ['cards.card_id'], name=op.f('fk_nfc_write_requests_card_id_cards')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['officers.id'], name=op.f('fk_nfc_write_requests_requested_by_id_officers')),
    sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name=op.f('fk_nfc_write_requests_station_id_stations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nfc_write_requests'))
    )
    with op.batch_alter_table('nfc_write_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nfc_write_requests_card_id'), ['card_id'], unique=False)
        batch_op.create_index('ix_nfc_write_requests_station_status', ['station_id', 'status'], unique=False)

    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.add_column(sa.Column('offline', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('local_result', sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column('local_reason', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.drop_column('local_reason')
        batch_op.drop_column('local_result')
        batch_op.drop_column('offline')

    with op.batch_alter_table('nfc_write_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_nfc_write_requests_station_status')
        batch_op.drop_index(batch_op.f('ix_nfc_write_requests_card_id'))

    op.drop_table('nfc_write_requests')
