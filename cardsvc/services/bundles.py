"""The signed offline bundle a door station downloads for its event (verified by
:func:`verification.event_bundle.verify_event_bundle` with the pinned trust anchor only).

It holds what the station needs to decide offline exactly as the server would: the event's rules, the trust bundle
(card keys), the status lists of the roster's current cards, the eligible roster and the accepted check-ins so far.
The roster carries member number, display name and chapter only: never ID numbers, birth dates or phones.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import Card, CardBinding, Chapter, Checkin, Event, Member
from cardsvc.errors import Conflict, NotFound, PermissionDenied
from cardsvc.services.checkins import CheckinCaller
from cardsvc.services.events import EventRules, get_event, members_in_scope, restrict_to_eligible
from cardsvc.services.keys import KeyRing
from cardsvc.services.publication import issuer, status_list_uri, trust_bundle
from cardsvc.services.reports import scan_time
from cardsvc.services.status_lists import StatusListCache
from cardsvc.settings import Settings
from issuance.jws import sign_jwt
from verification.event_bundle import EVENT_BUNDLE_TYP

# The bundle stays usable a day after check-in closes (late sync of offline scans), and never longer than a week.
GRACE_AFTER_CLOSE = timedelta(days=1)
MAX_LIFETIME = timedelta(days=7)
CURRENT_CARD_STATUSES = ("active", "suspended")


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _event_for(session: Session, caller: CheckinCaller, event_id: int) -> Event:
    if caller.station is not None:
        if caller.station.event_id != event_id:
            raise PermissionDenied("this station is registered for another event", code="wrong_event")
        event = session.get(Event, event_id)
        if event is None:
            raise NotFound("event not found")
        caller.station.last_seen_at = utcnow()
        return event
    assert caller.actor is not None
    # Reading only: viewers in scope may download it too (get_event answers 404 outside the scope).
    return get_event(session, caller.actor, event_id)


def _roster(session: Session, rules: EventRules) -> tuple[list[dict[str, Any]], set[int]]:
    """Eligible members by given name with their current cards, and the status lists those cards use."""
    members = session.execute(
        restrict_to_eligible(
            select(Member.id, Member.member_number, Member.full_name, Chapter.code, Chapter.name.label("chapter"))
            .select_from(Member).join(Chapter, Chapter.id == Member.chapter_id),
            rules,
        ).order_by(Member.sort_key, Member.id)
    ).all()
    cards: dict[int, list[str]] = {}
    list_ids: set[int] = set()
    card_rows = session.execute(
        restrict_to_eligible(
            select(Card.member_id, Card.card_id, Card.status_list_id)
            .select_from(Card).join(Member, Member.id == Card.member_id)
            .join(Chapter, Chapter.id == Member.chapter_id),
            rules,
        ).where(Card.status.in_(CURRENT_CARD_STATUSES)).order_by(Card.id)
    ).all()
    for member_id, card_id, list_id in card_rows:
        cards.setdefault(member_id, []).append(card_id)
        list_ids.add(list_id)
    # The status lists of those cards' live-card bindings (a live code names its binding's slot).
    list_ids.update(session.scalars(
        restrict_to_eligible(
            select(CardBinding.status_list_id).select_from(CardBinding).join(Card, Card.id == CardBinding.card_id)
            .join(Member, Member.id == Card.member_id).join(Chapter, Chapter.id == Member.chapter_id),
            rules,
        ).where(Card.status.in_(CURRENT_CARD_STATUSES), CardBinding.status.in_(CURRENT_CARD_STATUSES)).distinct()
    ))
    roster = [
        {"member_number": m.member_number, "name": m.full_name, "chapter_code": m.code, "chapter_name": m.chapter,
         "card_ids": cards.get(m.id, []), "photo_url": None}
        for m in members
    ]
    return roster, list_ids


def _checkins(session: Session, rules: EventRules) -> list[dict[str, Any]]:
    """The accepted scans so far, of members in the event's scope (entries recorded before the scope was enforced
    may name others)."""
    rows = session.execute(
        select(Member.member_number, Checkin.seq, Checkin.direction, Checkin.scanned_at, Checkin.received_at,
               Checkin.station_id)
        .join(members_in_scope(rules), Member.id == Checkin.member_id)
        .where(Checkin.event_id == rules.id, Checkin.result == "ok")
        .order_by(Checkin.received_at, Checkin.id)
    ).all()
    return [
        {"member_number": r.member_number, "seq": r.seq, "direction": r.direction,
         "at": _iso(scan_time(r.scanned_at, r.received_at)), "station_id": r.station_id}
        for r in rows
    ]


def event_bundle(session: Session, caller: CheckinCaller, event_id: int, *, keyring: KeyRing, settings: Settings,
                 status_cache: StatusListCache) -> str:
    """The signed offline bundle of an event (``typ: cardsvc-event+jwt``, signed by the trust key).

    Args:
        session: The request's session; the call commits (a station's ``last_seen_at``).
        caller: A station of this event (device token) or an officer whose scope holds the event.
        event_id: The event.
        keyring: Signers; the active trust key signs the bundle, its trust bundle and status lists.
        settings: Issuer URL and lifetimes.
        status_cache: The shared cache of signed status-list tokens.

    Returns:
        The compact JWT.

    Raises:
        PermissionDenied: ``wrong_event`` for a station of another event.
        NotFound: No such event, or outside the officer's scope.
        Conflict: ``no_signing_key`` without an active trust key; ``checkin_over`` more than a day after check-in
            closed (the bundle would already have expired).
    """
    event = _event_for(session, caller, event_id)
    now = utcnow()
    # Taken before the trust bundle is signed, so the event bundle never outlives the trust bundle inside it.
    expires = min(event.checkin_closes_at + GRACE_AFTER_CLOSE, now + MAX_LIFETIME,
                  now + timedelta(days=settings.trust_bundle_days))
    if expires <= now:
        raise Conflict("check-in for this event closed more than a day ago", code="checkin_over")
    _key, signer = keyring.active_signer(session, "trust")
    rules = EventRules.of(event)
    roster, list_ids = _roster(session, rules)
    status_lists = {
        str(list_id): status_cache.get(session, signer, list_id=list_id, uri=status_list_uri(settings, list_id),
                                       ttl=settings.status_list_ttl_seconds).token
        for list_id in sorted(list_ids)
    }
    payload = {
        "iss": issuer(settings),
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "event": {
            "id": event.id, "title": event.title, "venue": event.venue, "starts_at": _iso(event.starts_at),
            "ends_at": _iso(event.ends_at), **event.rules.to_json(),
        },
        "trust_bundle": trust_bundle(session, keyring, settings),
        "status_lists": status_lists,
        "roster": roster,
        "checkins": _checkins(session, rules),
    }
    token = sign_jwt(signer, payload, typ=EVENT_BUNDLE_TYP)
    session.commit()
    return token
