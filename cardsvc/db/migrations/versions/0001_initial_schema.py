"""initial schema: chapters, members, consents, officers, audit log

Revision ID: 0001
Revises:
Create Date: 2026-11-25 11:47:06.274625
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cardsvc.db.base

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_type', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_name', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target_type', sa.String(length=32), nullable=False),
    sa.Column('target_id', sa.String(length=64), nullable=True),
    sa.Column('chapter_path', sa.String(length=1000).with_variant(sa.String(length=1000, collation='C'), 'postgresql'), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_chapter_path'), ['chapter_path'], unique=False)

    op.create_table('chapter_levels',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name_vi', sa.String(length=100), nullable=False),
    sa.Column('name_en', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_chapter_levels'))
    )
    op.create_table('counters',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('value', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_counters'))
    )
    op.create_table('chapters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('level', sa.String(length=32), nullable=False),
    sa.Column('parent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('path', sa.String(length=1000).with_variant(sa.String(length=1000, collation='C'), 'postgresql'), nullable=False),
    sa.Column('depth', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('merged_into_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('active', 'merged')", name=op.f('ck_chapters_status')),
    sa.ForeignKeyConstraint(['level'], ['chapter_levels.code'], name=op.f('fk_chapters_level_chapter_levels')),
    sa.ForeignKeyConstraint(['merged_into_id'], ['chapters.id'], name=op.f('fk_chapters_merged_into_id_chapters')),
    sa.ForeignKeyConstraint(['parent_id'], ['chapters.id'], name=op.f('fk_chapters_parent_id_chapters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chapters')),
    sa.UniqueConstraint('code', name=op.f('uq_chapters_code'))
    )
    with op.batch_alter_table('chapters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chapters_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index('ix_chapters_path', ['path'], unique=False)

    op.create_table('chapter_code_aliases',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('chapter_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['chapter_id'], ['chapters.id'], name=op.f('fk_chapter_code_aliases_chapter_id_chapters')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_chapter_code_aliases'))
    )
    with op.batch_alter_table('chapter_code_aliases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chapter_code_aliases_chapter_id'), ['chapter_id'], unique=False)

    op.create_table('members',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_number', sa.String(length=10), nullable=False),
    sa.Column('full_name', sa.String(length=100), nullable=False),
    sa.Column('name_search', sa.String(length=110), nullable=False),
    sa.Column('sort_key', sa.String(length=220), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=False),
    sa.Column('birth_date_precision', sa.String(length=4), nullable=False),
    sa.Column('gender', sa.String(length=6), nullable=False),
    sa.Column('id_number_ciphertext', sa.LargeBinary(), nullable=True),
    sa.Column('id_number_index', sa.String(length=64), nullable=True),
    sa.Column('id_number_masked', sa.String(length=12), nullable=True),
    sa.Column('old_id_number_ciphertext', sa.LargeBinary(), nullable=True),
    sa.Column('old_id_number_index', sa.String(length=64), nullable=True),
    sa.Column('old_id_number_masked', sa.String(length=9), nullable=True),
    sa.Column('phone', sa.String(length=12), nullable=True),
    sa.Column('chapter_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('join_date', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('status_reason', sa.String(length=200), nullable=True),
    sa.Column('status_changed_on', sa.Date(), nullable=True),
    sa.Column('honorary', sa.Boolean(), nullable=False),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("birth_date_precision IN ('day', 'year')", name=op.f('ck_members_birth_date_precision')),
    sa.CheckConstraint("gender IN ('female', 'male')", name=op.f('ck_members_gender')),
    sa.CheckConstraint("status IN ('active', 'suspended', 'left', 'deceased')", name=op.f('ck_members_status')),
    sa.ForeignKeyConstraint(['chapter_id'], ['chapters.id'], name=op.f('fk_members_chapter_id_chapters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_members')),
    sa.UniqueConstraint('id_number_index', name=op.f('uq_members_id_number_index')),
    sa.UniqueConstraint('member_number', name=op.f('uq_members_member_number')),
    sa.UniqueConstraint('old_id_number_index', name=op.f('uq_members_old_id_number_index'))
    )
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index('ix_members_chapter_sort', ['chapter_id', 'sort_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_members_name_search'), ['name_search'], unique=False)

    op.create_table('officers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('full_name', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('chapter_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('permissions', sa.String(length=200), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_login_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('admin', 'officer', 'viewer')", name=op.f('ck_officers_role')),
    sa.ForeignKeyConstraint(['chapter_id'], ['chapters.id'], name=op.f('fk_officers_chapter_id_chapters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_officers')),
    sa.UniqueConstraint('username', name=op.f('uq_officers_username'))
    )
    op.create_table('consents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('purpose', sa.String(length=40), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('evidence_ref', sa.String(length=200), nullable=True),
    sa.Column('recorded_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('recorded_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('withdrawn_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('withdrawal_note', sa.String(length=200), nullable=True),
    sa.CheckConstraint("method IN ('paper_form', 'app')", name=op.f('ck_consents_method')),
    sa.CheckConstraint("purpose IN ('identity_verification', 'registry_publication', 'digital_card_messaging')", name=op.f('ck_consents_purpose')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_consents_member_id_members')),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['officers.id'], name=op.f('fk_consents_recorded_by_id_officers')),
    sa.ForeignKeyConstraint(['withdrawn_by_id'], ['officers.id'], name=op.f('fk_consents_withdrawn_by_id_officers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consents'))
    )
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consents_member_id'), ['member_id'], unique=False)

    op.create_table('member_status_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('from_status', sa.String(length=10), nullable=True),
    sa.Column('to_status', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('effective_on', sa.Date(), nullable=False),
    sa.Column('officer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', cardsvc.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_status_changes_member_id_members')),
    sa.ForeignKeyConstraint(['officer_id'], ['officers.id'], name=op.f('fk_member_status_changes_officer_id_officers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_status_changes'))
    )
    with op.batch_alter_table('member_status_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_status_changes_member_id'), ['member_id'], unique=False)



    op.bulk_insert(
        sa.table("chapter_levels", sa.column("code"), sa.column("name_vi"), sa.column("name_en")),
        [
            {"code": "central", "name_vi": "Trung ương Hội", "name_en": "Central union"},
            {"code": "province", "name_vi": "Hội tỉnh/thành phố", "name_en": "Province"},
            {"code": "commune", "name_vi": "Hội xã/phường/đặc khu", "name_en": "Commune or ward"},
            {"code": "branch", "name_vi": "Chi hội", "name_en": "Branch"},
            {"code": "group", "name_vi": "Tổ phụ nữ", "name_en": "Group"},
            {"code": "special", "name_vi": "Chi hội đặc thù", "name_en": "Special branch"},
        ],
    )
    op.bulk_insert(sa.table("counters", sa.column("name"), sa.column("value")), [{"name": "member_number", "value": 0}])
    # The audit log is append-only: the database itself refuses changes, not only the application.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )

def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER audit_log_no_update")
        op.execute("DROP TRIGGER audit_log_no_delete")
    with op.batch_alter_table('member_status_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_status_changes_member_id'))

    op.drop_table('member_status_changes')
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consents_member_id'))

    op.drop_table('consents')
    op.drop_table('officers')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_members_name_search'))
        batch_op.drop_index('ix_members_chapter_sort')

    op.drop_table('members')
    with op.batch_alter_table('chapter_code_aliases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chapter_code_aliases_chapter_id'))

    op.drop_table('chapter_code_aliases')
    with op.batch_alter_table('chapters', schema=None) as batch_op:
        batch_op.drop_index('ix_chapters_path')
        batch_op.drop_index(batch_op.f('ix_chapters_parent_id'))

    op.drop_table('chapters')
    op.drop_table('counters')
    op.drop_table('chapter_levels')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_chapter_path'))
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))
        batch_op.drop_index(batch_op.f('ix_audit_log_action'))

    op.drop_table('audit_log')
