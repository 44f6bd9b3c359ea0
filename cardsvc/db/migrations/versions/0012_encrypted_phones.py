"""phone numbers encrypted at rest (issue #13, item 5: data a role should not see)

A member's phone number is personal data: it moves from the clear ``phone`` column to ``phone_ciphertext``
(AES-256-GCM under the key derived from the service secret, the column name as associated data, exactly like ID
numbers), ``phone_index`` (the HMAC blind index, for look-up; not unique, a family may share one number) and
``phone_masked`` (``+84******678``, what officers are shown).

Encrypting the stored numbers needs the service secret, which never enters the database: ``cardsvc migrate`` passes
the cipher derived from ``CARDSVC_SECRET_KEY(_FILE)`` to Alembic (``config.attributes["pii_cipher"]``). Run without
it over a table holding phone numbers, the migration stops and changes nothing. Going down decrypts them back.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 10:00:00
"""

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from cardsvc.security import PiiCipher
from cardsvc.services.pii import mask_phone

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 5000
members = sa.table(
    "members", sa.column("id", sa.BigInteger), sa.column("phone", sa.String),
    sa.column("phone_ciphertext", sa.LargeBinary), sa.column("phone_index", sa.String),
    sa.column("phone_masked", sa.String),
)


def _cipher(direction: str) -> PiiCipher:
    config = op.get_context().config
    cipher = config.attributes.get("pii_cipher") if config is not None else None
    if not isinstance(cipher, PiiCipher):
        raise RuntimeError(f"migration 0012 {direction} the stored phone numbers and needs the service secret: run "
                           "`cardsvc migrate` with the CARDSVC_SECRET_KEY_FILE (or CARDSVC_SECRET_KEY) the server uses")
    return cipher


def _chunks(stored: sa.ColumnClause[Any]) -> Iterator[Sequence[Any]]:
    """(id, value) of every member whose ``stored`` column is set, a chunk at a time in id order (a table of
    millions of members never sits in memory at once)."""
    last_id = 0
    while True:
        rows = op.get_bind().execute(sa.select(members.c.id, stored).where(stored.is_not(None), members.c.id > last_id)
                                     .order_by(members.c.id).limit(CHUNK)).all()
        if not rows:
            return
        yield rows
        last_id = rows[-1][0]


def upgrade() -> None:
    op.add_column('members', sa.Column('phone_ciphertext', sa.LargeBinary(), nullable=True))
    op.add_column('members', sa.Column('phone_index', sa.String(length=64), nullable=True))
    op.add_column('members', sa.Column('phone_masked', sa.String(length=12), nullable=True))
    op.create_index(op.f('ix_members_phone_index'), 'members', ['phone_index'], unique=False)
    encrypt = members.update().where(members.c.id == sa.bindparam("member_id")).values(
        phone_ciphertext=sa.bindparam("ciphertext"), phone_index=sa.bindparam("index"),
        phone_masked=sa.bindparam("masked"))
    for rows in _chunks(members.c.phone):
        cipher = _cipher("encrypts")
        op.get_bind().execute(encrypt, [
            {"member_id": member_id, "ciphertext": cipher.encrypt("phone", phone),
             "index": cipher.blind_index("phone", phone), "masked": mask_phone(phone)}
            for member_id, phone in rows
        ])
    op.drop_column('members', 'phone')


def downgrade() -> None:
    op.add_column('members', sa.Column('phone', sa.String(length=12), nullable=True))
    decrypt = members.update().where(members.c.id == sa.bindparam("member_id")).values(phone=sa.bindparam("clear"))
    for rows in _chunks(members.c.phone_ciphertext):
        cipher = _cipher("decrypts")
        op.get_bind().execute(decrypt, [{"member_id": member_id, "clear": cipher.decrypt("phone", ciphertext)}
                                        for member_id, ciphertext in rows])
    op.drop_index(op.f('ix_members_phone_index'), table_name='members')
    op.drop_column('members', 'phone_masked')
    op.drop_column('members', 'phone_index')
    op.drop_column('members', 'phone_ciphertext')
