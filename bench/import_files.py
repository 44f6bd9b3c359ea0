"""Bench: reading member files — the bounded XLSX reader against openpyxl, and the refusal of hostile files.

Measured in one run:

(a) reading a generated XLSX list of N members with :func:`cardsvc.importing.files.read_member_table`, and
    iterating the same sheet with openpyxl's read-only reader (what the importer used before);
(b) refusing the two files of issue #13 item 3: a few-kB workbook whose last row is ``<row r="1000000000">``
    (openpyxl took ~4 minutes over it), and a zip bomb under the upload cap (~70 s before).

Targets: (a) at most as slow as openpyxl; (b) each refusal under 1 % of the time (a) takes for the list, with the
work done (rows visited, bytes inflated) printed. The script prints PASS/MISS and never fails on timings.

    .venv/bin/python bench/import_files.py [--rows N]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and bench/issuance.py would hide the `issuance` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import io
import time
from collections.abc import Callable

from openpyxl import load_workbook

from cardsvc.importing.files import ReadBudget, read_member_table
from integrations.errors import InputError
from tests.server.importing.builders import people, rewrite_xlsx_part, table, xlsx_bytes

SHEET = "xl/worksheets/sheet1.xml"


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def refusal(name: str, data: bytes, reference: float) -> None:
    budget = ReadBudget()
    start = time.perf_counter()
    try:
        read_member_table(data, budget=budget)
        outcome = "accepted"
    except InputError as exc:
        outcome = f"refused ({exc.code})"
    seconds = time.perf_counter() - start
    verdict = "PASS" if outcome != "accepted" and seconds < reference / 100 else "MISS"
    print(f"{name}: {len(data):,} bytes {outcome} in {seconds * 1000:.1f} ms "
          f"({seconds / reference:.4f} × reading the list); rows visited {budget.rows_visited}, "
          f"bytes inflated {budget.bytes_inflated:,}  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()

    data = xlsx_bytes(table(people(args.rows)))
    ours = timed(lambda: read_member_table(data))

    def with_openpyxl() -> None:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        for _ in workbook.worksheets[0].iter_rows(values_only=True):
            pass
        workbook.close()

    theirs = timed(with_openpyxl)
    verdict = "PASS" if ours <= theirs else "MISS"
    print(f"{args.rows:,} members, {len(data):,} bytes: read in {ours:.2f} s, openpyxl read-only {theirs:.2f} s, "
          f"ratio {ours / theirs:.2f}  {verdict}")

    small = xlsx_bytes(table(people(2)))
    refusal("last row r=1000000000", rewrite_xlsx_part(small, SHEET, lambda xml: xml.replace(
        b'<row r="3"', b'<row r="1000000000"')), ours)
    refusal("zip bomb (200 MB of XML)", rewrite_xlsx_part(small, SHEET, lambda xml: xml.replace(
        b"<sheetData>", b"<sheetData>" + b" " * (200 * 1024 * 1024))), ours)


if __name__ == "__main__":
    main()
