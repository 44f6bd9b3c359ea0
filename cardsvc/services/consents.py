"""Consent per member and purpose (Law 91/2025): recorded with how and by whom, withdrawable, never edited."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import CONSENT_METHODS, CONSENT_PURPOSES, Consent
from cardsvc.errors import Conflict, NotFound, ValidationFailed
from cardsvc.services import audit
from cardsvc.services.context import Actor
from cardsvc.services.members import get_member


def list_consents(session: Session, actor: Actor, member_id: int) -> Sequence[Consent]:
    member = get_member(session, actor, member_id)
    return session.scalars(select(Consent).where(Consent.member_id == member.id).order_by(Consent.id)).all()


def has_active_consent(session: Session, member_id: int, purpose: str) -> bool:
    return session.scalar(
        select(Consent.id).where(
            Consent.member_id == member_id, Consent.purpose == purpose, Consent.withdrawn_at.is_(None)
        )
    ) is not None


def record_consent(
    session: Session, actor: Actor, member_id: int, *, purpose: str, method: str, evidence_ref: str | None
) -> Consent:
    actor.require_write()
    if purpose not in CONSENT_PURPOSES:
        raise ValidationFailed(f"purpose must be one of {', '.join(CONSENT_PURPOSES)}",
                               details=[{"field": "purpose", "code": "unknown_purpose"}])
    if method not in CONSENT_METHODS:
        raise ValidationFailed(f"method must be one of {', '.join(CONSENT_METHODS)}",
                               details=[{"field": "method", "code": "unknown_method"}])
    member = get_member(session, actor, member_id)
    if has_active_consent(session, member.id, purpose):
        raise Conflict("the member has already consented to this purpose", code="consent_exists")
    consent = Consent(member_id=member.id, purpose=purpose, method=method, evidence_ref=evidence_ref,
                      recorded_by_id=actor.id, recorded_at=utcnow())
    session.add(consent)
    session.flush()
    audit.record(session, actor, "consent.record", target_type="consent", target_id=consent.id,
                 chapter_path=member.chapter.path,
                 details={"member_id": member.id, "purpose": purpose, "method": method})
    session.commit()
    return consent


def withdraw_consent(
    session: Session, actor: Actor, member_id: int, consent_id: int, *, note: str | None
) -> Consent:
    actor.require_write()
    member = get_member(session, actor, member_id)
    consent = session.get(Consent, consent_id)
    if consent is None or consent.member_id != member.id:
        raise NotFound("consent not found")
    if consent.withdrawn_at is not None:
        raise Conflict("this consent was already withdrawn", code="consent_withdrawn")
    consent.withdrawn_at = utcnow()
    consent.withdrawn_by_id = actor.id
    consent.withdrawal_note = note
    audit.record(session, actor, "consent.withdraw", target_type="consent", target_id=consent.id,
                 chapter_path=member.chapter.path, details={"member_id": member.id, "purpose": consent.purpose})
    session.commit()
    return consent
