"""Batch issuance as a resumable, idempotent job with progress, that records the members it could not issue a card
to and goes on: a job always ends, ``done`` (with or without such members) or ``failed``.

The jobs, their runners and reports live here; the engine that issues a job's cards in chunks, by one worker or
several, is :mod:`cardsvc.services.card_batches` (``run_batch`` is re-exported from it)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, groupby
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cardsvc.db.models import Card, Chapter, Job, JobFailure, Member
from cardsvc.errors import Conflict, NotFound
from cardsvc.services import audit
from cardsvc.services.card_batches import STOPPED_MESSAGE as STOPPED_MESSAGE
from cardsvc.services.card_batches import JobStopped as JobStopped
from cardsvc.services.card_batches import Pace, pace
from cardsvc.services.card_batches import run_batch as run_batch
from cardsvc.services.chapters import get_chapter
from cardsvc.services.context import Actor
from cardsvc.services.keys import KeyRing

log = logging.getLogger("cardsvc.jobs")
FAILURES_SHOWN = 200


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
    pace: Pace


def _failures(session: Session, job: Job, limit: int | None) -> list[MemberFailure]:
    rows = session.scalars(select(JobFailure).where(JobFailure.job_id == job.id).order_by(JobFailure.id)
                           .limit(limit)).all()
    return [MemberFailure(f.member_id, f.member.member_number, f.code, f.message_en, f.message_vi) for f in rows]


def job_report(session: Session, actor: Actor, job_id: int) -> JobReport:
    """A job in scope with its first failures, for the API and the job page."""
    job = get_job(session, actor, job_id)
    return JobReport(job, _failures(session, job, FAILURES_SHOWN), pace(session, job))


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


def job_cards_by_chapter(session: Session, actor: Actor, job_id: int) -> Iterator[tuple[Chapter, Iterator[Card]]]:
    """The cards a job issued, chapter by chapter in print order, read from the database as they are consumed (a
    province's job is not held in memory); refuses a job that has issued none (yet)."""
    job = get_job(session, actor, job_id)
    if session.scalar(select(Card.id).where(Card.job_id == job.id).limit(1)) is None:
        raise Conflict(f"job {job.id} has issued no cards ({job.status})", code="no_cards")
    found = session.scalars(
        select(Card).join(Card.member).where(Card.job_id == job.id).order_by(Member.chapter_id, Member.sort_key)
        .execution_options(yield_per=1000)
    )
    for _chapter_id, group in groupby(found, key=lambda card: card.member.chapter_id):
        yield _with_chapter(group)


def _with_chapter(cards: Iterator[Card]) -> tuple[Chapter, Iterator[Card]]:
    first = next(cards)
    return first.member.chapter, chain((first,), cards)


def unfinished_jobs(session: Session) -> Sequence[int]:
    return session.scalars(select(Job.id).where(Job.status.in_(("queued", "running")))).all()
