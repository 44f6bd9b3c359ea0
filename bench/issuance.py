"""Bench: card issuance speed and status-list size, as ratios against references measured in the same run.

1. Credential sign + encode (claims → CBOR → COSE_Sign1 → QR digits) vs a raw ``cryptography`` Ed25519 signature of
   the same Sig_structure bytes. Target ratio ≥ 0.8.
2. QR PNG rendering of our payload vs ``qrcode.make`` with default settings (reported).
3. The compressed size of one status list covering 20 million cards with 1 % revoked. Target ≤ 300 KB.
4. A batch job of N cards end to end (a province of members in branches of 500 → signed cards in the database),
   with 1 and with ``--workers`` worker processes (``cardsvc issue --job``), each run on a fresh database: cards/s
   and the ratio against a raw Ed25519 signature measured in the same run (targets: PostgreSQL ≥ 0.1, SQLite
   ≥ 0.05), and each worker's peak resident memory. Then the job's A4 sheets streamed chapter by chapter (a ZIP of
   one PDF per chapter) with that process's peak memory, and with ``--profile`` the time of each step of the engine.
   ``--backend sqlite`` runs on a temporary file; ``--backend postgresql`` on ``CARDSVC_BENCH_DATABASE_URL``, whose
   schema it DROPS (give it a database of its own).

    .venv/bin/python bench/issuance.py [--batch 10000] [--workers 2] [--backend sqlite|postgresql] [--profile]
                                       [--sheets 20000] [--batch-only] [--seconds 2]

Prints only; never asserts on timings.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from itertools import islice
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path and its name would hide the `issuance` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import qrcode

from cardsvc.db.bulk import insert_rows
from cardsvc.db.migrate import upgrade
from cardsvc.db.models import Job, Member
from cardsvc.db.session import make_engine, make_session_factory
from cardsvc.importing.rows import format_member_number
from cardsvc.normalize import given_name_sort_key, name_search_key
from cardsvc.services import audit, card_batches, chapters, jobs, keys, printing, status_lists
from cardsvc.services.context import system_actor
from cardsvc.services.keys import KeyRing
from cardsvc.settings import Settings
from issuance.credential import credential_qr_text, new_card_id, sign_credential
from issuance.keys import LocalSigner, algorithm_of, generate_private_key
from issuance.render import qr_png
from issuance.status_list import build_status_bytes, compress_status_bytes
from verification.format import CardClaims, encode_claims, protected_header, sig_structure

SIGN_TARGET = 0.8
STATUS_TARGET_BYTES = 300_000


def rate(work: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``work`` over about ``seconds``."""
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            work()
        count += 50
    return count / elapsed


def claims(index: int = 48213) -> CardClaims:
    return CardClaims(new_card_id(), "0000001867", "Nguyễn Thị Phương Thảo Vy", "HNI-BADINH-01", 1,
                      date(2026, 11, 25), date(2031, 11, 24), 1, index)


def bench_signing(seconds: float) -> None:
    key = generate_private_key("ed25519")
    signer = LocalSigner(b"\x7e\x01", algorithm_of(key), key)
    sample = claims()
    data = sig_structure(protected_header(signer.algorithm, signer.kid), encode_claims(sample))
    sample_claims = [claims(index) for index in range(1000)]
    cycle = iter(lambda: sample_claims[random.randrange(1000)], None)
    raw = rate(lambda: key.sign(data), seconds)
    ours = rate(lambda: sign_credential(next(cycle), signer), seconds)
    with_text = rate(lambda: credential_qr_text(sign_credential(next(cycle), signer)), seconds)
    ratio = ours / raw
    print(f"sign+encode (credential bytes): {ours:,.0f}/s   raw Ed25519 sign: {raw:,.0f}/s   ratio {ratio:.2f} "
          f"(target ≥ {SIGN_TARGET}) {'PASS' if ratio >= SIGN_TARGET else 'MISS'}")
    print(f"sign+encode+QR digits: {with_text:,.0f}/s   ratio {with_text / raw:.2f}")


def bench_qr(seconds: float) -> None:
    key = generate_private_key("ed25519")
    signer = LocalSigner(b"\x7e\x01", algorithm_of(key), key)
    # Distinct texts, so that the renderer's per-text cache never flatters the figure.
    texts = iter([credential_qr_text(sign_credential(claims(i), signer)) for i in range(5000)])
    ours = rate(lambda: qr_png(next(texts)), seconds)
    reference = rate(lambda: qrcode.make(next(texts)).save(io.BytesIO(), format="PNG"), seconds)
    print(f"QR PNG (distinct payloads): ours {ours:,.0f}/s   qrcode.make default + PNG {reference:,.0f}/s   "
          f"ratio {ours / reference:.2f}")


NAMES_FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi")
NAMES_GIVEN = ("Lan", "Hoa", "Mai", "Thảo", "Hương", "Hằng", "Nga", "Yến", "Linh", "Trang", "Phương", "Thu", "Hà",
               "Vân", "Ngọc", "Anh", "Dung", "Hạnh", "Loan", "Xuân")
MEMBERS_PER_BRANCH = 500
BATCH_TARGETS = {"postgresql": 0.1, "sqlite": 0.05}


def _settings(url: str) -> Settings:
    return Settings(database_url=url, secret_key="b" * 40, key_encryption_key="k" * 40,
                    _env_file=None)  # type: ignore[call-arg]


def _member_name(n: int) -> str:
    """Names the card accepts (letters only: no digits), varied enough for realistic sort keys."""
    given = NAMES_GIVEN
    return f"{NAMES_FAMILY[n % 8]} Thị {given[n // 8 % 20]} {given[n // 160 % 20]}"


def seed(url: str, count: int) -> int:
    """A fresh database with a province of ``count`` active members in branches of 500, and a batch job on it."""
    if url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    upgrade(engine)
    settings = _settings(url)
    actor = system_actor("bench")
    with make_session_factory(engine)() as session:
        keys.create_key(session, actor, settings.kek, purpose="trust")
        keys.create_key(session, actor, settings.kek, purpose="card")
        root = chapters.create_chapter(session, actor, code="B", name="Bench", level="central", parent_id=None)
        branches = [chapters.create_chapter(session, actor, code=f"B-{n + 1}", name=f"Chi hội {n + 1}",
                                            level="branch", parent_id=root.id).id
                    for n in range(max(1, -(-count // MEMBERS_PER_BRANCH)))]
        now = datetime.now(UTC)
        for start in range(0, count, 20_000):
            rows = []
            for n in range(start, min(count, start + 20_000)):
                name = _member_name(n)
                rows.append({"member_number": format_member_number(n + 1), "full_name": name,
                             "name_search": name_search_key(name), "sort_key": given_name_sort_key(name),
                             "birth_date": date(1980, 1, 1), "birth_date_precision": "day", "gender": "female",
                             "chapter_id": branches[n // MEMBERS_PER_BRANCH], "status": "active",
                             "honorary": False, "created_at": now, "updated_at": now})
            insert_rows(session, Member.__table__, rows)  # type: ignore[arg-type]
            session.commit()
        job_id = jobs.start_batch(session, actor, root.id, subtree=True).id
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            # What autovacuum does after an import: the planner's statistics of the new members and chapters.
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
            if conn.exec_driver_sql("SHOW autovacuum").scalar() == "off":
                print("  (autovacuum is off on this server: as the job grows, `cards` gets neither statistics nor "
                      "a visibility map, and the rate falls with the job's size)")
    engine.dispose()
    return job_id


def peak_rss_mb() -> float:
    """This process's peak resident memory: ``VmHWM`` (``ru_maxrss`` keeps the parent's peak across fork + exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker(url: str, job_id: int, name: str, go: Any, results: Any) -> None:
    """One ``cardsvc issue --job`` worker, in its own process, started with the others once all have imported
    everything: reports when it started and ended (wall clock) and its peak resident memory."""
    engine = make_engine(url)
    keyring = KeyRing(_settings(url).kek)
    go.wait()
    start = time.time()
    jobs.run_batch(make_session_factory(engine), keyring, job_id, validity_years=5, list_size=2**20, worker=name,
                   poll_seconds=0.05)
    results.put((start, time.time(), peak_rss_mb()))


def _sheets(url: str, job_id: int, limit: int, results: Any) -> None:
    """The job's A4 sheets streamed chapter by chapter (the first ``limit`` cards), in its own process."""
    engine = make_engine(url)
    settings = _settings(url)
    actor = system_actor("bench")
    with make_session_factory(engine)() as session, tempfile.TemporaryFile() as out:
        left = [limit]

        def capped(chapters_: Any) -> Any:
            for chapter, cards in chapters_:
                if left[0] <= 0:
                    return
                taken = list(islice(cards, left[0]))
                left[0] -= len(taken)
                yield chapter, iter(taken)

        start = time.perf_counter()
        written = printing.write_sheet_archive_of(capped(jobs.job_cards_by_chapter(session, actor, job_id)),
                                                  settings, out)
        took = time.perf_counter() - start
        size = out.tell()
    results.put((written, took, size, peak_rss_mb()))


def _job_state(url: str, job_id: int) -> tuple[str, int, int, int]:
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        job = session.get_one(Job, job_id)
        state = (job.status, job.total, job.done, job.failed)
    engine.dispose()
    return state


def run_workers(url: str, job_id: int, workers: int) -> tuple[float, float]:
    """Run ``workers`` worker processes on the job at once; the wall time and the largest peak RSS (MB)."""
    context = multiprocessing.get_context("spawn")
    results, go = context.Queue(), context.Event()
    processes = [context.Process(target=_worker, args=(url, job_id, f"bench-{n + 1}", go, results))
                 for n in range(workers)]
    for process in processes:
        process.start()
    time.sleep(3)  # the workers import and connect before they are let go together
    go.set()
    reports = [results.get() for _ in processes]
    for process in processes:
        process.join()
    return max(end for _, end, _ in reports) - min(start for start, _, _ in reports), max(r for _, _, r in reports)


class Steps:
    """Time per step of the engine, each step counted without the steps it calls (``--profile``)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._stack: list[float] = []

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            self._stack.append(0.0)
            try:
                return function(*args, **kwargs)
            finally:
                inner = self._stack.pop()
                took = time.perf_counter() - start
                self.totals[name] = self.totals.get(name, 0.0) + took - inner
                if self._stack:
                    self._stack[-1] += took
        return timed


def profile_batch(url: str, job_id: int) -> None:
    """One worker in this process with each step of the engine timed: what the time goes to."""
    steps = Steps()
    patches = [(card_batches, "_plan"), (card_batches, "_claim"), (card_batches, "_chunk_members"),
               (card_batches, "check_card_fields"), (status_lists, "allocate_slots"), (card_batches, "new_card_id"),
               (card_batches, "sign_credential"), (card_batches, "insert_rows"), (card_batches, "_finish_chunk"),
               (audit, "record")]
    labels = {"_plan": "plan the chunks", "_claim": "claim a chunk", "_chunk_members": "load the chunk's members",
              "check_card_fields": "check names and codes", "allocate_slots": "allocate status slots",
              "new_card_id": "random card ids", "sign_credential": "encode + sign (CBOR, COSE, Ed25519)",
              "insert_rows": "insert cards (COPY / multi-row INSERT)", "_finish_chunk": "chunk + job counters",
              "record": "audit entry", "commit": "commit (incl. flushing the audit entry)"}
    originals = [(module, name, getattr(module, name)) for module, name in patches]
    for module, name, original in originals:
        setattr(module, name, steps.wrap(labels[name], original))
    engine = make_engine(url)
    factory = make_session_factory(engine)

    def session_factory() -> Any:
        session = factory()
        session.commit = steps.wrap(labels["commit"], session.commit)  # type: ignore[method-assign]
        return session

    try:
        start = time.perf_counter()
        jobs.run_batch(session_factory, KeyRing(_settings(url).kek), job_id, validity_years=5, list_size=2**20)
        total = time.perf_counter() - start
    finally:
        for module, name, original in originals:
            setattr(module, name, original)
        engine.dispose()
    status, _, done, _ = _job_state(url, job_id)
    print(f"  profile ({done:,} cards, one worker in-process, {total:.1f} s, job {status}):")
    accounted = 0.0
    for label, seconds in sorted(steps.totals.items(), key=lambda item: -item[1]):
        accounted += seconds
        print(f"    {label:45} {seconds:7.2f} s  {100 * seconds / total:5.1f} %  "
              f"{1e6 * seconds / max(done, 1):7.1f} µs/card")
    rest = total - accounted
    print(f"    {'the rest (ORM, Python, statements not above)':45} {rest:7.2f} s  {100 * rest / total:5.1f} %  "
          f"{1e6 * rest / max(done, 1):7.1f} µs/card")


def bench_batch(count: int, backend: str, workers: int, profile: bool, sheets_limit: int, seconds: float) -> None:
    raw = raw_sign_rate(seconds)
    target = BATCH_TARGETS[backend]
    with tempfile.TemporaryDirectory() as tmp:
        if backend == "postgresql":
            url = os.environ.get("CARDSVC_BENCH_DATABASE_URL")
            if not url:
                sys.exit("--backend postgresql needs CARDSVC_BENCH_DATABASE_URL (a database of its own: the bench "
                         "drops its schema)")
        else:
            url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        print(f"batch issuance, {count:,} cards on {backend} (raw Ed25519 sign {raw:,.0f}/s in this run):")
        rates = {}
        for n in sorted({1, workers}):
            job_id = seed(url, count)
            wall, rss = run_workers(url, job_id, n)
            status, _total, done, failed = _job_state(url, job_id)
            rate = done / wall
            rates[n] = rate
            ratio = rate / raw
            print(f"  {n} worker{'s' if n > 1 else ' '}: {done:,} cards issued ({failed} refused, job {status}) in "
                  f"{wall:.1f} s = {rate:,.0f} cards/s; ratio {ratio:.3f} against raw signing "
                  f"(target ≥ {target}) {'PASS' if ratio >= target else 'MISS'}; peak RSS per worker {rss:.0f} MB")
            if done != count:
                print(f"  !! {count - done} members got no card")
        if workers > 1:
            print(f"  {workers} workers / 1 worker: {rates[workers] / rates[1]:.2f}×")
        if sheets_limit:
            context = multiprocessing.get_context("spawn")
            results = context.Queue()
            process = context.Process(target=_sheets, args=(url, job_id, sheets_limit, results))
            process.start()
            written, took, size, rss = results.get()
            process.join()
            print(f"  A4 sheets streamed chapter by chapter: {written:,} cards ({written // 10:,} pages, "
                  f"{size / 1e6:.1f} MB ZIP) in {took:.1f} s = {written / took:,.0f} cards/s; peak RSS {rss:.0f} MB")
        if profile:
            profile_batch(url, seed(url, min(count, 20_000)))


def raw_sign_rate(seconds: float) -> float:
    key = generate_private_key("ed25519")
    signer = LocalSigner(b"\x7e\x01", algorithm_of(key), key)
    data = sig_structure(protected_header(signer.algorithm, signer.kid), encode_claims(claims()))
    return rate(lambda: key.sign(data), seconds)


def bench_status_list() -> None:
    size, revoked = 20_000_000, 200_000
    rng = random.Random(1)
    indexes = rng.sample(range(size), revoked)
    start = time.perf_counter()
    compressed = compress_status_bytes(build_status_bytes(size, ((i, 1) for i in indexes)))
    took = time.perf_counter() - start
    ok = len(compressed) <= STATUS_TARGET_BYTES
    print(f"status list, 20,000,000 cards, 1 % revoked: {len(compressed) / 1000:,.0f} KB compressed "
          f"(built in {took:.1f} s; target ≤ {STATUS_TARGET_BYTES // 1000} KB) {'PASS' if ok else 'MISS'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=10_000, help="cards in the batch job")
    parser.add_argument("--workers", type=int, default=1, help="also run the job with N worker processes")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite",
                        help="postgresql: on CARDSVC_BENCH_DATABASE_URL (its schema is dropped)")
    parser.add_argument("--profile", action="store_true", help="time each step of the engine (≤ 20,000 cards)")
    parser.add_argument("--sheets", type=int, default=20_000,
                        help="stream the A4 sheets of the first N cards of the job (0: none)")
    parser.add_argument("--batch-only", action="store_true", help="skip the signing, QR and status-list benches")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    if not args.batch_only:
        bench_signing(args.seconds)
        bench_qr(args.seconds)
        bench_status_list()
    bench_batch(args.batch, args.backend, args.workers, args.profile, args.sheets, args.seconds)


if __name__ == "__main__":
    main()
