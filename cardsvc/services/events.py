"""Events of a chapter: creation, rules, invite lists, closing; eligibility of a member.

Every event has a scope, recorded at creation (``Event.scope_chapter_id``): the chapter subtree its eligible members
lie in. For ``subtree`` and ``invite`` events it is the event's chapter; for ``all`` events the creating officer's
scope root, so that "all" means "all of my scope" (the whole tree, None, only for a creator who sees the whole tree).
An officer sees an event only when her scope holds both its chapter and its scope, so nobody reads a roster, a
report or a check-in answer naming a member outside her own scope. One rule decides eligibility everywhere:
:func:`is_eligible` for one member (server check-in) and :func:`restrict_to_eligible` as a filter (rosters of event
bundles, which door stations decide with offline, and the reports).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVarTuple

from sqlalchemy import ColumnElement, Join, Select, and_, func, join, literal, select
from sqlalchemy.orm import Session, aliased

from cardsvc.db.models import Chapter, Event, EventInvite, Member
from cardsvc.errors import Conflict, NotFound, ValidationFailed
from cardsvc.services import audit
from cardsvc.services.chapters import get_chapter
from cardsvc.services.context import Actor, PathColumn, subtree_condition
from verification.entry import ELIGIBILITY, LIVE_POLICIES, MODES, EntryRules

MAX_INVITE_NUMBERS = 5000
Columns = TypeVarTuple("Columns")


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
    live_policy: str = "any"


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
    if spec.live_policy not in LIVE_POLICIES:
        raise _problem("live_policy", "invalid", f"live_policy must be one of {', '.join(LIVE_POLICIES)}")
    scope = chapter if spec.eligibility != "all" else _scope_root(session, actor)
    event = Event(
        chapter_id=chapter.id, title=title, venue=" ".join(spec.venue.split()), starts_at=spec.starts_at,
        ends_at=spec.ends_at, checkin_opens_at=opens, checkin_closes_at=closes, eligibility=spec.eligibility,
        mode=spec.mode, allow_reentry=spec.allow_reentry, status="open", created_by_id=actor.id,
        scope_chapter_id=scope.id if scope else None, live_policy=spec.live_policy,
    )
    session.add(event)
    session.flush()
    audit.record(session, actor, "event.create", target_type="event", target_id=event.id, chapter_path=chapter.path,
                 details={"title": title, "eligibility": spec.eligibility, "mode": spec.mode,
                          "live_policy": spec.live_policy})
    session.commit()
    return event


def _scope_root(session: Session, actor: Actor) -> Chapter | None:
    """The chapter at the root of the actor's scope (None: she sees the whole tree)."""
    if actor.scope_path is None:
        return None
    root = session.scalar(select(Chapter).where(Chapter.path == actor.scope_path))
    if root is None:  # Her chapter moved since her request began: refuse rather than guess.
        raise NotFound("chapter not found")
    return root


def scope_path(event: Event) -> str | None:
    """The materialised path of the event's scope (None: the whole tree)."""
    return event.scope_chapter.path if event.scope_chapter is not None else None


def get_event(session: Session, actor: Actor, event_id: int) -> Event:
    """An event whose chapter and scope both lie in the actor's scope (404 otherwise, like a missing one)."""
    event = session.get(Event, event_id)
    if event is None or not (actor.sees(event.chapter.path) and actor.sees(scope_path(event))):
        raise NotFound("event not found")
    return event


def list_events(session: Session, actor: Actor, *, chapter_id: int | None, limit: int, offset: int
                ) -> Sequence[Event]:
    scope = aliased(Chapter)
    stmt = (select(Event).join(Event.chapter).outerjoin(scope, scope.id == Event.scope_chapter_id)
            .where(actor.scope_condition(Chapter.path), actor.scope_condition(scope.path)))
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
    """Add members to an invite-list event; returns how many were newly invited.

    Raises:
        NotFound: The event, or members that do not exist or lie outside the officer's scope or the event's scope
            (all named in the message, like missing ones).
    """
    event = _invite_event(session, actor, event_id)
    members = session.scalars(
        select(Member).join(Member.chapter).where(Member.id.in_(member_ids), actor.scope_condition(Chapter.path),
                                                  _in_scope(Chapter.path, scope_path(event)))
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
    of no member the officer may see within the event's scope, in the list's order)."""

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
        .where(Member.id.in_(set(found.values())), actor.scope_condition(Chapter.path),
               _in_scope(Chapter.path, scope_path(event)))
    )) if found else set()
    ids = list(dict.fromkeys(member_id for member_id in found.values() if member_id in visible))
    invited = invite(session, actor, event.id, ids) if ids else 0
    return InviteReport(invited, len(ids) - invited,
                        [number for number in wanted if found.get(number) not in visible])


@dataclass(frozen=True, slots=True)
class EventRules:
    """What a check-in decides with: the event, its chapter's path, its rules (with the cards it accepts) and its
    scope (None: the whole tree)."""

    id: int
    chapter_path: str
    rules: EntryRules
    scope_path: str | None

    @classmethod
    def of(cls, event: Event) -> EventRules:
        return cls(event.id, event.chapter.path, event.rules, scope_path(event))

    def in_scope(self, chapter_path: str) -> bool:
        """Whether a chapter lies in the event's scope: a member outside it is never named to anyone at the event."""
        return self.scope_path is None or chapter_path.startswith(self.scope_path)


def is_eligible(session: Session, event: EventRules, member_id: int, member_status: str, chapter_path: str) -> bool:
    """Whether a member (her status and chapter path) may check in to ``event``: active, in the event's scope, and
    invited to an invite-list event. :func:`restrict_to_eligible` is the same rule as a filter."""
    if member_status != "active" or not event.in_scope(chapter_path):
        return False
    return event.rules.eligibility != "invite" or session.get(EventInvite, (event.id, member_id)) is not None


def _in_scope(path: PathColumn, scope: str | None) -> ColumnElement[bool]:
    return literal(True) if scope is None else subtree_condition(path, scope)


def members_in_scope(event: EventRules) -> Join:
    """``Member`` joined with her ``Chapter``, only inside the event's scope (:meth:`EventRules.in_scope` as a
    join): joined to check-in rows, a row recorded before the scope was enforced that names a member outside it
    names nobody (an inner join drops it, an outer join leaves the member's columns empty)."""
    return join(Member, Chapter, and_(Chapter.id == Member.chapter_id, _in_scope(Chapter.path, event.scope_path)))


def restrict_to_eligible(stmt: Select[*Columns], event: EventRules) -> Select[*Columns]:
    """Limit a statement over ``Member`` joined with its ``Chapter`` to the members eligible for ``event``: the rule
    of :func:`is_eligible` as a filter, so that rosters, counts and joins run in the database."""
    stmt = stmt.where(Member.status == "active", _in_scope(Chapter.path, event.scope_path))
    if event.rules.eligibility == "invite":
        return stmt.join(EventInvite, and_(EventInvite.member_id == Member.id, EventInvite.event_id == event.id))
    return stmt


def eligible_members(session: Session, event: Event) -> Sequence[Member]:
    """The members eligible for ``event``, by given name."""
    stmt = restrict_to_eligible(select(Member).join(Member.chapter), EventRules.of(event))
    return session.scalars(stmt.order_by(Member.sort_key, Member.id)).unique().all()
