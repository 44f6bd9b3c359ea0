"""Bench: import generated member lists into PostgreSQL and compare with a raw bulk insert of the same rows.

Measured in one run against one database:

(a) the full import through :func:`cardsvc.services.imports.import_members` — reading the CSV, validating every
    row, encrypting and indexing ID and phone numbers, matching existing members, inserting members and their first
    status row, auditing, committing;
(b) a raw ``session.execute(insert(Member), rows)`` of the same member rows with every value precomputed, into
    the emptied table.

Targets: (a) imports 100,000 rows in at most 30 s, and runs at least half as fast as (b) in rows/s. The script
prints PASS/MISS and never fails on timings.

    .venv/bin/python bench/import_members.py [--rows N] [--profile]

The database comes from ``CARDSVC_BENCH_DATABASE_URL`` (default below); it is created if missing and its
``public`` schema is dropped and migrated afresh on every run.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and bench/issuance.py would hide the `issuance` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import cProfile
import csv
import io
import os
import pstats
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from cardsvc.db.migrate import upgrade
from cardsvc.db.models import Chapter, Member
from cardsvc.db.session import make_engine
from cardsvc.importing.rows import format_member_number
from cardsvc.normalize import given_name_sort_key, name_search_key
from cardsvc.security import PiiCipher
from cardsvc.services import chapters
from cardsvc.services.context import system_actor
from cardsvc.services.imports import import_members
from cardsvc.services.pii import mask_phone
from integrations.idnumber import PROVINCE_CODES, mask_id_number

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/cardsvc_bench"
TARGET_SECONDS_PER_100K = 30.0
TARGET_RATIO = 0.5
COMMUNES = 20
TODAY = date(2025, 9, 1)

FAMILY_NAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ",
                "Hồ", "Ngô", "Dương", "Lý", "Đinh", "Trịnh", "Mai", "Tạ")
MIDDLE_NAMES = ("Thị", "Thị", "Thị", "Ngọc", "Thu", "Thanh", "Kim", "Phương", "Hồng", "Bích", "Minh", "Diệu")
GIVEN_NAMES = ("Lan", "Hoa", "Hương", "Thảo", "Mai", "Hà", "Nhung", "Yến", "Trang", "Linh", "Anh", "Huệ", "Oanh",
               "Vy", "Hạnh", "Dung", "Nga", "Hằng", "Loan", "Tuyết", "Xuân", "Quỳnh", "Ánh", "Giang", "Thủy")
# Current mobile prefixes (DOMAIN.md §3): 03x, 05x, 07x, 08x, 09x.
PHONE_PREFIXES = ("032", "033", "034", "035", "036", "037", "038", "039", "056", "058", "070", "076", "077",
                  "078", "079", "081", "082", "083", "084", "085", "086", "088", "089", "090", "091", "093",
                  "094", "096", "097", "098")
HEADER = ("STT", "Họ và tên", "Ngày sinh", "Giới tính", "Số CCCD", "Số điện thoại", "Ngày vào hội", "Mã chi hội")


@dataclass(frozen=True)
class Person:
    full_name: str
    birth: date
    id_number: str
    phone: str
    joined: date
    chapter_code: str


def citizen_id(rng: random.Random, birth: date, taken: set[str]) -> str:
    """A new citizen ID number of a woman born on ``birth`` (DOMAIN.md §2): province, century/gender digit
    (odd = female; 1 for the 1900s, 3 for the 2000s), two year digits, six random digits."""
    provinces = tuple(PROVINCE_CODES)
    century = (birth.year // 100 - 19) * 2 + 1
    while True:
        number = f"{rng.choice(provinces)}{century}{birth.year % 100:02d}{rng.randrange(1_000_000):06d}"
        if number not in taken:
            taken.add(number)
            return number


def generate(count: int, seed: int = 2025) -> list[Person]:
    rng = random.Random(seed)
    taken: set[str] = set()
    persons = []
    for _ in range(count):
        birth = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
        adult = date(birth.year + 18, birth.month, 28 if (birth.month, birth.day) == (2, 29) else birth.day)
        joined = adult + timedelta(days=rng.randrange(max(1, (TODAY - adult).days)))
        middle = rng.choice(MIDDLE_NAMES)
        if rng.random() < 0.4:
            middle += " " + rng.choice(MIDDLE_NAMES[3:])
        persons.append(Person(
            full_name=f"{rng.choice(FAMILY_NAMES)} {middle} {rng.choice(GIVEN_NAMES)}",
            birth=birth,
            id_number=citizen_id(rng, birth, taken),
            phone=f"{rng.choice(PHONE_PREFIXES)}{rng.randrange(10_000_000):07d}",
            joined=joined,
            chapter_code=f"BENCH-{rng.randrange(COMMUNES) + 1:03d}",
        ))
    return persons


def csv_file(persons: Sequence[Person]) -> bytes:
    """The list as Excel writes "CSV UTF-8": a BOM, dd/mm/yyyy dates, CRLF line ends."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    for number, person in enumerate(persons, start=1):
        writer.writerow([number, person.full_name, person.birth.strftime("%d/%m/%Y"), "Nữ", person.id_number,
                         person.phone, person.joined.strftime("%d/%m/%Y"), person.chapter_code])
    return buffer.getvalue().encode("utf-8-sig")


def ensure_database(url: str) -> None:
    target = make_url(url)
    admin = make_engine(str(target.set(database="postgres")), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database})
        if exists is None:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def reset_schema(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)


def create_chapters(engine: Engine) -> dict[str, int]:
    actor = system_actor("bench")
    with Session(engine, expire_on_commit=False) as session:
        root = chapters.create_chapter(session, actor, code="BENCH", name="Trung ương Hội", level="central",
                                       parent_id=None)
        province = chapters.create_chapter(session, actor, code="BENCH-P", name="Hội LHPN tỉnh", level="province",
                                           parent_id=root.id)
        ids = {}
        for number in range(1, COMMUNES + 1):
            commune = chapters.create_chapter(session, actor, code=f"BENCH-{number:03d}", name=f"Xã {number}",
                                              level="commune", parent_id=province.id)
            ids[commune.code] = commune.id
    return ids


def raw_rows(persons: Sequence[Person], chapter_ids: dict[str, int], cipher: PiiCipher) -> list[dict[str, Any]]:
    """Every column value of every member, computed before the raw insert is timed."""
    now = datetime.now(UTC)
    rows = []
    for number, p in enumerate(persons, start=1):
        phone = "+84" + p.phone[1:]
        rows.append({
            "member_number": format_member_number(number), "full_name": p.full_name,
            "name_search": name_search_key(p.full_name), "sort_key": given_name_sort_key(p.full_name),
            "birth_date": p.birth, "birth_date_precision": "day", "gender": "female",
            "id_number_ciphertext": cipher.encrypt("id_number", p.id_number),
            "id_number_index": cipher.blind_index("id_number", p.id_number),
            "id_number_masked": mask_id_number(p.id_number), "phone_ciphertext": cipher.encrypt("phone", phone),
            "phone_index": cipher.blind_index("phone", phone), "phone_masked": mask_phone(phone),
            "chapter_id": chapter_ids[p.chapter_code], "join_date": p.joined, "status": "active",
            "status_changed_on": p.joined, "honorary": False, "created_at": now, "updated_at": now,
        })
    return rows


def truncate_members(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE members, member_status_changes RESTART IDENTITY CASCADE"))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true", help="print the import's cProfile (top functions)")
    args = parser.parse_args()
    url = os.environ.get("CARDSVC_BENCH_DATABASE_URL", DEFAULT_URL)

    ensure_database(url)
    engine = make_engine(url)
    reset_schema(engine)
    chapter_ids = create_chapters(engine)
    cipher = PiiCipher(os.urandom(32), os.urandom(32))
    persons = generate(args.rows)
    data = csv_file(persons)
    print(f"{args.rows} rows, CSV {len(data) / 1e6:.1f} MB, database {make_url(url).render_as_string()}")

    rows = raw_rows(persons, chapter_ids, cipher)
    with Session(engine) as session:
        started = time.perf_counter()
        session.execute(insert(Member), rows)
        session.commit()
        raw_seconds = time.perf_counter() - started
    truncate_members(engine)

    profiler = cProfile.Profile() if args.profile else None
    with Session(engine, expire_on_commit=False) as session:
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        report = import_members(session, system_actor("bench"), cipher, data=data, filename="bench.csv",
                                chapter_code=None, dry_run=False, today=TODAY)
        if profiler:
            profiler.disable()
        import_seconds = time.perf_counter() - started
        stored = session.query(Member).count()
        chapters_used = session.query(Chapter).count()
    engine.dispose()

    raw_rate = args.rows / raw_seconds
    import_rate = args.rows / import_seconds
    ratio = import_rate / raw_rate
    scaled = import_seconds * 100_000 / args.rows
    print(f"import report: created {report.created}, failed {report.failed}, problems {len(report.problems)}; "
          f"{stored} members stored in {chapters_used - 2} communes")
    print(f"(a) full import:  {import_seconds:7.2f} s  {import_rate:9.0f} rows/s")
    print(f"(b) raw insert:   {raw_seconds:7.2f} s  {raw_rate:9.0f} rows/s")
    print(f"ratio (a)/(b) in rows/s: {ratio:.2f}")
    print(f"target 100k rows <= {TARGET_SECONDS_PER_100K:.0f} s: {scaled:.1f} s per 100k  "
          f"{verdict(scaled <= TARGET_SECONDS_PER_100K)}")
    print(f"target ratio >= {TARGET_RATIO}: {ratio:.2f}  {verdict(ratio >= TARGET_RATIO)}")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
