"""What an officer is shown of a member's personal data, by role (docs/architecture.md, "Members and personal data").

Nobody is shown an ID number, a phone number or her birthplace code by default:

* officers and administrators: the last 2 digits of each ID number (``**********89``), the full birth date, and the
  last 3 digits of the phone number (``+84******678``);
* viewers and any other read-only role: the same ID digits, the birth year only, and the last 2 digits of the phone
  number (``+84*******78``);
* a reveal (``pii`` permission, audited by :func:`cardsvc.services.members.reveal_identity`): everything in clear.

The masks are cut from the stored masks (``id_number_masked``, ``phone_masked``), so showing a list of members
decrypts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from cardsvc.db.models import Member
from cardsvc.security import PiiCipher
from cardsvc.services.context import WRITE_ROLES, Actor

# Given a birth year and gender (which fix the 4th to 6th digits), an ID number showing its last 2 digits leaves
# 63 province codes × 10,000 numbers to guess; each further digit shown would divide that by ten.
ID_DIGITS_SHOWN = 2
PHONE_DIGITS_SHOWN = {"officer": 3, "viewer": 2}
# "+84": every stored phone number starts with it, so showing it tells nothing.
_PHONE_PREFIX = 3


def mask_phone(phone: str) -> str:
    """``+84912345678`` → ``+84******678``: enough for an officer to tell numbers apart, not to dial one."""
    return _hide(phone, _PHONE_PREFIX, PHONE_DIGITS_SHOWN["officer"])


def _hide(value: str, keep_start: int, keep_end: int) -> str:
    return value[:keep_start] + "*" * max(len(value) - keep_start - keep_end, 0) + value[len(value) - keep_end:]


def stored_value(member: Member, field: str, cipher: PiiCipher) -> str | None:
    """The clear value of an encrypted field (``id_number``, ``old_id_number`` or ``phone``), None when empty."""
    ciphertext: bytes | None = getattr(member, f"{field}_ciphertext")
    return cipher.decrypt(field, ciphertext) if ciphertext is not None else None


@dataclass(frozen=True)
class PiiView:
    """A member's personal data as one reader may see it; ``revealed`` False means every value is masked."""

    id_number: str | None
    old_id_number: str | None
    birth_date: date
    birth_date_precision: str
    phone: str | None
    revealed: bool


def masked_view(member: Member, actor: Actor) -> PiiView:
    """The member's personal data masked for ``actor``'s role (see the module docstring)."""
    viewer = actor.role not in WRITE_ROLES
    birth, precision = member.birth_date, member.birth_date_precision
    if viewer:
        birth, precision = date(birth.year, 1, 1), "year"
    return PiiView(
        id_number=_hide(member.id_number_masked, 0, ID_DIGITS_SHOWN) if member.id_number_masked else None,
        old_id_number=_hide(member.old_id_number_masked, 0, ID_DIGITS_SHOWN) if member.old_id_number_masked
        else None,
        birth_date=birth,
        birth_date_precision=precision,
        phone=_hide(member.phone_masked, _PHONE_PREFIX, PHONE_DIGITS_SHOWN["viewer" if viewer else "officer"])
        if member.phone_masked else None,
        revealed=False,
    )


def clear_view(member: Member, cipher: PiiCipher) -> PiiView:
    """The member's personal data in clear: only for a reveal, which the caller audits."""
    return PiiView(
        id_number=stored_value(member, "id_number", cipher),
        old_id_number=stored_value(member, "old_id_number", cipher),
        birth_date=member.birth_date,
        birth_date_precision=member.birth_date_precision,
        phone=stored_value(member, "phone", cipher),
        revealed=True,
    )
