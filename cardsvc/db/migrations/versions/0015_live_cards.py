"""live cards: card bindings to a phone, their one-time activation codes, and each event's live-code policy (issue 16)

``card_bindings`` holds a card's binding to one phone (its own status slot, status, how it ended; no phone
identifier, no key), at most one current per card; ``binding_codes`` the hashed one-time codes officers give members
to activate a phone; ``events.live_policy`` which cards an event accepts (any, live_preferred, live_required).

The column is added with ``ALTER TABLE … ADD COLUMN`` on SQLite too (no batch rebuild), so the check-in configuration
triggers of migration 0007 on ``events`` stay in place; the downgrade rebuilds the table and creates them again.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-22 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db.base

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
POLICY_CHECK = "live_policy IN ('any', 'live_preferred', 'live_required')"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE events ADD COLUMN live_policy VARCHAR(16) DEFAULT 'any' NOT NULL "
                   f"CONSTRAINT ck_events_live_policy CHECK ({POLICY_CHECK})")
    else:
        op.add_column('events', sa.Column('live_policy', sa.String(length=16), server_default='any', nullable=False))
        op.create_check_constraint(op.f('ck_events_live_policy'), 'events', POLICY_CHECK)
    op.create_table('card_bindings',
    sa.Column('id', BigId, nullable=False),
    sa.Column('card_id', BigId, nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('status_list_id', BigId, nullable=False),
    sa.Column('status_index', sa.Integer(), nullable=False),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sa.String(length=12), nullable=True),
    sa.CheckConstraint("ended_by IN ('member', 'officer', 'other_phone', 'card')",
                       name=op.f('ck_card_bindings_ended_by')),
    sa.CheckConstraint("status IN ('active', 'suspended', 'revoked', 'superseded')",
                       name=op.f('ck_card_bindings_status')),
    sa.ForeignKeyConstraint(['card_id'], ['cards.id'], name=op.f('fk_card_bindings_card_id_cards')),
    sa.ForeignKeyConstraint(['status_list_id'], ['status_lists.id'],
                            name=op.f('fk_card_bindings_status_list_id_status_lists')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_bindings')),
    sa.UniqueConstraint('status_list_id', 'status_index', name='uq_card_bindings_status_slot')
    )
    with op.batch_alter_table('card_bindings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_card_bindings_card_id'), ['card_id'], unique=False)
        batch_op.create_index('uq_card_bindings_current_card', ['card_id'], unique=True,
                              sqlite_where=sa.text("status IN ('active', 'suspended')"),
                              postgresql_where=sa.text("status IN ('active', 'suspended')"))
    op.create_table('binding_codes',
    sa.Column('id', BigId, nullable=False),
    sa.Column('member_id', BigId, nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_by_id', BigId, nullable=True),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['officers.id'], name=op.f('fk_binding_codes_created_by_id_officers')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_binding_codes_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_binding_codes'))
    )
    with op.batch_alter_table('binding_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_binding_codes_member_id'), ['member_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('binding_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_binding_codes_member_id'))
    op.drop_table('binding_codes')
    with op.batch_alter_table('card_bindings', schema=None) as batch_op:
        batch_op.drop_index('uq_card_bindings_current_card', sqlite_where=sa.text("status IN ('active', 'suspended')"),
                            postgresql_where=sa.text("status IN ('active', 'suspended')"))
        batch_op.drop_index(batch_op.f('ix_card_bindings_card_id'))
    op.drop_table('card_bindings')
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table('events', schema=None) as batch_op:
            batch_op.drop_column('live_policy')
        # The batch rebuild dropped the table's triggers of migration 0007.
        bump = "BEGIN UPDATE counters SET value = value + 1 WHERE name = 'checkin_config'; END"
        op.execute("CREATE TRIGGER events_checkin_config_0 AFTER UPDATE ON events " + bump)
        op.execute("CREATE TRIGGER events_checkin_config_1 AFTER DELETE ON events " + bump)
    else:
        op.drop_constraint(op.f('ck_events_live_policy'), 'events', type_='check')
        op.drop_column('events', 'live_policy')
