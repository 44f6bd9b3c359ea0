"""What an import report says about problems and skipped rows, in the words of the officer's own file.

Problems name the column by the file's header text and letter ("Cột 'Ngày sinh' (D): …"), never by an internal
field name. A report lists, per kind of problem, how many rows have it and the first of them, so that a file
whose every row fails still gives a short report; the complete list goes into the file given back with an error
column (:mod:`cardsvc.importing.errors_file`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cardsvc.importing.files import SkippedRow
from cardsvc.importing.rows import RowProblem

__all__ = ["EXAMPLES", "SKIP_REASONS", "ColumnLabels", "capped_problems", "problem_counts", "skipped_counts"]

# Rows listed per kind of problem and per kind of skipped row.
EXAMPLES = 20

# (English, Vietnamese) for each reason a row was skipped.
SKIP_REASONS: dict[str, tuple[str, str]] = {
    "title": ("Title rows above the header", "Dòng tiêu đề phía trên dòng tên cột"),
    "column_numbers": ("Row of column numbers under the header", "Dòng đánh số cột dưới dòng tên cột"),
    "no_member_data": ("Rows without member data (only a row number or unused columns)",
                       "Dòng không có thông tin hội viên (chỉ có số thứ tự hoặc cột không dùng)"),
    "total": ("Total rows", "Dòng tổng cộng"),
    "signature": ("Date and signature rows below the list", "Dòng ngày tháng và chữ ký cuối danh sách"),
    "blank": ("Empty rows", "Dòng trống"),
}


@dataclass(frozen=True)
class ColumnLabels:
    """The file's own header text and column letter of each field it has."""

    headers: dict[str, str]
    letters: dict[str, str]

    def label(self, column: str) -> str | None:
        """``'Ngày sinh' (D)`` for a field the file has, else None (the field's column is missing)."""
        header = self.headers.get(column)
        return f"'{header}' ({self.letters[column]})" if header is not None else None

    def message(self, problem: RowProblem, lang: str) -> str:
        """The problem's message in ``lang`` (``vi`` or ``en``), led by the column it is about."""
        text = problem.message_vi if lang == "vi" else problem.message_en
        label = self.label(problem.column)
        if label is None:
            return text
        return f"Cột {label}: {text}" if lang == "vi" else f"Column {label}: {text}"

    def detail(self, problem: RowProblem) -> dict[str, Any]:
        """One problem in the API's shape: ``row``, ``field``, ``column``, ``code``, ``severity``, messages."""
        return {
            "row": problem.row, "field": problem.column or None, "column": self.label(problem.column),
            "code": problem.code, "severity": problem.severity, "message": self.message(problem, "en"),
            "message_vi": self.message(problem, "vi"),
        }


def _kind(problem: RowProblem) -> tuple[str, str, str]:
    return problem.code, problem.column, problem.severity


def problem_counts(problems: Iterable[RowProblem], labels: ColumnLabels) -> list[dict[str, Any]]:
    """Per kind of problem (code, column and severity): how many, the first rows, and the first one's message.

    Kinds come in the order their first problem appears, errors before warnings.
    """
    first: dict[tuple[str, str, str], RowProblem] = {}
    counts: dict[tuple[str, str, str], int] = {}
    rows: dict[tuple[str, str, str], list[int]] = {}
    for problem in problems:
        kind = _kind(problem)
        first.setdefault(kind, problem)
        counts[kind] = counts.get(kind, 0) + 1
        examples = rows.setdefault(kind, [])
        if len(examples) < EXAMPLES:
            examples.append(problem.row)
    ordered = sorted(first, key=lambda kind: (first[kind].severity != "error", first[kind].row))
    return [{**labels.detail(first[kind]), "row": None, "count": counts[kind], "rows": rows[kind]}
            for kind in ordered]


def capped_problems(problems: Sequence[RowProblem]) -> list[RowProblem]:
    """The first :data:`EXAMPLES` problems of each kind, in their order."""
    seen: dict[tuple[str, str, str], int] = {}
    kept: list[RowProblem] = []
    for problem in problems:
        kind = _kind(problem)
        seen[kind] = seen.get(kind, 0) + 1
        if seen[kind] <= EXAMPLES:
            kept.append(problem)
    return kept


def skipped_counts(skipped: Sequence[SkippedRow], blank_rows: int) -> list[dict[str, Any]]:
    """Per reason a row was skipped: how many, the first rows, and what the reason means."""
    rows: dict[str, list[int]] = {}
    counts: dict[str, int] = {}
    for row in skipped:
        counts[row.reason] = counts.get(row.reason, 0) + 1
        examples = rows.setdefault(row.reason, [])
        if len(examples) < EXAMPLES:
            examples.append(row.number)
    if blank_rows:
        counts["blank"], rows["blank"] = blank_rows, []
    return [{"reason": reason, "count": counts[reason], "rows": examples, "message": SKIP_REASONS[reason][0],
             "message_vi": SKIP_REASONS[reason][1]} for reason, examples in rows.items()]
