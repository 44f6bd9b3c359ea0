"""Members: create, correct, transfer, change status, search, and read ID and phone numbers (audited)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, false, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cardsvc.days import vietnam_today
from cardsvc.db.models import MEMBER_STATUSES, Chapter, Counter, Member, MemberStatusChange
from cardsvc.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from cardsvc.importing.files import RawRow
from cardsvc.importing.rows import MemberRow, RowProblem, format_member_number, validate_row
from cardsvc.normalize import given_name_sort_key, name_search_key, normalize_phone, search_terms
from cardsvc.security import PiiCipher
from cardsvc.services import audit
from cardsvc.services.cards import follow_member_status
from cardsvc.services.chapters import get_chapter
from cardsvc.services.context import Actor, subtree_condition
from cardsvc.services.pii import PiiView, clear_view, mask_phone, stored_value
from integrations.errors import InputError
from integrations.idnumber import mask_id_number

# Fields an officer may set through the API; the same validation as a row of an imported file applies.
MEMBER_FIELDS = (
    "member_number", "full_name", "birth_date", "gender", "id_number", "old_id_number", "phone", "join_date",
    "honorary",
)
MEMBER_NUMBER_LENGTH = 10
# Transitions out of "deceased" are corrections of a recording mistake: administrators only.
FINAL_STATUSES = frozenset({"deceased"})


def problems_to_details(problems: Sequence[RowProblem]) -> list[dict[str, Any]]:
    return [
        {
            "row": p.row, "field": p.column or None, "code": p.code, "severity": p.severity,
            "message": p.message_en, "message_vi": p.message_vi,
        }
        for p in problems
    ]


def validate_member_fields(values: Mapping[str, object], row: int = 0) -> tuple[MemberRow, list[RowProblem]]:
    """Validate one member's fields with exactly the rules used for imported rows; raise on any error."""
    raw = {key: value for key, value in values.items() if value is not None}
    if isinstance(raw.get("honorary"), bool):
        raw["honorary"] = "yes" if raw["honorary"] else "no"
    member_row, problems = validate_row(RawRow(number=row, values=raw))
    if member_row is None:
        errors = [p for p in problems if p.severity == "error"]
        raise ValidationFailed(
            "; ".join(f"{p.column or 'row'}: {p.message_en}" for p in errors),
            details=problems_to_details(problems),
        )
    return member_row, [p for p in problems if p.severity == "warning"]


def allocate_member_numbers(session: Session, count: int) -> list[str]:
    """Reserve ``count`` new member numbers (a block from the counter row; the row lock serialises allocation)."""
    if count <= 0:
        return []
    last = session.execute(
        update(Counter).where(Counter.name == "member_number").values(value=Counter.value + count)
        .returning(Counter.value)
    ).scalar_one()
    numbers = [format_member_number(sequence) for sequence in range(last - count + 1, last + 1)]
    # Fixed-width numbers sort like their sequence, so one range query finds any already taken.
    taken = set(session.scalars(
        select(Member.member_number).where(Member.member_number.between(numbers[0], numbers[-1]))
    ))
    if taken:
        # Numbers carried over from an older system may sit inside the sequence: skip past them.
        numbers = [n for n in numbers if n not in taken] + allocate_member_numbers(session, len(taken))
    return numbers


def apply_member_row(member: Member, row: MemberRow, cipher: PiiCipher) -> list[str]:
    """Copy validated fields onto a member (encrypting ID and phone numbers); return the names of the fields that
    changed."""
    changed: list[str] = []

    def put(field: str, value: object) -> None:
        if getattr(member, field) != value:
            setattr(member, field, value)
            changed.append(field)

    put("full_name", row.full_name)
    member.name_search = name_search_key(row.full_name)
    member.sort_key = given_name_sort_key(row.full_name)
    put("birth_date", row.birth_date)
    put("birth_date_precision", row.birth_date_precision)
    put("gender", row.gender)
    put("join_date", row.join_date)
    put("honorary", row.honorary)
    for field, value, masked in (
        ("id_number", row.id_number, _mask(row.id_number)),
        ("old_id_number", row.old_id_number, _mask(row.old_id_number)),
        ("phone", row.phone, mask_phone(row.phone) if row.phone else None),
    ):
        index = cipher.blind_index(field, value) if value else None
        if getattr(member, f"{field}_index") != index:
            setattr(member, f"{field}_index", index)
            setattr(member, f"{field}_ciphertext", cipher.encrypt(field, value) if value else None)
            setattr(member, f"{field}_masked", masked)
            changed.append(field)
    return changed


def _mask(value: str | None) -> str | None:
    return mask_id_number(value) if value else None


def _duplicate_conflict(session: Session, actor: Actor, index_field: str, index: str) -> Conflict:
    column = getattr(Member, index_field)
    existing = session.scalar(select(Member).where(column == index))
    details: dict[str, Any] = {"field": index_field.removesuffix("_index")}
    if existing is not None and actor.sees(existing.chapter.path):
        details["member_id"] = existing.id
        details["member_number"] = existing.member_number
    return Conflict("a member with this ID number is already registered", code="duplicate_member", details=details)


def _ensure_unique(session: Session, actor: Actor, member: Member) -> None:
    for index_field in ("id_number_index", "old_id_number_index"):
        index = getattr(member, index_field)
        if index is None:
            continue
        clash = session.scalar(
            select(Member.id).where(getattr(Member, index_field) == index, Member.id != (member.id or 0))
        )
        if clash is not None:
            raise _duplicate_conflict(session, actor, index_field, index)
    clash = session.scalar(
        select(Member.id).where(Member.member_number == member.member_number, Member.id != (member.id or 0))
    )
    if clash is not None:
        raise Conflict("this member number is already used", code="duplicate_member_number",
                       details={"field": "member_number"})


def _writable_chapter(session: Session, actor: Actor, chapter_id: int) -> Chapter:
    chapter = get_chapter(session, actor, chapter_id)
    if chapter.status != "active":
        raise Conflict("that chapter was merged into another one; use the chapter it was merged into",
                       code="chapter_merged", details={"merged_into_id": chapter.merged_into_id})
    return chapter


def create_member(
    session: Session, actor: Actor, cipher: PiiCipher, *, chapter_id: int, fields: Mapping[str, object]
) -> tuple[Member, list[RowProblem]]:
    actor.require_write()
    chapter = _writable_chapter(session, actor, chapter_id)
    row, warnings = validate_member_fields(fields)
    member = Member(chapter_id=chapter.id, status="active", member_number=row.member_number or "")
    apply_member_row(member, row, cipher)
    if not member.member_number:
        member.member_number = allocate_member_numbers(session, 1)[0]
    _ensure_unique(session, actor, member)
    member.status_changed_on = row.join_date or vietnam_today()
    session.add(member)
    try:
        session.flush()
    except IntegrityError as exc:  # A concurrent request registered the same person first.
        session.rollback()
        raise Conflict("a member with this ID number or member number already exists",
                       code="duplicate_member") from exc
    session.add(MemberStatusChange(member_id=member.id, from_status=None, to_status="active",
                                   effective_on=member.status_changed_on, officer_id=actor.id))
    audit.record(session, actor, "member.create", target_type="member", target_id=member.id,
                 chapter_path=chapter.path, details={"member_number": member.member_number})
    session.commit()
    return member, warnings


def get_member(session: Session, actor: Actor, member_id: int) -> Member:
    member = session.get(Member, member_id)
    if member is None or not actor.sees(member.chapter.path):
        raise NotFound("member not found")
    return member


def member_by_number(session: Session, actor: Actor, member_number: str) -> Member:
    """The member with this number in the officer's scope; a merged record's number gives the member it was merged
    into. Raises NotFound otherwise (outside the scope too)."""
    member = session.scalar(select(Member).where(Member.member_number == member_number.strip()))
    if member is not None and member.merged_into_id is not None:
        member = session.get(Member, member.merged_into_id)
    if member is None or not actor.sees(member.chapter.path):
        raise NotFound("member not found")
    return member


def _require_not_merged(member: Member) -> None:
    """A record merged into another member's is closed: changes go to the member it was merged into."""
    if member.merged_into_id is not None:
        raise Conflict("this record was merged into another member's; change that member instead",
                       code="member_merged", details={"merged_into_id": member.merged_into_id})


def update_member(
    session: Session, actor: Actor, cipher: PiiCipher, member_id: int, changes: Mapping[str, object]
) -> tuple[Member, list[RowProblem]]:
    """Correct a member's data and/or transfer her to another chapter in scope (``chapter_id`` in changes)."""
    actor.require_write()
    member = get_member(session, actor, member_id)
    _require_not_merged(member)
    current: dict[str, object] = {
        "member_number": member.member_number,
        "full_name": member.full_name,
        "birth_date": str(member.birth_date.year) if member.birth_date_precision == "year" else member.birth_date,
        "gender": member.gender,
        "id_number": cipher.decrypt("id_number", member.id_number_ciphertext)
        if member.id_number_ciphertext else None,
        "old_id_number": cipher.decrypt("old_id_number", member.old_id_number_ciphertext)
        if member.old_id_number_ciphertext else None,
        "phone": stored_value(member, "phone", cipher),
        "join_date": member.join_date,
        "honorary": member.honorary,
    }
    wanted = {key: value for key, value in changes.items() if key in MEMBER_FIELDS}
    if "member_number" in wanted and wanted["member_number"] != member.member_number:
        raise ValidationFailed("a member number never changes",
                               details=[{"field": "member_number", "code": "immutable"}])
    current.update(wanted)
    row, warnings = validate_member_fields(current)
    changed = apply_member_row(member, row, cipher)
    old_path = member.chapter.path
    new_chapter_id = changes.get("chapter_id")
    if isinstance(new_chapter_id, int) and new_chapter_id != member.chapter_id:
        chapter = _writable_chapter(session, actor, new_chapter_id)
        member.chapter_id = chapter.id
        member.chapter = chapter
        changed.append("chapter_id")
    _ensure_unique(session, actor, member)
    if changed:
        details: dict[str, Any] = {"fields": changed}
        if "chapter_id" in changed:
            details["from_chapter_path"] = old_path
        audit.record(session, actor, "member.update", target_type="member", target_id=member.id,
                     chapter_path=member.chapter.path, details=details)
        if "chapter_id" in changed:
            audit.record(session, actor, "member.transfer_out", target_type="member", target_id=member.id,
                         chapter_path=old_path, details={"to_chapter_id": member.chapter_id})
    session.commit()
    return member, warnings


def change_status(
    session: Session, actor: Actor, member_id: int, *, status: str, reason: str | None, effective_on: date | None
) -> Member:
    actor.require_write()
    if status not in MEMBER_STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(MEMBER_STATUSES)}",
                               details=[{"field": "status", "code": "invalid_status"}])
    member = get_member(session, actor, member_id)
    _require_not_merged(member)
    if member.status == status:
        raise Conflict(f"the member is already {status}", code="status_unchanged")
    if member.status in FINAL_STATUSES and actor.role != "admin":
        raise PermissionDenied("only an administrator can correct a member recorded as deceased",
                               code="admin_only")
    if status != "active" and not (reason and reason.strip()):
        raise ValidationFailed("a reason is required", details=[{"field": "reason", "code": "required"}])
    today = vietnam_today()
    effective = effective_on or today
    if effective > today:
        raise ValidationFailed("the date cannot be in the future",
                               details=[{"field": "effective_on", "code": "future_date"}])
    session.add(MemberStatusChange(member_id=member.id, from_status=member.status, to_status=status,
                                   reason=reason, effective_on=effective, officer_id=actor.id))
    audit.record(session, actor, "member.status", target_type="member", target_id=member.id,
                 chapter_path=member.chapter.path, details={"from": member.status, "to": status})
    member.status = status
    member.status_reason = reason.strip() if reason else None
    member.status_changed_on = effective
    follow_member_status(session, actor, member)
    session.commit()
    return member


def status_history(session: Session, actor: Actor, member_id: int) -> Sequence[MemberStatusChange]:
    member = get_member(session, actor, member_id)
    return session.scalars(
        select(MemberStatusChange).where(MemberStatusChange.member_id == member.id)
        .order_by(MemberStatusChange.id)
    ).all()


@dataclass(frozen=True)
class RevealedIdentity:
    member: Member
    pii: PiiView


def reveal_identity(session: Session, actor: Actor, cipher: PiiCipher, member_id: int) -> RevealedIdentity:
    """The member's ID and phone numbers and full birth date in clear, for officers holding the ``pii``
    permission; every call is audited."""
    member = get_member(session, actor, member_id)
    if not actor.has("pii"):
        raise PermissionDenied("reading ID numbers needs the pii permission", code="pii_permission_required")
    revealed = RevealedIdentity(member, clear_view(member, cipher))
    audit.record(session, actor, "member.pii_read", target_type="member", target_id=member.id,
                 chapter_path=member.chapter.path,
                 details={"fields": ["id_number", "old_id_number", "phone", "birth_date"]})
    session.commit()
    return revealed


@dataclass(frozen=True)
class MemberSearch:
    query: str | None = None
    chapter_id: int | None = None
    subtree: bool = True
    status: str | None = None
    member_number: str | None = None
    id_number: str | None = None
    phone: str | None = None
    limit: int = 50
    offset: int = 0


def _number_prefix(digits: str) -> ColumnElement[bool]:
    """Member numbers starting with ``digits``, as a range of the fixed-width numbers (the unique index serves it,
    whatever the database's collation does with LIKE)."""
    if len(digits) > MEMBER_NUMBER_LENGTH:
        return false()
    low = digits.ljust(MEMBER_NUMBER_LENGTH, "0")
    following = str(int(digits) + 1).zfill(len(digits))
    if len(following) > len(digits):  # 999…: no number above
        return Member.member_number >= low
    return and_(Member.member_number >= low, Member.member_number < following.ljust(MEMBER_NUMBER_LENGTH, "0"))


def search_members(session: Session, actor: Actor, cipher: PiiCipher, q: MemberSearch) -> Sequence[Member]:
    """Members in scope. Name search is accent-insensitive and matches whole words in any order (the last word
    as a prefix, for type-ahead); a query of digits finds the member numbers that start with them; ID and phone
    numbers match exactly through their blind index (audited). Records merged into another member's are left out,
    except when asked for by member number (the number still resolves to them)."""
    stmt = select(Member).join(Member.chapter).where(actor.scope_condition(Chapter.path))
    if not q.member_number:
        stmt = stmt.where(Member.merged_into_id.is_(None))
    if q.chapter_id is not None:
        chapter = get_chapter(session, actor, q.chapter_id)
        stmt = stmt.where(subtree_condition(Chapter.path, chapter.path) if q.subtree
                          else Member.chapter_id == chapter.id)
    if q.status:
        stmt = stmt.where(Member.status == q.status)
    if q.member_number:
        stmt = stmt.where(Member.member_number == q.member_number.strip())
    if q.id_number:
        digits = "".join(ch for ch in q.id_number if ch.isdigit())
        field = "old_id_number" if len(digits) == 9 else "id_number"
        stmt = stmt.where(getattr(Member, f"{field}_index") == cipher.blind_index(field, digits))
        audit.record(session, actor, "member.search_by_id_number", target_type="member", target_id=None,
                     chapter_path=actor.scope_path, details={"field": field})
        session.commit()
    if q.phone:
        stmt = stmt.where(Member.phone_index == cipher.blind_index("phone", _lookup_phone(q.phone)))
        audit.record(session, actor, "member.search_by_phone", target_type="member", target_id=None,
                     chapter_path=actor.scope_path, details={"field": "phone"})
        session.commit()
    digits = "".join((q.query or "").split())
    if digits.isascii() and digits.isdigit():
        # The first digits of a member number, as read off a card. Never a name (names hold no digits).
        return session.scalars(stmt.where(_number_prefix(digits)).order_by(Member.member_number)
                               .limit(q.limit).offset(q.offset)).unique().all()
    if q.query:
        terms = search_terms(q.query)
        if not terms:
            return []
        for position, term in enumerate(terms):
            last = position == len(terms) - 1
            # search_terms drops '%', '_' and '\\'; autoescape keeps a term literal even if that ever changes.
            stmt = stmt.where(Member.name_search.contains(f" {term}" if last else f" {term} ", autoescape=True))
    stmt = stmt.order_by(Member.sort_key, Member.id).limit(q.limit).offset(q.offset)
    return session.scalars(stmt).unique().all()


def _lookup_phone(raw: str) -> str:
    try:
        return normalize_phone(raw)
    except InputError as exc:
        raise ValidationFailed(exc.message_en, details=[{"field": "phone", "code": exc.code, "message": exc.message_en,
                                                        "message_vi": exc.message_vi}]) from exc
