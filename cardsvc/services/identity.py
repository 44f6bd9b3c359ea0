"""Identity checks with the national population registry (DOMAIN.md §7–§8).

* **Sync runs** verify the ID number, name, birth date and gender of members who consented to identity
  verification. A run is a row plus one work item per member; workers claim items in small batches
  (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), and every item's answer is committed on its own with its audit entry,
  so an interrupted run resumes where it stopped, a finished run does nothing when run again, and several workers
  can share a run. Claims expire after a lease, so the items of a crashed worker are taken over.
* **Reviews**: the registry never changes a member by itself. Mismatches, deaths and registry notifications (death,
  change of name or ID number) open an officer review; accepting one goes through ``members.update_member`` or
  ``members.change_status``, so the change is validated and audited like any other.
* **Publication**: the membership facts of members who consented to publication are published, re-published when
  they change, and withdrawn when the member leaves, dies or withdraws her consent.

Data protection: only the fields a purpose needs are sent; every registry call is audited with the officer, the
purpose and the member (never the ID number); consent is checked again right before each call, so a withdrawal
stops the calls for that member at once; ID numbers never reach a log record.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import and_, case, exists, func, insert, or_, select, true, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased, sessionmaker

from cardsvc.days import vietnam_day, vietnam_today
from cardsvc.db.base import utcnow
from cardsvc.db.models import (
    Chapter,
    Consent,
    IdentityReview,
    IdentitySyncItem,
    IdentitySyncRun,
    Job,
    Member,
    MembershipPublication,
    Officer,
    RegistryCursor,
)
from cardsvc.errors import Conflict, NotFound, ValidationFailed
from cardsvc.normalize import NormalizeError, normalize_name
from cardsvc.security import PiiCipher
from cardsvc.services import audit, members
from cardsvc.services.cards import current_card
from cardsvc.services.chapters import get_chapter
from cardsvc.services.consents import has_active_consent
from cardsvc.services.context import Actor, subtree_condition, system_actor
from cardsvc.services.jobs import STOPPED_MESSAGE, JobRunner, JobStopped
from cardsvc.services.officers import actor_for
from cardsvc.settings import Settings, SettingsError
from integrations.population import (
    BirthDate,
    CallContext,
    FieldMatch,
    Gender,
    HttpRegistry,
    MembershipFact,
    MembershipStatus,
    Notification,
    NotificationKind,
    Outcome,
    PersonName,
    PersonRecord,
    PopulationRegistry,
    Purpose,
    RegistryError,
    RegistrySettings,
    RejectedRequest,
    StubRegistry,
    Throttled,
    VerifyRequest,
    VerifyResult,
    make_http_client,
)
from integrations.population.fake_server import DEFAULT_CREDENTIALS

log = logging.getLogger("cardsvc.identity")

IDENTITY_CONSENT = "identity_verification"
PUBLICATION_CONSENT = "registry_publication"
# Outcomes that are an answer of the registry about the person (the others say why nothing was asked).
CHECKED_OUTCOMES = ("matched", "mismatch", "not_found", "deceased")
VERIFIABLE_STATUSES = ("active", "suspended")
MAX_ATTEMPTS = 3
NOTIFICATIONS_CURSOR = "notifications"
REVIEW_DECISIONS = {"accept": "accepted", "keep": "kept", "flag": "flagged"}
# A review whose registry values say what to change; the others only say that something differs.
ACCEPTABLE_KINDS = ("deceased", "name_change", "id_number_change")
# Associated data of the encrypted new ID number a notification carries (never valid for the members table).
NEW_ID_NUMBER_FIELD = "review_new_id_number"

Sleep = Callable[[float], None]
Clock = Callable[[], datetime]
_T = TypeVar("_T")


# -- the registry and the codes every call carries --------------------------------------------------------------


def registry_settings(settings: Settings) -> RegistrySettings:
    """The adapter's settings from ours. Outside production, unset keys mean the fake registry's development keys.

    Raises:
        SettingsError: keys missing in production.
    """
    access_key, secret_key = settings.registry_access_key, settings.registry_secret_key
    if not access_key or not secret_key:
        if settings.environment == "production":
            raise SettingsError("CARDSVC_REGISTRY_ACCESS_KEY and CARDSVC_REGISTRY_SECRET_KEY must be set")
        access_key, secret_key = DEFAULT_CREDENTIALS.access_key, DEFAULT_CREDENTIALS.secret_key
    return RegistrySettings(
        base_url=settings.registry_base_url,
        access_key=access_key,
        secret_key=secret_key,
        app_name=settings.registry_app_name,
        partner_code=settings.registry_partner_code,
        agency_code=settings.registry_agency_code,
        service_code=settings.registry_service_code,
        timeout=settings.registry_timeout_seconds,
        connect_timeout=settings.registry_connect_timeout_seconds,
        max_retries=settings.registry_max_retries,
        rate_limit_per_second=settings.registry_rate_limit_per_second or None,
        client_cert_file=str(settings.registry_client_cert_file) if settings.registry_client_cert_file else None,
        client_key_file=str(settings.registry_client_key_file) if settings.registry_client_key_file else None,
        ca_file=str(settings.registry_ca_file) if settings.registry_ca_file else None,
    )


def make_registry(settings: Settings, *, records: Sequence[PersonRecord] | None = None) -> PopulationRegistry:
    """The registry the settings ask for.

    ``stub``: an in-process :class:`StubRegistry` that knows ``records``, by default the members in the database
    (with the demo's deliberate trouble, see :func:`cardsvc.demo.registry_records`), read once now. ``http``: the
    :class:`HttpRegistry` adapter; no connection is made before the first call.
    """
    if settings.registry_mode == "stub":
        return StubRegistry(records if records is not None else _records_from_database(settings))
    adapter_settings = registry_settings(settings)
    return HttpRegistry(make_http_client(adapter_settings), adapter_settings)


def _records_from_database(settings: Settings) -> list[PersonRecord]:
    # Imported here: the demo module builds on the services, and only the stub needs its records.
    from cardsvc.db.session import make_engine
    from cardsvc.demo import registry_records

    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            return registry_records(session, PiiCipher.from_settings(settings))
    except SQLAlchemyError:
        # A database that is not migrated yet: the stub starts empty rather than failing the application.
        log.warning("the registry stub could not read the members table; it knows no member")
        return []
    finally:
        engine.dispose()


def member_birth_date(member: Member) -> BirthDate:
    """The member's birth date in the registry's form (only the year when that is all we know)."""
    if member.birth_date_precision == "year":
        return BirthDate(member.birth_date.year)
    return BirthDate.of(member.birth_date)


def member_person_record(member: Member, cipher: PiiCipher) -> PersonRecord | None:
    """The registry record that agrees exactly with a member (for the stub and the fake registry)."""
    if member.id_number_ciphertext is None:
        return None
    old = cipher.decrypt("old_id_number", member.old_id_number_ciphertext) if member.old_id_number_ciphertext \
        else None
    gender: Gender = "male" if member.gender == "male" else "female"
    return PersonRecord(cipher.decrypt("id_number", member.id_number_ciphertext), PersonName.split(member.full_name),
                        member_birth_date(member), gender, old)


@dataclass(frozen=True)
class RegistryGateway:
    """The registry with the codes every call carries and the waiting policy.

    A ``Throttled`` makes the caller wait ``retry_after`` seconds and repeat the call with the same request id, at
    most ``max_waits`` times. Nothing else is waited for: an open circuit, a timeout or an unreachable registry
    reaches the caller at once, and the caller's run stops and can be resumed later. Once ``stop`` is set (the
    server is stopping), a wait ends at once and no further call is made (:class:`JobStopped`). ``sleep`` is
    injected by tests; by default a wait is a wait on ``stop``.
    """

    registry: PopulationRegistry
    agency_code: str
    service_code: str
    procedure_code: str
    organisation_code: str
    sleep: Sleep | None = None
    max_waits: int = 50
    stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def from_settings(cls, settings: Settings, registry: PopulationRegistry, *, stop: threading.Event | None = None
                      ) -> RegistryGateway:
        return cls(registry, settings.registry_agency_code, settings.registry_service_code,
                   settings.registry_procedure_code, settings.registry_organisation_code,
                   stop=stop if stop is not None else threading.Event())

    def context(self, actor: Actor, purpose: Purpose) -> CallContext:
        """A fresh call context naming the officer (or system actor) responsible and the purpose."""
        return CallContext(request_id=CallContext.new_request_id(), procedure_code=self.procedure_code,
                           service_code=self.service_code, agency_code=self.agency_code,
                           officer_code=actor.name, purpose=purpose)

    def call(self, operation: Callable[[], _T]) -> _T:
        """Run ``operation``, waiting as long as the registry asks when it throttles.

        Raises:
            RegistryError: anything else, or still throttled after ``max_waits`` waits.
            JobStopped: ``stop`` is set.
        """
        waits = 0
        while True:
            if self.stop.is_set():
                raise JobStopped
            try:
                return operation()
            except Throttled as exc:
                waits += 1
                if waits > self.max_waits:
                    raise
                log.info("registry asked to wait %.1f s", exc.retry_after)
                if self.sleep is not None:
                    self.sleep(exc.retry_after)
                else:
                    self.stop.wait(exc.retry_after)


def gateway_for(settings: Settings) -> RegistryGateway:
    """The registry named by the settings, behind a :class:`RegistryGateway` (for commands that run outside the
    server; the server keeps its registry in ``app.state.registry``)."""
    return RegistryGateway.from_settings(settings, make_registry(settings))


def registry_failure_message(exc: RegistryError) -> str:
    """What a run or job that the registry cannot serve stops with, for officers (Vietnamese, then English).

    Registry errors never carry an ID number, so their text may be shown.
    """
    if exc.retryable:
        return (f"Cơ sở dữ liệu quốc gia về dân cư không trả lời ({type(exc).__name__}); chạy lại sau để làm tiếp — "
                f"the population registry is not answering: {exc}; run again later to resume")[:500]
    return (f"Cơ sở dữ liệu quốc gia về dân cư từ chối dịch vụ ({type(exc).__name__}) — "
            f"the population registry refused the service: {exc}")[:500]


def _stops_the_run(exc: RegistryError) -> bool:
    """Whether a failed call says that the registry cannot serve us now (down, unreachable, an open circuit, our
    credentials refused, answers we cannot read) rather than something about this one request (refused, or still
    throttled after the waits)."""
    return not isinstance(exc, (RejectedRequest, Throttled))


def _ask(gateway: RegistryGateway, operation: Callable[[], _T]) -> _T | RegistryError:
    """The registry's answer, or the registry error it ended with (the caller decides what the error means)."""
    try:
        return gateway.call(operation)
    except RegistryError as exc:
        return exc


class _RunAborted(Exception):
    """The run or job cannot go on: the registry cannot serve us now (down, refusing the service). The message says
    why, for officers."""


# -- sync runs --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    """Where a run stands: items per status, answers per outcome, members not queued."""

    run_id: int
    status: str
    chapter_id: int | None
    force: bool
    total: int
    pending: int
    claimed: int
    done: int
    failed: int
    outcomes: dict[str, int]
    skipped_no_consent: int
    skipped_recent: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None


def _scope_path(session: Session, actor: Actor, chapter_id: int | None) -> tuple[Chapter | None, str | None]:
    if chapter_id is None:
        return None, actor.scope_path
    chapter = get_chapter(session, actor, chapter_id)
    return chapter, chapter.path


def _consenting(purpose: str) -> Any:
    return exists().where(Consent.member_id == Member.id, Consent.purpose == purpose, Consent.withdrawn_at.is_(None))


def _count(session: Session, stmt: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)


def start_sync(session: Session, actor: Actor, *, chapter_id: int | None, force: bool, reverify_days: int,
               now: datetime | None = None) -> IdentitySyncRun:
    """Record a run over the members of a chapter's subtree (default: the actor's whole scope).

    Members without consent to identity verification are counted, not queued; so are members verified within
    ``reverify_days``, unless ``force``.
    """
    actor.require_write()
    chapter, path = _scope_path(session, actor, chapter_id)
    now = now or utcnow()
    in_scope = select(Member.id).join(Member.chapter).where(Member.status.in_(VERIFIABLE_STATUSES))
    if path is not None:
        in_scope = in_scope.where(subtree_condition(Chapter.path, path))
    consenting = _consenting(IDENTITY_CONSENT)
    recent = exists().where(
        IdentitySyncItem.member_id == Member.id, IdentitySyncItem.status == "done",
        IdentitySyncItem.outcome.in_(CHECKED_OUTCOMES),
        IdentitySyncItem.checked_at >= now - timedelta(days=reverify_days),
    )
    queued = in_scope.where(consenting) if force else in_scope.where(consenting, ~recent)
    member_ids = list(session.scalars(queued.order_by(Member.id)))
    run = IdentitySyncRun(
        status="queued", chapter_id=chapter.id if chapter else None, chapter_path=path, force=force,
        officer_id=actor.id, total=len(member_ids), created_at=now,
        skipped_no_consent=_count(session, in_scope.where(~consenting)),
        skipped_recent=0 if force else _count(session, in_scope.where(consenting, recent)),
    )
    session.add(run)
    session.flush()
    if member_ids:
        session.execute(insert(IdentitySyncItem), [
            {"run_id": run.id, "member_id": member_id, "status": "pending", "attempts": 0, "differing_fields": []}
            for member_id in member_ids
        ])
    audit.record(session, actor, "identity.sync_start", target_type="identity_sync_run", target_id=run.id,
                 chapter_path=path, details={"members": len(member_ids), "force": force,
                                             "no_consent": run.skipped_no_consent,
                                             "skipped_recent": run.skipped_recent})
    session.commit()
    return run


def get_run(session: Session, actor: Actor, run_id: int) -> IdentitySyncRun:
    run = session.get(IdentitySyncRun, run_id, populate_existing=True)
    if run is None or not actor.sees(run.chapter_path):
        raise NotFound("identity sync run not found")
    return run


def unfinished_run(session: Session, actor: Actor, chapter_id: int | None) -> IdentitySyncRun | None:
    """The latest run over the same scope that has not finished (to resume it), if any."""
    _chapter, path = _scope_path(session, actor, chapter_id)
    where = IdentitySyncRun.chapter_path.is_(None) if path is None else IdentitySyncRun.chapter_path == path
    return session.scalar(
        select(IdentitySyncRun).where(where, IdentitySyncRun.status.in_(("queued", "running", "failed")))
        .order_by(IdentitySyncRun.id.desc()).limit(1)
    )


def summarize(session: Session, run: IdentitySyncRun) -> RunSummary:
    statuses: dict[str, int] = {status: count for status, count in session.execute(
        select(IdentitySyncItem.status, func.count()).where(IdentitySyncItem.run_id == run.id)
        .group_by(IdentitySyncItem.status)
    )}
    outcomes: dict[str, int] = {str(outcome): count for outcome, count in session.execute(
        select(IdentitySyncItem.outcome, func.count())
        .where(IdentitySyncItem.run_id == run.id, IdentitySyncItem.outcome.is_not(None))
        .group_by(IdentitySyncItem.outcome)
    )}
    return RunSummary(
        run_id=run.id, status=run.status, chapter_id=run.chapter_id, force=run.force, total=run.total,
        pending=statuses.get("pending", 0), claimed=statuses.get("claimed", 0), done=statuses.get("done", 0),
        failed=statuses.get("failed", 0), outcomes=outcomes,
        skipped_no_consent=run.skipped_no_consent, skipped_recent=run.skipped_recent, error=run.error,
        created_at=run.created_at, finished_at=run.finished_at,
    )


def run_summary(session: Session, actor: Actor, run_id: int) -> RunSummary:
    return summarize(session, get_run(session, actor, run_id))


def _run_actor(session: Session, run: IdentitySyncRun) -> Actor:
    officer = session.get(Officer, run.officer_id) if run.officer_id is not None else None
    return actor_for(officer) if officer is not None else system_actor("identity-sync")


def _claim(session: Session, run_id: int, worker: str, limit: int, now: datetime, lease_seconds: int) -> list[int]:
    """Claim up to ``limit`` pending items (or items whose claim expired) in one statement.

    On PostgreSQL the inner ``SELECT … FOR UPDATE SKIP LOCKED`` lets concurrent workers pass over each other's rows
    instead of waiting or claiming them twice; SQLite has a single writer, so the one ``UPDATE`` is atomic there.
    """
    expired = now - timedelta(seconds=lease_seconds)
    claimable = (
        select(IdentitySyncItem.id)
        .where(IdentitySyncItem.run_id == run_id,
               or_(IdentitySyncItem.status == "pending",
                   and_(IdentitySyncItem.status == "claimed", IdentitySyncItem.claimed_at < expired)))
        .order_by(IdentitySyncItem.id).limit(limit).with_for_update(skip_locked=True)
    )
    claimed = list(session.scalars(
        update(IdentitySyncItem).where(IdentitySyncItem.id.in_(claimable.scalar_subquery()))
        .values(status="claimed", claimed_by=worker, claimed_at=now, attempts=IdentitySyncItem.attempts + 1)
        .returning(IdentitySyncItem.id).execution_options(synchronize_session=False)
    ))
    session.commit()
    return sorted(claimed)


def _release(session: Session, item_ids: Sequence[int], worker: str) -> None:
    if item_ids:
        session.execute(
            update(IdentitySyncItem)
            .where(IdentitySyncItem.id.in_(item_ids), IdentitySyncItem.status == "claimed",
                   IdentitySyncItem.claimed_by == worker)
            .values(status="pending", claimed_by=None, claimed_at=None)
            .execution_options(synchronize_session=False)
        )
        session.commit()


def verify_request(member: Member, cipher: PiiCipher) -> VerifyRequest | None:
    """What identity verification sends: the ID number (12 digits, else the old 9), name, birth date, gender."""
    if member.id_number_ciphertext is not None:
        id_number = cipher.decrypt("id_number", member.id_number_ciphertext)
    elif member.old_id_number_ciphertext is not None:
        id_number = cipher.decrypt("old_id_number", member.old_id_number_ciphertext)
    else:
        return None
    gender: Gender = "male" if member.gender == "male" else "female"
    return VerifyRequest(id_number, member.full_name, member_birth_date(member), gender)


def _open_review(session: Session, actor: Actor, member: Member, *, source: str, kind: str,
                 differing: list[str], values: dict[str, Any], item_id: int | None = None,
                 notification_id: str | None = None, new_id_number: bytes | None = None) -> IdentityReview:
    """Open a review, or refresh the open review of the same member and kind (the queue holds no duplicates)."""
    review = session.scalar(select(IdentityReview).where(
        IdentityReview.member_id == member.id, IdentityReview.kind == kind, IdentityReview.status == "open"))
    if review is None:
        review = IdentityReview(member_id=member.id, source=source, kind=kind, status="open", created_at=utcnow())
        session.add(review)
    review.differing_fields = differing
    review.registry_values = values
    review.sync_item_id = item_id if item_id is not None else review.sync_item_id
    review.notification_id = notification_id if notification_id is not None else review.notification_id
    if new_id_number is not None:
        review.new_id_number_ciphertext = new_id_number
    session.flush()
    audit.record(session, actor, "identity.review_open", target_type="identity_review", target_id=review.id,
                 chapter_path=member.chapter.path,
                 details={"member_id": member.id, "source": source, "kind": kind, "fields": differing})
    return review


@dataclass(frozen=True)
class _Verification:
    """One item's call, prepared in a transaction and sent after it ended."""

    item_id: int
    member_id: int
    chapter_path: str
    request: VerifyRequest
    context: CallContext


def _finish(item: IdentitySyncItem, outcome: str | None, now: datetime, *, status: str = "done",
            error: str | None = None) -> None:
    item.status, item.outcome, item.error = status, outcome, error
    item.checked_at, item.claimed_by, item.claimed_at = now, None, None


def _prepare_item(session: Session, gateway: RegistryGateway, cipher: PiiCipher, actor: Actor, item_id: int,
                  worker: str, now: datetime) -> _Verification | None:
    """Check the claim, the member and her consent (again, just before the call); finish the item at once when
    nothing is to be sent."""
    item = session.get_one(IdentitySyncItem, item_id)
    if item.status != "claimed" or item.claimed_by != worker:
        return None  # Our claim expired and another worker took the item over.
    member = session.get_one(Member, item.member_id)
    if member.status not in VERIFIABLE_STATUSES:
        outcome = "inactive"
    elif not has_active_consent(session, member.id, IDENTITY_CONSENT):
        # Consent withdrawn after the run started: nothing about her leaves the service.
        outcome = "no_consent"
    elif (request := verify_request(member, cipher)) is None:
        outcome = "no_id_number"
    else:
        return _Verification(item.id, member.id, member.chapter.path, request,
                             gateway.context(actor, Purpose.IDENTITY_VERIFICATION))
    _finish(item, outcome, now)
    session.commit()
    return None


def _record_answer(session: Session, actor: Actor, run_id: int, call: _Verification,
                   answer: VerifyResult | RegistryError, worker: str, now: datetime) -> None:
    """Store the registry's answer (or how the call failed) with the call's audit entry. A refusal of this request
    fails the item; any other failure puts it back to pending, until its attempts are used up. If another worker
    took the item over meanwhile, only the audit entry is written."""
    item = session.get_one(IdentitySyncItem, call.item_id, populate_existing=True)
    ours = item.status == "claimed" and item.claimed_by == worker
    details: dict[str, Any] = {"run_id": run_id, "purpose": IDENTITY_CONSENT,
                               "registry_request_id": call.context.request_id}
    if isinstance(answer, RegistryError):
        error = answer.code if isinstance(answer, RejectedRequest) else type(answer).__name__
        details["error"] = error
        if ours and (isinstance(answer, RejectedRequest) or item.attempts >= MAX_ATTEMPTS):
            _finish(item, None, now, status="failed", error=error)
        elif ours:
            item.status, item.claimed_by, item.claimed_at, item.error = "pending", None, None, error
    else:
        details["outcome"] = answer.outcome.value
        if ours:
            _record_result(session, actor, item, answer, call.context, now)
    audit.record(session, actor, "identity.verify", target_type="member", target_id=call.member_id,
                 chapter_path=call.chapter_path, details=details)
    session.commit()


def _record_result(session: Session, actor: Actor, item: IdentitySyncItem, result: VerifyResult,
                   context: CallContext, now: datetime) -> None:
    differing = [name for name, match in (("full_name", result.name), ("birth_date", result.birth_date),
                                          ("gender", result.gender)) if match is FieldMatch.MISMATCH]
    _finish(item, result.outcome.value, now)
    item.differing_fields = differing
    item.registry_request_id = context.request_id
    member = session.get_one(Member, item.member_id)
    if result.outcome is Outcome.MISMATCH:
        kind = "name_diacritics" if result.name_diacritics_only and differing == ["full_name"] else "mismatch"
        _open_review(session, actor, member, source="sync", kind=kind, differing=differing, values={},
                     item_id=item.id)
    elif result.outcome is Outcome.DECEASED:
        _open_review(session, actor, member, source="sync", kind="deceased", differing=["status"],
                     values={"deceased": True}, item_id=item.id)


@dataclass(frozen=True)
class SyncOptions:
    """How a worker works: its name (unique among live workers), claim size and lease, injected time."""

    worker: str
    batch_size: int = 20
    lease_seconds: int = 300
    clock: Clock = utcnow
    progress: Callable[[], None] | None = None


def run_sync(session_factory: sessionmaker[Session] | Callable[[], Session], gateway: RegistryGateway,
             cipher: PiiCipher, run_id: int, options: SyncOptions) -> RunSummary:
    """Work on a run until no item is left to claim; the worker that sees the last item finished closes the run.

    No transaction is open while the registry is asked: each item is prepared in one session and its answer
    committed with its audit entry in the next, before the next item is sent. The run stops at the first failure
    that is not about one request (see :func:`_stops_the_run`) — the registry is down (timeouts, connection errors,
    an open circuit) or refuses the service (credentials) — and when the gateway's ``stop`` is set: the worker's
    unfinished claims are released and the run is marked failed with the reason; running it again resumes it. If
    anything else escapes (a crash), the claims are released first, so a rerun continues without sending done items
    again.
    """
    with session_factory() as session:
        run = session.get_one(IdentitySyncRun, run_id)
        if run.status == "done":
            return summarize(session, run)
        session.execute(
            update(IdentitySyncRun).where(IdentitySyncRun.id == run_id, IdentitySyncRun.status != "done")
            .values(status="running", error=None, started_at=func.coalesce(IdentitySyncRun.started_at,
                                                                            options.clock()))
            .execution_options(synchronize_session=False)
        )
        session.commit()
        actor = _run_actor(session, run)
    while True:
        with session_factory() as session:
            claimed = _claim(session, run_id, options.worker, options.batch_size, options.clock(),
                             options.lease_seconds)
        if not claimed:
            break
        finished = 0
        error: str | None = None
        try:
            for item_id in claimed:
                _verify_item(session_factory, gateway, cipher, actor, run_id, item_id, options)
                finished += 1
                if options.progress:
                    options.progress()
        except _RunAborted as exc:
            finished += 1  # The item that stopped the run was recorded: it is not among the claims to release.
            error = str(exc)
        except JobStopped:
            error = STOPPED_MESSAGE
        except BaseException:
            with session_factory() as session:
                _release(session, claimed[finished:], options.worker)
            raise
        if error is not None:
            with session_factory() as session:
                _release(session, claimed[finished:], options.worker)
                _fail_run(session, actor, run_id, error)
                return summarize(session, session.get_one(IdentitySyncRun, run_id))
    with session_factory() as session:
        return _close_run(session, actor, run_id, options.clock())


def _verify_item(session_factory: sessionmaker[Session] | Callable[[], Session], gateway: RegistryGateway,
                 cipher: PiiCipher, actor: Actor, run_id: int, item_id: int, options: SyncOptions) -> None:
    """Prepare, send and record one item.

    Raises:
        JobStopped: the gateway's ``stop`` is set (the item is not recorded).
        _RunAborted: the item's call failed in a way that stops the run (recorded; see :func:`_stops_the_run`).
    """
    if gateway.stop.is_set():
        raise JobStopped
    with session_factory() as session:
        call = _prepare_item(session, gateway, cipher, actor, item_id, options.worker, options.clock())
    if call is None:
        return
    answer = _ask(gateway, partial(gateway.registry.verify_identity, call.context, call.request))
    with session_factory() as session:
        _record_answer(session, actor, run_id, call, answer, options.worker, options.clock())
    if isinstance(answer, RegistryError) and _stops_the_run(answer):
        raise _RunAborted(registry_failure_message(answer))


def _fail_run(session: Session, actor: Actor, run_id: int, error: str) -> None:
    run = session.get_one(IdentitySyncRun, run_id, populate_existing=True)
    run.status, run.error = "failed", error[:500]
    audit.record(session, actor, "identity.sync_failed", target_type="identity_sync_run", target_id=run.id,
                 chapter_path=run.chapter_path, details={"error": error[:200]})
    session.commit()
    log.warning("identity sync run %s failed: %s", run_id, error)


def _close_run(session: Session, actor: Actor, run_id: int, now: datetime) -> RunSummary:
    open_items = session.scalar(select(func.count()).where(
        IdentitySyncItem.run_id == run_id, IdentitySyncItem.status.in_(("pending", "claimed"))))
    if not open_items:
        # Several workers may get here at once: the conditional update lets exactly one of them close the run.
        closed = session.execute(
            update(IdentitySyncRun).where(IdentitySyncRun.id == run_id, IdentitySyncRun.status == "running")
            .values(status="done", finished_at=now).returning(IdentitySyncRun.id)
            .execution_options(synchronize_session=False)
        ).scalar()
        if closed is not None:
            run = session.get_one(IdentitySyncRun, run_id, populate_existing=True)
            summary = summarize(session, run)
            audit.record(session, actor, "identity.sync_done", target_type="identity_sync_run", target_id=run_id,
                         chapter_path=run.chapter_path,
                         details={"outcomes": summary.outcomes, "failed": summary.failed})
            session.commit()
            return summary
        session.commit()
    return summarize(session, session.get_one(IdentitySyncRun, run_id, populate_existing=True))


class RegistryJobs:
    """Hands registry work — sync runs and publications — to the registry's job runner: in the server a few threads
    of their own (``CARDSVC_REGISTRY_JOB_CONCURRENCY``), never a request's thread; inline in tests. The gateway
    stops when the runner does."""

    def __init__(self, session_factory: sessionmaker[Session] | Callable[[], Session], gateway: RegistryGateway,
                 cipher: PiiCipher, runner: JobRunner, *, batch_size: int, lease_seconds: int) -> None:
        self._session_factory = session_factory
        self._gateway = gateway
        self._cipher = cipher
        self._runner = runner
        # Unique among live workers: several server processes may share a run's items.
        self._options = SyncOptions(worker=f"server-{os.getpid()}", batch_size=batch_size,
                                    lease_seconds=lease_seconds)

    def submit_sync(self, run_id: int) -> None:
        self._runner.submit(lambda: run_sync(self._session_factory, self._gateway, self._cipher, run_id,
                                             self._options))

    def submit_publication(self, job_id: int) -> None:
        self._runner.submit(lambda: run_publication(self._session_factory, self._gateway, self._cipher, job_id))


# -- coverage ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoverageRow:
    """Identity-verification coverage of the current members of one chapter (its own members, not its subtree)."""

    chapter_id: int
    code: str
    name: str
    members: int
    verified: int = 0
    mismatch: int = 0
    not_found: int = 0
    deceased: int = 0
    no_consent: int = 0
    pending: int = 0


def coverage(session: Session, actor: Actor, chapter_id: int | None) -> list[CoverageRow]:
    """Per chapter in the subtree: members verified, mismatching, not found, deceased per the registry, without
    consent, or still to be verified (consent but no answer yet), from each member's latest answer."""
    _chapter, path = _scope_path(session, actor, chapter_id)
    latest = (
        select(IdentitySyncItem.member_id, func.max(IdentitySyncItem.id).label("item_id"))
        .where(IdentitySyncItem.status == "done", IdentitySyncItem.outcome.in_(CHECKED_OUTCOMES))
        .group_by(IdentitySyncItem.member_id).subquery()
    )
    last = aliased(IdentitySyncItem)
    per_member = (
        select(Member.chapter_id.label("chapter_id"), case(
            (~_consenting(IDENTITY_CONSENT), "no_consent"),
            (last.outcome.is_(None), "pending"),
            else_=last.outcome,
        ).label("category"))
        .join(Member.chapter).outerjoin(latest, latest.c.member_id == Member.id)
        .outerjoin(last, last.id == latest.c.item_id)
        .where(Member.status.in_(VERIFIABLE_STATUSES))
    )
    if path is not None:
        per_member = per_member.where(subtree_condition(Chapter.path, path))
    buckets = per_member.subquery()
    stmt = (
        select(Chapter.id, Chapter.code, Chapter.name, buckets.c.category, func.count())
        .join(buckets, buckets.c.chapter_id == Chapter.id)
        .group_by(Chapter.id, Chapter.code, Chapter.name, buckets.c.category)
    )
    counts: dict[int, dict[str, Any]] = {}
    for chapter_row_id, code, name, bucket, count in session.execute(stmt):
        row = counts.setdefault(chapter_row_id, {"chapter_id": chapter_row_id, "code": code, "name": name,
                                                 "members": 0})
        key = "verified" if bucket == "matched" else str(bucket)
        row[key] = row.get(key, 0) + int(count)
        row["members"] += int(count)
    return [CoverageRow(**row) for _id, row in sorted(counts.items(), key=lambda item: item[1]["code"])]


# -- reviews ----------------------------------------------------------------------------------------------------


def list_reviews(session: Session, actor: Actor, *, chapter_id: int | None, status: str = "open",
                 limit: int = 100, before_id: int | None = None) -> Sequence[IdentityReview]:
    """Reviews of members in the subtree (default: the actor's scope), newest first."""
    _chapter, path = _scope_path(session, actor, chapter_id)
    stmt = (select(IdentityReview).join(IdentityReview.member).join(Member.chapter)
            .where(IdentityReview.status == status).order_by(IdentityReview.id.desc()).limit(limit))
    if path is not None:
        stmt = stmt.where(subtree_condition(Chapter.path, path))
    if before_id is not None:
        stmt = stmt.where(IdentityReview.id < before_id)
    return session.scalars(stmt).all()


def _check_registry_name(name: object) -> None:
    """Refuse, before anything changes, a registry name that our rules (and the card) cannot take."""
    try:
        normalize_name(name if isinstance(name, str) else "")
    except NormalizeError as exc:
        raise ValidationFailed(
            f"the registry's name cannot be stored: {exc.message_en} Keep ours or flag the review.",
            details=[{"field": "full_name", "code": exc.code,
                      "message": f"The registry's name cannot be stored: {exc.message_en}",
                      "message_vi": f"Không thể lưu họ tên theo Cơ sở dữ liệu quốc gia: {exc.message_vi}"}],
        ) from exc


def decide_review(session: Session, actor: Actor, cipher: PiiCipher, review_id: int, *, decision: str,
                  note: str | None, today: date | None = None) -> IdentityReview:
    """Record an officer's decision: ``accept`` the registry's value (the member changes through the members
    service), ``keep`` ours, or ``flag`` for follow-up. Audited in the same transaction as the change."""
    actor.require_write()
    if decision not in REVIEW_DECISIONS:
        raise ValidationFailed(f"decision must be one of {', '.join(REVIEW_DECISIONS)}",
                               details=[{"field": "decision", "code": "invalid_decision"}])
    review = session.get(IdentityReview, review_id)
    if review is None or not actor.sees(review.member.chapter.path):
        raise NotFound("review not found")
    if review.status != "open":
        raise Conflict(f"this review was already decided ({review.status})", code="review_decided")
    if decision == "accept" and review.kind not in ACCEPTABLE_KINDS:
        raise Conflict("the registry only said that this differs, not what it holds: correct the member's record "
                       "from her documents, or keep or flag", code="nothing_to_accept")
    if decision == "accept" and review.kind == "name_change":
        _check_registry_name(review.registry_values.get("full_name"))
    member = review.member
    review.status = REVIEW_DECISIONS[decision]
    review.decided_by_id = actor.id
    review.decided_at = utcnow()
    review.note = note.strip()[:500] if note and note.strip() else None
    audit.record(session, actor, "identity.review_decision", target_type="identity_review", target_id=review.id,
                 chapter_path=member.chapter.path,
                 details={"member_id": member.id, "decision": decision, "kind": review.kind,
                          "fields": review.differing_fields})
    if decision != "accept":
        session.commit()
        return review
    if review.kind == "name_change":
        members.update_member(session, actor, cipher, member.id, {"full_name": review.registry_values["full_name"]})
    elif review.kind == "id_number_change":
        if review.new_id_number_ciphertext is None:
            raise Conflict("the notification gave no new ID number", code="nothing_to_accept")
        new_number = cipher.decrypt(NEW_ID_NUMBER_FIELD, review.new_id_number_ciphertext)
        # The number now lives in the member's record only.
        review.new_id_number_ciphertext = None
        members.update_member(session, actor, cipher, member.id, {"id_number": new_number})
    elif member.status == "deceased":
        session.commit()
    else:
        died = review.registry_values.get("death_date")
        members.change_status(session, actor, member.id, status="deceased",
                              reason="Cơ sở dữ liệu quốc gia về dân cư: đã mất (registry: deceased)",
                              effective_on=date.fromisoformat(died) if died else (today or vietnam_today()))
    return review


# -- notifications ----------------------------------------------------------------------------------------------


@dataclass
class NotificationSummary:
    received: int = 0
    reviews_opened: int = 0
    ignored: int = 0
    duplicates: int = 0
    cursor: str | None = None


def _member_by_number(session: Session, cipher: PiiCipher, id_number: str) -> Member | None:
    column, field_name = (Member.old_id_number_index, "old_id_number") if len(id_number) == 9 \
        else (Member.id_number_index, "id_number")
    return session.scalar(select(Member).where(column == cipher.blind_index(field_name, id_number)))


def _notification_review(session: Session, cipher: PiiCipher, actor: Actor, notification: Notification,
                         summary: NotificationSummary) -> None:
    if session.scalar(select(IdentityReview.id).where(
            IdentityReview.notification_id == notification.notification_id)) is not None:
        summary.duplicates += 1
        return
    member = _member_by_number(session, cipher, notification.id_number)
    # The feed covers every citizen: only our members who consented to identity checks are looked at.
    if member is None or not has_active_consent(session, member.id, IDENTITY_CONSENT):
        summary.ignored += 1
        return
    new_number: bytes | None = None
    if notification.kind is NotificationKind.DEATH:
        kind, fields, values = "deceased", ["status"], {"death_date": notification.occurred_on.isoformat()}
    elif notification.kind is NotificationKind.NAME_CHANGE and notification.new_name is not None:
        name = notification.new_name
        kind, fields = "name_change", ["full_name"]
        values = {"family": name.family, "middle": name.middle, "given": name.given, "full_name": name.full,
                  "changed_on": notification.occurred_on.isoformat()}
    elif notification.kind is NotificationKind.ID_NUMBER_CHANGE and notification.new_id_number:
        kind, fields, values = "id_number_change", ["id_number"], {"changed_on": notification.occurred_on.isoformat()}
        new_number = cipher.encrypt(NEW_ID_NUMBER_FIELD, notification.new_id_number)
    else:
        summary.ignored += 1
        return
    _open_review(session, actor, member, source="notification", kind=kind, differing=fields, values=values,
                 notification_id=notification.notification_id, new_id_number=new_number)
    summary.reviews_opened += 1


def pull_notifications(session_factory: sessionmaker[Session] | Callable[[], Session], gateway: RegistryGateway,
                       cipher: PiiCipher, actor: Actor, *, page_size: int = 100, max_pages: int = 1000
                       ) -> NotificationSummary:
    """Read the registry's change feed from the stored cursor; each page's reviews and the new cursor are committed
    together, so a crash reads at most one page again (and duplicates are recognised by notification id). No
    transaction is open while a page is asked for.

    Raises:
        RegistryError: the registry could not serve a page (the pages before it are kept).
    """
    actor.require_admin()
    with session_factory() as session:
        cursor = session.scalar(select(RegistryCursor.cursor).where(RegistryCursor.name == NOTIFICATIONS_CURSOR))
    summary = NotificationSummary(cursor=cursor)
    for _page in range(max_pages):
        context = gateway.context(actor, Purpose.CHANGE_MONITORING)
        page, next_cursor = gateway.call(partial(gateway.registry.notifications, context, cursor, page_size))
        with session_factory() as session:
            audit.record(session, actor, "identity.notifications_pull", target_type="registry_feed",
                         target_id=NOTIFICATIONS_CURSOR, chapter_path=None,
                         details={"purpose": Purpose.CHANGE_MONITORING.value, "received": len(page),
                                  "registry_request_id": context.request_id})
            summary.received += len(page)
            for notification in page:
                _notification_review(session, cipher, actor, notification, summary)
            stored = session.get(RegistryCursor, NOTIFICATIONS_CURSOR)
            if stored is None:
                stored = RegistryCursor(name=NOTIFICATIONS_CURSOR)
                session.add(stored)
            stored.cursor, stored.updated_at = next_cursor, utcnow()
            session.commit()
        summary.cursor = next_cursor
        if not page or next_cursor == cursor:
            break
        cursor = next_cursor
    return summary


# -- membership publication -------------------------------------------------------------------------------------


PUBLICATION_JOB = "registry_publication"


@dataclass
class PublicationSummary:
    published: int = 0
    withdrawn: int = 0
    unchanged: int = 0
    failed: int = 0
    no_id_number: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def fail(self, code: str) -> None:
        self.failed += 1
        self.errors[code] = self.errors.get(code, 0) + 1


def membership_fact(session: Session, member: Member, id_number: str, organisation_code: str) -> MembershipFact:
    """The facts the member agreed to publish: membership, chapter, join date, status, current card and validity."""
    card = current_card(session, member.id)
    valid = card is not None and card.status == "active"
    return MembershipFact(
        id_number=id_number, organisation_code=organisation_code, chapter_code=member.chapter.code,
        join_date=member.join_date or vietnam_day(member.created_at),
        status=MembershipStatus.ACTIVE if member.status == "active" else MembershipStatus.SUSPENDED,
        card_id=card.card_id if valid and card else None,
        card_valid_from=card.issued_on if valid and card else None,
        card_valid_until=card.expires_on if valid and card else None,
    )


def _fact_digest(fact: MembershipFact) -> str:
    # Everything but the ID number, which does not change without the member's record changing too.
    parts = (fact.organisation_code, fact.chapter_code, fact.join_date.isoformat(), fact.status.value,
             fact.card_id or "", fact.card_valid_from.isoformat() if fact.card_valid_from else "",
             fact.card_valid_until.isoformat() if fact.card_valid_until else "")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _withdraw_reason(session: Session, member: Member) -> str | None:
    if member.status in ("left", "deceased"):
        return f"member_{member.status}"
    if not has_active_consent(session, member.id, PUBLICATION_CONSENT):
        return "consent_withdrawn"
    return None


def start_publication(session: Session, actor: Actor, *, chapter_id: int | None) -> Job:
    """Record a publication job over a chapter's subtree (default: the actor's whole scope), to run in the
    background (:func:`run_publication`); its progress and summary are on the job row."""
    actor.require_write()
    chapter, path = _scope_path(session, actor, chapter_id)
    job = Job(kind=PUBLICATION_JOB, status="queued", params={"chapter_id": chapter.id if chapter else None},
              officer_id=actor.id, chapter_path=path, total=0, done=0, failed=0)
    session.add(job)
    session.flush()
    audit.record(session, actor, "identity.publish_start", target_type="job", target_id=job.id, chapter_path=path,
                 details={"chapter_id": job.params["chapter_id"]})
    session.commit()
    return job


@dataclass(frozen=True)
class _Send:
    """One publication call, prepared in a transaction: what to send, and what to write once it succeeded."""

    operation: Callable[[], None]
    record: Callable[[Session], None]


def run_publication(session_factory: sessionmaker[Session] | Callable[[], Session], gateway: RegistryGateway,
                    cipher: PiiCipher, job_id: int) -> PublicationSummary:
    """Bring the registry in line with our members in the job's subtree: withdraw the facts of members who left,
    died or withdrew consent; publish new or changed facts of members who consent.

    Each member is prepared in one session (status and consent are checked again), sent with no transaction open,
    and recorded with its audit entry and the job's progress in the next. A refused (or still throttled) call is
    counted; a registry that cannot serve us (down, refusing the service), or a stopping runner, ends the job as
    failed with the reason. Running a publication again is safe: facts already published unchanged are not sent.
    """
    with session_factory() as session:
        job = session.get_one(Job, job_id)
        officer = session.get(Officer, job.officer_id) if job.officer_id is not None else None
        actor = actor_for(officer) if officer is not None else system_actor("registry-publication")
        scope = subtree_condition(Chapter.path, job.chapter_path) if job.chapter_path is not None else true()
        withdrawals = list(session.scalars(
            select(Member.id).join(MembershipPublication, MembershipPublication.member_id == Member.id)
            .join(Member.chapter)
            .where(MembershipPublication.withdrawn_at.is_(None), scope,
                   or_(Member.status.in_(("left", "deceased")), ~_consenting(PUBLICATION_CONSENT)))
            .order_by(MembershipPublication.id)
        ))
        candidates = list(session.scalars(
            select(Member.id).join(Member.chapter)
            .where(scope, Member.status.in_(VERIFIABLE_STATUSES), _consenting(PUBLICATION_CONSENT))
            .order_by(Member.id)
        ))
        job.status, job.error, job.result = "running", None, None
        job.total, job.done, job.failed = len(withdrawals) + len(candidates), 0, 0
        session.commit()
    summary = PublicationSummary()
    steps = ([partial(_prepare_withdrawal, member_id=member_id) for member_id in withdrawals]
             + [partial(_prepare_publication, member_id=member_id) for member_id in candidates])
    error: str | None = None
    looked_at = 0
    try:
        for prepare in steps:
            if gateway.stop.is_set():
                raise JobStopped
            with session_factory() as session:
                send = prepare(session, gateway, cipher, actor, summary)
            if send is None:
                looked_at += 1
                continue
            answer = _ask(gateway, send.operation)
            if isinstance(answer, RegistryError) and _stops_the_run(answer):
                raise _RunAborted(registry_failure_message(answer))
            with session_factory() as session:
                if isinstance(answer, RegistryError):
                    summary.fail(answer.code if isinstance(answer, RejectedRequest) else type(answer).__name__)
                else:
                    send.record(session)
                looked_at += 1
                _save_progress(session, job_id, looked_at, summary)
                session.commit()
    except _RunAborted as exc:
        error = str(exc)
    except JobStopped:
        error = STOPPED_MESSAGE
    with session_factory() as session:
        job = session.get_one(Job, job_id, populate_existing=True)
        job.status, job.error = ("failed", error) if error else ("done", None)
        _save_progress(session, job_id, looked_at, summary)
        session.commit()
    if error:
        log.warning("registry publication job %s failed: %s", job_id, error)
    return summary


def _save_progress(session: Session, job_id: int, looked_at: int, summary: PublicationSummary) -> None:
    session.execute(update(Job).where(Job.id == job_id)
                    .values(done=looked_at - summary.failed, failed=summary.failed, result=asdict(summary))
                    .execution_options(synchronize_session=False))


def _prepare_withdrawal(session: Session, gateway: RegistryGateway, cipher: PiiCipher, actor: Actor,
                        summary: PublicationSummary, *, member_id: int) -> _Send | None:
    member = session.get_one(Member, member_id)
    reason = _withdraw_reason(session, member)
    if reason is None or member.id_number_ciphertext is None:
        return None
    id_number = cipher.decrypt("id_number", member.id_number_ciphertext)
    context = gateway.context(actor, Purpose.MEMBERSHIP_PUBLICATION)
    chapter_path = member.chapter.path

    def record(session: Session) -> None:
        session.execute(update(MembershipPublication)
                        .where(MembershipPublication.member_id == member_id,
                               MembershipPublication.withdrawn_at.is_(None))
                        .values(withdrawn_at=utcnow()).execution_options(synchronize_session=False))
        audit.record(session, actor, "identity.membership_withdraw", target_type="member", target_id=member_id,
                     chapter_path=chapter_path,
                     details={"purpose": PUBLICATION_CONSENT, "reason": reason,
                              "registry_request_id": context.request_id})
        summary.withdrawn += 1

    return _Send(partial(gateway.registry.withdraw_membership, context, id_number, gateway.organisation_code),
                 record)


def _prepare_publication(session: Session, gateway: RegistryGateway, cipher: PiiCipher, actor: Actor,
                         summary: PublicationSummary, *, member_id: int) -> _Send | None:
    member = session.get_one(Member, member_id)
    if member.status not in VERIFIABLE_STATUSES or not has_active_consent(session, member_id, PUBLICATION_CONSENT):
        return None  # Changed since the job started; the next publication withdraws what is published.
    if member.id_number_ciphertext is None:
        summary.no_id_number += 1
        return None
    fact = membership_fact(session, member, cipher.decrypt("id_number", member.id_number_ciphertext),
                           gateway.organisation_code)
    digest = _fact_digest(fact)
    existing = session.scalar(select(MembershipPublication).where(MembershipPublication.member_id == member_id))
    if existing is not None and existing.withdrawn_at is None and existing.fact_digest == digest:
        summary.unchanged += 1
        return None
    context = gateway.context(actor, Purpose.MEMBERSHIP_PUBLICATION)
    chapter_path = member.chapter.path

    def record(session: Session) -> None:
        publication = session.scalar(select(MembershipPublication)
                                     .where(MembershipPublication.member_id == member_id))
        if publication is None:
            publication = MembershipPublication(member_id=member_id)
            session.add(publication)
        publication.published_at, publication.withdrawn_at = utcnow(), None
        publication.card_id, publication.fact_digest = fact.card_id, digest
        audit.record(session, actor, "identity.membership_publish", target_type="member", target_id=member_id,
                     chapter_path=chapter_path,
                     details={"purpose": PUBLICATION_CONSENT, "card_id": fact.card_id, "status": fact.status.value,
                              "registry_request_id": context.request_id})
        summary.published += 1

    return _Send(partial(gateway.registry.publish_membership, context, fact), record)
