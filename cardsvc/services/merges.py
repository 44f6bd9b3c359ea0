"""Duplicate member records: finding probable duplicates, and merging a duplicate into the member who stays.

A woman is registered twice when two lists identify her differently — an old list with her 9-digit CMND number, a
later one with her 12-digit CCCD number: nothing matches the rows, so each becomes a member. Two records are
*probable duplicates* when they are in the same chapter with the same name (accent-insensitive: the same sort key)
and the same birth date, and no kind of ID number is held by both (held by both, the numbers differ: the blind
indexes are unique). Only an officer decides that they are one woman; :func:`merge_members` then merges them in one
transaction:

* The duplicate stays as a row, closed as ``left`` with ``merged_into_id`` pointing at the survivor (like a merged
  chapter), so that her member number still resolves and her status history stays; records merged into her earlier
  now point at the survivor too, so a merged record is always one step from the member who stays.
* Her ID numbers move to the survivor, who lacks them (a kind held by both refuses the merge); her phone and a
  full birth date go to a survivor who has none, and the earlier join date is kept. The duplicate keeps no ID number
  and no phone.
* Cards: the survivor's current card stays; the duplicate's current card is superseded (reason ``member_merged``),
  and all her cards then belong to the survivor, so one current card per member holds.
* Check-ins follow the survivor. Where both records were let in at the same event, the one let in first keeps her
  entries and the other's accepted scans become ``already_checked_in`` refusals — what one member scanning twice
  would have got — so one accepted entry per event, member and sequence holds.
* Consents follow the survivor, except the duplicate's active consent to a purpose the survivor already consents to
  (it stays on the closed record, so that one withdrawal of the survivor's consent is never undone by a second).
* Card links follow the survivor; the duplicate's active link is revoked when the survivor has one of her own.
* Invitations, identity checks, identity reviews and the registry publication follow the survivor, except an
  invitation to an event she is invited to, a check of a sync run that checked her, or a publication when she has
  one: invitations are deleted (they said the same), the others stay on the closed record as history.
* A batch job's failures (``job_failures``) stay on the closed record: they say why that record got no card.
* Her live-card activation codes (``binding_codes``) stay on the closed record, and one not yet used is burned: it
  would bind a phone to a record that no longer holds a card. The survivor's officer gives her a new one.
* Her wallet pass follows the survivor, and is updated to show the survivor's card, unless the survivor has a pass
  of her own; then it stays on the closed record and shows its superseded card.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from cardsvc.days import vietnam_today
from cardsvc.db.base import utcnow
from cardsvc.db.models import (
    BindingCode,
    Card,
    Chapter,
    Checkin,
    Consent,
    EventInvite,
    IdentityReview,
    IdentitySyncItem,
    Member,
    MemberLink,
    MembershipPublication,
    MemberStatusChange,
    WalletPass,
)
from cardsvc.errors import Conflict, NotFound, ValidationFailed
from cardsvc.services import audit, status_lists, wallet_outbox
from cardsvc.services.cards import current_card
from cardsvc.services.chapters import get_chapter
from cardsvc.services.context import Actor, subtree_condition

# The blind indexes of the two kinds of ID number, which identify a woman.
NUMBER_INDEXES = ("id_number_index", "old_id_number_index")
# A merged record is closed with this status; the status check constraint is left alone, because widening it
# rebuilds the members table on SQLite, which the foreign keys to members forbid once it holds data.
MERGED_STATUS = "left"


def numbers_compatible(first: Sequence[str | None], second: Sequence[str | None]) -> bool:
    """Whether two records, given as their :data:`NUMBER_INDEXES` values, may be one woman: no kind of ID number is
    held by both. :func:`_numbers_compatible` is the same rule in SQL."""
    return all(a is None or b is None for a, b in zip(first, second, strict=True))


def _numbers_compatible(first: type[Member], second: type[Member]) -> ColumnElement[bool]:
    return and_(*(or_(getattr(first, index).is_(None), getattr(second, index).is_(None))
                  for index in NUMBER_INDEXES))


@dataclass(frozen=True)
class DuplicatePair:
    """Two member records that are probably one woman; ``first`` is the older record."""

    first: Member
    second: Member


def probable_duplicates(
    session: Session, actor: Actor, *, chapter_id: int | None = None, member_id: int | None = None,
    limit: int = 50, offset: int = 0,
) -> list[DuplicatePair]:
    """Probable duplicates in the actor's scope (in ``chapter_id``'s subtree, or involving ``member_id``).

    Raises:
        NotFound: ``chapter_id`` is unknown or outside the actor's scope.
    """
    first, second = aliased(Member), aliased(Member)
    stmt = (
        select(first, second)
        .join(second, and_(second.chapter_id == first.chapter_id, second.sort_key == first.sort_key,
                           second.birth_date == first.birth_date, second.id > first.id))
        .join(Chapter, Chapter.id == first.chapter_id)
        .where(actor.scope_condition(Chapter.path), first.merged_into_id.is_(None),
               second.merged_into_id.is_(None), _numbers_compatible(first, second))
        .order_by(first.id, second.id).limit(limit).offset(offset)
    )
    if chapter_id is not None:
        stmt = stmt.where(subtree_condition(Chapter.path, get_chapter(session, actor, chapter_id).path))
    if member_id is not None:
        stmt = stmt.where(or_(first.id == member_id, second.id == member_id))
    return [DuplicatePair(a, b) for a, b in session.execute(stmt)]


@dataclass(frozen=True)
class MemberMerge:
    """What :func:`merge_members` did: the fields the survivor took, the rows moved per table, the card superseded
    and the check-ins turned into refusals."""

    survivor: Member
    duplicate: Member
    fields_taken: list[str]
    moved: dict[str, int]
    superseded_card_id: str | None
    checkins_refused: list[int]


def merge_members(session: Session, actor: Actor, survivor_id: int, duplicate_id: int) -> MemberMerge:
    """Merge the record ``duplicate_id`` into the member ``survivor_id`` (see the module docstring); audited as
    ``member.merge`` in both members' chapters.

    Raises:
        PermissionDenied: the actor may only read.
        NotFound: either member is unknown or outside the actor's scope.
        ValidationFailed: both ids are the same member.
        Conflict: either record was merged already (``member_merged``), both hold an ID number of the same kind
            (``id_numbers_differ``), or a concurrent change got in the way (``conflict``).
    """
    actor.require_write()
    if survivor_id == duplicate_id:
        raise ValidationFailed("a member cannot be merged with herself",
                               details=[{"field": "duplicate_id", "code": "same_member"}])
    survivor, duplicate = _lock_pair(session, actor, survivor_id, duplicate_id)
    for member in (survivor, duplicate):
        if member.merged_into_id is not None:
            raise Conflict("that member record was already merged into another one", code="member_merged",
                           details={"member_id": member.id, "merged_into_id": member.merged_into_id})
    if not numbers_compatible(_numbers(survivor), _numbers(duplicate)):
        raise Conflict("both records hold a different ID number of the same kind: they are two people, or one "
                       "number is wrong and must be corrected first", code="id_numbers_differ",
                       details={"fields": [index.removesuffix("_index") for index in NUMBER_INDEXES
                                           if getattr(survivor, index) and getattr(duplicate, index)]})
    try:
        merge = _merge(session, actor, survivor, duplicate)
        session.commit()
    except IntegrityError as exc:  # A concurrent issuance, check-in or link for one of the two.
        session.rollback()
        raise Conflict("one of the two members changed at the same time; reload and retry", code="conflict") from exc
    return merge


def _lock_pair(session: Session, actor: Actor, survivor_id: int, duplicate_id: int) -> tuple[Member, Member]:
    """Both members, row-locked in id order (two merges of the same records queue), each in the actor's scope."""
    found = {m.id: m for m in session.scalars(
        select(Member).where(Member.id.in_((survivor_id, duplicate_id))).order_by(Member.id)
        .with_for_update(of=Member).execution_options(populate_existing=True)
    )}
    for member_id in (survivor_id, duplicate_id):
        if member_id not in found or not actor.sees(found[member_id].chapter.path):
            raise NotFound("member not found")
    return found[survivor_id], found[duplicate_id]


def _numbers(member: Member) -> tuple[str | None, ...]:
    return tuple(getattr(member, index) for index in NUMBER_INDEXES)


def _merge(session: Session, actor: Actor, survivor: Member, duplicate: Member) -> MemberMerge:
    fields_taken = _take_missing_fields(session, survivor, duplicate)
    superseded = _supersede_current_card(session, actor, survivor, duplicate)
    refused = _refuse_second_entries(session, survivor.id, duplicate.id)
    moved = _move_history(session, survivor, duplicate)
    session.execute(update(Member).where(Member.merged_into_id == duplicate.id).values(merged_into_id=survivor.id))
    _close(session, actor, survivor, duplicate)
    details: dict[str, Any] = {
        "survivor_id": survivor.id, "duplicate_id": duplicate.id, "survivor_number": survivor.member_number,
        "duplicate_number": duplicate.member_number, "fields_taken": fields_taken, "moved": moved,
        "superseded_card": superseded, "checkins_refused": refused,
    }
    for path in dict.fromkeys((survivor.chapter.path, duplicate.chapter.path)):
        audit.record(session, actor, "member.merge", target_type="member", target_id=survivor.id, chapter_path=path,
                     details=details)
    return MemberMerge(survivor, duplicate, fields_taken, moved, superseded, refused)


def _move_history(session: Session, survivor: Member, duplicate: Member) -> dict[str, int]:
    """Re-point the duplicate's member-keyed rows to the survivor where every unique constraint allows it (see the
    module docstring); returns how many rows moved per table."""
    def of_survivor(column: Any, *where: ColumnElement[bool]) -> list[Any]:
        return list(session.scalars(select(column).where(column.class_.member_id == survivor.id, *where)))

    moved = {"cards": _move(session, Card, duplicate, survivor),
             "checkins": _move(session, Checkin, duplicate, survivor)}
    moved["event_invites"] = _move(session, EventInvite, duplicate, survivor,
                                   EventInvite.event_id.not_in(of_survivor(EventInvite.event_id)))
    session.execute(delete(EventInvite).where(EventInvite.member_id == duplicate.id))
    held = of_survivor(Consent.purpose, Consent.withdrawn_at.is_(None))
    moved["consents"] = _move(session, Consent, duplicate, survivor,
                              or_(Consent.withdrawn_at.is_not(None), Consent.purpose.not_in(held)))
    if of_survivor(MemberLink.id, MemberLink.revoked_at.is_(None)):
        session.execute(update(MemberLink).where(MemberLink.member_id == duplicate.id, MemberLink.revoked_at.is_(None))
                        .values(revoked_at=utcnow()))
    moved["member_links"] = _move(session, MemberLink, duplicate, survivor)
    moved["identity_sync_items"] = _move(session, IdentitySyncItem, duplicate, survivor,
                                         IdentitySyncItem.run_id.not_in(of_survivor(IdentitySyncItem.run_id)))
    moved["identity_reviews"] = _move(session, IdentityReview, duplicate, survivor)
    moved["membership_publications"] = (
        0 if of_survivor(MembershipPublication.id) else _move(session, MembershipPublication, duplicate, survivor))
    session.execute(update(BindingCode).where(BindingCode.member_id == duplicate.id, BindingCode.used_at.is_(None))
                    .values(used_at=utcnow()))
    moved["wallet_passes"] = 0 if of_survivor(WalletPass.id) else _move(session, WalletPass, duplicate, survivor)
    if moved["wallet_passes"]:
        wallet_outbox.card_changed(session, survivor.id)  # The pass on her phone now shows the survivor's card.
    return moved


def _take_missing_fields(session: Session, survivor: Member, duplicate: Member) -> list[str]:
    """Give the survivor the duplicate's ID numbers, phone, full birth date and earlier join date where useful; the
    duplicate keeps no ID number and no phone. Returns the names of the fields the survivor took."""
    fields: list[str] = []
    values: dict[str, Any] = {}
    for kind in ("id_number", "old_id_number"):
        columns = (f"{kind}_ciphertext", f"{kind}_index", f"{kind}_masked")
        if getattr(duplicate, f"{kind}_index") is not None:
            # The ciphertext's associated data is the column name, not the member: it moves as it is.
            values.update({column: getattr(duplicate, column) for column in columns})
            fields.append(kind)
        for column in columns:
            setattr(duplicate, column, None)
    phone_columns = ("phone_ciphertext", "phone_index", "phone_masked")
    if survivor.phone_index is None and duplicate.phone_index is not None:
        values.update({column: getattr(duplicate, column) for column in phone_columns})
        fields.append("phone")
    for column in phone_columns:
        setattr(duplicate, column, None)
    if duplicate.join_date is not None and (survivor.join_date is None or duplicate.join_date < survivor.join_date):
        values["join_date"] = duplicate.join_date
        fields.append("join_date")
    if (survivor.birth_date_precision, duplicate.birth_date_precision) == ("year", "day") \
            and survivor.birth_date.year == duplicate.birth_date.year:
        values.update(birth_date=duplicate.birth_date, birth_date_precision="day")
        fields.append("birth_date")
    # The blind indexes are unique: the duplicate lets go of her numbers before the survivor takes them.
    session.flush()
    for column, value in values.items():
        setattr(survivor, column, value)
    return fields


def _supersede_current_card(session: Session, actor: Actor, survivor: Member, duplicate: Member) -> str | None:
    card = current_card(session, duplicate.id)
    if card is None:
        return None
    status_lists.set_card_status(session, card, "superseded", reason="member_merged",
                                 note=f"merged into member {survivor.member_number}")
    audit.record(session, actor, "card.supersede", target_type="card", target_id=card.card_id,
                 chapter_path=duplicate.chapter.path,
                 details={"reason": "member_merged", "member_id": duplicate.id, "merged_into_id": survivor.id})
    session.flush()
    return card.card_id


def _move(session: Session, table: Any, duplicate: Member, survivor: Member, *only: ColumnElement[bool]) -> int:
    """Re-point the duplicate's rows of ``table`` (those matching ``only``) to the survivor; returns how many."""
    result = session.execute(
        update(table).where(table.member_id == duplicate.id, *only).values(member_id=survivor.id)
        .execution_options(synchronize_session="fetch")
    )
    return cast(CursorResult[Any], result).rowcount


def _refuse_second_entries(session: Session, survivor_id: int, duplicate_id: int) -> list[int]:
    """At events where both were let in, turn the accepted scans of the one let in later into refusals."""
    accepted = session.execute(
        select(Checkin.id, Checkin.event_id, Checkin.member_id, Checkin.scanned_at, Checkin.received_at)
        .where(Checkin.member_id.in_((survivor_id, duplicate_id)), Checkin.result == "ok")
    ).all()
    first_entry: dict[tuple[int, int], datetime] = {}
    for row in accepted:
        at = row.scanned_at or row.received_at
        key = (row.event_id, row.member_id)
        first_entry[key] = min(first_entry.get(key, at), at)
    later = {
        (event_id, duplicate_id if first_entry[(event_id, duplicate_id)] >= first_entry[(event_id, survivor_id)]
         else survivor_id)
        for event_id, member_id in first_entry if member_id == duplicate_id and (event_id, survivor_id) in first_entry
    }
    refused = sorted(row.id for row in accepted if (row.event_id, row.member_id) in later)
    if refused:
        session.execute(update(Checkin).where(Checkin.id.in_(refused))
                        .values(result="error", reason="already_checked_in", seq=0)
                        .execution_options(synchronize_session="fetch"))
    return refused


def _close(session: Session, actor: Actor, survivor: Member, duplicate: Member) -> None:
    """Close the duplicate's record as merged into the survivor, with a status history row."""
    reason = f"Gộp vào hội viên {survivor.member_number} (merged)"
    if duplicate.status != MERGED_STATUS:
        today = vietnam_today()
        session.add(MemberStatusChange(member_id=duplicate.id, from_status=duplicate.status, to_status=MERGED_STATUS,
                                       reason=reason, effective_on=today, officer_id=actor.id))
        duplicate.status = MERGED_STATUS
        duplicate.status_changed_on = today
    duplicate.status_reason = reason
    duplicate.merged_into_id = survivor.id
