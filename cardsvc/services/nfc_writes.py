"""NFC writes handed to a door station: an officer asks a registered station to write a card to a blank tag.

The officer's request (:func:`request_write`) is a pending :class:`NfcWriteRequest`; the station, polling with its
device token, gets its own pending requests with the credential (:func:`pending_for_station`), writes the tag, reads
it back and verifies it, and reports (:func:`complete_write`). Both ends are audited: ``card.nfc_write_requested``
by the officer, ``card.nfc_written`` or ``card.nfc_write_failed`` by the station.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import Card, Event, NfcWriteRequest, Station
from cardsvc.errors import Conflict, NotFound
from cardsvc.services import audit
from cardsvc.services.cards import current_card, get_card
from cardsvc.services.context import Actor
from cardsvc.services.events import get_event
from cardsvc.services.members import member_by_number

# Only a card that is valid now is worth a tag.
WRITABLE_CARD_STATUSES = ("active",)


@dataclass(frozen=True)
class PendingWrite:
    """A request as the station receives it: what to write."""

    request: NfcWriteRequest
    credential: bytes


def station_actor(station: Station, request_id: str | None = None) -> Actor:
    """The actor of a station's own calls (audit entries name the station; it has no scope of its own)."""
    return Actor("station", station.id, station.name[:64], "device", None, frozenset(), request_id)


def _station_of_event(session: Session, event: Event, station_id: int) -> Station:
    station = session.get(Station, station_id)
    if station is None or station.event_id != event.id:
        raise NotFound("station not found")
    return station


def request_write(session: Session, actor: Actor, event_id: int, station_id: int, card_id: str, *,
                  lock: bool) -> NfcWriteRequest:
    """Ask a station of an event to write a card to the next blank tag put on its reader.

    Raises:
        PermissionDenied: A read-only account.
        NotFound: The event, the station (of this event) or the card is unknown or outside the officer's scope.
        Conflict: ``station_not_active`` (revoked, or never set up) or ``card_not_active``.
    """
    actor.require_write()
    event = get_event(session, actor, event_id)
    station = _station_of_event(session, event, station_id)
    card = get_card(session, actor, card_id)
    if station.status != "active":
        raise Conflict("the station is not active: set it up (or register a new one) first",
                       code="station_not_active")
    if card.status not in WRITABLE_CARD_STATUSES:
        raise Conflict(f"the card is {card.status}: only an active card is written to a tag", code="card_not_active")
    request = NfcWriteRequest(station_id=station.id, card_id=card.card_id, lock=lock, status="pending",
                              requested_by_id=actor.id, requested_at=utcnow())
    session.add(request)
    session.flush()
    audit.record(session, actor, "card.nfc_write_requested", target_type="card", target_id=card.card_id,
                 chapter_path=card.member.chapter.path,
                 details={"request_id": request.id, "event_id": event.id, "station_id": station.id, "lock": lock})
    session.commit()
    return request


def request_write_for_member(session: Session, actor: Actor, event_id: int, station_id: int, member_number: str, *,
                             lock: bool) -> NfcWriteRequest:
    """:func:`request_write` for the current card of the member with this number (an officer at the event types
    the number from the member's paper card or finds her by name).

    Raises:
        NotFound: No member with that number in the officer's scope (and as :func:`request_write`).
        Conflict: ``card_not_active``: she has no card in use (and as :func:`request_write`).
    """
    actor.require_write()
    member = member_by_number(session, actor, member_number)
    card = current_card(session, member.id)
    if card is None:
        raise Conflict("the member has no card in use: issue one first", code="card_not_active")
    return request_write(session, actor, event_id, station_id, card.card_id, lock=lock)


def list_writes(session: Session, actor: Actor, event_id: int, station_id: int) -> Sequence[NfcWriteRequest]:
    """The write requests of a station (newest first), for the officer to follow them."""
    event = get_event(session, actor, event_id)
    station = _station_of_event(session, event, station_id)
    return session.scalars(
        select(NfcWriteRequest).where(NfcWriteRequest.station_id == station.id)
        .order_by(NfcWriteRequest.id.desc()).limit(200)
    ).all()


def pending_for_station(session: Session, station: Station) -> list[PendingWrite]:
    """The station's pending requests, oldest first, with the credentials to write.

    A request whose card stopped being active since it was made is left out (the officer sees it pending).
    """
    rows = session.execute(
        select(NfcWriteRequest, Card.credential)
        .join(Card, Card.card_id == NfcWriteRequest.card_id)
        .where(NfcWriteRequest.station_id == station.id, NfcWriteRequest.status == "pending",
               Card.status.in_(WRITABLE_CARD_STATUSES))
        .order_by(NfcWriteRequest.id)
    ).all()
    return [PendingWrite(request, bytes(credential)) for request, credential in rows]


def complete_write(session: Session, station: Station, request_id: int, *, ok: bool, error: str | None,
                   uid: str | None, request_ref: str | None = None) -> NfcWriteRequest:
    """Record the station's result of a write.

    Raises:
        NotFound: No such request for this station (another station's request is not found either).
        Conflict: ``nfc_write_completed``: the request already has a result.
    """
    request = session.get(NfcWriteRequest, request_id)
    if request is None or request.station_id != station.id:
        raise NotFound("write request not found")
    if request.status != "pending":
        raise Conflict("this write request already has a result", code="nfc_write_completed")
    card = session.scalar(select(Card).where(Card.card_id == request.card_id))
    assert card is not None  # the foreign key guarantees it
    request.status = "done" if ok else "failed"
    request.completed_at = utcnow()
    request.error = None if ok else (error or "unknown error")[:200]
    request.tag_uid = uid.lower() if uid else None
    audit.record(session, station_actor(station, request_ref), "card.nfc_written" if ok else "card.nfc_write_failed",
                 target_type="card", target_id=card.card_id, chapter_path=card.member.chapter.path,
                 details={"request_id": request.id, "station_id": station.id, "lock": request.lock,
                          "uid": request.tag_uid, "error": request.error})
    session.commit()
    return request
