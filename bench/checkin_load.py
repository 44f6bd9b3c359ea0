"""Bench: check-in throughput and latency of the real server (uvicorn, 2 workers, PostgreSQL or SQLite).

Seeds N members with one card each (members and cards inserted in bulk, credentials signed with the real signer),
an event and a few provisioned stations; starts ``cardsvc serve --workers 2`` (uvicorn workers, cardsvc/serve.py),
as production runs it; then:

(a) reference: the same client fires the same number of ``GET /healthz`` requests at the same concurrency;
(b) check-ins: every card scanned once (distinct cards, spread over the stations, fresh nonces);

and prints throughput, p50/p95/p99 latency of each, the ratio (b)/(a), and checks exactly-once afterwards (one ok
row per card, no member with two). Targets on 2 cores: ≥ 1,000 check-ins/s and p99 ≤ 50 ms. The script prints
PASS/MISS and never fails on timings (it exits non-zero only when exactly-once is broken).

The client is a minimal keep-alive HTTP/1.1 client on asyncio streams, so that the load generator, which shares the
machine's cores with the server, costs as little CPU as possible; it is the same for (a) and (b).

    .venv/bin/python bench/checkin_load.py [--requests 5000] [--concurrency 32] [--stations 8] [--workers 2]

The database comes from ``CARDSVC_BENCH_CHECKIN_DATABASE_URL`` (default below); it is created if missing and its
``public`` schema is dropped and migrated afresh on every run. A ``sqlite:///…`` URL benches the embedded default
(the file is replaced).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where bench/issuance.py would hide the `issuance`
# package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import httpx
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from cardsvc.db.migrate import upgrade
from cardsvc.db.models import Card, Checkin, Member, StatusList
from cardsvc.db.session import make_engine
from cardsvc.importing.rows import format_member_number
from cardsvc.normalize import given_name_sort_key, name_search_key
from cardsvc.services import chapters, events, keys, stations
from cardsvc.services.context import system_actor
from cardsvc.services.keys import KeyRing
from cardsvc.settings import Settings
from issuance.credential import new_card_id, sign_credential
from verification.format import CardClaims, to_qr_text

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/cardsvc_bench_checkin"
SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
KEK = "bench-key-encryption-key-0123456789-abcdefghij"
TARGET_RATE = 1_000.0
TARGET_P99_MS = 50.0
LIST_SIZE = 2**20
REPO = Path(__file__).resolve().parent.parent
SYSTEM = system_actor("bench")


@dataclass(frozen=True)
class Seeded:
    event_id: int
    tokens: list[str]
    qr_texts: list[str]


def prepare_database(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{parsed.database}{suffix}").unlink(missing_ok=True)
        engine = make_engine(url)
        upgrade(engine)
        return engine
    admin = make_engine(str(parsed.set(database="postgres")), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}) is None:
            conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    return engine


def seed(engine: Engine, settings: Settings, cards_wanted: int, station_count: int) -> Seeded:
    """Keys, a chapter, an event and stations through the services; members and cards in bulk."""
    keyring = KeyRing(settings.kek)
    today = date.today()
    with Session(engine, expire_on_commit=False) as session:
        root = chapters.create_chapter(session, SYSTEM, code="BENCH", name="Bench", level="central", parent_id=None)
        chapter = chapters.create_chapter(session, SYSTEM, code="BENCH-01", name="Bench 1", level="province",
                                          parent_id=root.id)
        for purpose in ("trust", "card"):
            keys.create_key(session, SYSTEM, settings.kek, purpose=purpose)
        key, signer = keyring.active_signer(session, "card")
        status_list = StatusList(size=LIST_SIZE, allocated=cards_wanted, version=1)
        session.add(status_list)
        session.flush()
        names = [f"Nguyễn Thị Bench {i}" for i in range(cards_wanted)]
        member_ids = session.scalars(insert(Member).returning(Member.id, sort_by_parameter_order=True), [
            {"member_number": format_member_number(900_000 + i), "full_name": name,
             "name_search": name_search_key(name), "sort_key": given_name_sort_key(name),
             "birth_date": date(1980, 1, 1), "gender": "female", "chapter_id": chapter.id, "status": "active",
             "status_changed_on": today}
            for i, name in enumerate(names)
        ]).all()
        card_rows, qr_texts = [], []
        expires = today.replace(year=today.year + 5) - timedelta(days=1)
        for i, member_id in enumerate(member_ids):
            claims = CardClaims(card_id=new_card_id(), member_number=format_member_number(900_000 + i),
                                display_name=names[i], chapter_code=chapter.code, card_version=1, issued_on=today,
                                expires_on=expires, status_list=status_list.id, status_index=(i * 7 + 3) % LIST_SIZE)
            credential = sign_credential(claims, signer)
            qr_texts.append(to_qr_text(credential))
            card_rows.append({"card_id": claims.card_id.hex(), "member_id": member_id, "version": 1,
                              "signing_key_id": key.id, "issued_on": today, "expires_on": expires,
                              "status": "active", "status_list_id": status_list.id,
                              "status_index": claims.status_index, "credential": credential})
        session.execute(insert(Card), card_rows)
        session.commit()
        now = datetime.now(UTC)
        event = events.create_event(session, SYSTEM, events.EventSpec(
            chapter_id=root.id, title="Đại hội bench", venue="Hội trường", starts_at=now,
            ends_at=now + timedelta(hours=3)))
        tokens = []
        for index in range(station_count):
            code = stations.register_station(session, SYSTEM, event.id, f"Cửa {index + 1}").provisioning_code
            tokens.append(stations.provision(session, code).device_token)
        return Seeded(event.id, tokens, qr_texts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(url: str, port: int, workers: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CARDSVC_DATABASE_URL": url, "CARDSVC_SECRET_KEY": SECRET,
           "CARDSVC_KEY_ENCRYPTION_KEY": KEK, "CARDSVC_ENVIRONMENT": "test", "CARDSVC_LOG_LEVEL": "WARNING",
           # The bench drives each station far faster than a person scans: the per-station limit is off.
           "CARDSVC_CHECKIN_RATE_PER_SECOND": "0"}
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "cardsvc.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"uvicorn exited: {log_path.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.kill()
    raise SystemExit("uvicorn did not answer /healthz within 30 s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=5)


@dataclass
class Run:
    seconds: float
    latencies: list[float]
    bodies: list[bytes]

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bytes:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length)
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {body[:300]!r}")
    return body


async def _drive(port: int, requests: Sequence[bytes], concurrency: int) -> Run:
    latencies = [0.0] * len(requests)
    bodies = [b""] * len(requests)
    cursor = iter(range(len(requests)))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for index in cursor:
                started = time.perf_counter()
                bodies[index] = await _exchange(reader, writer, requests[index])
                latencies[index] = time.perf_counter() - started
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Run(time.perf_counter() - started, latencies, bodies)


def healthz_request(port: int) -> bytes:
    return f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


def checkin_request(port: int, event_id: int, token: str, nonce: str, payload: str) -> bytes:
    body = json.dumps({"source": "qr_scanner", "client_nonce": nonce, "payload": payload}).encode()
    head = (f"POST /v1/events/{event_id}/checkins HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def report(label: str, run: Run) -> None:
    print(f"{label:<12} {len(run.latencies):>6} requests in {run.seconds:6.2f} s = {run.rate:8.0f}/s   "
          f"p50 {run.percentile(0.50):6.1f} ms   p95 {run.percentile(0.95):6.1f} ms   "
          f"p99 {run.percentile(0.99):6.1f} ms   mean {statistics.fmean(run.latencies) * 1000:6.1f} ms")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--stations", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    url = os.environ.get("CARDSVC_BENCH_CHECKIN_DATABASE_URL", DEFAULT_URL)

    started = time.perf_counter()
    engine = prepare_database(url)
    settings = Settings(environment="test", database_url=url, secret_key=SECRET, key_encryption_key=KEK,
                        _env_file=None)
    seeded = seed(engine, settings, args.requests, args.stations)
    print(f"seeded {len(seeded.qr_texts)} members and cards, {len(seeded.tokens)} stations "
          f"in {time.perf_counter() - started:.1f} s; server: uvicorn, {args.workers} workers, "
          f"{engine.dialect.name}; "
          f"client: {args.concurrency} keep-alive connections, {os.cpu_count()} CPUs")

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(url, port, args.workers, Path(tmp) / "uvicorn.log")
        try:
            warm = [checkin_request(port, seeded.event_id, seeded.tokens[0], f"warm-{i:06d}", "8401")
                    for i in range(200)]
            asyncio.run(_drive(port, warm, args.concurrency))  # Fill pools and caches of both workers.
            health = asyncio.run(_drive(port, [healthz_request(port)] * args.requests, args.concurrency))
            scans = [checkin_request(port, seeded.event_id, seeded.tokens[i % len(seeded.tokens)],
                                     f"bench-{i:07d}", payload) for i, payload in enumerate(seeded.qr_texts)]
            run = asyncio.run(_drive(port, scans, args.concurrency))
        finally:
            stop_server(server)

    report("/healthz", health)
    report("check-in", run)
    answers = [json.loads(body) for body in run.bodies]
    verdicts: dict[str, int] = {}
    for answer in answers:
        key = answer["reason"] or answer["result"]
        verdicts[key] = verdicts.get(key, 0) + 1
    print(f"verdicts: {verdicts}")
    with Session(engine) as session:
        ok_rows = session.scalar(select(func.count()).select_from(Checkin).where(
            Checkin.event_id == seeded.event_id, Checkin.result == "ok", Checkin.client_nonce.like("bench-%")))
        doubled = session.scalar(select(func.count()).select_from(
            select(Checkin.member_id).where(Checkin.event_id == seeded.event_id, Checkin.result == "ok")
            .group_by(Checkin.member_id).having(func.count() > 1).subquery()))
    engine.dispose()
    exactly_once = ok_rows == len(seeded.qr_texts) == verdicts.get("ok") and doubled == 0
    ratio = run.rate / health.rate
    print(f"ratio check-in/healthz throughput: {ratio:.2f}")
    print(f"exactly-once: {ok_rows} ok rows for {len(seeded.qr_texts)} distinct cards, "
          f"{doubled} members with more than one: {'PASS' if exactly_once else 'FAIL'}")
    print(f"throughput ≥ {TARGET_RATE:.0f}/s: {'PASS' if run.rate >= TARGET_RATE else 'MISS'} ({run.rate:.0f}/s)")
    p99 = run.percentile(0.99)
    print(f"p99 ≤ {TARGET_P99_MS:.0f} ms: {'PASS' if p99 <= TARGET_P99_MS else 'MISS'} ({p99:.1f} ms)")
    return 0 if exactly_once else 1


if __name__ == "__main__":
    raise SystemExit(main())
