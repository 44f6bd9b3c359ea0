"""Events of a chapter: creation, rules, invite lists, closing; eligibility of a member."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cardsvc.db.models import Chapter, Event, EventInvite, Member
from cardsvc.errors import Conflict, NotFound, ValidationFailed
from cardsvc.services import audit
from cardsvc.services.chapters import get_chapter
from cardsvc.services.context import Actor, subtree_condition

ELIGIBILITY = ("subtree", "invite", "all")
MAX_INVITE_NUMBERS = 5000
MODES = ("entry", "entry_exit")


@dataclass(frozen=True)
class EventSpec:
    chapter_id: int
    title: str
    venue: str
    starts_at: datetime
    ends_at: datetime
    checkin_opens_at: datetime | None = None
    checkin_closes_at: datetime | None = None
    eligibility: str = "subtree"
    mode: str = "entry"
    allow_reentry: bool = False


def _problem(field: str, code: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, details=[{"field": field, "code": code, "message": message}])


def create_event(session: Session, actor: Actor, spec: EventSpec) -> Event:
    """Create an event for a chapter in scope. The check-in window defaults to 2 hours before the start until
    the end."""
    actor.require_write()
    chapter = get_chapter(session, actor, spec.chapter_id)
    if chapter.status != "active":
        raise Conflict("that chapter was merged into another one", code="chapter_merged")
    title = " ".join(spec.title.split())
    if not title:
        raise _problem("title", "required", "the title is empty")
    if spec.ends_at <= spec.starts_at:
        raise _problem("ends_at", "before_start", "the event must end after it starts")
    opens = spec.checkin_opens_at or spec.starts_at - timedelta(hours=2)
    closes = spec.checkin_closes_at or spec.ends_at
    if closes <= opens:
        raise _problem("checkin_closes_at", "before_open", "check-in must close after it opens")
    if spec.eligibility not in ELIGIBILITY:
        raise _problem("eligibility", "invalid", f"eligibility must be one of {', '.join(ELIGIBILITY)}")
    if spec.mode not in MODES:
        raise _problem("mode", "invalid", f"mode must be one of {', '.join(MODES)}")
    event = Event(
        chapter_id=chapter.id, title=title, venue=" ".join(spec.venue.split()), starts_at=spec.starts_at,
        ends_at=spec.ends_at, checkin_opens_at=opens, checkin_closes_at=closes, eligibility=spec.eligibility,
        mode=spec.mode, allow_reentry=spec.allow_reentry, status="open", created_by_id=actor.id,
    )
    session.add(event)
    session.flush()
    audit.record(session, actor, "event.create", target_type="event", target_id=event.id, chapter_path=chapter.path,
                 details={"title": title, "eligibility": spec.eligibility, "mode": spec.mode})
    session.commit()
    return event


def get_event(session: Session, actor: Actor, event_id: int) -> Event:
    event = session.get(Event, event_id)
    if event is None or not actor.sees(event.chapter.path):
        raise NotFound("event not found")
    return event


def list_events(session: Session, actor: Actor, *, chapter_id: int | None, limit: int, offset: int
                ) -> Sequence[Event]:
    stmt = select(Event).join(Event.chapter).where(actor.scope_condition(Chapter.path))
    if chapter_id is not None:
        stmt = stmt.where(subtree_condition(Chapter.path, get_chapter(session, actor, chapter_id).path))
    return session.scalars(stmt.order_by(Event.starts_at.desc(), Event.id.desc()).limit(limit).offset(offset)).all()


def close_event(session: Session, actor: Actor, event_id: int) -> Event:
    actor.require_write()
    event = get_event(session, actor, event_id)
    if event.status == "closed":
        raise Conflict("the event is already closed", code="event_closed")
    event.status = "closed"
    audit.record(session, actor, "event.close", target_type="event", target_id=event.id,
                 chapter_path=event.chapter.path)
    session.commit()
    return event


def _invite_event(session: Session, actor: Actor, event_id: int) -> Event:
    actor.require_write()
    event = get_event(session, actor, event_id)
    if event.eligibility != "invite":
        raise Conflict("this event is not by invitation", code="not_invite_event")
    return event


def invite(session: Session, actor: Actor, event_id: int, member_ids: Sequence[int]) -> int:
    """Add members (in scope) to an invite-list event; returns how many were newly invited."""
    event = _invite_event(session, actor, event_id)
    members = session.scalars(
        select(Member).join(Member.chapter).where(Member.id.in_(member_ids), actor.scope_condition(Chapter.path))
    ).unique().all()
    missing = set(member_ids) - {m.id for m in members}
    if missing:
        raise NotFound(f"members not found: {', '.join(str(m) for m in sorted(missing))}")
    existing = set(session.scalars(select(EventInvite.member_id).where(EventInvite.event_id == event.id,
                                                                       EventInvite.member_id.in_(member_ids))))
    new = [m.id for m in members if m.id not in existing]
    session.add_all(EventInvite(event_id=event.id, member_id=member_id) for member_id in new)
    audit.record(session, actor, "event.invite", target_type="event", target_id=event.id,
                 chapter_path=event.chapter.path, details={"member_ids": new})
    session.commit()
    return len(new)


@dataclass(frozen=True)
class InviteReport:
    """What inviting a list of member numbers did: ``invited`` new, ``already`` on the list, ``not_found`` (numbers
    of no member the officer may see, in the list's order)."""

    invited: int
    already: int
    not_found: list[str]


def invite_member_numbers(session: Session, actor: Actor, event_id: int, numbers: Sequence[str]) -> InviteReport:
    """Invite the members with these numbers (pasted or from a file) that the officer may see; a merged record's
    number invites the member it was merged into. Numbers of nobody in scope are reported, not refused.

    Raises:
        ValidationFailed: No number, or more than :data:`MAX_INVITE_NUMBERS`.
        Conflict: ``not_invite_event``. NotFound: the event is outside the scope.
    """
    event = _invite_event(session, actor, event_id)
    wanted = list(dict.fromkeys(number.strip() for number in numbers if number.strip()))
    if not wanted or len(wanted) > MAX_INVITE_NUMBERS:
        code = "required" if not wanted else "too_many"
        raise ValidationFailed(f"give between 1 and {MAX_INVITE_NUMBERS} member numbers",
                               details=[{"field": "member_numbers", "code": code}])
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        rows = session.execute(
            select(Member.member_number, func.coalesce(Member.merged_into_id, Member.id))
            .where(Member.member_number.in_(wanted[start:start + 500]))
        ).all()
        found.update((number, member_id) for number, member_id in rows)
    visible = set(session.scalars(
        select(Member.id).join(Member.chapter)
        .where(Member.id.in_(set(found.values())), actor.scope_condition(Chapter.path))
    )) if found else set()
    ids = list(dict.fromkeys(member_id for member_id in found.values() if member_id in visible))
    invited = invite(session, actor, event.id, ids) if ids else 0
    return InviteReport(invited, len(ids) - invited,
                        [number for number in wanted if found.get(number) not in visible])


@dataclass(frozen=True, slots=True)
class EventRules:
    """What a check-in decides with: the event's state, window, eligibility and entry rules."""

    id: int
    chapter_path: str
    status: str
    checkin_opens_at: datetime
    checkin_closes_at: datetime
    eligibility: str
    mode: str
    allow_reentry: bool

    @classmethod
    def of(cls, event: Event) -> EventRules:
        return cls(event.id, event.chapter.path, event.status, event.checkin_opens_at, event.checkin_closes_at,
                   event.eligibility, event.mode, event.allow_reentry)


def is_eligible(session: Session, event: EventRules, member_id: int, member_status: str, chapter_path: str) -> bool:
    """Whether a member (her status and chapter path) may check in to ``event``: the rule of
    :func:`eligible_members` for one member."""
    if member_status != "active":
        return False
    if event.eligibility == "all":
        return True
    if event.eligibility == "subtree":
        return chapter_path.startswith(event.chapter_path)
    return session.get(EventInvite, (event.id, member_id)) is not None


def eligible_members(session: Session, event: Event) -> Sequence[Member]:
    stmt = select(Member).join(Member.chapter).where(Member.status == "active")
    if event.eligibility == "subtree":
        stmt = stmt.where(subtree_condition(Chapter.path, event.chapter.path))
    elif event.eligibility == "invite":
        stmt = stmt.join(EventInvite, (EventInvite.member_id == Member.id) & (EventInvite.event_id == event.id))
    return session.scalars(stmt.order_by(Member.sort_key, Member.id)).unique().all()
