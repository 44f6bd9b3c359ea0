"""The offline event bundle: what a door station downloads before an event so that it can check members in
without a network.

The bundle is one JWT (``typ: cardsvc-event+jwt``) signed by the issuer's trust key. It carries the event and its
rules, the signed trust bundle, the signed status lists of the roster's cards, the eligible roster (member number,
display name, chapter, current card ids; never ID numbers, birth dates or phones) and the accepted check-ins so far.
:func:`verify_event_bundle` checks it with nothing but the pinned trust anchor.

Freshness: the outer token's ``exp`` is the server's freshness policy for the whole bundle (the end of the
check-in window plus a day, at most a week, never beyond the embedded trust bundle). The embedded status lists are
a snapshot taken when the bundle was signed; they are checked as of the bundle's ``iat`` (their own ``exp`` is
only a few hours, meant for online revalidation), so a station stays usable offline for the whole event and shows
the snapshot's age (:attr:`EventBundle.issued_at`) instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from verification.entry import LIVE_POLICIES, Direction, EntryRules
from verification.errors import TrustError
from verification.status import StatusListView, verify_status_list
from verification.trust import TrustAnchor, TrustBundle, decode_anchor_jwt, verify_trust_bundle

EVENT_BUNDLE_TYP: Final = "cardsvc-event+jwt"
# A roster of ~100 000 members with two status lists stays well under this.
MAX_BUNDLE_CHARS: Final = 64_000_000


@dataclass(frozen=True)
class BundleEvent:
    """The event's identity and its check-in rules, which the station applies offline with
    :func:`verification.entry.decide_entry`."""

    id: int
    title: str
    venue: str
    starts_at: datetime
    ends_at: datetime
    rules: EntryRules


@dataclass(frozen=True)
class RosterEntry:
    """An eligible member: what a steward needs to recognise her, and the ids of her current cards."""

    member_number: str
    name: str
    chapter_code: str
    chapter_name: str
    card_ids: tuple[bytes, ...]
    photo_url: str | None


@dataclass(frozen=True)
class BundleCheckin:
    """An accepted scan recorded by the server before the bundle was signed."""

    member_number: str
    seq: int
    direction: Direction
    at: datetime
    station_id: int | None


@dataclass(frozen=True)
class EventBundle:
    """A verified event bundle.

    Attributes:
        issuer: The issuer's base URL (equal to the trust bundle's ``iss``).
        issued_at: When the server signed it: the age of the roster, check-ins and status lists.
        expires_at: After this the station must download a fresh bundle.
        event: The event and its rules.
        trust: The embedded trust bundle, verified with the same anchor; pass it to
            :func:`verification.verify.verify`.
        status_lists: Verified status lists by list id; ``verification.verify.StatusLists(bundle.status_lists)``
            is the status source for :func:`verification.verify.verify`.
        roster: Eligible members, in the server's display order (by given name).
        checkins: Accepted scans so far, oldest first.
        token: The exact token that was verified (to store and re-verify later).
    """

    issuer: str
    issued_at: datetime
    expires_at: datetime
    event: BundleEvent
    trust: TrustBundle
    status_lists: Mapping[int, StatusListView]
    roster: tuple[RosterEntry, ...]
    checkins: tuple[BundleCheckin, ...]
    token: str
    _by_card: dict[bytes, RosterEntry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_card", {card: entry for entry in self.roster for card in entry.card_ids})

    def member_for_card(self, card_id: bytes) -> RosterEntry | None:
        """The roster entry holding ``card_id`` (a verified credential's ``cti``), or None when not eligible.

        Args:
            card_id: The 8-byte card id from the verified claims.

        Returns:
            The member's entry, or None when no eligible member currently holds that card.
        """
        return self._by_card.get(card_id)


def _timestamp(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise TrustError(f"event bundle {what} is not a timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise TrustError(f"event bundle {what} is not a timestamp") from exc
    if parsed.tzinfo is None:
        raise TrustError(f"event bundle {what} has no time zone")
    return parsed.astimezone(UTC)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TrustError(f"event bundle {what} is not text")
    return value


def _integer(value: Any, what: str) -> int:
    # bool is an int in Python; JSON true must not pass as 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TrustError(f"event bundle {what} is not an integer")
    return value


def entry_rules_of(raw: Mapping[str, Any]) -> EntryRules:
    """The entry rules in an event bundle's ``event`` object (:meth:`EntryRules.to_json` writes them).

    Raises:
        TrustError: A rule is missing or of the wrong type.
    """
    allow_reentry = raw.get("allow_reentry")
    if not isinstance(allow_reentry, bool):
        raise TrustError("event bundle allow_reentry is not a boolean")
    # Which cards pass (docs/card-format.md §8.6); bundles signed before live codes existed hold none: "any".
    live_policy = raw.get("live_policy", "any")
    if live_policy not in LIVE_POLICIES:
        raise TrustError("event bundle live_policy is invalid")
    return EntryRules(
        checkin_opens_at=_timestamp(raw.get("checkin_opens_at"), "checkin_opens_at"),
        checkin_closes_at=_timestamp(raw.get("checkin_closes_at"), "checkin_closes_at"),
        eligibility=_text(raw.get("eligibility"), "eligibility"),
        mode=_text(raw.get("mode"), "mode"),
        allow_reentry=allow_reentry,
        status=_text(raw.get("status"), "status"),
        live_policy=live_policy,
    )


def _event(raw: Any) -> BundleEvent:
    if not isinstance(raw, dict):
        raise TrustError("event bundle has no event")
    return BundleEvent(
        id=_integer(raw.get("id"), "event id"),
        title=_text(raw.get("title"), "title"),
        venue=_text(raw.get("venue"), "venue"),
        starts_at=_timestamp(raw.get("starts_at"), "starts_at"),
        ends_at=_timestamp(raw.get("ends_at"), "ends_at"),
        rules=entry_rules_of(raw),
    )


def _roster_entry(raw: Any) -> RosterEntry:
    if not isinstance(raw, dict) or not isinstance(raw.get("card_ids"), list):
        raise TrustError("event bundle roster entry is malformed")
    try:
        cards = tuple(bytes.fromhex(_text(card, "card id")) for card in raw["card_ids"])
    except ValueError as exc:
        raise TrustError("event bundle card id is not hex") from exc
    photo = raw.get("photo_url")
    return RosterEntry(
        member_number=_text(raw.get("member_number"), "member_number"),
        name=_text(raw.get("name"), "name"),
        chapter_code=_text(raw.get("chapter_code"), "chapter_code"),
        chapter_name=_text(raw.get("chapter_name"), "chapter_name"),
        card_ids=cards,
        photo_url=None if photo is None else _text(photo, "photo_url"),
    )


def _checkin(raw: Any) -> BundleCheckin:
    if not isinstance(raw, dict):
        raise TrustError("event bundle check-in is malformed")
    direction = raw.get("direction")
    if direction not in ("in", "out"):
        raise TrustError("event bundle check-in direction is invalid")
    station = raw.get("station_id")
    return BundleCheckin(
        member_number=_text(raw.get("member_number"), "member_number"),
        seq=_integer(raw.get("seq"), "seq"),
        direction="in" if direction == "in" else "out",
        at=_timestamp(raw.get("at"), "check-in time"),
        station_id=None if station is None else _integer(station, "station_id"),
    )


def _status_lists(raw: Any, trust: TrustBundle, issued_at: datetime) -> dict[int, StatusListView]:
    if not isinstance(raw, dict):
        raise TrustError("event bundle status lists are malformed")
    anchor = trust.anchor
    lists: dict[int, StatusListView] = {}
    for key, token in raw.items():
        try:
            list_id = int(key)
        except ValueError as exc:
            raise TrustError("event bundle status list id is not a number") from exc
        uri = trust.status_lists.get(list_id)
        if uri is None:
            raise TrustError(f"status list {list_id} is not named by the trust bundle")
        # Checked as of the bundle's signing time: the outer signature and expiry vouch for the snapshot.
        lists[list_id] = verify_status_list(_text(token, "status list"), algorithm=anchor.algorithm, key=anchor.key,
                                            kid=anchor.kid, uri=uri, now=issued_at)
    return lists


def verify_event_bundle(token: str, anchor: TrustAnchor, now: datetime) -> EventBundle:
    """Verify an event bundle with the pinned trust anchor and return its contents.

    Order: the checks of :func:`verification.trust.decode_anchor_jwt` (size, header, signature with the anchor's
    algorithm only, ``iat`` not in the future and expiry, against ``now``), then the embedded trust bundle (as of
    ``now``) and status lists (as of the bundle's ``iat``, see the module docstring), then the roster and check-ins.

    Args:
        token: The compact JWT downloaded from ``GET /v1/events/{id}/bundle``.
        anchor: The station's pinned trust key.
        now: The station's clock; must be timezone-aware.

    Returns:
        The verified bundle.

    Raises:
        TrustError: wrong signer or type, bad signature, issued in the future, expired, a nested token that fails its
            own checks, or malformed content.
        ValueError: ``now`` is naive (a programming error).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    claims, issued, expires = decode_anchor_jwt(
        token, anchor, typ=EVENT_BUNDLE_TYP, max_chars=MAX_BUNDLE_CHARS,
        require=["iss", "event", "trust_bundle", "status_lists", "roster", "checkins"], now=now, what="event bundle")
    issued_at = datetime.fromtimestamp(issued, tz=UTC)
    trust = verify_trust_bundle(_text(claims["trust_bundle"], "trust bundle"), anchor, now=now)
    issuer = _text(claims["iss"], "iss")
    if issuer != trust.issuer:
        raise TrustError("event bundle and trust bundle name different issuers")
    status_lists = _status_lists(claims["status_lists"], trust, issued_at)
    if not isinstance(claims["roster"], list) or not isinstance(claims["checkins"], list):
        raise TrustError("event bundle roster or check-ins are malformed")
    return EventBundle(
        issuer=issuer,
        issued_at=issued_at,
        expires_at=datetime.fromtimestamp(expires, tz=UTC),
        event=_event(claims["event"]),
        trust=trust,
        status_lists=status_lists,
        roster=tuple(_roster_entry(entry) for entry in claims["roster"]),
        checkins=tuple(_checkin(entry) for entry in claims["checkins"]),
        token=token,
    )
