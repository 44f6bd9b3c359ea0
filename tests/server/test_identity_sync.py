"""Identity sync with the population registry: consent, outcomes, reviews and decisions, throttling, crash and
resume, idempotence, membership publication, registry notifications, and no ID number in audit details or logs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.db.models import AuditEntry, IdentityReview, IdentitySyncItem, Member, RegistryCursor, SigningKey
from cardsvc.demo import registry as demo_registry
from cardsvc.errors import Conflict, NotFound, PermissionDenied
from cardsvc.security import PiiCipher
from cardsvc.services import cards, consents, members
from cardsvc.services.context import Actor
from cardsvc.services.identity import coverage as identity_coverage
from cardsvc.services.identity import gateway as identity_gateway
from cardsvc.services.identity import notifications as identity_notifications
from cardsvc.services.identity import publication as identity_publication
from cardsvc.services.identity import reviews as identity_reviews
from cardsvc.services.identity import sync as identity_sync
from cardsvc.services.identity.gateway import DevelopmentRegistry, RegistryGateway
from cardsvc.services.identity.sync import SyncOptions
from cardsvc.settings import Settings, SettingsError
from integrations.population import (
    AuthFailure,
    BatchStatus,
    BirthDate,
    CallContext,
    CircuitOpen,
    HttpRegistry,
    LookupRequest,
    MembershipFact,
    Notification,
    NotificationKind,
    PersonName,
    PersonRecord,
    PopulationRegistry,
    RegistryTimeout,
    StubRegistry,
    Unavailable,
    VerifyRequest,
    VerifyResult,
)
from tests.conftest import (
    NAME_TOO_LONG_FOR_CARD,
    SYSTEM,
    TEST_KEK,
    TEST_SECRET,
    Tree,
    _session_for,
    login,
    make_member,
)

ORG = "HLHPN-TEST"


class CountingRegistry:
    """Wraps a registry: counts the verifications actually sent per ID number; can crash before the n-th one."""

    def __init__(self, inner: PopulationRegistry, *, crash_on_call: int | None = None) -> None:
        self.inner = inner
        self.crash_on_call = crash_on_call
        self.attempts = 0
        self.sent: Counter[str] = Counter()
        self.contexts: list[CallContext] = []
        self._lock = threading.Lock()

    def verify_identity(self, context: CallContext, request: VerifyRequest) -> VerifyResult:
        with self._lock:
            self.attempts += 1
            if self.crash_on_call is not None and self.attempts == self.crash_on_call:
                raise RuntimeError("simulated crash")
        result = self.inner.verify_identity(context, request)
        with self._lock:
            self.sent[request.id_number] += 1
            self.contexts.append(context)
        return result

    def lookup(self, context: CallContext, request: LookupRequest) -> PersonRecord | None:
        return self.inner.lookup(context, request)

    def submit_batch(self, context: CallContext, requests: Sequence[VerifyRequest]) -> str:
        return self.inner.submit_batch(context, requests)

    def poll_batch(self, context: CallContext, batch_id: str) -> BatchStatus:
        return self.inner.poll_batch(context, batch_id)

    def publish_membership(self, context: CallContext, fact: MembershipFact) -> None:
        self.inner.publish_membership(context, fact)

    def withdraw_membership(self, context: CallContext, id_number: str, organisation_code: str) -> None:
        self.inner.withdraw_membership(context, id_number, organisation_code)

    def notifications(self, context: CallContext, since_cursor: str | None, limit: int = 100
                      ) -> tuple[list[Notification], str]:
        return self.inner.notifications(context, since_cursor, limit)


class WatchedFactory:
    """Worker sessions on the test's connection that are remembered, so that a registry call can check that none of
    them is in a transaction (which is what holds a database connection)."""

    def __init__(self, db: Session) -> None:
        self.db = db
        self.sessions: list[Session] = []

    def __call__(self) -> Session:
        session = _session_for(self.db.connection())
        self.sessions.append(session)
        return session

    def any_in_transaction(self) -> bool:
        return any(session.in_transaction() for session in self.sessions)


class GuardedRegistry(CountingRegistry):
    """Fails every call with ``error`` (None: answers like ``inner``); on every call, checks that no worker session
    holds a transaction while the registry is asked."""

    def __init__(self, inner: PopulationRegistry, factory: WatchedFactory, error: Exception | None = None,
                 after_call: Callable[[], None] | None = None) -> None:
        super().__init__(inner)
        self.factory = factory
        self.error = error
        self.after_call = after_call
        self.calls = 0

    def _enter(self) -> None:
        assert not self.factory.any_in_transaction(), "a database transaction is open during a registry call"
        self.calls += 1
        if self.after_call is not None:
            self.after_call()
        if self.error is not None:
            raise self.error

    def verify_identity(self, context: CallContext, request: VerifyRequest) -> VerifyResult:
        self._enter()
        return super().verify_identity(context, request)

    def publish_membership(self, context: CallContext, fact: MembershipFact) -> None:
        self._enter()
        super().publish_membership(context, fact)

    def withdraw_membership(self, context: CallContext, id_number: str, organisation_code: str) -> None:
        self._enter()
        super().withdraw_membership(context, id_number, organisation_code)

    def notifications(self, context: CallContext, since_cursor: str | None, limit: int = 100
                      ) -> tuple[list[Notification], str]:
        self._enter()
        return super().notifications(context, since_cursor, limit)


def gateway_for(registry: PopulationRegistry, sleep: Callable[[float], None] | None = None) -> RegistryGateway:
    return RegistryGateway(registry, "HLHPN-TW", "CARDSVC-DANCU", "HLHPN-XTHV", ORG, sleep or _no_sleep)


def _no_sleep(_seconds: float) -> None:
    raise AssertionError("unexpected sleep")


def id_number_of(cipher: PiiCipher, member: Member) -> str:
    assert member.id_number_ciphertext is not None
    return cipher.decrypt("id_number", member.id_number_ciphertext)


def record_of(cipher: PiiCipher, member: Member) -> PersonRecord:
    record = demo_registry.member_person_record(member, cipher)
    assert record is not None
    return record


def consent(db: Session, member: Member, purpose: str = "identity_verification") -> int:
    return consents.record_consent(db, SYSTEM, member.id, purpose=purpose, method="paper_form",
                                   evidence_ref="PHIEU-1").id


@pytest.fixture
def factory(db: Session) -> Callable[[], Session]:
    """Sessions for the sync workers, on the test's connection (rolled back with it)."""
    return lambda: _session_for(db.connection())


def sync(db: Session, factory: Callable[[], Session], registry: PopulationRegistry, cipher: PiiCipher,
         tree: Tree, *, force: bool = False, worker: str = "w1", run_id: int | None = None,
         sleep: Callable[[float], None] | None = None, **options: Any) -> identity_sync.RunSummary:
    if run_id is None:
        run_id = identity_sync.start_sync(db, SYSTEM, chapter_id=tree.central.id, force=force, reverify_days=180).id
    return identity_sync.run_sync(factory, gateway_for(registry, sleep), cipher, run_id,
                             SyncOptions(worker=worker, **options))


def publish(db: Session, factory: Callable[[], Session], gateway: RegistryGateway, cipher: PiiCipher,
            actor: Actor, chapter_id: int | None = None) -> identity_publication.PublicationSummary:
    job = identity_publication.start_publication(db, actor, chapter_id=chapter_id)
    return identity_publication.run_publication(factory, gateway, cipher, job.id)


def items_of(db: Session, run_id: int) -> dict[int, IdentitySyncItem]:
    return {item.member_id: item for item in db.scalars(
        select(IdentitySyncItem).where(IdentitySyncItem.run_id == run_id).execution_options(populate_existing=True))}


def open_reviews(db: Session) -> dict[int, IdentityReview]:
    return {r.member_id: r for r in db.scalars(select(IdentityReview).where(IdentityReview.status == "open")
                                                .execution_options(populate_existing=True))}


@pytest.fixture
def people(db: Session, cipher: PiiCipher, tree: Tree) -> dict[str, Member]:
    """Five members of province A: four consented to identity checks, one did not."""
    made = {
        "lan": make_member(db, cipher, tree.branch_a, full_name="Nguyễn Thị Lan"),
        "thuy": make_member(db, cipher, tree.branch_a, full_name="Trần Thị Thủy"),
        "swapped": make_member(db, cipher, tree.branch_a, full_name="Lê Thị Thu Hà"),
        "dead": make_member(db, cipher, tree.commune_a, full_name="Phạm Thị Mai"),
        "refuser": make_member(db, cipher, tree.commune_a, full_name="Võ Thị Hạnh"),
    }
    for key in ("lan", "thuy", "swapped", "dead"):
        consent(db, made[key])
    return made


@pytest.fixture
def stub(cipher: PiiCipher, people: dict[str, Member]) -> StubRegistry:
    """The registry knows everyone; it spells one name with the old tone mark, swaps another's middle names and
    records one death."""
    records = {key: record_of(cipher, member) for key, member in people.items()}
    records["thuy"] = replace(records["thuy"], name=PersonName("Trần", "Thị", "Thuỷ"))
    records["swapped"] = replace(records["swapped"], name=PersonName("Lê", "Thu Thị", "Hà"))
    records["dead"] = replace(records["dead"], death_date=date(2025, 3, 1))
    return StubRegistry(records.values(), synthetic=0)


def test_only_consenting_members_are_sent_and_outcomes_are_stored(
        db: Session, cipher: PiiCipher, tree: Tree, factory: Callable[[], Session], people: dict[str, Member],
        stub: StubRegistry) -> None:
    counting = CountingRegistry(stub)
    summary = sync(db, factory, counting, cipher, tree)

    assert summary.status == "done"
    assert summary.skipped_no_consent == 1
    assert summary.outcomes == {"matched": 1, "mismatch": 2, "deceased": 1}
    assert id_number_of(cipher, people["refuser"]) not in counting.sent
    assert set(counting.sent.values()) == {1} and len(counting.sent) == 4
    items = items_of(db, summary.run_id)
    assert people["refuser"].id not in items
    lan = items[people["lan"].id]
    assert (lan.status, lan.outcome, lan.differing_fields) == ("done", "matched", [])
    assert lan.registry_request_id in {c.request_id for c in counting.contexts}
    assert lan.checked_at is not None and lan.claimed_by is None
    assert items[people["swapped"].id].differing_fields == ["full_name"]
    assert {c.purpose.value for c in counting.contexts} == {"identity_verification"}

    reviews = open_reviews(db)
    assert {(m, r.kind) for m, r in reviews.items()} == {
        (people["thuy"].id, "name_diacritics"), (people["swapped"].id, "mismatch"), (people["dead"].id, "deceased")}
    assert all(r.source == "sync" for r in reviews.values())
    # Nothing about the member changed by itself.
    db.refresh(people["dead"])
    assert people["dead"].status == "active"


def test_coverage_per_chapter(db: Session, cipher: PiiCipher, tree: Tree, factory: Callable[[], Session],
                              people: dict[str, Member], stub: StubRegistry) -> None:
    before = {row.code: row for row in identity_coverage.coverage(db, tree.actor("t.officer.a"), None)}
    assert before[tree.branch_a.code].pending == 3
    assert before[tree.commune_a.code].no_consent == 1
    sync(db, factory, stub, cipher, tree)
    rows = {row.code: row for row in identity_coverage.coverage(db, tree.actor("t.officer.a"), None)}
    branch, commune = rows[tree.branch_a.code], rows[tree.commune_a.code]
    assert (branch.members, branch.verified, branch.mismatch, branch.pending) == (3, 1, 2, 0)
    assert (commune.members, commune.deceased, commune.no_consent) == (2, 1, 1)
    with pytest.raises(NotFound):
        identity_coverage.coverage(db, tree.actor("t.officer.b"), tree.branch_a.id)


def test_not_found_and_old_id_number(db: Session, cipher: PiiCipher, tree: Tree,
                                     factory: Callable[[], Session]) -> None:
    stranger = make_member(db, cipher, tree.branch_a)
    old_only = make_member(db, cipher, tree.branch_a, id_number=None, old_id_number="025123456")
    for member in (stranger, old_only):
        consent(db, member)
    counting = CountingRegistry(StubRegistry(synthetic=0))
    summary = sync(db, factory, counting, cipher, tree)
    items = items_of(db, summary.run_id)
    assert items[stranger.id].outcome == items[old_only.id].outcome == "not_found"
    assert set(counting.sent) == {id_number_of(cipher, stranger), "025123456"}
    assert open_reviews(db) == {}


def test_review_decisions_are_applied_and_audited(db: Session, cipher: PiiCipher, tree: Tree,
                                                  factory: Callable[[], Session], people: dict[str, Member],
                                                  stub: StubRegistry) -> None:
    sync(db, factory, stub, cipher, tree)
    reviews = open_reviews(db)
    officer = tree.actor("t.officer.a")

    with pytest.raises(Conflict) as refused:
        identity_reviews.decide_review(db, officer, cipher, reviews[people["swapped"].id].id, decision="accept",
                                       note=None)
    assert refused.value.code == "nothing_to_accept"
    with pytest.raises(PermissionDenied):
        identity_reviews.decide_review(db, tree.actor("t.viewer.a"), cipher, reviews[people["dead"].id].id,
                               decision="accept", note=None)
    with pytest.raises(NotFound):
        identity_reviews.decide_review(db, tree.actor("t.officer.b"), cipher, reviews[people["dead"].id].id,
                               decision="accept", note=None)

    dead = identity_reviews.decide_review(db, officer, cipher, reviews[people["dead"].id].id, decision="accept",
                                  note="giấy báo tử")
    assert dead.status == "accepted" and dead.decided_by_id == officer.id and dead.note == "giấy báo tử"
    db.refresh(people["dead"])
    assert people["dead"].status == "deceased"
    kept = identity_reviews.decide_review(db, officer, cipher, reviews[people["swapped"].id].id, decision="keep",
                                          note="tên đúng theo CCCD")
    flagged = identity_reviews.decide_review(db, officer, cipher, reviews[people["thuy"].id].id, decision="flag",
                                             note=None)
    assert (kept.status, flagged.status) == ("kept", "flagged")
    db.refresh(people["swapped"])
    assert people["swapped"].full_name == "Lê Thị Thu Hà"
    with pytest.raises(Conflict) as again:
        identity_reviews.decide_review(db, officer, cipher, kept.id, decision="flag", note=None)
    assert again.value.code == "review_decided"

    decisions = db.scalars(select(AuditEntry).where(AuditEntry.action == "identity.review_decision")).all()
    assert {(e.target_id, e.details["decision"], e.actor_id) for e in decisions} == {
        (str(dead.id), "accept", officer.id), (str(kept.id), "keep", officer.id),
        (str(flagged.id), "flag", officer.id)}
    status_change = db.scalar(select(AuditEntry).where(AuditEntry.action == "member.status",
                                                       AuditEntry.target_id == str(people["dead"].id)))
    assert status_change is not None and status_change.details["to"] == "deceased"


def test_throttling_makes_the_worker_wait(db: Session, cipher: PiiCipher, tree: Tree,
                                          factory: Callable[[], Session], people: dict[str, Member]) -> None:
    now = [1000.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    throttled = StubRegistry([record_of(cipher, m) for m in people.values()], synthetic=0, throttle_per_second=1,
                             clock=lambda: now[0])
    counting = CountingRegistry(throttled)
    summary = sync(db, factory, counting, cipher, tree, sleep=sleep)
    assert summary.status == "done" and summary.failed == 0
    assert summary.outcomes == {"matched": 4}
    assert waits and all(w > 0 for w in waits)
    assert sum(counting.sent.values()) == 4


def test_a_crashed_run_resumes_without_sending_done_items_again(
        db: Session, cipher: PiiCipher, tree: Tree, factory: Callable[[], Session], people: dict[str, Member],
        stub: StubRegistry) -> None:
    counting = CountingRegistry(stub, crash_on_call=3)
    run = identity_sync.start_sync(db, SYSTEM, chapter_id=tree.central.id, force=False, reverify_days=180)
    with pytest.raises(RuntimeError, match="simulated crash"):
        sync(db, factory, counting, cipher, tree, run_id=run.id, batch_size=10)
    items = items_of(db, run.id)
    assert Counter(i.status for i in items.values()) == {"done": 2, "pending": 2}
    assert identity_sync.run_summary(db, SYSTEM, run.id).status == "running"

    summary = sync(db, factory, counting, cipher, tree, run_id=run.id, worker="w2")
    assert summary.status == "done" and summary.done == 4
    assert sorted(counting.sent.values()) == [1, 1, 1, 1]


def test_claims_of_a_dead_worker_are_taken_over_after_the_lease(
        db: Session, cipher: PiiCipher, tree: Tree, factory: Callable[[], Session], people: dict[str, Member],
        stub: StubRegistry) -> None:
    run = identity_sync.start_sync(db, SYSTEM, chapter_id=tree.central.id, force=False, reverify_days=180)
    stale = datetime.now(UTC) - timedelta(minutes=30)
    fresh = datetime.now(UTC)
    items = list(items_of(db, run.id).values())
    items[0].status, items[0].claimed_by, items[0].claimed_at = "claimed", "dead-worker", stale
    items[1].status, items[1].claimed_by, items[1].claimed_at = "claimed", "live-worker", fresh
    db.commit()
    counting = CountingRegistry(stub)
    summary = sync(db, factory, counting, cipher, tree, run_id=run.id, lease_seconds=600)
    # The live worker's item is still its own; the run stays open until that worker finishes.
    assert (summary.done, summary.claimed, summary.status) == (3, 1, "running")
    assert sum(counting.sent.values()) == 3


REGISTRY_DOWN = [Unavailable("cannot reach the population registry (ConnectError)"),
                 RegistryTimeout("no answer within 10 s", unanswered=True), CircuitOpen(30.0),
                 AuthFailure("the population registry refused our credentials (401)")]


@pytest.mark.parametrize("error", REGISTRY_DOWN, ids=lambda e: type(e).__name__)
def test_a_registry_that_cannot_serve_stops_the_run_at_once_and_a_later_run_resumes(
        db: Session, cipher: PiiCipher, tree: Tree, people: dict[str, Member], stub: StubRegistry,
        error: Exception) -> None:
    watched = WatchedFactory(db)
    down = GuardedRegistry(stub, watched, error)
    run = identity_sync.start_sync(db, SYSTEM, chapter_id=tree.central.id, force=False, reverify_days=180)
    # No wait either (gateway_for's sleep fails the test): an open circuit is not waited out.
    stopped = identity_sync.run_sync(watched, gateway_for(down), cipher, run.id, SyncOptions(worker="w1"))

    assert down.calls == 1  # One member was asked; the three others were not sent to a registry that is down.
    assert stopped.status == "failed" and stopped.error is not None
    assert "Cơ sở dữ liệu quốc gia về dân cư" in stopped.error and "population registry" in stopped.error
    assert Counter(i.status for i in items_of(db, run.id).values()) == {"pending": 4}
    asked = db.scalars(select(AuditEntry).where(AuditEntry.action == "identity.verify")).all()
    assert [e.details["error"] for e in asked] == [type(error).__name__]

    resumed = identity_sync.run_sync(watched, gateway_for(GuardedRegistry(stub, watched)), cipher, run.id,
                                SyncOptions(worker="w2"))
    assert resumed.status == "done" and resumed.error is None
    assert resumed.outcomes == {"matched": 1, "mismatch": 2, "deceased": 1}


def test_a_stopping_runner_ends_the_run_and_releases_its_claims(
        db: Session, cipher: PiiCipher, tree: Tree, people: dict[str, Member], stub: StubRegistry) -> None:
    watched = WatchedFactory(db)
    stop = threading.Event()
    registry = GuardedRegistry(stub, watched, after_call=stop.set)  # The server gets SIGTERM during the first call.
    gateway = replace(gateway_for(registry), stop=stop)
    run = identity_sync.start_sync(db, SYSTEM, chapter_id=tree.central.id, force=False, reverify_days=180)

    stopped = identity_sync.run_sync(watched, gateway, cipher, run.id, SyncOptions(worker="w1", batch_size=10))
    assert registry.calls == 1
    assert (stopped.status, stopped.done, stopped.pending, stopped.claimed) == ("failed", 1, 3, 0)
    assert stopped.error is not None and "the server stopped" in stopped.error

    resumed = identity_sync.run_sync(watched, gateway_for(stub), cipher, run.id, SyncOptions(worker="w2"))
    assert (resumed.status, resumed.done) == ("done", 4)


def test_rerunning_is_idempotent_and_recent_members_are_skipped(
        db: Session, cipher: PiiCipher, tree: Tree, factory: Callable[[], Session], people: dict[str, Member],
        stub: StubRegistry) -> None:
    counting = CountingRegistry(stub)
    first = sync(db, factory, counting, cipher, tree)
    again = sync(db, factory, counting, cipher, tree, run_id=first.run_id)
    assert again.status == "done" and sum(counting.sent.values()) == 4

    second = sync(db, factory, counting, cipher, tree)
    assert (second.total, second.skipped_recent, second.status) == (0, 4, "done")
    assert sum(counting.sent.values()) == 4
    forced = sync(db, factory, counting, cipher, tree, force=True)
    assert forced.total == 4 and sum(counting.sent.values()) == 8
    # Reviews are not duplicated by a second answer about the same difference.
    assert len(open_reviews(db)) == 3
    assert db.scalar(select(IdentityReview.id).where(IdentityReview.status == "open").offset(3)) is None


def test_consent_withdrawn_after_the_run_started_stops_the_call(
        db: Session, cipher: PiiCipher, tree: Tree, factory: Callable[[], Session], people: dict[str, Member],
        stub: StubRegistry) -> None:
    run = identity_sync.start_sync(db, SYSTEM, chapter_id=tree.central.id, force=False, reverify_days=180)
    lan_consent = consents.list_consents(db, SYSTEM, people["lan"].id)[0]
    consents.withdraw_consent(db, SYSTEM, people["lan"].id, lan_consent.id, note="rút lại")
    counting = CountingRegistry(stub)
    summary = sync(db, factory, counting, cipher, tree, run_id=run.id)
    assert items_of(db, run.id)[people["lan"].id].outcome == "no_consent"
    assert id_number_of(cipher, people["lan"]) not in counting.sent
    assert summary.outcomes["no_consent"] == 1
    coverage = {row.code: row for row in identity_coverage.coverage(db, SYSTEM, tree.prov_a.id)}
    assert coverage[tree.branch_a.code].no_consent == 1


def test_scope_of_runs(db: Session, cipher: PiiCipher, tree: Tree, people: dict[str, Member]) -> None:
    with pytest.raises(PermissionDenied):
        identity_sync.start_sync(db, tree.actor("t.viewer.a"), chapter_id=None, force=False, reverify_days=180)
    with pytest.raises(NotFound):
        identity_sync.start_sync(db, tree.actor("t.officer.b"), chapter_id=tree.branch_a.id, force=False,
                            reverify_days=180)
    run = identity_sync.start_sync(db, tree.actor("t.officer.a"), chapter_id=None, force=False, reverify_days=180)
    assert run.chapter_path == tree.prov_a.path and run.total == 4
    with pytest.raises(NotFound):
        identity_sync.run_summary(db, tree.actor("t.officer.b"), run.id)


def test_membership_is_published_then_withdrawn(db: Session, cipher: PiiCipher, tree: Tree,
                                                factory: Callable[[], Session], people: dict[str, Member],
                                                stub: StubRegistry,
                                                signing_keys: dict[str, SigningKey], app: FastAPI) -> None:
    lan, thuy, refuser = people["lan"], people["thuy"], people["refuser"]
    for member in (lan, thuy):
        consent(db, member, "registry_publication")
    card = cards.issue_card(db, SYSTEM, app.state.keyring, lan.id, validity_years=5, list_size=4096)
    gateway = gateway_for(stub)
    officer = tree.actor("t.officer.a")

    first = publish(db, factory, gateway, cipher, officer)
    assert (first.published, first.withdrawn) == (2, 0)
    fact = stub.published_membership(id_number_of(cipher, lan), ORG)
    assert fact is not None
    assert (fact.card_id, fact.chapter_code, fact.status.value) == (card.card_id, tree.branch_a.code, "active")
    assert fact.card_valid_until == card.expires_on
    assert stub.published_membership(id_number_of(cipher, refuser), ORG) is None
    assert publish(db, factory, gateway, cipher, officer).unchanged == 2

    # Consent withdrawn: the fact is withdrawn, and no further call is made for her.
    lan_publication = next(c for c in consents.list_consents(db, SYSTEM, lan.id)
                           if c.purpose == "registry_publication")
    consents.withdraw_consent(db, SYSTEM, lan.id, lan_publication.id, note=None)
    members.change_status(db, SYSTEM, thuy.id, status="left", reason="chuyển đi", effective_on=None)
    second = publish(db, factory, gateway, cipher, officer)
    assert (second.published, second.withdrawn) == (0, 2)
    assert stub.published_membership(id_number_of(cipher, lan), ORG) is None
    assert stub.published_membership(id_number_of(cipher, thuy), ORG) is None
    third = publish(db, factory, gateway, cipher, officer)
    assert (third.published, third.withdrawn, third.unchanged) == (0, 0, 0)
    reasons = {e.target_id: e.details["reason"] for e in db.scalars(
        select(AuditEntry).where(AuditEntry.action == "identity.membership_withdraw"))}
    assert reasons == {str(lan.id): "consent_withdrawn", str(thuy.id): "member_left"}


def test_publication_is_a_job_that_stops_when_the_registry_is_down_and_resumes(
        db: Session, cipher: PiiCipher, tree: Tree, people: dict[str, Member], stub: StubRegistry) -> None:
    for member in (people["lan"], people["thuy"]):
        consent(db, member, "registry_publication")
    watched = WatchedFactory(db)
    officer = tree.actor("t.officer.a")
    down = GuardedRegistry(stub, watched, Unavailable("cannot reach the population registry (ConnectError)"))
    job = identity_publication.start_publication(db, officer, chapter_id=None)
    assert (job.kind, job.status, job.chapter_path) == ("registry_publication", "queued", tree.prov_a.path)

    summary = identity_publication.run_publication(watched, gateway_for(down), cipher, job.id)
    db.refresh(job)
    assert down.calls == 1 and summary.published == 0
    assert job.status == "failed" and job.error is not None and "population registry" in job.error
    assert job.result is not None and job.result["published"] == 0

    again = identity_publication.start_publication(db, officer, chapter_id=None)
    summary = identity_publication.run_publication(watched, gateway_for(GuardedRegistry(stub, watched)), cipher,
                                                   again.id)
    db.refresh(again)
    assert summary.published == 2
    assert (again.status, again.total, again.done, again.failed, again.error) == ("done", 2, 2, 0, None)
    assert again.result == {"published": 2, "withdrawn": 0, "unchanged": 0, "failed": 0, "no_id_number": 0,
                            "errors": {}}


def test_notifications_open_reviews_and_store_the_cursor(db: Session, cipher: PiiCipher, tree: Tree,
                                                         factory: Callable[[], Session], people: dict[str, Member],
                                                         stub: StubRegistry) -> None:
    lan, thuy, refuser = people["lan"], people["thuy"], people["refuser"]
    stub.inject_notification(NotificationKind.NAME_CHANGE, id_number_of(cipher, lan), occurred_on=date(2025, 6, 1),
                             new_name=PersonName("Nguyễn", "Thị Ngọc", "Lan"))
    stub.inject_notification(NotificationKind.DEATH, id_number_of(cipher, thuy), occurred_on=date(2025, 7, 2))
    stub.inject_notification(NotificationKind.DEATH, id_number_of(cipher, refuser), occurred_on=date(2025, 7, 3))
    stub.inject_notification(NotificationKind.DEATH, stub.unknown_id_number(), occurred_on=date(2025, 7, 4))
    watched = WatchedFactory(db)
    gateway = gateway_for(GuardedRegistry(stub, watched))

    summary = identity_notifications.pull_notifications(watched, gateway, cipher, SYSTEM, page_size=2)
    assert (summary.received, summary.reviews_opened, summary.ignored) == (4, 2, 2)
    stored = db.get(RegistryCursor, identity_notifications.NOTIFICATIONS_CURSOR)
    assert stored is not None and stored.cursor == "4" == summary.cursor
    reviews = open_reviews(db)
    assert reviews[lan.id].kind == "name_change" and reviews[lan.id].source == "notification"
    assert reviews[lan.id].registry_values["full_name"] == "Nguyễn Thị Ngọc Lan"
    assert reviews[thuy.id].registry_values == {"death_date": "2025-07-02"}
    db.refresh(lan)
    assert lan.full_name == "Nguyễn Thị Lan"

    assert identity_notifications.pull_notifications(factory, gateway, cipher, SYSTEM).received == 0
    with pytest.raises(PermissionDenied):
        identity_notifications.pull_notifications(factory, gateway, cipher, tree.actor("t.officer.a"))

    for woman in (lan, thuy):
        identity_reviews.decide_review(db, tree.actor("t.officer.a"), cipher, reviews[woman.id].id, decision="accept",
                                       note=None)
    db.refresh(lan)
    db.refresh(thuy)
    assert lan.full_name == "Nguyễn Thị Ngọc Lan"
    assert (thuy.status, thuy.status_changed_on) == ("deceased", date(2025, 7, 2))


@pytest.mark.parametrize(
    ("new_name", "code", "vietnamese"),
    [
        (PersonName.split(NAME_TOO_LONG_FOR_CARD), "too_long", "Họ tên quá dài để ghi lên thẻ"),
        (PersonName("Nguyễn", "Thị", "\u202enaL"), "invisible_characters", "U+202E"),
    ],
)
def test_a_registry_name_the_card_cannot_carry_is_refused_on_accept(
        client: TestClient, db: Session, cipher: PiiCipher, tree: Tree, people: dict[str, Member],
        stub: StubRegistry, factory: Callable[[], Session], new_name: PersonName, code: str, vietnamese: str) -> None:
    lan = people["lan"]
    stub.inject_notification(NotificationKind.NAME_CHANGE, id_number_of(cipher, lan), occurred_on=date(2025, 6, 1),
                             new_name=new_name)
    identity_notifications.pull_notifications(factory, gateway_for(stub), cipher, SYSTEM)
    review = open_reviews(db)[lan.id]
    headers = login(client, "t.officer.a")
    accepted = client.post(f"/v1/identity/reviews/{review.id}/decision", json={"decision": "accept"},
                           headers=headers)
    assert accepted.status_code == 422, accepted.text
    [detail] = accepted.json()["details"]
    assert (detail["field"], detail["code"]) == ("full_name", code)
    assert "Không thể lưu họ tên theo Cơ sở dữ liệu quốc gia" in detail["message_vi"]
    assert vietnamese in detail["message_vi"]
    assert open_reviews(db)[lan.id].status == "open"
    db.refresh(lan)
    assert lan.full_name == "Nguyễn Thị Lan"
    kept = client.post(f"/v1/identity/reviews/{review.id}/decision", json={"decision": "keep"}, headers=headers)
    assert kept.status_code == 200 and kept.json()["status"] == "kept"


def test_id_number_change_is_kept_encrypted_until_accepted(db: Session, cipher: PiiCipher, tree: Tree,
                                                           factory: Callable[[], Session],
                                                           people: dict[str, Member], stub: StubRegistry) -> None:
    lan = people["lan"]
    old_number = id_number_of(cipher, lan)
    new_number = old_number[:6] + "987654"
    stub.inject_notification(NotificationKind.ID_NUMBER_CHANGE, old_number, occurred_on=date(2025, 8, 1),
                             new_id_number=new_number)
    identity_notifications.pull_notifications(factory, gateway_for(stub), cipher, SYSTEM)
    review = open_reviews(db)[lan.id]
    assert review.kind == "id_number_change" and review.differing_fields == ["id_number"]
    assert new_number not in json.dumps(review.registry_values) and old_number not in json.dumps(review.registry_values)
    assert review.new_id_number_ciphertext is not None
    identity_reviews.decide_review(db, tree.actor("t.officer.a"), cipher, review.id, decision="accept", note=None)
    db.refresh(lan)
    assert id_number_of(cipher, lan) == new_number
    assert review.new_id_number_ciphertext is None


def test_no_id_number_in_audit_details_or_logs(db: Session, cipher: PiiCipher, tree: Tree,
                                               factory: Callable[[], Session], people: dict[str, Member],
                                               stub: StubRegistry, caplog: pytest.LogCaptureFixture) -> None:
    numbers = [id_number_of(cipher, m) for m in people.values()]
    consent(db, people["lan"], "registry_publication")
    stub.inject_notification(NotificationKind.DEATH, numbers[1], occurred_on=date(2025, 7, 2))
    throttled = StubRegistry([record_of(cipher, m) for m in people.values()], synthetic=0, throttle_per_second=2)
    with caplog.at_level(logging.DEBUG):
        sync(db, factory, throttled, cipher, tree, sleep=lambda _s: None)
        publish(db, factory, gateway_for(stub), cipher, SYSTEM)
        identity_notifications.pull_notifications(factory, gateway_for(stub), cipher, SYSTEM)
    entries = db.scalars(select(AuditEntry).where(AuditEntry.action.startswith("identity."))).all()
    actions = {e.action for e in entries}
    assert {"identity.verify", "identity.membership_publish", "identity.notifications_pull",
            "identity.review_open", "identity.sync_done"} <= actions
    verify_entries = [e for e in entries if e.action == "identity.verify"]
    assert {e.details["purpose"] for e in verify_entries} == {"identity_verification"}
    assert {e.target_id for e in verify_entries} == {str(people[k].id) for k in ("lan", "thuy", "swapped", "dead")}
    dumped = json.dumps([e.details for e in entries], ensure_ascii=False)
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records)
    for number in numbers:
        assert number not in dumped
        assert number not in logged


def test_registry_factory_and_settings(cipher: PiiCipher) -> None:
    base: dict[str, Any] = {"environment": "test", "secret_key": TEST_SECRET, "key_encryption_key": TEST_KEK,
                            "_env_file": None}
    record = PersonRecord("001190000001", PersonName("Nguyễn", "Thị", "Hòa"), BirthDate(1990, 5, 1))
    development = DevelopmentRegistry("dev-access", "dev-secret", lambda _settings: [record])
    stubbed = identity_gateway.make_registry(Settings(registry_mode="stub", **base), development)
    assert isinstance(stubbed, StubRegistry)
    remote = identity_gateway.make_registry(Settings(registry_base_url="http://127.0.0.1:1", **base), development)
    assert isinstance(remote, HttpRegistry)
    assert identity_gateway.registry_settings(Settings(**base), development).access_key == "dev-access"
    adapter = identity_gateway.registry_settings(Settings(registry_access_key="ak", registry_secret_key="sk" * 10,
                                                          registry_rate_limit_per_second=0, **base))
    assert (adapter.access_key, adapter.rate_limit_per_second) == ("ak", None)
    assert "sk" * 10 not in repr(Settings(registry_secret_key="sk" * 10, **base))
    # Without the development registry (as in production) there is no stub and no default keys.
    with pytest.raises(SettingsError, match="stub"):
        identity_gateway.make_registry(Settings(registry_mode="stub", **base))
    with pytest.raises(SettingsError, match="REGISTRY"):
        identity_gateway.make_registry(Settings(**base))
    with pytest.raises(SettingsError, match="REGISTRY"):
        Settings(environment="production", secret_key="p" * 40, key_encryption_key="k" * 40,
                 database_url="postgresql://db/x", _env_file=None)  # type: ignore[call-arg]


def test_production_never_imports_the_demo_or_the_fake_registry(tmp_path: Path) -> None:
    """The application and the registry commands of a production service are assembled without the development
    registry: neither the demo data nor the fake registry server is imported."""
    secret, kek = tmp_path / "secret.key", tmp_path / "kek.key"
    secret.write_text("s" * 64)
    kek.write_text("k" * 64)
    script = (
        "import sys\n"
        "from cardsvc.app import create_app\n"
        "from cardsvc.registry import gateway_for\n"
        "from cardsvc.settings import Settings\n"
        f"settings = Settings(environment='production', secret_key_file={str(secret)!r}, "
        f"key_encryption_key_file={str(kek)!r}, database_url='sqlite:///{tmp_path / 'p.sqlite3'}', "
        "registry_access_key='ak', registry_secret_key='sk' * 10, _env_file=None)\n"
        "create_app(settings)\n"
        "gateway_for(settings)\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('cardsvc.demo') "
        "or m == 'integrations.population.fake_server')\n"
        "assert not loaded, loaded\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARDSVC_")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr


def test_demo_sync_fills_the_review_queue(db: Session, cipher: PiiCipher, settings: Settings, tmp_path: Path,
                                          factory: Callable[[], Session]) -> None:
    from cardsvc.demo import load_demo
    from cardsvc.demo.registry import registry_records

    load_demo(db, cipher, settings.kek, tmp_path / "var")
    _logins, created_again = load_demo(db, cipher, settings.kek, tmp_path / "var")
    assert not created_again
    registry = StubRegistry(registry_records(db, cipher), synthetic=0)
    run = identity_sync.start_sync(db, SYSTEM, chapter_id=None, force=False, reverify_days=180)
    summary = identity_sync.run_sync(factory, gateway_for(registry), cipher, run.id, SyncOptions(worker="demo"))
    assert summary.skipped_no_consent >= 20
    assert summary.outcomes["matched"] >= 150
    assert {"mismatch", "deceased", "not_found"} <= set(summary.outcomes)
    kinds = Counter(r.kind for r in open_reviews(db).values())
    assert kinds == {"name_diacritics": 1, "mismatch": 1, "deceased": 1}


@pytest.fixture
def api_stub(app: FastAPI, monkeypatch: pytest.MonkeyPatch, stub: StubRegistry) -> Iterator[StubRegistry]:
    monkeypatch.setattr(app.state, "registry", stub)
    yield stub


def test_api_run_reviews_decision_coverage_publish(client: TestClient, api_stub: StubRegistry, tree: Tree,
                                                   people: dict[str, Member]) -> None:
    headers = login(client, "t.officer.a")
    started = client.post("/v1/identity/sync-runs", json={}, headers=headers)
    assert started.status_code == 202, started.text
    run = client.get(f"/v1/identity/sync-runs/{started.json()['id']}", headers=headers).json()
    assert run["status"] == "done" and run["outcomes"] == {"matched": 1, "mismatch": 2, "deceased": 1}
    assert run["skipped_no_consent"] == 1

    reviews = client.get("/v1/identity/reviews", headers=headers).json()
    assert {r["kind"] for r in reviews} == {"name_diacritics", "mismatch", "deceased"}
    assert all("id_number" not in json.dumps(r["registry_values"]) for r in reviews)
    assert client.get("/v1/identity/reviews", headers=login(client, "t.officer.b")).json() == []
    deceased = next(r for r in reviews if r["kind"] == "deceased")
    decided = client.post(f"/v1/identity/reviews/{deceased['id']}/decision",
                          json={"decision": "accept", "note": "đã xác minh"}, headers=headers)
    assert decided.status_code == 200 and decided.json()["status"] == "accepted"
    bad = client.post(f"/v1/identity/reviews/{deceased['id']}/decision", json={"decision": "delete"},
                      headers=headers)
    assert bad.status_code == 422

    coverage = {row["code"]: row for row in client.get("/v1/identity/coverage", headers=headers).json()}
    assert coverage[tree.branch_a.code]["verified"] == 1
    published = client.post("/v1/identity/publish", json={}, headers=headers)
    assert published.status_code == 202, published.text
    job = client.get(f"/v1/jobs/{published.json()['id']}", headers=headers).json()
    assert (job["kind"], job["status"], job["result"]["published"]) == ("registry_publication", "done", 0)
