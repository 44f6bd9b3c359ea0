"""The entry rules (verification/entry.py): the vectors of tests/vectors/entry-rules.json, which the check-in page's
JavaScript runs too (tests/web/test_checkin_js_vectors.py), and the laziness the server's door-rush path relies on."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from verification.entry import ENTRY_REASONS, LIVE_POLICIES, EntryDecision, EntryRules, PriorEntry, decide_entry
from verification.event_bundle import entry_rules_of

VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "entry-rules.json"
# A case's card: a live code, a printed card or static code, or none (an officer's manual check-in).
LIVE_OF_CARD: dict[str | None, bool | None] = {"live": True, "printed": False, None: None}
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = VECTORS["cases"]


def prior_entry(raw: dict[str, Any]) -> PriorEntry:
    return PriorEntry(datetime.fromisoformat(raw["at"]), raw["direction"], raw["station_id"])


def as_vector(decision: EntryDecision) -> dict[str, Any]:
    """A decision in the vectors' form."""
    first = decision.first
    return {"reason": decision.reason, "direction": decision.direction,
            "first": None if first is None else {"at": first.at.isoformat(), "direction": first.direction,
                                                 "station_id": first.station_id},
            "id_check": decision.id_check}


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_entry_rule_vectors(case: dict[str, Any]) -> None:
    entries = [prior_entry(raw) for raw in case["prior_entries"]]
    decision = decide_entry(entry_rules_of(case["rules"]), lambda: entries, datetime.fromisoformat(case["at"]),
                            eligible=lambda: bool(case["eligible"]), live=LIVE_OF_CARD[case["card"]])
    assert as_vector(decision) == case["decision"], case["note"]
    assert decision.ok is (case["decision"]["reason"] is None)


def test_the_vectors_cover_every_reason_and_rule() -> None:
    assert tuple(VECTORS["reasons"]) == ENTRY_REASONS
    assert {case["decision"]["reason"] for case in CASES} == {*ENTRY_REASONS, None}
    assert {case["decision"]["direction"] for case in CASES} == {"in", "out", None}
    assert {(case["rules"]["eligibility"], case["eligible"]) for case in CASES} >= {
        (eligibility, eligible) for eligibility in ("subtree", "invite", "all") for eligible in (True, False)}
    assert {(case["rules"]["mode"], case["rules"]["allow_reentry"]) for case in CASES} == {
        (mode, reentry) for mode in ("entry", "entry_exit") for reentry in (True, False)}
    assert {(case["rules"].get("live_policy"), case["card"]) for case in CASES} >= {
        (policy, card) for policy in LIVE_POLICIES for card in LIVE_OF_CARD} | {(None, "printed")}
    assert {case["decision"]["id_check"] for case in CASES} == {True, False}
    assert len({case["name"] for case in CASES}) == len(CASES)


def test_the_rules_round_trip_through_the_bundle_form() -> None:
    rules = EntryRules(datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 3, 8, 5, tzinfo=UTC), "invite", "entry_exit",
                       True, "open", "live_preferred")
    assert entry_rules_of(rules.to_json()) == rules


class Source:
    """A source of eligibility or entries that counts its calls."""

    def __init__(self, value: Any) -> None:
        self.value, self.calls = value, 0

    def __call__(self) -> Any:
        self.calls += 1
        return self.value


@pytest.mark.parametrize(("policy", "status", "offset", "eligible", "reason", "calls"), [
    ("live_required", "open", 0, True, "live_code_required", (0, 0)),
    ("any", "closed", 0, True, "event_closed", (0, 0)),
    ("any", "open", -7200, True, "outside_window", (0, 0)),
    ("any", "open", 0, False, "not_eligible", (1, 0)),
    ("any", "open", 0, True, "already_checked_in", (1, 1)),
])
def test_sources_are_read_only_when_the_decision_needs_them(policy: str, status: str, offset: int, eligible: bool,
                                                             reason: str, calls: tuple[int, int]) -> None:
    """The server reads eligibility and her last entry from the database: a refusal for the card the event does not
    accept, its state or window must cost neither query, a refusal for eligibility not the second."""
    opens = datetime(2026, 3, 8, tzinfo=UTC)
    rules = EntryRules(opens, opens + timedelta(hours=5), "subtree", "entry", False, status, policy)
    eligibility, entries = Source(eligible), Source([PriorEntry(opens, "in")])
    decision = decide_entry(rules, entries, opens + timedelta(hours=1, seconds=offset), eligible=eligibility,
                            live=False)
    assert decision.reason == reason
    assert (eligibility.calls, entries.calls) == calls


def test_an_unknown_live_policy_refuses_a_printed_card() -> None:
    """A policy this version does not know fails closed for a printed card (bundles and the database refuse one; the
    decision does not rely on that)."""
    opens = datetime(2026, 3, 8, tzinfo=UTC)
    rules = EntryRules(opens, opens + timedelta(hours=5), "subtree", "entry", False, "open", "later")
    at = opens + timedelta(hours=1)
    assert decide_entry(rules, list, at, eligible=lambda: True, live=False).reason == "live_code_required"
    assert decide_entry(rules, list, at, eligible=lambda: True, live=True).ok
