"""An event's entry rules: one decision for the server, the door station and (in JavaScript) the phone.

After a card verified, :func:`decide_entry` decides whether its holder comes in, in this order: the event is closed
(``event_closed``); the scan is outside the check-in window (``outside_window``); the holder may not attend
(``not_eligible``); then her accepted scans at this event: the first one is her entry (``in``); in entry/exit mode a
scan after an entry is her exit (``out``); after an exit — or after an entry in entry-only mode — she comes in again
only when re-entry is allowed, otherwise ``already_checked_in`` with her first entry.

Who may attend (the chapter's subtree, an invite list, or everyone, and active members only) is decided where the
members are known: the server reads it from its database, the station and the phone from the roster of the signed
event bundle, which the server built with the same rule. ``cardsvc/services/checkins.py`` (online),
``station/loop.py`` (offline) and ``cardsvc/web/checkin/static/verify.js`` (``decideEntry``) call this decision;
``tests/vectors/entry-rules.json`` holds its vectors, run in Python and in JavaScript.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

Direction = Literal["in", "out"]
EntryReason = Literal["event_closed", "outside_window", "not_eligible", "already_checked_in"]
ENTRY_REASONS: Final[tuple[EntryReason, ...]] = ("event_closed", "outside_window", "not_eligible",
                                                 "already_checked_in")
ELIGIBILITY: Final = ("subtree", "invite", "all")
MODES: Final = ("entry", "entry_exit")


@dataclass(frozen=True, slots=True)
class EntryRules:
    """An event's check-in rules: the one rules type of the server's check-ins, the event bundle and the API.

    Attributes:
        checkin_opens_at: Scans are accepted from this moment (inclusive)…
        checkin_closes_at: …to this one (inclusive).
        eligibility: ``subtree`` (active members of the event's chapter and below), ``invite`` (active members on
            its invite list) or ``all`` (every active member).
        mode: ``entry`` (entries only) or ``entry_exit`` (entries and exits alternate).
        allow_reentry: Whether a member who came in (and, with exits, went out) may come in again.
        status: ``open`` or ``closed``.
    """

    checkin_opens_at: datetime
    checkin_closes_at: datetime
    eligibility: str
    mode: str
    allow_reentry: bool
    status: str

    def to_json(self) -> dict[str, Any]:
        """The rules as the event bundle's ``event`` object carries them (times in ISO 8601 with their offset)."""
        return {"checkin_opens_at": self.checkin_opens_at.isoformat(),
                "checkin_closes_at": self.checkin_closes_at.isoformat(), "eligibility": self.eligibility,
                "mode": self.mode, "allow_reentry": self.allow_reentry, "status": self.status}


@dataclass(frozen=True, slots=True)
class PriorEntry:
    """One of the member's accepted scans at the event."""

    at: datetime
    direction: Direction
    station_id: int | None = None


@dataclass(frozen=True, slots=True)
class EntryDecision:
    """What :func:`decide_entry` decided.

    Attributes:
        reason: None when she comes in (or goes out), else the refusal.
        direction: ``in`` or ``out`` for an accepted scan; None when refused.
        first: Her earliest prior entry given, for ``already_checked_in``; None otherwise.
    """

    reason: EntryReason | None
    direction: Direction | None = None
    first: PriorEntry | None = None

    @property
    def ok(self) -> bool:
        """Whether the scan is accepted."""
        return self.reason is None


def decide_entry(rules: EntryRules, prior_entries: Callable[[], Sequence[PriorEntry]], at: datetime, *,
                 eligible: Callable[[], bool]) -> EntryDecision:
    """Decide a verified card's scan at an event (see the module docstring for the order).

    The holder's eligibility and her prior entries are sources, each called at most once and only when the decision
    gets that far: on the server each is a database query that a refusal for the event's state or window spares.

    Args:
        rules: The event's rules.
        prior_entries: Her accepted scans at this event, in any order (they are ordered by time, an entry before an
            exit at the same instant). The last one decides the direction, the first one is reported with
            ``already_checked_in``; a caller that knows the database will refuse a second entry may return none.
        at: When the card was scanned (timezone-aware).
        eligible: Whether she may attend this event.

    Returns:
        The decision.
    """
    if rules.status == "closed":
        return EntryDecision("event_closed")
    if not rules.checkin_opens_at <= at <= rules.checkin_closes_at:
        return EntryDecision("outside_window")
    if not eligible():
        return EntryDecision("not_eligible")
    entries = sorted(prior_entries(), key=lambda entry: (entry.at, entry.direction))
    if not entries:
        return EntryDecision(None, "in")
    if rules.mode == "entry_exit" and entries[-1].direction == "in":
        return EntryDecision(None, "out")
    if rules.allow_reentry:
        return EntryDecision(None, "in")
    return EntryDecision("already_checked_in", first=entries[0])
