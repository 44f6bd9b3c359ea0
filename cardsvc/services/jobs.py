"""Batch issuance as a resumable, idempotent job with progress, that records the members it could not issue a card
to and goes on: a job always ends, ``done`` (with or without such members) or ``failed``."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from sqlalchemy import and_, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cardsvc.days import vietnam_today
from cardsvc.db.models import Card, Chapter, Job, JobFailure, Member, Officer
from cardsvc.errors import CardsvcError, Conflict, NotFound
from cardsvc.services import audit
from cardsvc.services.cards import issue_in_transaction
from cardsvc.services.chapters import get_chapter
from cardsvc.services.context import Actor, subtree_condition, system_actor
from cardsvc.services.keys import KeyRing
from cardsvc.services.officers import actor_for

log = logging.getLogger("cardsvc.jobs")
CHUNK = 200
# Refusals about one member (cards.issue_in_transaction): the job records them and goes on with the others.
MEMBER_REFUSALS = frozenset({"card_data_invalid", "member_not_active"})
FAILURES_SHOWN = 200
CONCURRENT_ISSUE = ("concurrent_issue", "Another card was issued to this member at the same moment; check her cards.",
                    "Hội viên vừa được cấp một thẻ khác cùng lúc; hãy kiểm tra thẻ của hội viên.")
STOPPED_MESSAGE = ("Máy chủ đã dừng giữa chừng; chạy lại để làm tiếp — the server stopped before the job finished; "
                   "start it again to resume")
ProgressCallback = Callable[[int, int], None]


class JobStopped(Exception):
    """Raised inside a job when its runner is stopping: the job ends at this step and can be started again."""


class JobRunner(Protocol):
    """Where jobs run: worker threads in the server, inline in the CLI and in tests.

    ``stopping`` is set when the runner stops (the server got SIGTERM); long jobs look at it between steps.
    """

    stopping: threading.Event

    def submit(self, work: Callable[[], object]) -> None: ...

    def stop(self, wait: float) -> None: ...


class ThreadJobRunner:
    """Runs jobs in the order submitted, at most ``workers`` at a time, on daemon threads started on first use.

    Daemon threads: a job in the middle of a network call never holds up the process's exit. :meth:`stop` sets
    ``stopping``, drops the jobs not started (their rows stay queued) and waits a little for the running ones to end
    their step.
    """

    def __init__(self, workers: int = 1, name: str = "cardsvc-job") -> None:
        self.stopping = threading.Event()
        self._workers = workers
        self._name = name
        self._queue: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, work: Callable[[], object]) -> None:
        if self.stopping.is_set():
            log.warning("job not started: the server is stopping")
            return
        with self._lock:
            if not self._threads:
                self._threads = [threading.Thread(target=self._work, name=f"{self._name}-{n}", daemon=True)
                                 for n in range(self._workers)]
                for thread in self._threads:
                    thread.start()
        self._queue.put(work)

    def _work(self) -> None:
        while True:
            work = self._queue.get()
            if self.stopping.is_set():
                return
            try:
                work()
            except Exception:  # A job's failure must not end the thread that runs the next jobs.
                log.exception("background job failed")

    def stop(self, wait: float) -> None:
        """Ask running jobs to stop and wait up to ``wait`` seconds for them."""
        self.stopping.set()
        with self._lock:
            threads = list(self._threads)
        for _thread in threads:
            self._queue.put(lambda: None)  # Wakes an idle thread, which then sees ``stopping``.
        deadline = time.monotonic() + wait
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class InlineJobRunner:
    """Runs a job at once in the caller's thread (the CLI, tests)."""

    def __init__(self) -> None:
        self.stopping = threading.Event()

    def submit(self, work: Callable[[], object]) -> None:
        work()

    def stop(self, wait: float) -> None:
        self.stopping.set()


class BatchScheduler:
    """Hands batch jobs to the runner with what they need to run outside the request."""

    def __init__(self, session_factory: sessionmaker[Session], keyring: KeyRing, runner: JobRunner, *,
                 validity_years: int, list_size: int) -> None:
        self._session_factory = session_factory
        self._keyring = keyring
        self._runner = runner
        self._validity_years = validity_years
        self._list_size = list_size

    def submit_batch(self, job_id: int) -> None:
        self._runner.submit(lambda: run_batch(self._session_factory, self._keyring, job_id,
                                              validity_years=self._validity_years, list_size=self._list_size,
                                              stopping=self._runner.stopping))


def start_batch(session: Session, actor: Actor, chapter_id: int, *, subtree: bool) -> Job:
    """Record a batch-issuance job for the active members of a chapter (or its subtree) without a valid card."""
    actor.require_write()
    chapter = get_chapter(session, actor, chapter_id)
    job = Job(kind="card_batch", status="queued", params={"chapter_id": chapter.id, "subtree": subtree},
              officer_id=actor.id, chapter_path=chapter.path, total=0, done=0, failed=0)
    session.add(job)
    session.flush()
    audit.record(session, actor, "card.batch_start", target_type="job", target_id=job.id,
                 chapter_path=chapter.path, details={"subtree": subtree})
    session.commit()
    return job


def get_job(session: Session, actor: Actor, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None or not actor.sees(job.chapter_path):
        raise NotFound("job not found")
    return job


def _eligible(session: Session, job: Job, today: date) -> list[int]:
    """Active members without a valid card that the job has not tried yet (a resumed job does not retry the
    members it recorded as failed: their data must be corrected first)."""
    chapter = session.get_one(Chapter, job.params["chapter_id"])
    where = subtree_condition(Chapter.path, chapter.path) if job.params.get("subtree") else Chapter.id == chapter.id
    has_valid_card = exists().where(
        and_(Card.member_id == Member.id, Card.status.in_(("active", "suspended")), Card.expires_on >= today)
    )
    failed_here = exists().where(and_(JobFailure.job_id == job.id, JobFailure.member_id == Member.id))
    return list(session.scalars(
        select(Member.id).join(Member.chapter).where(where, Member.status == "active", ~has_valid_card, ~failed_here)
        .order_by(Member.chapter_id, Member.sort_key, Member.id)
    ))


def _job_actor(session: Session, job: Job) -> Actor:
    officer = session.get(Officer, job.officer_id) if job.officer_id is not None else None
    return actor_for(officer) if officer is not None else system_actor("batch")


def _issue_one(session: Session, actor: Actor, keyring: KeyRing, job: Job, member_id: int, *, validity_years: int,
               list_size: int, today: date) -> None:
    """Issue one member's card under a savepoint; a refusal about her is recorded on the job instead."""
    try:
        with session.begin_nested():
            issue_in_transaction(session, actor, keyring, session.get_one(Member, member_id),
                                 validity_years=validity_years, list_size=list_size, today=today, reason="batch",
                                 job_id=job.id)
    except Conflict as exc:
        if exc.code not in MEMBER_REFUSALS:
            raise
        detail = exc.details[0]
        code, message_en, message_vi = detail["code"], detail["message"], detail["message_vi"]
    except IntegrityError:
        # An officer issued her a card while the job was running: the one-current-card index refused ours.
        code, message_en, message_vi = CONCURRENT_ISSUE
    else:
        job.done += 1
        return
    session.add(JobFailure(job_id=job.id, member_id=member_id, code=code, message_en=message_en[:300],
                           message_vi=message_vi[:300]))
    job.failed += 1


def run_batch(
    session_factory: sessionmaker[Session],
    keyring: KeyRing,
    job_id: int,
    *,
    validity_years: int,
    list_size: int,
    today: date | None = None,
    progress: ProgressCallback | None = None,
    stopping: threading.Event | None = None,
) -> None:
    """Issue the job's cards, dated ``today`` (default: today in Vietnam), in chunks, committing each chunk with the
    progress, so that an interrupted job resumes where it stopped and a finished one issues nothing when run again.

    A member the card cannot be issued to is recorded (``job_failures``, counted in ``failed``) and the job goes on to
    end ``done``. Any other error ends it ``failed`` with the error: it never raises and never stays ``running``.
    When ``stopping`` is set the job fails after the chunk in hand, saying that it was interrupted.
    """
    day = today or vietnam_today()
    with session_factory() as session:
        try:
            job = session.get_one(Job, job_id)
            actor = _job_actor(session, job)
            job.status = "running"
            members = _eligible(session, job, day)
            job.total = job.done + job.failed + len(members)
            session.commit()
            for start in range(0, len(members), CHUNK):
                if stopping is not None and stopping.is_set():
                    raise JobStopped
                for member_id in members[start:start + CHUNK]:
                    _issue_one(session, actor, keyring, job, member_id, validity_years=validity_years,
                               list_size=list_size, today=day)
                session.commit()
                if progress:
                    progress(job.done + job.failed, job.total)
            job.status = "done"
            audit.record(session, actor, "card.batch_done", target_type="job", target_id=job.id,
                         chapter_path=job.chapter_path, details={"issued": job.done, "failed": job.failed})
            session.commit()
        except Exception as exc:  # Whatever stopped it, the job must end instead of staying "running".
            # Starting the batch again resumes where it stopped.
            session.rollback()
            failed = session.get_one(Job, job_id)
            failed.status = "failed"
            if isinstance(exc, JobStopped):
                failed.error = STOPPED_MESSAGE
            else:
                failed.error = (exc.message if isinstance(exc, CardsvcError)
                                else f"an error stopped the job ({type(exc).__name__}); start the batch again")[:500]
            session.commit()
            log.warning("batch job %s failed: %s", job_id, getattr(exc, "code", None) or type(exc).__name__,
                        exc_info=exc if log.isEnabledFor(logging.DEBUG) else None)


@dataclass(frozen=True)
class MemberFailure:
    """A member a job issued no card to, and why (in English and Vietnamese)."""

    member_id: int
    member_number: str
    code: str
    message: str
    message_vi: str


@dataclass(frozen=True)
class JobReport:
    """A job with the first :data:`FAILURES_SHOWN` members it could not issue a card to (``job.failed`` counts all)."""

    job: Job
    failures: list[MemberFailure]


def _failures(session: Session, job: Job, limit: int | None) -> list[MemberFailure]:
    rows = session.scalars(select(JobFailure).where(JobFailure.job_id == job.id).order_by(JobFailure.id)
                           .limit(limit)).all()
    return [MemberFailure(f.member_id, f.member.member_number, f.code, f.message_en, f.message_vi) for f in rows]


def job_report(session: Session, actor: Actor, job_id: int) -> JobReport:
    """A job in scope with its first failures, for the API and the job page."""
    job = get_job(session, actor, job_id)
    return JobReport(job, _failures(session, job, FAILURES_SHOWN))


def job_failures(session: Session, actor: Actor, job_id: int) -> list[MemberFailure]:
    """Every member the job could not issue a card to, in the order it tried them."""
    return _failures(session, get_job(session, actor, job_id), None)


def job_cards(session: Session, actor: Actor, job_id: int) -> Sequence[Card]:
    """The cards a job issued, in print order; refuses a job that has issued none (yet)."""
    job = get_job(session, actor, job_id)
    found = session.scalars(
        select(Card).join(Card.member).where(Card.job_id == job.id).order_by(Member.chapter_id, Member.sort_key)
    ).all()
    if not found:
        raise Conflict(f"job {job.id} has issued no cards ({job.status})", code="no_cards")
    return found


def unfinished_jobs(session: Session) -> Sequence[int]:
    return session.scalars(select(Job.id).where(Job.status.in_(("queued", "running")))).all()
