"""Live cards: binding a member's card to her phone, de-activating it, and the one-time codes that authorise it.

A binding (docs/card-format.md §8.5) has its own random status slot; the server signs a holder-bound credential with
the phone's public key in it and hands it to the phone, which keeps it (with its non-extractable private key) and
makes live codes offline. The server keeps neither: no key, no phone identifier. One phone per card: binding another
phone supersedes the binding (status 3), and the old phone's page learns it from :func:`page_binding`.

The ``/m/`` link is a bearer secret, so binding needs a second factor: a one-time code an officer creates for the
member (:func:`create_code`, shown once on her page in /admin) and the member types on the phone. Codes are random 8
digits, stored as a hash, valid for :data:`CODE_LIFETIME`, burnt after :data:`MAX_CODE_ATTEMPTS` wrong tries.
De-activation is one tap for the member (the link) and one click for an officer; everything is audited.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import BindingCode, CardBinding, Member
from cardsvc.errors import Conflict, ValidationFailed
from cardsvc.services import audit, cards, member_links, status_lists
from cardsvc.services.context import Actor
from cardsvc.services.keys import KeyRing
from cardsvc.services.members import get_member
from issuance.binding import sign_bound_credential
from verification.format import ALG_EDDSA, ALG_ES256, parse_credential
from verification.live import HolderKey

CODE_DIGITS = 8
CODE_LIFETIME = timedelta(minutes=30)
MAX_CODE_ATTEMPTS = 5
_LINK_ACTOR_NAME = "member-link"


@dataclass(frozen=True)
class IssuedCode:
    """A fresh activation code: shown once to the officer, never stored in clear."""

    code: str
    expires_at: datetime


@dataclass(frozen=True)
class NewBinding:
    """A binding just made, and the bound credential for the phone (not kept by the server)."""

    binding: CardBinding
    credential: bytes


def _code_hash(member_id: int, code: str) -> str:
    return hashlib.sha256(f"{member_id}:{code}".encode()).hexdigest()


def _link_actor(member: Member, request_id: str | None) -> Actor:
    return Actor("system", None, _LINK_ACTOR_NAME, "viewer", member.chapter.path, request_id=request_id)


def current_binding(session: Session, card_id: int) -> CardBinding | None:
    """The card's current binding (active or suspended with the card), if any."""
    return session.scalar(select(CardBinding).where(CardBinding.card_id == card_id,
                                                    CardBinding.status.in_(status_lists.CURRENT_BINDING)))


def create_code(session: Session, actor: Actor, member_id: int) -> IssuedCode:
    """A one-time code for the member to activate her live card on a phone; earlier open codes stop working.

    Raises:
        NotFound: The member is unknown or outside the officer's scope.
        Conflict: ``no_active_card``: she has no active card to bind.
    """
    actor.require_write()
    member = get_member(session, actor, member_id)
    card = cards.current_card(session, member.id)
    if card is None or card.status != "active":
        raise Conflict("the member has no active card to activate on a phone", code="no_active_card")
    now = utcnow()
    session.execute(update(BindingCode).where(BindingCode.member_id == member.id, BindingCode.used_at.is_(None))
                    .values(used_at=now))
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    row = BindingCode(member_id=member.id, code_hash=_code_hash(member.id, code), created_by_id=actor.id,
                      created_at=now, expires_at=now + CODE_LIFETIME, attempts=0)
    session.add(row)
    session.flush()
    audit.record(session, actor, "card_binding.code", target_type="member", target_id=member.id,
                 chapter_path=member.chapter.path, details={"code_id": row.id})
    session.commit()
    return IssuedCode(code, row.expires_at)


def _b64url(value: Any, field: str, size: int) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size or not isinstance(value, str) or len(value) != (size * 4 + 2) // 3:
        raise ValidationFailed(f"public_key.{field} must be {size} bytes in unpadded base64url",
                               details=[{"field": f"public_key.{field}", "code": "invalid"}])
    return raw


def holder_key_from_jwk(jwk: Mapping[str, Any]) -> HolderKey:
    """The phone's public key from its JWK (RFC 8037 OKP/Ed25519 or RFC 7518 EC/P-256 with x and y).

    Raises:
        ValidationFailed: Any other key, a wrong length, or a P-256 point that is not on the curve.
    """
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "OKP" and crv == "Ed25519" and set(jwk) <= {"kty", "crv", "x", "alg", "key_ops", "ext"}:
        return HolderKey(ALG_EDDSA, _b64url(jwk.get("x"), "x", 32))
    if kty == "EC" and crv == "P-256" and set(jwk) <= {"kty", "crv", "x", "y", "alg", "key_ops", "ext"}:
        x, y = _b64url(jwk.get("x"), "x", 32), _b64url(jwk.get("y"), "y", 32)
        try:
            ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                          ec.SECP256R1()).public_key()
        except ValueError as exc:
            raise ValidationFailed("public_key is not a point of P-256",
                                   details=[{"field": "public_key", "code": "invalid"}]) from exc
        return HolderKey(ALG_ES256, x + y)
    raise ValidationFailed("public_key must be an Ed25519 (OKP) or P-256 (EC) public JWK",
                           details=[{"field": "public_key", "code": "unsupported_key"}])


def _use_code(session: Session, member: Member, code: str) -> BindingCode | None:
    """The member's open code, marked used, if ``code`` is it; otherwise None, and a wrong code counts as a try
    (the last one burns it)."""
    now = utcnow()
    row = session.scalar(select(BindingCode).where(BindingCode.member_id == member.id, BindingCode.used_at.is_(None))
                         .order_by(BindingCode.id.desc()).limit(1).with_for_update())
    if row is None or row.expires_at <= now:
        return None
    if code.isascii() and code.isdigit() and len(code) == CODE_DIGITS and hmac.compare_digest(
            row.code_hash, _code_hash(member.id, code)):
        row.used_at = now
        return row
    row.attempts += 1
    if row.attempts >= MAX_CODE_ATTEMPTS:
        row.used_at = now
    return None


def bind(session: Session, keyring: KeyRing, token: str, *, code: str, public_key: Mapping[str, Any],
         list_size: int, request_id: str | None = None) -> NewBinding:
    """Bind the member's active card to the phone whose public key this is; her previous phone is superseded.

    Args:
        session: The request's session; the call commits.
        keyring: The card key signs the bound credential.
        token: The member's ``/m/`` link token.
        code: The one-time code an officer gave her.
        public_key: The phone's public key as a JWK (the private key never leaves the phone).
        list_size: The size of a new status list, should one be opened.
        request_id: For the audit trail.

    Returns:
        The binding and the bound credential.

    Raises:
        NotFound: The link is unknown or revoked. Conflict: ``no_active_card``. ValidationFailed: ``invalid_code``
            or an unusable key.
    """
    link = member_links.resolve(session, token, request_id=request_id)
    member = link.member
    holder = holder_key_from_jwk(public_key)
    card = cards.current_card(session, member.id)
    if card is None or card.status != "active":
        raise Conflict("there is no active card to activate on this phone", code="no_active_card")
    used = _use_code(session, member, code)
    if used is None:
        # The try is counted even though the activation fails; the answer is the same for every wrong code.
        session.commit()
        raise ValidationFailed("the activation code is wrong or has expired; ask your chapter for a new one",
                               code="invalid_code", details=[{"field": "code", "code": "invalid_code"}])
    previous = current_binding(session, card.id)
    if previous is not None:
        status_lists.set_binding_status(session, previous, "superseded", ended_by="other_phone")
        session.flush()
    status_list, index = status_lists.allocate_slot(session, list_size)
    _key, signer = keyring.active_signer(session, "card")
    claims = dataclasses.replace(parse_credential(card.credential).claims, status_list=status_list.id,
                                 status_index=index)
    binding = CardBinding(card_id=card.id, status="active", status_list_id=status_list.id, status_index=index,
                          created_at=utcnow())
    session.add(binding)
    session.flush()
    audit.record(session, _link_actor(member, request_id), "card_binding.create", target_type="card",
                 target_id=card.card_id, chapter_path=member.chapter.path,
                 details={"member_id": member.id, "binding_id": binding.id, "code_id": used.id,
                          "superseded": previous.id if previous else None, "algorithm": holder.algorithm})
    credential = sign_bound_credential(claims, holder, signer)
    session.commit()
    return NewBinding(binding, credential)


def page_binding(session: Session, token: str, *, request_id: str | None = None) -> CardBinding | None:
    """The current binding of the member's current card, for her page (which compares it with the one it holds).

    Raises:
        NotFound: The link is unknown or revoked.
    """
    member = member_links.resolve(session, token, request_id=request_id).member
    card = cards.current_card(session, member.id)
    return None if card is None else current_binding(session, card.id)


def _deactivate(session: Session, actor: Actor, member: Member, ended_by: str) -> int | None:
    card = cards.current_card(session, member.id)
    binding = None if card is None else current_binding(session, card.id)
    if binding is None:
        return None
    status_lists.set_binding_status(session, binding, "revoked", ended_by=ended_by)
    audit.record(session, actor, "card_binding.deactivate", target_type="card", target_id=binding.card.card_id,
                 chapter_path=member.chapter.path,
                 details={"member_id": member.id, "binding_id": binding.id, "by": ended_by})
    session.commit()
    return binding.id


def deactivate_by_member(session: Session, token: str, *, request_id: str | None = None) -> int | None:
    """The member's one tap: her live card stops working (the printed card is untouched); returns the binding id
    ended, None when there was none.

    Raises:
        NotFound: The link is unknown or revoked.
    """
    member = member_links.resolve(session, token, request_id=request_id).member
    return _deactivate(session, _link_actor(member, request_id), member, "member")


def deactivate_by_officer(session: Session, actor: Actor, member_id: int) -> int | None:
    """An officer's one click (a lost phone): the member's live card stops working; returns the binding id ended.

    Raises:
        NotFound: The member is unknown or outside the officer's scope.
    """
    actor.require_write()
    return _deactivate(session, actor, get_member(session, actor, member_id), "officer")


def member_binding(session: Session, actor: Actor, member_id: int) -> CardBinding | None:
    """The member's current binding, for her page in /admin."""
    card = cards.current_card(session, get_member(session, actor, member_id).id)
    return None if card is None else current_binding(session, card.id)
