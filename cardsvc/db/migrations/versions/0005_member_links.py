"""member links (personal links to the digital card)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 13:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db.base

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('member_links',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('created_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("channel IN ('sms', 'zalo', 'paper')", name=op.f('ck_member_links_channel')),
    sa.ForeignKeyConstraint(['created_by_id'], ['officers.id'], name=op.f('fk_member_links_created_by_id_officers')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_links_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_links')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_member_links_token_hash'))
    )
    with op.batch_alter_table('member_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_links_member_id'), ['member_id'], unique=False)
        batch_op.create_index('uq_member_links_active_member', ['member_id'], unique=True, sqlite_where=sa.text('revoked_at IS NULL'), postgresql_where=sa.text('revoked_at IS NULL'))


def downgrade() -> None:
    with op.batch_alter_table('member_links', schema=None) as batch_op:
        batch_op.drop_index('uq_member_links_active_member', sqlite_where=sa.text('revoked_at IS NULL'), postgresql_where=sa.text('revoked_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_member_links_member_id'))

    op.drop_table('member_links')
