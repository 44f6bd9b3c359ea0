"""The server's job runner: bounded concurrency, jobs in order, a failing job does not end its thread, and ``stop``
sets the flag jobs look at, drops what has not started and never waits longer than asked."""

from __future__ import annotations

import threading

from cardsvc.services.jobs import InlineJobRunner, ThreadJobRunner


def test_at_most_workers_jobs_run_at_once_and_stop_drops_the_queue() -> None:
    runner = ThreadJobRunner(2, name="test-job")
    release = threading.Event()
    started: list[int] = []
    two_started = threading.Semaphore(0)
    lock = threading.Lock()

    def job(number: int) -> None:
        with lock:
            started.append(number)
        two_started.release()
        release.wait(30)

    for number in range(5):
        runner.submit(lambda number=number: job(number))
    assert two_started.acquire(timeout=30) and two_started.acquire(timeout=30)
    # The two workers are busy: the three other jobs wait in the queue, never on a third thread.
    assert not two_started.acquire(timeout=0.5)
    assert sorted(started) == [0, 1]

    runner.stopping.set()
    release.set()
    runner.stop(30)
    assert sorted(started) == [0, 1]  # The queued jobs were dropped (their rows stay queued).
    runner.submit(lambda: started.append(99))
    assert 99 not in started


def test_a_failing_job_does_not_end_the_worker_thread() -> None:
    runner = ThreadJobRunner(1, name="test-job")
    done = threading.Event()

    def fails() -> None:
        raise RuntimeError("boom")

    runner.submit(fails)
    runner.submit(done.set)
    assert done.wait(30)
    runner.stop(30)


def test_stop_does_not_wait_for_a_job_stuck_in_a_call() -> None:
    runner = ThreadJobRunner(1, name="test-job")
    stuck, entered = threading.Event(), threading.Event()

    def waits_forever() -> None:
        entered.set()
        stuck.wait()

    runner.submit(waits_forever)
    assert entered.wait(30)
    runner.stop(0.1)  # Returns although the job has not ended: its thread is a daemon thread.
    assert runner.stopping.is_set()
    stuck.set()


def test_the_inline_runner_runs_at_once() -> None:
    runner = InlineJobRunner()
    ran: list[int] = []
    runner.submit(lambda: ran.append(1))
    assert ran == [1]
    runner.stop(0)
    assert runner.stopping.is_set()
