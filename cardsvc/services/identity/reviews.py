"""Officer reviews of what the registry says: the registry never changes a member by itself. Mismatches, deaths and
registry notifications (death, change of name or ID number) open a review; accepting one goes through
``members.update_member`` or ``members.change_status``, so the change is validated and audited like any other."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.days import vietnam_today
from cardsvc.db.base import utcnow
from cardsvc.db.models import Chapter, IdentityReview, Member
from cardsvc.errors import Conflict, NotFound, ValidationFailed
from cardsvc.normalize import normalize_name
from cardsvc.security import PiiCipher
from cardsvc.services import audit, members
from cardsvc.services.context import Actor, subtree_condition
from cardsvc.services.identity.scope import scope_path
from integrations.errors import InputError

REVIEW_DECISIONS = {"accept": "accepted", "keep": "kept", "flag": "flagged"}
# A review whose registry values say what to change; the others only say that something differs.
ACCEPTABLE_KINDS = ("deceased", "name_change", "id_number_change")
# Associated data of the encrypted new ID number a notification carries (never valid for the members table).
NEW_ID_NUMBER_FIELD = "review_new_id_number"


def open_review(session: Session, actor: Actor, member: Member, *, source: str, kind: str,
                differing: list[str], values: dict[str, Any], item_id: int | None = None,
                notification_id: str | None = None, new_id_number: bytes | None = None) -> IdentityReview:
    """Open a review, or refresh the open review of the same member and kind (the queue holds no duplicates)."""
    review = session.scalar(select(IdentityReview).where(
        IdentityReview.member_id == member.id, IdentityReview.kind == kind, IdentityReview.status == "open"))
    if review is None:
        review = IdentityReview(member_id=member.id, source=source, kind=kind, status="open", created_at=utcnow())
        session.add(review)
    review.differing_fields = differing
    review.registry_values = values
    review.sync_item_id = item_id if item_id is not None else review.sync_item_id
    review.notification_id = notification_id if notification_id is not None else review.notification_id
    if new_id_number is not None:
        review.new_id_number_ciphertext = new_id_number
    session.flush()
    audit.record(session, actor, "identity.review_open", target_type="identity_review", target_id=review.id,
                 chapter_path=member.chapter.path,
                 details={"member_id": member.id, "source": source, "kind": kind, "fields": differing})
    return review


def list_reviews(session: Session, actor: Actor, *, chapter_id: int | None, status: str = "open",
                 limit: int = 100, before_id: int | None = None) -> Sequence[IdentityReview]:
    """Reviews of members in the subtree (default: the actor's scope), newest first."""
    _chapter, path = scope_path(session, actor, chapter_id)
    stmt = (select(IdentityReview).join(IdentityReview.member).join(Member.chapter)
            .where(IdentityReview.status == status).order_by(IdentityReview.id.desc()).limit(limit))
    if path is not None:
        stmt = stmt.where(subtree_condition(Chapter.path, path))
    if before_id is not None:
        stmt = stmt.where(IdentityReview.id < before_id)
    return session.scalars(stmt).all()


def _check_registry_name(name: object) -> None:
    """Refuse, before anything changes, a registry name that our rules (and the card) cannot take."""
    try:
        normalize_name(name if isinstance(name, str) else "")
    except InputError as exc:
        raise ValidationFailed(
            f"the registry's name cannot be stored: {exc.message_en} Keep ours or flag the review.",
            details=[{"field": "full_name", "code": exc.code,
                      "message": f"The registry's name cannot be stored: {exc.message_en}",
                      "message_vi": f"Không thể lưu họ tên theo Cơ sở dữ liệu quốc gia: {exc.message_vi}"}],
        ) from exc


def decide_review(session: Session, actor: Actor, cipher: PiiCipher, review_id: int, *, decision: str,
                  note: str | None, today: date | None = None) -> IdentityReview:
    """Record an officer's decision: ``accept`` the registry's value (the member changes through the members
    service), ``keep`` ours, or ``flag`` for follow-up. Audited in the same transaction as the change."""
    actor.require_write()
    if decision not in REVIEW_DECISIONS:
        raise ValidationFailed(f"decision must be one of {', '.join(REVIEW_DECISIONS)}",
                               details=[{"field": "decision", "code": "invalid_decision"}])
    review = session.get(IdentityReview, review_id)
    if review is None or not actor.sees(review.member.chapter.path):
        raise NotFound("review not found")
    if review.status != "open":
        raise Conflict(f"this review was already decided ({review.status})", code="review_decided")
    if decision == "accept" and review.kind not in ACCEPTABLE_KINDS:
        raise Conflict("the registry only said that this differs, not what it holds: correct the member's record "
                       "from her documents, or keep or flag", code="nothing_to_accept")
    if decision == "accept" and review.kind == "name_change":
        _check_registry_name(review.registry_values.get("full_name"))
    member = review.member
    review.status = REVIEW_DECISIONS[decision]
    review.decided_by_id = actor.id
    review.decided_at = utcnow()
    review.note = note.strip()[:500] if note and note.strip() else None
    audit.record(session, actor, "identity.review_decision", target_type="identity_review", target_id=review.id,
                 chapter_path=member.chapter.path,
                 details={"member_id": member.id, "decision": decision, "kind": review.kind,
                          "fields": review.differing_fields})
    if decision != "accept":
        session.commit()
        return review
    if review.kind == "name_change":
        members.update_member(session, actor, cipher, member.id, {"full_name": review.registry_values["full_name"]})
    elif review.kind == "id_number_change":
        if review.new_id_number_ciphertext is None:
            raise Conflict("the notification gave no new ID number", code="nothing_to_accept")
        new_number = cipher.decrypt(NEW_ID_NUMBER_FIELD, review.new_id_number_ciphertext)
        # The number now lives in the member's record only.
        review.new_id_number_ciphertext = None
        members.update_member(session, actor, cipher, member.id, {"id_number": new_number})
    elif member.status == "deceased":
        session.commit()
    else:
        died = review.registry_values.get("death_date")
        members.change_status(session, actor, member.id, status="deceased",
                              reason="Cơ sở dữ liệu quốc gia về dân cư: đã mất (registry: deceased)",
                              effective_on=date.fromisoformat(died) if died else (today or vietnam_today()))
    return review
