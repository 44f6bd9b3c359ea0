"""Identity sync runs (DOMAIN.md §7–§8): verify the ID number, name, birth date and gender of members who consented to
identity verification.

A run is a row plus one work item per member; workers claim items in small batches (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), and every item's answer is committed on its own with its audit entry, so an interrupted run resumes where
it stopped, a finished run does nothing when run again, and several workers can share a run. Claims expire after a
lease, so the items of a crashed worker are taken over. Mismatches and deaths open officer reviews (:mod:`.reviews`).

Data protection: only the fields a purpose needs are sent; every registry call is audited with the officer, the
purpose and the member (never the ID number); consent is checked again right before each call, so a withdrawal
stops the calls for that member at once; ID numbers never reach a log record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import and_, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from cardsvc.db.base import utcnow
from cardsvc.db.models import Chapter, IdentitySyncItem, IdentitySyncRun, Member, Officer
from cardsvc.errors import NotFound
from cardsvc.security import PiiCipher
from cardsvc.services import audit
from cardsvc.services.consents import has_active_consent
from cardsvc.services.context import Actor, subtree_condition, system_actor
from cardsvc.services.identity.gateway import (
    Clock,
    RegistryGateway,
    RunAborted,
    ask,
    member_birth_date,
    registry_failure_message,
    stops_the_run,
)
from cardsvc.services.identity.reviews import open_review
from cardsvc.services.identity.scope import (
    CHECKED_OUTCOMES,
    IDENTITY_CONSENT,
    VERIFIABLE_STATUSES,
    consent_clause,
    scope_path,
)
from cardsvc.services.jobs import STOPPED_MESSAGE, JobStopped
from cardsvc.services.officers import actor_for
from integrations.population import (
    CallContext,
    FieldMatch,
    Gender,
    Outcome,
    Purpose,
    RegistryError,
    RejectedRequest,
    VerifyRequest,
    VerifyResult,
)

log = logging.getLogger("cardsvc.identity")


MAX_ATTEMPTS = 3


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


def _count(session: Session, stmt: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)


def start_sync(session: Session, actor: Actor, *, chapter_id: int | None, force: bool, reverify_days: int,
               now: datetime | None = None) -> IdentitySyncRun:
    """Record a run over the members of a chapter's subtree (default: the actor's whole scope).

    Members without consent to identity verification are counted, not queued; so are members verified within
    ``reverify_days``, unless ``force``.
    """
    actor.require_write()
    chapter, path = scope_path(session, actor, chapter_id)
    now = now or utcnow()
    in_scope = select(Member.id).join(Member.chapter).where(Member.status.in_(VERIFIABLE_STATUSES))
    if path is not None:
        in_scope = in_scope.where(subtree_condition(Chapter.path, path))
    consenting = consent_clause(IDENTITY_CONSENT)
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
    _chapter, path = scope_path(session, actor, chapter_id)
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
        open_review(session, actor, member, source="sync", kind=kind, differing=differing, values={},
                    item_id=item.id)
    elif result.outcome is Outcome.DECEASED:
        open_review(session, actor, member, source="sync", kind="deceased", differing=["status"],
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
    that is not about one request (see :func:`stops_the_run`) — the registry is down (timeouts, connection errors,
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
        except RunAborted as exc:
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
        RunAborted: the item's call failed in a way that stops the run (recorded; see :func:`stops_the_run`).
    """
    if gateway.stop.is_set():
        raise JobStopped
    with session_factory() as session:
        call = _prepare_item(session, gateway, cipher, actor, item_id, options.worker, options.clock())
    if call is None:
        return
    answer = ask(gateway, partial(gateway.registry.verify_identity, call.context, call.request))
    with session_factory() as session:
        _record_answer(session, actor, run_id, call, answer, options.worker, options.clock())
    if isinstance(answer, RegistryError) and stops_the_run(answer):
        raise RunAborted(registry_failure_message(answer))


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
