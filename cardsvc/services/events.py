"""Events of a chapter: creation, rules, invite lists, closing; eligibility of a member."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.db.models import Chapter, Event, EventInvite, Member
from cardsvc.errors import Conflict, NotFound, ValidationFailed
from cardsvc.services import audit
from cardsvc.services.chapters import get_chapter
from cardsvc.services.context import Actor, subtree_condition
from verification.entry import ELIGIBILITY, MODES, EntryRules


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


def invite(session: Session, actor: Actor, event_id: int, member_ids: Sequence[int]) -> int:
    """Add members (in scope) to an invite-list event; returns how many were newly invited."""
    actor.require_write()
    event = get_event(session, actor, event_id)
    if event.eligibility != "invite":
        raise Conflict("this event is not by invitation", code="not_invite_event")
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


@dataclass(frozen=True, slots=True)
class EventRules:
    """What a check-in decides with: the event, its chapter's path (for eligibility by subtree) and its rules."""

    id: int
    chapter_path: str
    rules: EntryRules

    @classmethod
    def of(cls, event: Event) -> EventRules:
        return cls(event.id, event.chapter.path, event.rules)


def is_eligible(session: Session, event: EventRules, member_id: int, member_status: str, chapter_path: str) -> bool:
    """Whether a member (her status and chapter path) may check in to ``event``: the rule of
    :func:`eligible_members` for one member."""
    if member_status != "active":
        return False
    if event.rules.eligibility == "all":
        return True
    if event.rules.eligibility == "subtree":
        return chapter_path.startswith(event.chapter_path)
    return session.get(EventInvite, (event.id, member_id)) is not None


def eligible_members(session: Session, event: Event) -> Sequence[Member]:
    stmt = select(Member).join(Member.chapter).where(Member.status == "active")
    if event.eligibility == "subtree":
        stmt = stmt.where(subtree_condition(Chapter.path, event.chapter.path))
    elif event.eligibility == "invite":
        stmt = stmt.join(EventInvite, (EventInvite.member_id == Member.id) & (EventInvite.event_id == event.id))
    return session.scalars(stmt.order_by(Member.sort_key, Member.id)).unique().all()
