"""Check-in: one decision path for every source (scanner, camera, NFC, manual), exactly once per member.

The credential is checked by :func:`verification.verify.verify` — the same code a door station runs offline —
against the server's own keys and the cards' current status. Then the event rules apply (the cards it accepts,
closed, window, eligibility, entries) through :func:`verification.entry.decide_entry`, the decision stations and
phones make offline.
The database makes it exactly-once: a unique client nonce per event (retries return the stored answer) and a unique
(event, member, sequence) among accepted rows (two doors scanning the same card at the same moment get one ``ok``
and one ``already_checked_in``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, lru_cache, partial
from typing import Any, Literal, cast

from sqlalchemy import ColumnElement, Engine, Table, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from cardsvc.db.base import utcnow
from cardsvc.db.models import (
    CONFIG_COUNTER,
    Card,
    CardBinding,
    Chapter,
    Checkin,
    Counter,
    Event,
    Member,
    SigningKey,
    Station,
)
from cardsvc.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from cardsvc.services import audit
from cardsvc.services.context import Actor
from cardsvc.services.events import EventRules, get_event, is_eligible
from cardsvc.services.stations import device_token_digest, require_active_station
from cardsvc.services.status_lists import STATUS_CODES
from verification.crypto import load_public_key
from verification.entry import EntryRules, PriorEntry, decide_entry
from verification.errors import CredentialError
from verification.format import ALGORITHM_NAMES, credential_from_text, parse_credential
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


@dataclass(frozen=True, slots=True)
class CheckinRow:
    """What the answer to a scan needs of its recorded row."""

    id: int
    result: str
    reason: str | None
    direction: str
    source: str
    received_at: datetime
    offline: bool
    local_result: str | None

    @classmethod
    def of(cls, row: Checkin) -> CheckinRow:
        return cls(row.id, row.result, row.reason, row.direction, row.source, row.received_at, row.offline,
                   row.local_result)


@dataclass(frozen=True, slots=True)
class MemberRef:
    """The card holder as the steward's screen and the event rules need her: no ID number, birth date or phone."""

    id: int
    full_name: str
    member_number: str
    status: str
    chapter_id: int
    chapter_code: str
    chapter_name: str
    chapter_path: str

    @classmethod
    def of(cls, member: Member) -> MemberRef:
        chapter = member.chapter
        return cls(member.id, member.full_name, member.member_number, member.status, chapter.id, chapter.code,
                   chapter.name, chapter.path)


@dataclass(frozen=True)
class CheckinResult:
    """The answer to a scan. ``live``: the scan was a live code (docs/card-format.md §8); ``id_check``: a printed
    card let in at a ``live_preferred`` event, to compare with an identity document. Both are False on replays."""

    checkin: CheckinRow
    member: MemberRef | None
    first: FirstEntry | None
    replayed: bool
    live: bool = False
    id_check: bool = False

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
    """Who asks for an event bundle: a station (device token) or an officer."""

    station: Station | None
    actor: Actor | None


@dataclass(frozen=True, slots=True)
class StationContext:
    """A station authenticated by its device token, with its event's rules and the card the scan names, read in
    one query (the door-rush path).

    ``generation`` is the check-in configuration counter (migration 0007) as that query saw it; ``slot`` the status
    slot named by the scanned credential (before its signature is checked: it only chooses which card row to read)
    and ``holder`` the card in that slot with its holder, if any.
    """

    station_id: int
    event_id: int
    last_seen_at: datetime | None
    event: EventRules
    generation: int | None
    slot: tuple[int, int]
    holder: CardHolder | None


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


def server_verifier(session: Session) -> Callable[[bytes], Verdict]:
    """Verify credential bytes (an NFC tag's) the way a check-in does: the server's keys, the cards' current
    status."""
    trust = server_trust(session)
    return lambda credential: verify(credential, trust, DatabaseStatus(session), utcnow())


class TrustCache:
    """:func:`server_trust` kept per process for station check-ins, rebuilt when the check-in configuration
    generation moves: the database bumps it whenever a signing key is added, changes status or goes (migration
    0007), so a compromised key is refused by the next scan on every worker, as if the keys were read every time."""

    def __init__(self) -> None:
        self._entry: tuple[int, TrustBundle] | None = None

    def bundle(self, session: Session, generation: int | None) -> TrustBundle:
        """The trust bundle for a scan whose station query saw ``generation`` (None: no counter, never cached)."""
        entry = self._entry
        if entry is not None and generation is not None and entry[0] == generation:
            return entry[1]
        # Keys read after the generation are at least that new: labelling them with it is safe (at worst, one
        # needless rebuild on the next scan).
        trust = server_trust(session)
        if generation is not None:
            self._entry = (generation, trust)
        return trust


@dataclass(frozen=True, slots=True)
class CardHolder:
    card_id: str
    status: str
    member: MemberRef


def _holder_columns(chapter: Any) -> tuple[Any, ...]:
    """The ten columns :func:`_holder_of` reads: the card, its holder, and ``chapter`` (hers, joined by the caller)."""
    return (Card.card_id, Card.status, Member.id, Member.full_name, Member.member_number, Member.status, chapter.id,
            chapter.code, chapter.name, chapter.path)


_CARD_HOLDER = (
    select(*_holder_columns(Chapter))
    .join(Member, Member.id == Card.member_id)
    .join(Chapter, Chapter.id == Member.chapter_id)
)
# A live code names its binding's status slot: the binding's status, with its card and holder.
_BINDING_HOLDER = (
    select(Card.card_id, CardBinding.status, *_holder_columns(Chapter)[2:])
    .join(Card, Card.id == CardBinding.card_id)
    .join(Member, Member.id == Card.member_id)
    .join(Chapter, Chapter.id == Member.chapter_id)
)


def _holder_of(row: Sequence[Any]) -> CardHolder | None:
    """A :class:`CardHolder` from the columns of :func:`_holder_columns` (None when the card was not found)."""
    if row[0] is None:
        return None
    return CardHolder(row[0], row[1], MemberRef(row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9]))


def _card_holder(session: Session, condition: ColumnElement[bool]) -> CardHolder | None:
    row = session.connection().execute(_CARD_HOLDER.where(condition)).first()
    return None if row is None else _holder_of(row)


_GENERATION = select(Counter.value).where(Counter.name == CONFIG_COUNTER).scalar_subquery()
_EVENT_CHAPTER = aliased(Chapter)
_SCOPE_CHAPTER = aliased(Chapter)
_HOLDER_CHAPTER = aliased(Chapter)
_STATION_CONTEXT = (
    select(Station.id, Station.event_id, Station.status, Station.token_hash, Station.last_seen_at, Event.status,
           Event.checkin_opens_at, Event.checkin_closes_at, Event.eligibility, Event.mode, Event.allow_reentry,
           _EVENT_CHAPTER.path, _GENERATION, _SCOPE_CHAPTER.path, *_holder_columns(_HOLDER_CHAPTER),
           Event.live_policy)
    .join(Event, Event.id == Station.event_id)
    .join(_EVENT_CHAPTER, _EVENT_CHAPTER.id == Event.chapter_id)
    .outerjoin(_SCOPE_CHAPTER, _SCOPE_CHAPTER.id == Event.scope_chapter_id)
    .outerjoin(Card, (Card.status_list_id == bindparam("slot_list")) & (Card.status_index == bindparam("slot_index")))
    .outerjoin(Member, Member.id == Card.member_id)
    .outerjoin(_HOLDER_CHAPTER, _HOLDER_CHAPTER.id == Member.chapter_id)
    .where(Station.token_hash == bindparam("token_hash"))
)


def _status_slot(request: CheckinRequest) -> tuple[int, int] | None:
    """The status slot a scanned credential names, parsed without checking anything more (``verify`` does that)."""
    if request.source == "manual" or request.payload_base64 is not None or request.payload is None:
        return None
    if len(request.payload) > MAX_PAYLOAD_CHARS:
        return None
    try:
        claims = parse_credential(credential_from_text(request.payload)).claims
    except CredentialError:
        return None
    return claims.status_list, claims.status_index


def _statements_commit_themselves(session: Session) -> None:
    """On a PostgreSQL engine, run this session's statements in autocommit mode: no BEGIN and no COMMIT round trip.

    A station's scan writes one row with one statement, which is atomic by itself; under READ COMMITTED the reads
    before it see exactly what they would see inside a transaction (each statement takes its own snapshot), and the
    unique indexes, not the transaction, make check-in exactly-once. That halves the round trips of a scan. (A
    station's occasional ``last_seen_at`` update then commits on its own; it is only a hint.) Sessions bound to a
    connection that is already in a transaction (tests), and SQLite, keep their transaction.
    """
    bind = session.get_bind()
    if isinstance(bind, Engine) and bind.dialect.name == "postgresql" and not session.in_transaction():
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def station_context(session: Session, token: str, request: CheckinRequest) -> StationContext:
    """Authenticate a device token; read its station's event rules, the configuration generation and the card the
    scan names, in one query.

    Raises:
        AuthenticationFailed: Not a device token, unknown, or its station was revoked (``invalid_token``).
    """
    digest = device_token_digest(token)
    _statements_commit_themselves(session)
    # A slot no card can have when the scan names none: the statement keeps one shape (compiled and prepared once).
    slot_list, slot_index = _status_slot(request) or (-1, -1)
    # Core execution (the connection, not the session): these rows are values, not ORM objects to track.
    row = session.connection().execute(_STATION_CONTEXT, {"token_hash": digest, "slot_list": slot_list,
                                                          "slot_index": slot_index}).first()
    require_active_station(digest, row[3] if row else None, row[2] if row else None)
    assert row is not None
    rules = EventRules(row[1], row[11], EntryRules(row[6], row[7], row[8], row[9], row[10], row[5], row[24]),
                       row[13])
    return StationContext(row[0], row[1], row[4], rules, row[12], (slot_list, slot_index), _holder_of(row[14:24]))


class DatabaseStatus:
    """Card status straight from the cards table: the server is the source of truth, no list to cache.

    The card's holder (member and chapter) is read in the same query and kept in :attr:`holder`, so that the
    check-in needs no second query to find who holds the card. A holder already read for a slot (by
    :func:`station_context`) answers for that slot without a query.
    """

    def __init__(self, session: Session, prefetched: tuple[tuple[int, int] | None, CardHolder | None] = (None, None)
                 ) -> None:
        self._session = session
        self._slot, self._prefetched = prefetched
        self.holder: CardHolder | None = None

    def status(self, list_id: int, index: int) -> int | None:
        if self._slot == (list_id, index):
            self.holder = self._prefetched
        else:
            self.holder = _card_holder(self._session,
                                       (Card.status_list_id == list_id) & (Card.status_index == index))
        if self.holder is None:
            # No card has that slot: a live card's binding may (the slot of a printed card is prefetched above).
            row = self._session.connection().execute(_BINDING_HOLDER.where(
                (CardBinding.status_list_id == list_id) & (CardBinding.status_index == index))).first()
            self.holder = None if row is None else _holder_of(row)
        return None if self.holder is None else STATUS_CODES[self.holder.status]


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


def _replay(session: Session, event_id: int, request: CheckinRequest, digest: str) -> CheckinResult | None:
    stored = session.scalar(
        select(Checkin).where(Checkin.event_id == event_id, Checkin.client_nonce == request.client_nonce)
    )
    if stored is None:
        return None
    if stored.payload_hash != digest:
        raise Conflict("this nonce was already used for another scan", code="nonce_reused")
    member = session.get(Member, stored.member_id) if stored.member_id else None
    first = _first_entry(session, event_id, member.id) if member and stored.reason == "already_checked_in" else None
    return CheckinResult(CheckinRow.of(stored), MemberRef.of(member) if member else None, first, replayed=True)


class _LatestEntry:
    """The member's accepted scans as :func:`verification.entry.decide_entry` needs them from the database: only her
    latest, read when the rules get that far, and none at all for a single entry — then the unique index on
    (event, member, seq) refuses a second sequence 1 (no query needed). :attr:`next_seq` is the sequence number of
    the entry the rules may grant her."""

    def __init__(self, session: Session, event: EventRules, member_id: int) -> None:
        self._session, self._event, self._member_id = session, event, member_id
        self.next_seq = 1

    def __call__(self) -> Sequence[PriorEntry]:
        rules = self._event.rules
        if rules.mode == "entry" and not rules.allow_reentry:
            return ()
        last = self._session.execute(
            select(Checkin.seq, Checkin.direction, Checkin.scanned_at, Checkin.received_at)
            .where(Checkin.event_id == self._event.id, Checkin.member_id == self._member_id, Checkin.result == "ok")
            .order_by(Checkin.seq.desc()).limit(1)
        ).first()
        if last is None:
            return ()
        self.next_seq = last.seq + 1
        return (PriorEntry(last.scanned_at or last.received_at, "out" if last.direction == "out" else "in"),)


def checkin(session: Session, actor: Actor, event_id: int, request: CheckinRequest) -> CheckinResult:
    """An officer's check-in: a member found by search (``manual``, with a reason, audited) or a card scanned from
    the admin pages. See :func:`station_checkin` for the rules and the answers."""
    actor.require_write()
    event = EventRules.of(get_event(session, actor, event_id))
    return _record_scan(session, event, request, lambda: server_trust(session), station=None, actor=actor)


def station_checkin(session: Session, context: StationContext, event_id: int, request: CheckinRequest,
                    trust: TrustCache) -> CheckinResult:
    """Decide and record one scan from a station. Denied scans are stored too (reason and payload hash, never the
    payload).

    A retry with a known nonce returns the stored answer (``replayed``) and writes nothing; the same nonce with
    another payload is refused with ``nonce_reused``.
    """
    if context.event_id != event_id:
        raise PermissionDenied("this station is registered for another event", code="wrong_event")
    if request.source == "manual":
        raise PermissionDenied("manual check-in is for officers", code="officer_only")
    return _record_scan(session, context.event, request, lambda: trust.bundle(session, context.generation),
                        station=context, actor=None)


def _record_scan(session: Session, event: EventRules, request: CheckinRequest, trust: Callable[[], TrustBundle],
                 *, station: StationContext | None, actor: Actor | None) -> CheckinResult:
    if request.source not in SOURCES:
        raise ValidationFailed(f"source must be one of {', '.join(SOURCES)}",
                               details=[{"field": "source", "code": "invalid"}])
    if not request.offline and (request.local_result is not None or request.local_reason is not None):
        raise ValidationFailed("local_result and local_reason describe an offline decision: send offline=true",
                               details=[{"field": "offline", "code": "required"}])
    now = utcnow()
    scanned_at = _scan_time(request.scanned_at, now)
    manual = request.source == "manual"
    live: bool | None = None  # whether the card was a live code; None: an officer's manual check-in shows no card
    if manual:
        assert actor is not None  # station_checkin refuses manual scans
        member, verdict_reason, card_id, digest = _manual_member(session, actor, request)
    else:
        scanned = _scanned_input(request)
        if len(scanned) > MAX_PAYLOAD_CHARS:
            digest = payload_hash_of(scanned)
            member, verdict_reason, card_id = None, "malformed", None
        else:
            status = DatabaseStatus(session, (station.slot, station.holder) if station else (None, None))
            verdict = verify(scanned, trust(), status, scanned_at)
            digest, live = verdict.payload_hash, verdict.live
            member, verdict_reason, card_id = _member_of(session, verdict, status.holder)
            if member is not None and not event.in_scope(member.chapter_path):
                # A card holder outside the event's scope is not eligible and is never named: not in the answer,
                # not in the stored row (reports show the member of a row), whatever else is wrong with the scan.
                member, verdict_reason = None, verdict_reason or "not_eligible"
    admitted: tuple[int, str] | None = None  # (sequence, direction) of the entry the rules grant
    id_check = False
    reason = verdict_reason
    if reason is None and member is not None:
        entries = _LatestEntry(session, event, member.id)
        decision = decide_entry(event.rules, entries, scanned_at, live=live, eligible=partial(
            is_eligible, session, event, member.id, member.status, member.chapter_path))
        reason, id_check = decision.reason, decision.id_check
        if decision.direction is not None:
            admitted = (entries.next_seq, decision.direction)
    base = dict(event_id=event.id, member_id=member.id if member else None, card_id=card_id,
                source=request.source, station_id=station.station_id if station else None,
                officer_id=actor.id if actor else None, client_nonce=request.client_nonce,
                payload_hash=digest, scanned_at=request.scanned_at, received_at=now,
                manual_reason=request.manual_reason if manual else None, offline=request.offline,
                local_result=request.local_result, local_reason=request.local_reason)
    if admitted is not None and member is not None:
        row = _insert(session, dict(result="ok", reason=None, seq=admitted[0], direction=admitted[1], **base))
        if row is not None:
            if manual and actor is not None:
                audit.record(session, actor, "checkin.manual", target_type="event", target_id=event.id,
                             chapter_path=event.chapter_path, details={"member_id": member.id})
            _touch(session, station, now)
            session.commit()
            return CheckinResult(row, member, None, replayed=False, live=live is True, id_check=id_check)
        # Refused by the unique index: an earlier entry, or a retry of this very nonce (the denied row below then
        # collides with the nonce too and the stored answer is returned).
        reason = "already_checked_in"
    row = _insert(session, dict(result="error", reason=reason, seq=0, direction="in", **base))
    if row is None:  # Only the nonce can collide with a denied row: this scan was recorded before.
        replay = _replay(session, event.id, request, digest)
        if replay is not None:
            return replay
        raise Conflict("the scan could not be recorded; retry", code="conflict")
    _touch(session, station, now)
    session.commit()
    first = _first_entry(session, event.id, member.id) if member and reason == "already_checked_in" else None
    return CheckinResult(row, member, first, replayed=False, live=live is True)


@cache
def _insert_statement(dialect: str) -> Any:
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    table = cast(Table, Checkin.__table__)
    return insert(table).on_conflict_do_nothing().returning(table.c.id)


def _insert(session: Session, values: dict[str, Any]) -> CheckinRow | None:
    """Insert a check-in row unless a unique index (nonce, or member sequence among accepted rows) already holds
    one; None then. ``ON CONFLICT DO NOTHING`` waits for a concurrent uncommitted row like a plain insert would,
    but needs no savepoint: one round trip instead of three. One statement built once per dialect, with the
    values as parameters, so that nothing is compiled per scan."""
    connection = session.connection()
    new_id = connection.execute(_insert_statement(connection.dialect.name), values).scalar()
    if new_id is None:
        return None
    return CheckinRow(new_id, values["result"], values["reason"], values["direction"], values["source"],
                      values["received_at"], values["offline"], values["local_result"])


def _touch(session: Session, station: StationContext | None, now: datetime) -> None:
    if station is not None and (station.last_seen_at is None or now - station.last_seen_at > LAST_SEEN_RESOLUTION):
        session.execute(update(Station).where(Station.id == station.station_id).values(last_seen_at=now))


def _member_of(session: Session, verdict: Verdict, holder: CardHolder | None
               ) -> tuple[MemberRef | None, str | None, str | None]:
    """The member behind a verdict (only when the signature verified) and the verdict's reason.

    ``holder`` is what the status check read by the credential's status slot; it is used when it is the card the
    credential names, otherwise (dates refused before the status check) the card is read by its id.
    """
    if verdict.claims is None:
        return None, verdict.reason, None
    card_id = verdict.claims.card_id.hex()
    if holder is None or holder.card_id != card_id:
        holder = _card_holder(session, Card.card_id == card_id)
    if holder is None:  # Signed by us but unknown here: treat as revoked rather than trust it.
        return None, "revoked", card_id
    return holder.member, verdict.reason, card_id


def _manual_member(session: Session, actor: Actor, request: CheckinRequest) -> tuple[MemberRef, str | None, None, str]:
    """The member an officer checks in by hand: one she sees (404 otherwise, exactly like a missing member)."""
    if request.member_id is None or not (request.manual_reason and request.manual_reason.strip()):
        raise ValidationFailed("a manual check-in needs member_id and a reason",
                               details=[{"field": "manual_reason", "code": "required"}])
    member = session.get(Member, request.member_id)
    if member is None or not actor.sees(member.chapter.path):
        raise NotFound("member not found")
    return MemberRef.of(member), None, None, payload_hash_of(f"manual:{member.id}")
