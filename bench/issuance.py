"""Bench: card issuance speed and status-list size, as ratios against references measured in the same run.

1. Credential sign + encode (claims → CBOR → COSE_Sign1 → QR digits) vs a raw ``cryptography`` Ed25519 signature of
   the same Sig_structure bytes. Target ratio ≥ 0.8.
2. QR PNG rendering of our payload vs ``qrcode.make`` with default settings (reported).
3. A batch of N cards end to end (members in a chapter → signed cards in the database → A4 PDF sheets), on a
   temporary SQLite database or on ``CARDSVC_BENCH_DATABASE_URL``.
4. The compressed size of one status list covering 20 million cards with 1 % revoked. Target ≤ 300 KB.

    .venv/bin/python bench/issuance.py [--batch 10000] [--seconds 2]

Prints only; never asserts on timings.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would hide the `issuance` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import qrcode
from sqlalchemy import insert

from cardsvc.db.migrate import upgrade
from cardsvc.db.models import Member
from cardsvc.db.session import make_engine, make_session_factory
from cardsvc.importing.rows import format_member_number
from cardsvc.normalize import given_name_sort_key, name_search_key
from cardsvc.services import chapters, jobs, keys, printing
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


def bench_batch(count: int, url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        database = url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        engine = make_engine(database)
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        upgrade(engine)
        settings = Settings(database_url=database, secret_key="b" * 40, key_encryption_key="k" * 40,
                            _env_file=None)  # type: ignore[call-arg]
        factory = make_session_factory(engine)
        actor = system_actor("bench")
        rng = random.Random(7)
        with factory() as session:
            keys.create_key(session, actor, settings.kek, purpose="trust")
            keys.create_key(session, actor, settings.kek, purpose="card")
            root = chapters.create_chapter(session, actor, code="B", name="Bench", level="central", parent_id=None)
            branch = chapters.create_chapter(session, actor, code="B-1", name="Chi hội Bench", level="branch",
                                             parent_id=root.id)
            rows = []
            for n in range(count):
                name = f"Nguyễn Thị {rng.choice(['Lan', 'Hoa', 'Mai', 'Thảo', 'Hương'])} {n}"
                rows.append({"member_number": format_member_number(n + 1), "full_name": name,
                             "name_search": name_search_key(name), "sort_key": given_name_sort_key(name),
                             "birth_date": date(1980, 1, 1), "birth_date_precision": "day", "gender": "female",
                             "chapter_id": branch.id, "status": "active", "honorary": False})
            session.execute(insert(Member), rows)
            job = jobs.start_batch(session, actor, branch.id, subtree=False)
            job_id = job.id
        start = time.perf_counter()
        jobs.run_batch(factory, KeyRing(settings.kek), job_id, validity_years=5, list_size=2**20)
        issued = time.perf_counter() - start
        with factory() as session:
            start = time.perf_counter()
            pdf = printing.sheets_pdf_of(jobs.job_cards(session, actor, job_id), settings)
            printed = time.perf_counter() - start
        engine.dispose()
    print(f"batch of {count:,} cards on {engine.dialect.name}: issued in {issued:.1f} s ({count / issued:,.0f}/s), "
          f"A4 sheets ({count // 10:,} pages, {len(pdf) / 1e6:.1f} MB) in {printed:.1f} s")


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
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    bench_signing(args.seconds)
    bench_qr(args.seconds)
    bench_status_list()
    bench_batch(args.batch, os.environ.get("CARDSVC_BENCH_DATABASE_URL"))


if __name__ == "__main__":
    main()
