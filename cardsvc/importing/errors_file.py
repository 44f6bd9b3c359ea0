"""The member file given back with an error column, so the officer corrects it in Excel and uploads it again.

Every non-empty row of the original comes back at its own row number (title, header and signature included,
merged cells filled in), with the problems of each member row in an added column headed
:data:`~cardsvc.importing.files.ERRORS_HEADER`, which a new upload ignores. Cell formatting is not kept.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Literal

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font, PatternFill
from openpyxl.utils.cell import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from cardsvc.importing.files import ERRORS_HEADER, RawTable
from cardsvc.importing.report import ColumnLabels
from cardsvc.importing.rows import RowProblem

__all__ = ["MEDIA_TYPES", "ErrorsFormat", "errors_file", "errors_file_name"]

ErrorsFormat = Literal["xlsx", "csv"]
MEDIA_TYPES: dict[str, str] = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}
_ERROR_FILL = PatternFill("solid", fgColor="FFC7CE")
_WARNING_FILL = PatternFill("solid", fgColor="FFEB9C")
# Text that a spreadsheet would run as a formula when it opens the file.
_FORMULA_START = ("=", "@")


def _row_messages(problems: Sequence[RowProblem], labels: ColumnLabels, lang: str) -> dict[int, tuple[str, bool]]:
    """Per row: its problems as one text (errors first), and whether any of them is an error."""
    by_row: dict[int, list[RowProblem]] = defaultdict(list)
    for problem in problems:
        by_row[problem.row].append(problem)
    note = "Lưu ý" if lang == "vi" else "Note"
    texts: dict[int, tuple[str, bool]] = {}
    for row, found in by_row.items():
        errors = [labels.message(p, lang) for p in found if p.severity == "error"]
        notes = [f"{note}: {labels.message(p, lang)}" for p in found if p.severity != "error"]
        texts[row] = ("\n".join(errors + notes), bool(errors))
    return texts


def _error_column(table: RawTable) -> int:
    """0-based position of the added column: right of every cell of the header and the member rows."""
    members = {row.number for row in table.rows} | {table.header_row}
    return 1 + max(max(cells) for number, cells in table.records if number in members)


def _width(cells: dict[int, object], number: int, messages: dict[int, tuple[str, bool]], table: RawTable,
           position: int) -> int:
    """Cells to write for a row: up to the error column where there is something to put in it."""
    return position if number in messages or number == table.header_row else max(cells) + 1


def errors_file(table: RawTable, problems: Sequence[RowProblem], labels: ColumnLabels, *, fmt: ErrorsFormat,
                lang: str = "vi") -> bytes:
    """The rows of ``table``'s file with the messages of ``problems`` beside their rows, as XLSX or CSV (UTF-8
    with a BOM, as Excel's "CSV UTF-8")."""
    messages = _row_messages(problems, labels, lang)
    position = _error_column(table)
    if fmt == "csv":
        return _csv(table, messages, position)
    return _xlsx(table, messages, position)


def errors_file_name(filename: str, fmt: ErrorsFormat) -> str:
    """Download name of the file given back: the original's name with ``-loi`` ("errors") added."""
    stem = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].rsplit(".", 1)[0]
    safe = "".join(char if char.isalnum() or char in "-_ " else "_" for char in stem)[:80] or "danh-sach"
    return f"{safe}-loi.{fmt}"


def _xlsx(table: RawTable, messages: dict[int, tuple[str, bool]], position: int) -> bytes:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Danh sách")
    assert isinstance(sheet, WriteOnlyWorksheet)
    sheet.column_dimensions[get_column_letter(position + 1)].width = 60
    written = 0
    for number, cells in table.records:
        for _ in range(number - written - 1):
            sheet.append([])
        width = _width(cells, number, messages, table, position)
        row: list[object] = [_xlsx_cell(sheet, cells.get(column)) for column in range(width)]
        if number == table.header_row:
            row.append(WriteOnlyCell(sheet, value=ERRORS_HEADER))
            row[-1].font = Font(bold=True)  # type: ignore[attr-defined]
        elif number in messages:
            text, is_error = messages[number]
            cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", text))
            cell.fill = _ERROR_FILL if is_error else _WARNING_FILL
            row.append(cell)
        sheet.append(row)
        written = number
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _xlsx_cell(sheet: WriteOnlyWorksheet, value: object) -> object:
    if not isinstance(value, str):
        return value
    cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value))
    # openpyxl writes text starting with "=" as a formula; the file held it as text.
    cell.data_type = "s"
    return cell


def _csv_text(value: object) -> str:
    if isinstance(value, datetime) and value.time() == time(0):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, date | datetime):
        return value.strftime("%d/%m/%Y %H:%M" if isinstance(value, datetime) else "%d/%m/%Y")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value) if value is not None else ""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv(table: RawTable, messages: dict[int, tuple[str, bool]], position: int) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    written = 0
    for number, cells in table.records:
        writer.writerows([] for _ in range(number - written - 1))
        row = [_csv_text(cells.get(column)) for column in range(_width(cells, number, messages, table, position))]
        if number == table.header_row:
            row.append(ERRORS_HEADER)
        elif number in messages:
            row.append(messages[number][0])
        writer.writerow(row)
        written = number
    return buffer.getvalue().encode("utf-8-sig")
