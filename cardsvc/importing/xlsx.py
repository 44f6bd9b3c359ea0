"""Reading the first worksheet of an XLSX file, bounded by what the file really holds.

openpyxl's read-only reader yields one tuple per row *index*: a 1.6 kB file whose last row is
``<row r="1000000000">`` kept it busy for minutes. This reader streams the sheet's XML with expat and keeps the
rows and cells the XML contains, nothing in between; row and column numbers beyond Excel's own limits mean a
damaged file. Before any part is parsed, the zip's declared sizes and compression ratios are checked, and while
parts are inflated the bytes actually produced are counted against the same cap. XML with a document type
declaration (the vehicle of entity expansion attacks) is refused; workbooks never contain one.

Values come out as openpyxl gives them with ``data_only=True``: text, ``int`` or ``float`` numbers, ``bool``,
``datetime`` for numbers in a date format (1900 or 1904 calendar), the cached value of a formula. Merged cells
spanning several rows (a chapter code merged down over a group of members) give their value to every row of the
merge.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
import zlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from datetime import datetime
from typing import Any
from xml.parsers import expat

from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format
from openpyxl.utils.cell import range_boundaries
from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel

from cardsvc.importing.limits import MAX_COLUMNS, RATIO_EXEMPT_BYTES, ReadBudget, expands_too_much
from integrations.errors import InputError

__all__ = ["EXCEL_MAX_COLUMNS", "EXCEL_MAX_ROWS", "Record", "bad_xlsx", "read_xlsx"]

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384
# A workbook has a few dozen parts; a zip with thousands of entries is not one.
_MAX_PARTS = 10_000
# Cells that merged ranges may fill in, in all: one per member row and merged column is plenty.
_MAX_MERGE_FILL = 4_000_000
_CHUNK = 64 * 1024

Record = tuple[int, dict[int, object]]
"""A non-empty row: its number as Excel shows it, and its non-empty cells by 0-based column position."""


def bad_xlsx(detail_en: str = "", detail_vi: str = "") -> InputError:
    """The error for a file that is not a readable workbook."""
    return InputError(
        "bad_xlsx",
        f"The Excel file is damaged or is not a real .xlsx file{detail_en}. Open it in Excel and save it again "
        "as .xlsx.",
        f"Tệp Excel bị hỏng hoặc không phải tệp .xlsx{detail_vi}. Hãy mở bằng Excel và lưu lại dưới dạng .xlsx.",
    )


class _Refused(Exception):
    """Raised inside expat callbacks; turned into an :class:`InputError` by the caller."""

    def __init__(self, error: InputError) -> None:
        super().__init__(error.message_en)
        self.error = error


def _local(name: str) -> str:
    """An element or attribute name without its namespace prefix (``x:row`` → ``row``)."""
    return name.rpartition(":")[2]


class _LocalNames(dict[str, str]):
    """``_local`` of each name, computed once: callbacks run once per element of sheets with millions of them."""

    def __missing__(self, name: str) -> str:
        local = self[name] = _local(name)
        return local


def _refuse_dtd(*_args: object) -> None:
    raise _Refused(bad_xlsx(" (it declares an XML document type)", " (có khai báo kiểu tài liệu XML)"))


class _Package:
    """The zip of an XLSX, with every part's inflated bytes counted against the budget."""

    def __init__(self, data: bytes, budget: ReadBudget) -> None:
        self.budget = budget
        try:
            self.archive = zipfile.ZipFile(io.BytesIO(data))
            infos = self.archive.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
            raise bad_xlsx() from exc
        if len(infos) > _MAX_PARTS:
            raise bad_xlsx()
        if sum(info.file_size for info in infos) > budget.max_inflated_bytes:
            raise expands_too_much(budget.max_inflated_bytes)
        for info in infos:
            if info.file_size > RATIO_EXEMPT_BYTES and info.file_size > info.compress_size * budget.max_ratio:
                raise bad_xlsx(
                    f" (a part expands more than {budget.max_ratio} times, like a zip bomb)",
                    f" (có phần giải nén lớn gấp hơn {budget.max_ratio} lần, giống một \"bom zip\")",
                )
        self.names = {info.filename for info in infos}

    def parse(self, name: str, start: Callable[[str, dict[str, str]], None], end: Callable[[str], None] | None = None,
              text: Callable[[str], None] | None = None) -> None:
        """Stream part ``name`` through expat with the given handlers (element names without prefixes)."""
        names = _LocalNames()
        parser = expat.ParserCreate()
        parser.buffer_text = True
        parser.StartDoctypeDeclHandler = _refuse_dtd
        parser.EntityDeclHandler = _refuse_dtd
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartElementHandler = lambda tag, attrs: start(names[tag], attrs)
        if end is not None:
            parser.EndElementHandler = lambda tag: end(names[tag])
        if text is not None:
            parser.CharacterDataHandler = text
        try:
            info = self.archive.getinfo(name)
            # zipfile stops inflating at the size the zip declares and then fails the CRC check, so a forged
            # size cannot make a part produce more than was checked above.
            with self.archive.open(info) as stream:
                while chunk := stream.read(_CHUNK):
                    self.budget.inflate(len(chunk))
                    self.budget.check_time()
                    parser.Parse(chunk, False)
                parser.Parse(b"", True)
        except _Refused as exc:
            raise exc.error from None
        except (KeyError, zipfile.BadZipFile, zlib.error, EOFError, expat.ExpatError, NotImplementedError,
                RuntimeError) as exc:
            raise bad_xlsx() from exc


def _relationships(package: _Package, part: str) -> dict[str, tuple[str, str]]:
    """Relationship id → (type, resolved target path) of ``part`` (``""`` for the package itself)."""
    folder, base = posixpath.split(part)
    rels_name = posixpath.join(folder, "_rels", f"{base}.rels")
    found: dict[str, tuple[str, str]] = {}
    if rels_name not in package.names:
        return found

    def start(tag: str, attrs: dict[str, str]) -> None:
        if tag == "Relationship" and attrs.get("TargetMode") != "External":
            target = attrs.get("Target", "")
            path = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
            found[attrs.get("Id", "")] = (attrs.get("Type", ""), posixpath.normpath(path))

    package.parse(rels_name, start)
    return found


def _of_type(relationships: dict[str, tuple[str, str]], kind: str) -> str | None:
    return next((path for rel_type, path in relationships.values() if rel_type.endswith("/" + kind)), None)


def _shared_strings(package: _Package, name: str | None) -> list[str]:
    strings: list[str] = []
    if name is None or name not in package.names:
        return strings
    parts: list[str] = []
    state = {"in_text": False, "phonetic": 0}

    def start(tag: str, _attrs: dict[str, str]) -> None:
        if tag == "si":
            parts.clear()
        elif tag == "t":
            state["in_text"] = not state["phonetic"]
        elif tag == "rPh":  # Phonetic guides (East Asian) are not part of the cell's text.
            state["phonetic"] += 1

    def end(tag: str) -> None:
        if tag == "si":
            strings.append("".join(parts))
        elif tag == "t":
            state["in_text"] = False
        elif tag == "rPh":
            state["phonetic"] -= 1

    def text(data: str) -> None:
        if state["in_text"]:
            parts.append(data)

    package.parse(name, start, end, text)
    return strings


def _date_styles(package: _Package, name: str | None) -> frozenset[int]:
    """Indexes of the cell formats (``s="…"``) whose number format shows a date or time."""
    if name is None or name not in package.names:
        return frozenset()
    custom: dict[int, str] = {}
    formats: list[int] = []
    depth = {"cellXfs": 0}

    def start(tag: str, attrs: dict[str, str]) -> None:
        if tag == "numFmt":
            custom[_int(attrs.get("numFmtId"))] = attrs.get("formatCode", "")
        elif tag == "cellXfs":
            depth["cellXfs"] += 1
        elif tag == "xf" and depth["cellXfs"]:
            formats.append(_int(attrs.get("numFmtId")))

    def end(tag: str) -> None:
        if tag == "cellXfs":
            depth["cellXfs"] -= 1

    package.parse(name, start, end)
    return frozenset(index for index, format_id in enumerate(formats)
                     if is_date_format(custom.get(format_id) or BUILTIN_FORMATS.get(format_id)))


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError as exc:
        raise _Refused(bad_xlsx()) from exc


def _column_of(reference: str) -> int:
    """0-based column of a cell reference such as ``AB12``."""
    column = 0
    for char in reference:
        if "A" <= char <= "Z":
            column = column * 26 + ord(char) - 64
        elif "a" <= char <= "z":
            column = column * 26 + ord(char) - 96
        else:
            break
    if not 1 <= column <= EXCEL_MAX_COLUMNS:
        raise _Refused(bad_xlsx())
    return column - 1


class _SheetReader:
    """Expat handlers that collect a worksheet's non-empty rows and its merged ranges."""

    def __init__(self, strings: list[str], date_styles: frozenset[int], epoch: datetime, budget: ReadBudget
                 ) -> None:
        self.strings = strings
        self.date_styles = date_styles
        self.epoch = epoch
        self.budget = budget
        self.records: list[Record] = []
        self.merges: list[str] = []
        self._row = 0
        self._cells: dict[int, object] = {}
        self._column = -1
        self._type = "n"
        self._style = 0
        self._text: list[str] | None = None
        self._value: str | None = None
        self._inline: list[str] | None = None
        self._phonetic = 0

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        if tag == "c":
            reference = attrs.get("r")
            self._column = _column_of(reference) if reference else self._column + 1
            self._type = attrs.get("t", "n")
            style = attrs.get("s")
            self._style = _int(style) if style else 0
            self._value = None
            self._inline = None
        elif tag == "v":
            self._text = []
        elif tag == "row":
            self._start_row(attrs.get("r"))
        elif tag == "is":
            self._inline = []
        elif tag == "t" and self._inline is not None and not self._phonetic:
            self._text = []
        elif tag == "rPh":
            self._phonetic += 1
        elif tag == "mergeCell":
            self.merges.append(attrs.get("ref", ""))

    def _start_row(self, number: str | None) -> None:
        row = _int(number) if number else self._row + 1
        # Excel writes rows in ascending order and never beyond its last row: anything else is not a workbook
        # Excel can open, and a row number is no measure of work here.
        if row <= self._row or row > EXCEL_MAX_ROWS:
            raise _Refused(bad_xlsx(
                f" (row number {row} is out of order or beyond Excel's last row {EXCEL_MAX_ROWS:,})",
                f" (số dòng {row} sai thứ tự hoặc vượt quá dòng cuối của Excel là {EXCEL_MAX_ROWS:,})",
            ))
        self.budget.rows_visited += 1
        self._row = row
        self._cells = {}
        self._column = -1

    def end(self, tag: str) -> None:
        if tag == "v" and self._text is not None:
            self._value = "".join(self._text)
            self._text = None
        elif tag == "t" and self._inline is not None and self._text is not None:
            self._inline.append("".join(self._text))
            self._text = None
        elif tag == "c":
            value = self._cell_value()
            if self._column < MAX_COLUMNS and value is not None and not (isinstance(value, str) and not value.strip()):
                self._cells[self._column] = value
        elif tag == "row":
            if self._cells:
                self.records.append((self._row, self._cells))
        elif tag == "rPh":
            self._phonetic -= 1

    def text(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def _cell_value(self) -> object:
        kind, raw = self._type, self._value
        if kind == "inlineStr":
            return "".join(self._inline) if self._inline is not None else None
        if raw is None:
            return None
        if kind == "s":
            index = _int(raw)
            if not 0 <= index < len(self.strings):
                raise _Refused(bad_xlsx())
            return self.strings[index]
        if kind in ("str", "e"):
            return raw
        if kind == "b":
            return raw.strip() in ("1", "true")
        if kind == "d":
            try:
                return datetime.fromisoformat(raw)
            except ValueError:
                return raw
        return self._number(raw)

    def _number(self, raw: str) -> object:
        try:
            number: int | float = float(raw) if any(c in raw for c in ".eE") else int(raw)
        except ValueError:
            return raw
        if self._style in self.date_styles:
            try:
                return from_excel(number, self.epoch)
            except (OverflowError, ValueError):
                return number  # Not a date after all; the row validator says what is wrong with it.
        return number


def _fill_merges(records: list[Record], merges: list[str], budget: ReadBudget) -> None:
    """Give the value of each merged range that spans several rows to every cell of the range.

    Only rows the sheet holds are filled (a row without any cell has no member on it), so the work is bounded by
    the rows read, not by the size the ranges claim.
    """
    numbers = [number for number, _ in records]
    cells_of = dict(records)
    filled = 0
    for reference in merges:
        try:
            min_col, min_row, max_col, max_row = range_boundaries(reference)
        except (ValueError, TypeError) as exc:
            raise bad_xlsx() from exc
        if min_row is None or max_row is None or min_col is None or max_col is None or max_row <= min_row:
            continue  # A merge within one row joins a title or a wide cell; it says nothing about other rows.
        value = cells_of.get(min_row, {}).get(min_col - 1)
        if value is None:
            continue
        for number in numbers[bisect_left(numbers, min_row):bisect_right(numbers, max_row)]:
            cells = cells_of[number]
            for column in range(min_col - 1, min(max_col, MAX_COLUMNS)):
                if column not in cells:
                    cells[column] = value
                    filled += 1
            if filled > _MAX_MERGE_FILL:
                raise bad_xlsx(" (too many merged cells)", " (quá nhiều ô gộp)")
        budget.check_time()


def read_xlsx(data: bytes, budget: ReadBudget) -> list[Record]:
    """The non-empty rows of the first worksheet of an XLSX file, in order, merged ranges filled in.

    Raises :class:`InputError` (``bad_xlsx``, ``too_large``, ``empty_file``).
    """
    package = _Package(data, budget)
    root = _relationships(package, "")
    workbook = _of_type(root, "officeDocument") or "xl/workbook.xml"
    if workbook not in package.names:
        raise bad_xlsx()
    sheet_ids: list[str] = []
    calendar: dict[str, Any] = {"epoch": CALENDAR_WINDOWS_1900}

    def workbook_start(tag: str, attrs: dict[str, str]) -> None:
        if tag == "sheet":
            sheet_ids.extend(value for key, value in attrs.items() if _local(key) == "id")
        elif tag == "workbookPr" and attrs.get("date1904", "").lower() in ("1", "true"):
            calendar["epoch"] = CALENDAR_MAC_1904

    package.parse(workbook, workbook_start)
    if not sheet_ids:
        raise InputError("empty_file", "The file contains no data.", "Tệp không có dữ liệu.")
    related = _relationships(package, workbook)
    if sheet_ids[0] not in related:
        raise bad_xlsx()
    reader = _SheetReader(_shared_strings(package, _of_type(related, "sharedStrings")),
                          _date_styles(package, _of_type(related, "styles")), calendar["epoch"], budget)
    package.parse(related[sheet_ids[0]][1], reader.start, reader.end, reader.text)
    _fill_merges(reader.records, reader.merges, budget)
    return reader.records
