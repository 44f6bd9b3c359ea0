"""The card lifecycle: issue (superseding the current card), suspend, reinstate, revoke, renew; all audited."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cardsvc.days import vietnam_today
from cardsvc.db.models import REVOCATION_REASONS, Card, Member
from cardsvc.errors import Conflict, NotFound, ValidationFailed
from cardsvc.normalize import normalize_name
from cardsvc.services import audit, status_lists, wallet_outbox
from cardsvc.services.chapters import CHAPTER_CODE_RE
from cardsvc.services.context import Actor
from cardsvc.services.keys import KeyRing
from integrations.errors import InputError
from issuance.credential import new_card_id, sign_credential
from verification.format import CardClaims

CURRENT = ("active", "suspended")


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _member(session: Session, actor: Actor, member_id: int) -> Member:
    member = session.get(Member, member_id)
    if member is None or not actor.sees(member.chapter.path):
        raise NotFound("member not found")
    return member


def get_card(session: Session, actor: Actor, card_id: str) -> Card:
    card = session.scalar(select(Card).where(Card.card_id == card_id.lower()[:16]))
    if card is None or not actor.sees(card.member.chapter.path):
        raise NotFound("card not found")
    return card


def member_cards(session: Session, actor: Actor, member_id: int) -> Sequence[Card]:
    member = _member(session, actor, member_id)
    return session.scalars(select(Card).where(Card.member_id == member.id).order_by(Card.version)).all()


def current_card(session: Session, member_id: int) -> Card | None:
    return session.scalar(select(Card).where(Card.member_id == member_id, Card.status.in_(CURRENT)))


def _unfit_for_card(field: str, code: str, message_en: str, message_vi: str) -> Conflict:
    return Conflict(f"this member's data cannot go on a card: {message_en}", code="card_data_invalid",
                    details=[{"field": field, "code": code, "message": message_en, "message_vi": message_vi}])


def check_card_data(member: Member) -> None:
    """Refuse a member whose stored name or chapter code the card cannot carry (data stored before today's rules,
    or changed behind the service's back), before anything is written.

    Raises:
        Conflict: ``card_data_invalid``; ``details`` name the field, with the reason in English and Vietnamese.
    """
    check_card_fields(member.full_name, member.chapter.code)


def check_card_fields(full_name: str, chapter_code: str) -> None:
    """:func:`check_card_data` on the stored values themselves (the batch engine reads them without the ORM)."""
    try:
        normalize_name(full_name)
    except InputError as exc:
        raise _unfit_for_card("full_name", exc.code, exc.message_en, exc.message_vi) from exc
    if not unicodedata.is_normalized("NFC", full_name):
        raise _unfit_for_card("full_name", "not_nfc", "The name is stored decomposed (not NFC); save it again.",
                              "Họ tên đang được lưu ở dạng tách dấu (không phải NFC); hãy lưu lại họ tên.")
    if not CHAPTER_CODE_RE.fullmatch(chapter_code):
        raise _unfit_for_card(
            "chapter_code", "invalid_chapter_code",
            "The chapter code is not 1 to 32 letters A-Z, digits, '.', '_' or '-'; change the chapter's code.",
            "Mã chi hội không phải 1 đến 32 chữ cái A-Z, chữ số, '.', '_' hoặc '-'; hãy đổi mã chi hội.",
        )


def issue_in_transaction(
    session: Session,
    actor: Actor,
    keyring: KeyRing,
    member: Member,
    *,
    validity_years: int,
    list_size: int,
    today: date,
    reason: str,
    job_id: int | None = None,
) -> Card:
    """Sign and store a new card for an active member inside the caller's transaction; ``today`` is the issue day
    in Vietnam. Refusals (:func:`check_card_data`, ``member_not_active``) come before anything is written."""
    if member.status != "active":
        raise Conflict(f"cards are issued to active members only (this member is {member.status})",
                       code="member_not_active",
                       details=[{"field": "status", "code": "member_not_active",
                                 "message": "Cards are issued to active members only.",
                                 "message_vi": "Chỉ cấp thẻ cho hội viên đang sinh hoạt."}])
    check_card_data(member)
    key, signer = keyring.active_signer(session, "card")
    # The open status list's row lock comes first, before any card row of this member is touched: every issuance
    # takes its locks in the same order, so concurrent issuances (a batch and an officer) queue instead of deadlocking.
    status_list, index = status_lists.allocate_slot(session, list_size)
    previous = current_card(session, member.id)
    if previous is not None:
        status_lists.set_card_status(session, previous, "superseded", reason=reason, note=None)
        session.flush()
    version = (session.scalar(select(func.max(Card.version)).where(Card.member_id == member.id)) or 0) + 1
    expires = add_years(today, validity_years) - timedelta(days=1)
    claims = CardClaims(
        card_id=new_card_id(), member_number=member.member_number, display_name=member.full_name,
        chapter_code=member.chapter.code, card_version=version, issued_on=today, expires_on=expires,
        status_list=status_list.id, status_index=index,
    )
    card = Card(
        card_id=claims.card_id.hex(), member_id=member.id, version=version, signing_key_id=key.id, issued_on=today,
        expires_on=expires, status="active", status_list_id=status_list.id, status_index=index,
        credential=sign_credential(claims, signer), job_id=job_id,
    )
    session.add(card)
    session.flush()
    wallet_outbox.card_changed(session, member.id)
    audit.record(session, actor, "card.issue", target_type="card", target_id=card.card_id,
                 chapter_path=member.chapter.path,
                 details={"member_id": member.id, "version": version, "kid": key.kid, "reason": reason,
                          "superseded": previous.card_id if previous else None})
    return card


def issue_card(session: Session, actor: Actor, keyring: KeyRing, member_id: int, *, validity_years: int,
               list_size: int, reason: str = "issue", today: date | None = None) -> Card:
    """Issue a card dated today in Vietnam (or ``today``); a current card is superseded (one current card per
    member, enforced by the database)."""
    actor.require_write()
    member = _member(session, actor, member_id)
    try:
        card = issue_in_transaction(session, actor, keyring, member, validity_years=validity_years, list_size=list_size,
                      today=today or vietnam_today(), reason=reason)
        session.commit()
    except IntegrityError as exc:  # Two officers issued for the same member at the same moment.
        session.rollback()
        raise Conflict("another card was issued for this member at the same time; reload and retry",
                       code="concurrent_issue") from exc
    return card


def renew_card(session: Session, actor: Actor, keyring: KeyRing, card_id: str, *, validity_years: int,
               list_size: int, today: date | None = None) -> Card:
    """A new card version with a fresh validity period; the renewed card is superseded."""
    actor.require_write()
    card = get_card(session, actor, card_id)
    if card.status not in CURRENT:
        raise Conflict(f"only a current card can be renewed (this one is {card.status})", code="card_not_current")
    return issue_card(session, actor, keyring, card.member_id, validity_years=validity_years, list_size=list_size,
                      reason="renewal", today=today)


def _transition(session: Session, actor: Actor, card_id: str, *, allowed_from: tuple[str, ...], to: str,
                reason: str | None, note: str | None, action: str) -> Card:
    actor.require_write()
    card = get_card(session, actor, card_id)
    if card.status not in allowed_from:
        raise Conflict(f"a {card.status} card cannot be changed to {to}", code="invalid_transition")
    before = card.status
    status_lists.set_card_status(session, card, to, reason=reason, note=note)
    audit.record(session, actor, action, target_type="card", target_id=card.card_id,
                 chapter_path=card.member.chapter.path, details={"from": before, "to": to, "reason": reason})
    session.commit()
    return card


def suspend_card(session: Session, actor: Actor, card_id: str, *, note: str | None) -> Card:
    return _transition(session, actor, card_id, allowed_from=("active",), to="suspended", reason="suspended",
                       note=note, action="card.suspend")


def reinstate_card(session: Session, actor: Actor, card_id: str, *, note: str | None) -> Card:
    return _transition(session, actor, card_id, allowed_from=("suspended",), to="active", reason=None, note=note,
                       action="card.reinstate")


def revoke_card(session: Session, actor: Actor, card_id: str, *, reason: str, note: str | None) -> Card:
    if reason not in REVOCATION_REASONS:
        raise ValidationFailed(f"reason must be one of {', '.join(REVOCATION_REASONS)}",
                               details=[{"field": "reason", "code": "invalid_reason"}])
    return _transition(session, actor, card_id, allowed_from=CURRENT, to="revoked", reason=reason, note=note,
                       action="card.revoke")


def follow_member_status(session: Session, actor: Actor, member: Member) -> None:
    """Keep the current card in step with the member: suspended with her, revoked when she left or died."""
    card = current_card(session, member.id)
    if card is None:
        return
    target = {"suspended": "suspended", "left": "revoked", "deceased": "revoked"}.get(member.status)
    if member.status == "active" and card.status == "suspended" and card.status_reason == "member_suspended":
        target = "active"
    if target is None or target == card.status:
        return
    reason = {"suspended": "member_suspended", "revoked": member.status, "active": None}[target]
    status_lists.set_card_status(session, card, target, reason=reason, note=None)
    action = {"suspended": "card.suspend", "revoked": "card.revoke", "active": "card.reinstate"}[target]
    audit.record(session, actor, action, target_type="card", target_id=card.card_id, chapter_path=member.chapter.path,
                 details={"reason": reason, "member_status": member.status})
