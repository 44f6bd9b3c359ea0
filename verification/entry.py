"""An event's entry rules: one decision for the server, the door station and (in JavaScript) the phone.

After a card verified, :func:`decide_entry` decides whether its holder comes in, in this order: the event's choice
of cards (``live_code_required``: a printed card or static code at a ``live_required`` event, docs/card-format.md
§8.6); the event is closed (``event_closed``); the scan is outside the check-in window (``outside_window``); the
holder may not attend (``not_eligible``); then her accepted scans at this event: the first one is her entry (``in``);
in entry/exit mode a scan after an entry is her exit (``out``); after an exit — or after an entry in entry-only mode
— she comes in again only when re-entry is allowed, otherwise ``already_checked_in`` with her first entry. A printed
card accepted at a ``live_preferred`` event is flagged ``id_check``: the steward compares it with an identity
document.

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
EntryReason = Literal["live_code_required", "event_closed", "outside_window", "not_eligible", "already_checked_in"]
ENTRY_REASONS: Final[tuple[EntryReason, ...]] = ("live_code_required", "event_closed", "outside_window",
                                                 "not_eligible", "already_checked_in")
ELIGIBILITY: Final = ("subtree", "invite", "all")
MODES: Final = ("entry", "entry_exit")
# The event's choice of cards (docs/card-format.md §8.6): any card, live codes preferred (a printed card passes with
# an identity check), live codes only.
LivePolicy = Literal["any", "live_preferred", "live_required"]
LIVE_POLICIES: Final[tuple[LivePolicy, ...]] = ("any", "live_preferred", "live_required")


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
        live_policy: Which cards pass: ``any``, ``live_preferred`` or ``live_required`` (see :data:`LIVE_POLICIES`).
    """

    checkin_opens_at: datetime
    checkin_closes_at: datetime
    eligibility: str
    mode: str
    allow_reentry: bool
    status: str
    live_policy: str

    def to_json(self) -> dict[str, Any]:
        """The rules as the event bundle's ``event`` object carries them (times in ISO 8601 with their offset)."""
        return {"checkin_opens_at": self.checkin_opens_at.isoformat(),
                "checkin_closes_at": self.checkin_closes_at.isoformat(), "eligibility": self.eligibility,
                "mode": self.mode, "allow_reentry": self.allow_reentry, "status": self.status,
                "live_policy": self.live_policy}


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
        id_check: An accepted printed card (or static code) at a ``live_preferred`` event: the steward compares it
            with an identity document.
    """

    reason: EntryReason | None
    direction: Direction | None = None
    first: PriorEntry | None = None
    id_check: bool = False

    @property
    def ok(self) -> bool:
        """Whether the scan is accepted."""
        return self.reason is None


def decide_entry(rules: EntryRules, prior_entries: Callable[[], Sequence[PriorEntry]], at: datetime, *,
                 eligible: Callable[[], bool], live: bool | None) -> EntryDecision:
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
        live: Whether the card was a live code (``Verdict.live``); None when no card was shown (an officer's manual
            check-in), which the event's choice of cards does not concern.

    Returns:
        The decision.
    """
    printed = live is False
    # An unknown policy is treated as live_required (fail closed).
    if printed and rules.live_policy not in ("any", "live_preferred"):
        return EntryDecision("live_code_required")
    if rules.status == "closed":
        return EntryDecision("event_closed")
    if not rules.checkin_opens_at <= at <= rules.checkin_closes_at:
        return EntryDecision("outside_window")
    if not eligible():
        return EntryDecision("not_eligible")
    id_check = printed and rules.live_policy == "live_preferred"
    entries = sorted(prior_entries(), key=lambda entry: (entry.at, entry.direction))
    if not entries:
        return EntryDecision(None, "in", id_check=id_check)
    if rules.mode == "entry_exit" and entries[-1].direction == "in":
        return EntryDecision(None, "out", id_check=id_check)
    if rules.allow_reentry:
        return EntryDecision(None, "in", id_check=id_check)
    return EntryDecision("already_checked_in", first=entries[0])
