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
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, lazyload

from cardsvc.db.base import utcnow
from cardsvc.db.models import Card, Checkin, Event, Member, SigningKey, Station
from cardsvc.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from cardsvc.services import audit
from cardsvc.services.context import Actor
from cardsvc.services.events import get_event, is_eligible
from cardsvc.services.status_lists import STATUS_CODES
from verification.crypto import load_public_key
from verification.format import ALGORITHM_NAMES
from verification.trust import KeyStatus, TrustAnchor, TrustBundle, TrustedKey
from verification.verify import Verdict, payload_hash_of, verify

Source = Literal["qr_scanner", "qr_camera", "nfc", "manual"]
SOURCES = ("qr_scanner", "qr_camera", "nfc", "manual")
MAX_PAYLOAD_CHARS = 4096
# An offline station's scan time is trusted within these bounds; otherwise the server's clock decides.
MAX_SCAN_AGE = timedelta(days=2)
MAX_CLOCK_AHEAD = timedelta(minutes=5)
# A station's last_seen_at is refreshed at most this often: writing it on every scan would make every check-in of a
# station wait for the previous one's row lock.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)
ALGORITHM_NUMBERS = {name: number for number, name in ALGORITHM_NAMES.items()}
# Server reasons that mean the card (or its key) was withdrawn: an offline acceptance of it came after a revocation.
REVOCATION_REASONS = frozenset({"revoked", "suspended", "superseded", "key_retired"})
ConflictKind = Literal["accepted_at_two_stations", "accepted_after_revocation", "accepted_but_refused"]


@dataclass(frozen=True)
class CheckinRequest:
    source: str
    client_nonce: str
    payload: str | None = None
    payload_base64: str | None = None
    scanned_at: datetime | None = None
    member_id: int | None = None
    manual_reason: str | None = None
    offline: bool = False
    local_result: str | None = None
    local_reason: str | None = None


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

    @property
    def conflict(self) -> ConflictKind | None:
        """See :func:`conflict_of`."""
        row = self.checkin
        return conflict_of(row.offline, row.local_result, row.result, row.reason)


def conflict_of(offline: bool, local_result: str | None, result: str, reason: str | None) -> ConflictKind | None:
    """Whether a scan is an offline conflict: a station let the member in offline and the server refuses the scan.

    Returns:
        ``accepted_at_two_stations`` (the server already had an entry: the member was let in at two doors),
        ``accepted_after_revocation`` (the card was revoked, suspended or superseded, or its key retired, before the
        station's offline data knew it), ``accepted_but_refused`` for any other refusal; None when there is no
        conflict.
    """
    if not offline or local_result != "ok" or result != "error":
        return None
    if reason == "already_checked_in":
        return "accepted_at_two_stations"
    if reason in REVOCATION_REASONS:
        return "accepted_after_revocation"
    return "accepted_but_refused"


@dataclass(frozen=True)
class CheckinCaller:
    """Who submits: a station (device token) or an officer (manual check-in, or scanning from the admin pages)."""

    station: Station | None
    actor: Actor | None


# Parsing a public key costs more than the whole key query; keys never change, only their status does.
@lru_cache(maxsize=256)
def _trusted_key(kid: str, algorithm: int, spki: bytes, status: KeyStatus) -> TrustedKey:
    return TrustedKey(bytes.fromhex(kid), algorithm, load_public_key(algorithm, spki), status)


@lru_cache(maxsize=64)
def _anchor(kid: str, algorithm: int, spki: bytes) -> TrustAnchor:
    return TrustAnchor(bytes.fromhex(kid), algorithm, load_public_key(algorithm, spki))


def server_trust(session: Session) -> TrustBundle:
    """The server's own view of the trust bundle: every card key with its current status (read on every call,
    so a key marked compromised is refused at once)."""
    keys = session.execute(
        select(SigningKey.kid, SigningKey.purpose, SigningKey.algorithm, SigningKey.public_key, SigningKey.status)
    ).all()
    anchor_key = next((k for k in keys if k.purpose == "trust" and k.status == "active"), None)
    if anchor_key is None:
        raise Conflict("there is no active trust key; an administrator creates one with "
                       "`cardsvc keys create --purpose trust`", code="no_signing_key")
    card_keys = {
        bytes.fromhex(k.kid): _trusted_key(k.kid, ALGORITHM_NUMBERS[k.algorithm], k.public_key, k.status)
        for k in keys if k.purpose == "card"
    }
    anchor = _anchor(anchor_key.kid, ALGORITHM_NUMBERS[anchor_key.algorithm], anchor_key.public_key)
    now = int(utcnow().timestamp())
    return TrustBundle(issuer="self", issuer_name="", issued_at=now, expires_at=now + 60, keys=card_keys,
                       status_lists={}, anchor=anchor, token="")


class DatabaseStatus:
    """Card status straight from the cards table: the server is the source of truth, no list to cache.

    The card row is loaded whole (with its member and chapter, which the models join eagerly) and kept in
    :attr:`card`, so that the check-in needs no second query to find who holds the card.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self.card: Card | None = None

    def status(self, list_id: int, index: int) -> int | None:
        # The signing key row (with its encrypted private key) is not needed here: the verdict already names the key.
        self.card = self._session.scalar(
            select(Card).options(lazyload(Card.signing_key))
            .where(Card.status_list_id == list_id, Card.status_index == index)
        )
        return None if self.card is None else STATUS_CODES[self.card.status]


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
    if event.mode == "entry" and not event.allow_reentry:
        # One entry only: it is sequence 1, and the unique index refuses it if it exists (no query needed).
        return 1, "in"
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
    """Decide and record one scan. Denied scans are stored too (reason and payload hash, never the payload).

    A retry with a known nonce returns the stored answer (``replayed``) and writes nothing; the same nonce with
    another payload is refused with ``nonce_reused``.
    """
    event = _event_for(session, caller, event_id)
    if request.source not in SOURCES:
        raise ValidationFailed(f"source must be one of {', '.join(SOURCES)}",
                               details=[{"field": "source", "code": "invalid"}])
    if not request.offline and (request.local_result is not None or request.local_reason is not None):
        raise ValidationFailed("local_result and local_reason describe an offline decision: send offline=true",
                               details=[{"field": "offline", "code": "required"}])
    now = utcnow()
    scanned_at = _scan_time(request.scanned_at, now)
    manual = request.source == "manual"
    if manual:
        member, verdict_reason, card_id, digest = _manual_member(session, caller, event, request)
    else:
        scanned = _scanned_input(request)
        if len(scanned) > MAX_PAYLOAD_CHARS:
            digest = payload_hash_of(scanned)
            member, verdict_reason, card_id = None, "malformed", None
        else:
            status = DatabaseStatus(session)
            verdict = verify(scanned, server_trust(session), status, scanned_at)
            digest = verdict.payload_hash
            member, verdict_reason, card_id = _member_of(session, verdict, status.card)
    reason = verdict_reason or _event_rule(event, scanned_at)
    if reason is None and member is not None and not is_eligible(session, event, member):
        reason = "not_eligible"
    base = dict(event_id=event.id, member_id=member.id if member else None, card_id=card_id,
                source=request.source, station_id=caller.station.id if caller.station else None,
                officer_id=caller.actor.id if caller.actor else None, client_nonce=request.client_nonce,
                payload_hash=digest, scanned_at=request.scanned_at, received_at=now,
                manual_reason=request.manual_reason if manual else None, offline=request.offline,
                local_result=request.local_result, local_reason=request.local_reason)
    if reason is None and member is not None:
        entry = _next_entry(session, event, member)
        if entry is not None:
            row = _insert(session, dict(result="ok", reason=None, seq=entry[0], direction=entry[1], **base))
            if row is not None:
                _audit_manual(session, caller, event, row)
                _touch(caller, now)
                session.commit()
                return CheckinResult(row, member, None, replayed=False)
        # Refused by the rules or by the unique index: an earlier entry, or a retry of this very nonce (the denied
        # row below then collides with the nonce too and the stored answer is returned).
        reason = "already_checked_in"
    row = _insert(session, dict(result="error", reason=reason, seq=0, direction="in", **base))
    if row is None:  # Only the nonce can collide with a denied row: this scan was recorded before.
        replay = _replay(session, event, request, digest)
        if replay is not None:
            return replay
        raise Conflict("the scan could not be recorded; retry", code="conflict")
    _touch(caller, now)
    session.commit()
    first = _first_entry(session, event.id, member.id) if member and reason == "already_checked_in" else None
    return CheckinResult(row, member, first, replayed=False)


def _insert(session: Session, values: dict[str, Any]) -> Checkin | None:
    """Insert a check-in row unless a unique index (nonce, or member sequence among accepted rows) already holds
    one; None then. ``ON CONFLICT DO NOTHING`` waits for a concurrent uncommitted row like a plain insert would,
    but needs no savepoint: one round trip instead of three."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(Checkin).values(**values).on_conflict_do_nothing().returning(Checkin)
    row: Checkin | None = session.scalars(statement).first()
    return row


def _touch(caller: CheckinCaller, now: datetime) -> None:
    station = caller.station
    if station is not None and (station.last_seen_at is None or now - station.last_seen_at > LAST_SEEN_RESOLUTION):
        station.last_seen_at = now


def _event_for(session: Session, caller: CheckinCaller, event_id: int) -> Event:
    if caller.station is not None:
        if caller.station.event_id != event_id:
            raise PermissionDenied("this station is registered for another event", code="wrong_event")
        event = session.get(Event, event_id)
        if event is None:
            raise NotFound("event not found")
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


def _member_of(session: Session, verdict: Verdict, card: Card | None
               ) -> tuple[Member | None, str | None, str | None]:
    """The member behind a verdict (only when the signature verified) and the verdict's reason.

    ``card`` is the row the status check loaded by the credential's status slot; it is used when it is the card the
    credential names, otherwise (dates refused before the status check) the card is read by its id.
    """
    if verdict.claims is None:
        return None, verdict.reason, None
    card_id = verdict.claims.card_id.hex()
    if card is None or card.card_id != card_id:
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
