"""Check-in: one decision path for every source (scanner, camera, NFC, manual), exactly once per member.

The credential is checked by :func:`verification.verify.verify` — the same code a door station runs offline —
against the server's own keys and the cards' current status. Then the event rules apply (closed, window,
eligibility, entries). The database makes it exactly-once: a unique client nonce per event (retries return the
stored answer) and a unique (event, member, sequence) among accepted rows (two doors scanning the same card at the
same moment get one ``ok`` and one ``already_checked_in``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import Card, Checkin, Event, Member, SigningKey, Station
from cardsvc.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from cardsvc.services import audit
from cardsvc.services.context import Actor
from cardsvc.services.events import get_event, is_eligible
from cardsvc.services.keys import algorithm_number, public_key_of
from cardsvc.services.status_lists import STATUS_CODES
from verification.crypto import load_public_key
from verification.trust import KeyStatus, TrustAnchor, TrustBundle, TrustedKey
from verification.verify import Verdict, payload_hash_of, verify

Source = Literal["qr_scanner", "qr_camera", "nfc", "manual"]
SOURCES = ("qr_scanner", "qr_camera", "nfc", "manual")
MAX_PAYLOAD_CHARS = 4096
# An offline station's scan time is trusted within these bounds; otherwise the server's clock decides.
MAX_SCAN_AGE = timedelta(days=2)
MAX_CLOCK_AHEAD = timedelta(minutes=5)


@dataclass(frozen=True)
class CheckinRequest:
    source: str
    client_nonce: str
    payload: str | None = None
    payload_base64: str | None = None
    scanned_at: datetime | None = None
    member_id: int | None = None
    manual_reason: str | None = None


@dataclass(frozen=True)
class FirstEntry:
    at: datetime
    station_id: int | None
    station_name: str | None


@dataclass(frozen=True)
class CheckinResult:
    checkin: Checkin
    member: Member | None
    first: FirstEntry | None
    replayed: bool


@dataclass(frozen=True)
class CheckinCaller:
    """Who submits: a station (device token) or an officer (manual check-in, or scanning from the admin pages)."""

    station: Station | None
    actor: Actor | None


@lru_cache(maxsize=256)
def _trusted_key(kid: str, algorithm: int, spki: bytes, status: KeyStatus) -> TrustedKey:
    return TrustedKey(bytes.fromhex(kid), algorithm, load_public_key(algorithm, spki), status)


def server_trust(session: Session) -> TrustBundle:
    """The server's own view of the trust bundle: every card key with its current status."""
    keys = session.scalars(select(SigningKey)).all()
    anchor_key = next((k for k in keys if k.purpose == "trust" and k.status == "active"), None)
    if anchor_key is None:
        raise Conflict("there is no active trust key; an administrator creates one with "
                       "`cardsvc keys create --purpose trust`", code="no_signing_key")
    card_keys = {
        bytes.fromhex(k.kid): _trusted_key(k.kid, algorithm_number(k), k.public_key, k.status)
        for k in keys if k.purpose == "card"
    }
    anchor = TrustAnchor(bytes.fromhex(anchor_key.kid), algorithm_number(anchor_key), public_key_of(anchor_key))
    now = int(utcnow().timestamp())
    return TrustBundle(issuer="self", issuer_name="", issued_at=now, expires_at=now + 60, keys=card_keys,
                       status_lists={}, anchor=anchor, token="")


class DatabaseStatus:
    """Card status straight from the cards table: the server is the source of truth, no list to cache."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def status(self, list_id: int, index: int) -> int | None:
        value = self._session.scalar(
            select(Card.status).where(Card.status_list_id == list_id, Card.status_index == index)
        )
        return None if value is None else STATUS_CODES[value]


def _scan_time(requested: datetime | None, now: datetime) -> datetime:
    if requested is None:
        return now
    if requested.tzinfo is None:
        raise ValidationFailed("scanned_at needs a time zone", details=[{"field": "scanned_at", "code": "naive"}])
    if now - MAX_SCAN_AGE <= requested <= now + MAX_CLOCK_AHEAD:
        return requested
    return now


def _scanned_input(request: CheckinRequest) -> str | bytes:
    if request.payload is not None and request.payload_base64 is not None:
        raise ValidationFailed("send either payload or payload_base64",
                               details=[{"field": "payload", "code": "ambiguous"}])
    if request.payload_base64 is not None:
        try:
            return base64.b64decode(request.payload_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValidationFailed("payload_base64 is not base64",
                                   details=[{"field": "payload_base64", "code": "invalid"}]) from exc
    if request.payload is None:
        raise ValidationFailed("the scanned payload is missing", details=[{"field": "payload", "code": "required"}])
    return request.payload


def _first_entry(session: Session, event_id: int, member_id: int) -> FirstEntry | None:
    row = session.execute(
        select(Checkin.received_at, Checkin.scanned_at, Checkin.station_id, Station.name)
        .outerjoin(Station, Station.id == Checkin.station_id)
        .where(Checkin.event_id == event_id, Checkin.member_id == member_id, Checkin.result == "ok")
        .order_by(Checkin.seq).limit(1)
    ).first()
    if row is None:
        return None
    return FirstEntry(row.scanned_at or row.received_at, row.station_id, row.name)


def _replay(session: Session, event: Event, request: CheckinRequest, digest: str) -> CheckinResult | None:
    stored = session.scalar(
        select(Checkin).where(Checkin.event_id == event.id, Checkin.client_nonce == request.client_nonce)
    )
    if stored is None:
        return None
    if stored.payload_hash != digest:
        raise Conflict("this nonce was already used for another scan", code="nonce_reused")
    member = session.get(Member, stored.member_id) if stored.member_id else None
    first = _first_entry(session, event.id, member.id) if member and stored.reason == "already_checked_in" else None
    return CheckinResult(stored, member, first, replayed=True)


def _next_entry(session: Session, event: Event, member: Member) -> tuple[int, str] | None:
    """(sequence, direction) of this member's next accepted scan, or None when the rules refuse it."""
    last = session.execute(
        select(Checkin.seq, Checkin.direction)
        .where(Checkin.event_id == event.id, Checkin.member_id == member.id, Checkin.result == "ok")
        .order_by(Checkin.seq.desc()).limit(1)
    ).first()
    if last is None:
        return 1, "in"
    if event.mode == "entry_exit" and last.direction == "in":
        return last.seq + 1, "out"
    if event.allow_reentry:
        return last.seq + 1, "in"
    return None


def checkin(session: Session, caller: CheckinCaller, event_id: int, request: CheckinRequest) -> CheckinResult:
    """Decide and record one scan. Denied scans are stored too (reason and payload hash, never the payload)."""
    event = _event_for(session, caller, event_id)
    if request.source not in SOURCES:
        raise ValidationFailed(f"source must be one of {', '.join(SOURCES)}",
                               details=[{"field": "source", "code": "invalid"}])
    now = utcnow()
    manual = request.source == "manual"
    if manual:
        member, verdict_reason, card_id, digest = _manual_member(session, caller, event, request)
    else:
        scanned = _scanned_input(request)
        if len(scanned) > MAX_PAYLOAD_CHARS:
            digest = payload_hash_of(scanned)
            member, verdict_reason, card_id = None, "malformed", None
        else:
            verdict = verify(scanned, server_trust(session), DatabaseStatus(session), _scan_time(request.scanned_at,
                                                                                                 now))
            digest = verdict.payload_hash
            member, verdict_reason, card_id = _member_of(session, verdict)
    replay = _replay(session, event, request, digest)
    if replay is not None:
        return replay
    scanned_at = _scan_time(request.scanned_at, now)
    reason = verdict_reason or _event_rule(event, scanned_at)
    if reason is None and member is not None and not is_eligible(session, event, member):
        reason = "not_eligible"
    base = dict(event_id=event.id, member_id=member.id if member else None, card_id=card_id,
                source=request.source, station_id=caller.station.id if caller.station else None,
                officer_id=caller.actor.id if caller.actor else None, client_nonce=request.client_nonce,
                payload_hash=digest, scanned_at=request.scanned_at, received_at=now,
                manual_reason=request.manual_reason if manual else None)
    if reason is None and member is not None:
        entry = _next_entry(session, event, member)
        if entry is not None:
            row = Checkin(result="ok", reason=None, seq=entry[0], direction=entry[1], **base)
            if _insert(session, row):
                _audit_manual(session, caller, event, row)
                session.commit()
                return CheckinResult(row, member, None, replayed=False)
            replay = _replay(session, event, request, digest)
            if replay is not None:  # The same nonce arrived twice at the same moment.
                return replay
        reason = "already_checked_in"
    row = Checkin(result="error", reason=reason, seq=0, direction="in", **base)
    if not _insert(session, row):
        replay = _replay(session, event, request, digest)
        if replay is not None:
            return replay
        raise Conflict("the scan could not be recorded; retry", code="conflict")
    session.commit()
    first = _first_entry(session, event.id, member.id) if member and reason == "already_checked_in" else None
    return CheckinResult(row, member, first, replayed=False)


def _insert(session: Session, row: Checkin) -> bool:
    """Insert in a savepoint; False when a unique constraint (nonce or member sequence) refused it."""
    savepoint = session.begin_nested()
    session.add(row)
    try:
        savepoint.commit()
    except IntegrityError:
        savepoint.rollback()
        return False
    return True


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
    caller.actor.require_write()
    return get_event(session, caller.actor, event_id)


def _event_rule(event: Event, at: datetime) -> str | None:
    if event.status == "closed":
        return "event_closed"
    if not event.checkin_opens_at <= at <= event.checkin_closes_at:
        return "outside_window"
    return None


def _member_of(session: Session, verdict: Verdict) -> tuple[Member | None, str | None, str | None]:
    """The member behind a verdict (only when the signature verified) and the verdict's reason."""
    if verdict.claims is None:
        return None, verdict.reason, None
    card_id = verdict.claims.card_id.hex()
    card = session.scalar(select(Card).where(Card.card_id == card_id))
    if card is None:  # Signed by us but unknown here: treat as revoked rather than trust it.
        return None, "revoked", card_id
    return card.member, verdict.reason, card_id


def _manual_member(session: Session, caller: CheckinCaller, event: Event, request: CheckinRequest
                   ) -> tuple[Member, str | None, None, str]:
    if caller.actor is None:
        raise PermissionDenied("manual check-in is for officers", code="officer_only")
    if request.member_id is None or not (request.manual_reason and request.manual_reason.strip()):
        raise ValidationFailed("a manual check-in needs member_id and a reason",
                               details=[{"field": "manual_reason", "code": "required"}])
    member = session.get(Member, request.member_id)
    if member is None or (not caller.actor.sees(member.chapter.path) and event.eligibility == "subtree"):
        raise NotFound("member not found")
    return member, None, None, payload_hash_of(f"manual:{member.id}")


def _audit_manual(session: Session, caller: CheckinCaller, event: Event, row: Checkin) -> None:
    if row.source == "manual" and caller.actor is not None:
        audit.record(session, caller.actor, "checkin.manual", target_type="event", target_id=event.id,
                     chapter_path=event.chapter.path, details={"member_id": row.member_id})
