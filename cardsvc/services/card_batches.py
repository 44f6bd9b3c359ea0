"""The batch-issuance engine: a job split into chunks of member ids that one or several workers claim and issue.

A job is planned once (its eligible members cut into ranges of member ids of :data:`CHUNK` members, rows of
``job_chunks``); a worker then claims one chunk at a time — ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, SQLite's
``BEGIN IMMEDIATE`` serialises the claims — under a lease that another worker takes over when it expires (the worker
died). Per chunk, in one transaction: load the chunk's eligible members in one query, check their data, allocate
their status slots together, sign every credential with no database work in between (``issuance`` is pure code),
insert the cards in bulk (``COPY`` on PostgreSQL, multi-row ``INSERT`` on SQLite) with ONE audit entry naming every
card, add the chunk's counts to the job and mark it done; then commit. A chunk is issued wholly or not at all, and a
job run again skips the members who already have a valid card: jobs are resumable and idempotent.

Two kinds of member go through the one-card path (:func:`cardsvc.services.cards.issue_in_transaction`, one
``card.issue`` audit entry each) instead: a member with a current card (expired: it is superseded), and every member
of a chunk whose bulk insert the database refused (a card issued to one of them by an officer at the same moment);
there each member is issued under a savepoint and a refused one is recorded on the job. docs/scale.md §5.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from cardsvc.days import vietnam_today
from cardsvc.db.base import utcnow
from cardsvc.db.bulk import insert_rows
from cardsvc.db.models import Card, Chapter, Job, JobChunk, JobFailure, Member, Officer, WalletPass
from cardsvc.errors import CardsvcError, Conflict
from cardsvc.services import audit, status_lists, wallet_outbox
from cardsvc.services.cards import CURRENT, add_years, check_card_fields, issue_in_transaction
from cardsvc.services.context import Actor, subtree_condition, system_actor
from cardsvc.services.keys import KeyRing
from cardsvc.services.officers import actor_for
from issuance.credential import new_card_id, sign_credential
from verification.format import CardClaims

log = logging.getLogger("cardsvc.jobs")
# Members per chunk: large enough that per-statement costs vanish, small enough that a chunk commits in well under a
# second and a lost chunk costs little to redo.
CHUNK = 1000
LEASE_SECONDS = 120
# Refusals about one member (cards.issue_in_transaction): the job records them and goes on with the others.
MEMBER_REFUSALS = frozenset({"card_data_invalid", "member_not_active"})
CONCURRENT_ISSUE = ("concurrent_issue", "Another card was issued to this member at the same moment; check her cards.",
                    "Hội viên vừa được cấp một thẻ khác cùng lúc; hãy kiểm tra thẻ của hội viên.")
STOPPED_MESSAGE = ("Máy chủ đã dừng giữa chừng; chạy lại để làm tiếp — the server stopped before the job finished; "
                   "start it again to resume")
ProgressCallback = Callable[[int, int], None]


class JobStopped(Exception):
    """Raised inside a job when its runner is stopping: the job ends at this step and can be started again."""


def worker_name() -> str:
    """Who holds a chunk: host, process and thread (shown in ``job_chunks.worker``)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:100]


def _job_actor(session: Session, job: Job) -> Actor:
    officer = session.get(Officer, job.officer_id) if job.officer_id is not None else None
    return actor_for(officer) if officer is not None else system_actor("batch")


def _scope(session: Session, job: Job) -> ColumnElement[bool]:
    chapter = session.get_one(Chapter, job.params["chapter_id"])
    return subtree_condition(Chapter.path, chapter.path) if job.params.get("subtree") else Chapter.id == chapter.id


def _eligible_condition(job_id: int, today: date) -> ColumnElement[bool]:
    """Active members without a valid card that the job has not recorded as failed (their data must be corrected
    before a job tries them again)."""
    has_valid_card = exists().where(
        and_(Card.member_id == Member.id, Card.status.in_(CURRENT), Card.expires_on >= today)
    )
    failed_here = exists().where(and_(JobFailure.job_id == job_id, JobFailure.member_id == Member.id))
    return and_(Member.status == "active", ~has_valid_card, ~failed_here)


def _plan(session: Session, job: Job, today: date, chunk_size: int) -> None:
    """Mark the job running and, the first time, cut its eligible members into chunks (one query computes the
    ranges: nothing proportional to the job is held in memory)."""
    # The first statement writes the job row: concurrent workers starting the same job plan it one after the other.
    session.execute(update(Job).where(Job.id == job.id).values(status="running", error=None, updated_at=utcnow()))
    if session.scalar(select(JobChunk.id).where(JobChunk.job_id == job.id).limit(1)) is not None:
        return
    numbered = (
        select(Member.id.label("member_id"),
               ((func.row_number().over(order_by=Member.id) - 1) // chunk_size).label("n"))
        .join(Member.chapter).where(_scope(session, job), _eligible_condition(job.id, today))
        .subquery()
    )
    ranges = session.execute(
        select(func.min(numbered.c.member_id), func.max(numbered.c.member_id), func.count())
        .group_by(numbered.c.n).order_by(numbered.c.n)
    ).all()
    insert_rows(session, JobChunk.__table__,  # type: ignore[arg-type]
                [{"job_id": job.id, "first_member_id": first, "last_member_id": last, "planned": count,
                  "status": "pending", "issued": 0, "failed": 0} for first, last, count in ranges])
    session.execute(update(Job).where(Job.id == job.id)
                    .values(total=Job.done + Job.failed + sum(count for _, _, count in ranges)))


def _claim(session: Session, job_id: int, worker: str, lease_seconds: int) -> JobChunk | None:
    """Take the next pending chunk, or one whose lease expired; None when there is none to take."""
    while True:
        now = utcnow()
        claimable = or_(JobChunk.status == "pending",
                        and_(JobChunk.status == "running", JobChunk.lease_expires_at < now))
        chunk_id = session.scalar(
            select(JobChunk.id).where(JobChunk.job_id == job_id, claimable).order_by(JobChunk.id).limit(1)
            .with_for_update(skip_locked=True)
        )
        if chunk_id is None:
            return None
        taken = session.execute(
            update(JobChunk).where(JobChunk.id == chunk_id, claimable)
            .values(status="running", worker=worker, lease_expires_at=now + timedelta(seconds=lease_seconds),
                    started_at=now)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            return session.get_one(JobChunk, chunk_id, populate_existing=True)


@dataclass
class _Outcome:
    issued: int = 0
    failed: int = 0


@dataclass(frozen=True)
class _Eligible:
    member_id: int
    member_number: str
    full_name: str
    chapter_code: str
    last_version: int  # 0: her first card
    has_current: bool  # an expired card still active or suspended: superseded through the one-card path


def _chunk_members(session: Session, job: Job, chunk: JobChunk, today: date) -> list[_Eligible]:
    """The chunk's eligible members with what their cards need, in one query (per-member index look-ups for the
    card history, which stay cheap however large ``cards`` grows and whatever its statistics say)."""
    last_version = (select(func.coalesce(func.max(Card.version), 0)).where(Card.member_id == Member.id)
                    .correlate(Member).scalar_subquery())
    has_current = exists().where(and_(Card.member_id == Member.id, Card.status.in_(CURRENT))).correlate(Member)
    rows = session.execute(
        select(Member.id, Member.member_number, Member.full_name, Chapter.code, last_version, has_current)
        .join(Member.chapter)
        .where(_scope(session, job), _eligible_condition(job.id, today),
               Member.id.between(chunk.first_member_id, chunk.last_member_id))
        .order_by(Member.id)
    ).all()
    return [_Eligible(*row) for row in rows]


def _record_failure(session: Session, job_id: int, member_id: int, code: str, message_en: str,
                    message_vi: str) -> None:
    session.add(JobFailure(job_id=job_id, member_id=member_id, code=code, message_en=message_en[:300],
                           message_vi=message_vi[:300]))


def _issue_one(session: Session, actor: Actor, keyring: KeyRing, job_id: int, member_id: int, *,
               validity_years: int, list_size: int, today: date) -> bool:
    """Issue one member's card under a savepoint (the one-card path); a refusal about her is recorded on the job
    instead. True when she got her card."""
    try:
        with session.begin_nested():
            issue_in_transaction(session, actor, keyring, session.get_one(Member, member_id),
                                 validity_years=validity_years, list_size=list_size, today=today, reason="batch",
                                 job_id=job_id)
    except Conflict as exc:
        if exc.code not in MEMBER_REFUSALS:
            raise
        detail = exc.details[0]
        _record_failure(session, job_id, member_id, detail["code"], detail["message"], detail["message_vi"])
        return False
    except IntegrityError:
        # An officer issued her a card while the job was running: the one-current-card index refused ours.
        _record_failure(session, job_id, member_id, *CONCURRENT_ISSUE)
        return False
    return True


def _bulk_issue(session: Session, actor: Actor, keyring: KeyRing, job: Job, chunk: JobChunk,
                members: list[_Eligible], *, validity_years: int, list_size: int, today: date) -> _Outcome:
    """The chunk's fast path (module docstring); members with a current card go through :func:`_issue_one`."""
    outcome = _Outcome()
    with_current = [m.member_id for m in members if m.has_current]
    fresh: list[_Eligible] = []
    for member in members:
        if member.has_current:
            continue
        try:
            check_card_fields(member.full_name, member.chapter_code)
        except Conflict as exc:
            detail = exc.details[0]
            _record_failure(session, job.id, member.member_id, detail["code"], detail["message"],
                            detail["message_vi"])
            outcome.failed += 1
        else:
            fresh.append(member)
    if fresh:
        key, signer = keyring.active_signer(session, "card")
        slots = status_lists.allocate_slots(session, list_size, len(fresh))
        expires = add_years(today, validity_years) - timedelta(days=1)
        now = utcnow()
        rows: list[dict[str, Any]] = []
        # Signing: pure code, no statement in between.
        for member, (list_id, index) in zip(fresh, slots, strict=True):
            version = member.last_version + 1
            claims = CardClaims(
                card_id=new_card_id(), member_number=member.member_number, display_name=member.full_name,
                chapter_code=member.chapter_code, card_version=version, issued_on=today, expires_on=expires,
                status_list=list_id, status_index=index,
            )
            rows.append({
                "card_id": claims.card_id.hex(), "member_id": member.member_id, "version": version,
                "signing_key_id": key.id, "issued_on": today, "expires_on": expires, "status": "active",
                "status_changed_at": now, "status_list_id": list_id, "status_index": index,
                "credential": sign_credential(claims, signer), "job_id": job.id, "created_at": now,
            })
        insert_rows(session, Card.__table__, rows)  # type: ignore[arg-type]
        for member_id in session.scalars(select(WalletPass.member_id).where(WalletPass.member_id.in_(
                [row["member_id"] for row in rows]))):
            wallet_outbox.card_changed(session, member_id)
        audit.record(session, actor, "card.batch_issue", target_type="job", target_id=job.id,
                     chapter_path=job.chapter_path,
                     details={"chunk": chunk.id, "kid": key.kid, "reason": "batch", "issued_on": today.isoformat(),
                              "cards": [[row["card_id"], row["member_id"], row["version"]] for row in rows]})
        outcome.issued += len(rows)
    for member_id in with_current:
        if _issue_one(session, actor, keyring, job.id, member_id, validity_years=validity_years,
                      list_size=list_size, today=today):
            outcome.issued += 1
        else:
            outcome.failed += 1
    return outcome


def _one_by_one(session: Session, actor: Actor, keyring: KeyRing, job: Job, members: list[_Eligible], *,
                validity_years: int, list_size: int, today: date) -> _Outcome:
    outcome = _Outcome()
    for member in members:
        if _issue_one(session, actor, keyring, job.id, member.member_id, validity_years=validity_years,
                      list_size=list_size, today=today):
            outcome.issued += 1
        else:
            outcome.failed += 1
    return outcome


def _finish_chunk(session: Session, job_id: int, chunk: JobChunk, worker: str, outcome: _Outcome) -> None:
    """Mark the chunk done and add its counts to the job; commits. A worker whose lease ran out and whose chunk
    another worker took over meanwhile rolls its work back instead (the other worker issues the chunk)."""
    still_mine = session.execute(
        update(JobChunk).where(JobChunk.id == chunk.id, JobChunk.worker == worker, JobChunk.status == "running")
        .values(status="done", issued=outcome.issued, failed=outcome.failed, finished_at=utcnow(),
                lease_expires_at=None))
    if still_mine.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        log.warning("batch job %s: chunk %s was taken over by another worker (lease expired); its work here is "
                    "rolled back", job_id, chunk.id)
        return
    session.execute(update(Job).where(Job.id == job_id).values(
        done=Job.done + outcome.issued, failed=Job.failed + outcome.failed, updated_at=utcnow()))
    session.commit()


def _run_chunk(session: Session, actor: Actor, keyring: KeyRing, job: Job, chunk: JobChunk, worker: str, *,
               validity_years: int, list_size: int, today: date) -> None:
    """Issue one claimed chunk and commit it with its counts."""
    members = _chunk_members(session, job, chunk, today)
    try:
        outcome = _bulk_issue(session, actor, keyring, job, chunk, members, validity_years=validity_years,
                              list_size=list_size, today=today)
        _finish_chunk(session, job.id, chunk, worker, outcome)
    except IntegrityError:
        # The database refused the chunk (a card issued to one of its members at the same moment): issue it again
        # member by member, each under a savepoint, recording the refused ones.
        session.rollback()
        log.info("batch job %s: chunk %s refused in bulk, issuing it member by member", job.id, chunk.id)
        members = _chunk_members(session, job, chunk, today)
        outcome = _one_by_one(session, actor, keyring, job, members, validity_years=validity_years,
                              list_size=list_size, today=today)
        _finish_chunk(session, job.id, chunk, worker, outcome)


def _counts(session: Session, job_id: int) -> tuple[str, int, int, int]:
    status, done, failed, total = session.execute(
        select(Job.status, Job.done, Job.failed, Job.total).where(Job.id == job_id)).one()
    return status, done, failed, total


def _release(session: Session, job_id: int, worker: str) -> None:
    session.execute(update(JobChunk).where(JobChunk.job_id == job_id, JobChunk.worker == worker,
                                           JobChunk.status == "running")
                    .values(status="pending", worker=None, lease_expires_at=None))


def _others_working(session: Session, job_id: int, worker: str) -> bool:
    """Whether another worker holds a chunk of the job under a live lease."""
    return session.scalar(select(JobChunk.id).where(
        JobChunk.job_id == job_id, JobChunk.status == "running", JobChunk.worker != worker,
        JobChunk.lease_expires_at >= utcnow()).limit(1)) is not None


def run_batch(
    session_factory: sessionmaker[Session] | Callable[[], Session],
    keyring: KeyRing,
    job_id: int,
    *,
    validity_years: int,
    list_size: int,
    today: date | None = None,
    progress: ProgressCallback | None = None,
    stopping: threading.Event | None = None,
    worker: str | None = None,
    chunk_size: int | None = None,
    lease_seconds: int = LEASE_SECONDS,
    poll_seconds: float = 1.0,
) -> None:
    """Work on a batch job as one worker until none of its chunks is left, dated ``today`` (default: today in
    Vietnam); other workers (threads, processes, hosts) may work on the same job at the same time.

    The job is planned by the first worker. A chunk another worker holds is waited for until it is done or its lease
    expires (then this worker takes it over); the worker that sees every chunk done ends the job ``done`` with the
    ``card.batch_done`` audit entry. A member the card cannot be issued to is recorded (``job_failures``, counted in
    ``failed``) and the job goes on. Any other error ends the job ``failed`` with the error (another worker stops at
    its next chunk; ``cardsvc issue --job`` resumes it): this never raises and never leaves the job ``running``
    unless another worker still works on it. When ``stopping`` is set the worker stops after the chunk in hand: the
    job goes on if other workers hold chunks, and otherwise fails saying that it was interrupted.
    """
    day = today or vietnam_today()
    me = worker or worker_name()
    with session_factory() as session:
        try:
            job = session.get_one(Job, job_id)
            if job.status == "done":  # Finished: nothing to do, and no second "card.batch_done".
                return
            actor = _job_actor(session, job)
            _plan(session, job, day, chunk_size or CHUNK)
            session.commit()
            while True:
                if _counts(session, job_id)[0] != "running":  # Another worker ended it (failed, or done).
                    session.commit()
                    return
                chunk = _claim(session, job_id, me, lease_seconds)
                if chunk is not None and stopping is not None and stopping.is_set():
                    raise JobStopped  # Work is left: the job stops here (the claim is rolled back).
                session.commit()
                if chunk is not None:
                    _run_chunk(session, actor, keyring, job, chunk, me, validity_years=validity_years,
                               list_size=list_size, today=day)
                    if progress:
                        _, done, failed, total = _counts(session, job_id)
                        session.commit()
                        progress(done + failed, total)
                    continue
                left = session.scalar(select(func.count()).select_from(JobChunk)
                                      .where(JobChunk.job_id == job_id, JobChunk.status != "done"))
                if left:  # Held by other workers: wait for them to finish, or for a lease to expire.
                    session.commit()
                    time.sleep(poll_seconds)
                    continue
                finished = session.execute(update(Job).where(Job.id == job_id, Job.status == "running")
                                           .values(status="done", updated_at=utcnow()))
                if finished.rowcount == 1:  # type: ignore[attr-defined]
                    _, done, failed, _ = _counts(session, job_id)
                    audit.record(session, actor, "card.batch_done", target_type="job", target_id=job_id,
                                 chapter_path=job.chapter_path, details={"issued": done, "failed": failed})
                session.commit()
                return
        except Exception as exc:  # Whatever stopped it, the job must end instead of staying "running".
            session.rollback()
            _release(session, job_id, me)
            if isinstance(exc, JobStopped) and _others_working(session, job_id, me):
                session.commit()  # This worker leaves; the others go on with the job.
                log.info("batch job %s: worker %s stopped; other workers go on", job_id, me)
                return
            failed_job = session.get_one(Job, job_id, populate_existing=True)
            failed_job.status = "failed"
            if isinstance(exc, JobStopped):
                failed_job.error = STOPPED_MESSAGE
            else:
                failed_job.error = (exc.message if isinstance(exc, CardsvcError)
                                    else f"an error stopped the job ({type(exc).__name__}); start the batch again"
                                    )[:500]
            session.commit()
            log.warning("batch job %s failed: %s", job_id, getattr(exc, "code", None) or type(exc).__name__,
                        exc_info=exc if log.isEnabledFor(logging.DEBUG) else None)


@dataclass(frozen=True)
class Pace:
    """How fast a job goes: cards (issued or refused) per second over its finished chunks, and the seconds left at
    that rate (None until a chunk is finished; 0 when the job is finished)."""

    rate: float | None
    seconds_left: float | None


def pace(session: Session, job: Job, now: datetime | None = None) -> Pace:
    first, last, processed = session.execute(
        select(func.min(JobChunk.started_at), func.max(JobChunk.finished_at),
               func.sum(JobChunk.issued + JobChunk.failed))
        .where(JobChunk.job_id == job.id, JobChunk.status == "done")
    ).one()
    if first is None or last is None or not processed:
        return Pace(None, None if job.status in ("queued", "running") else 0.0)
    first, last = _aware(first), _aware(last)
    end = (now or utcnow()) if job.status == "running" else last
    elapsed = (end - first).total_seconds()
    if elapsed <= 0:
        return Pace(None, None)
    rate = processed / elapsed
    left = max(0, job.total - job.done - job.failed) if job.status == "running" else 0
    return Pace(round(rate, 1), round(left / rate, 1))


def _aware(moment: datetime) -> datetime:
    # Aggregates bypass the column type: SQLite returns naive UTC (or even text) values.
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=utcnow().tzinfo)
