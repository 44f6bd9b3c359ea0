"""Reading member list files (XLSX or CSV/TSV text) into raw rows keyed by canonical field names.

This module only finds the table, its encoding and its columns; :mod:`cardsvc.importing.rows` validates the
values. Row numbers are those the user sees in Excel, so problems can be found in the original file.

Real lists carry more than a table: a title and a date line above the header, a total and a signature block
below the members. The header is the first of the first rows that names a name column; rows above it, a row of
column numbers right below it, total rows and the signature block are skipped and reported (:class:`SkippedRow`).
A row that names a person together with a date of birth, an ID number or a member number is always a member row,
wherever it stands.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass

from openpyxl.utils.cell import get_column_letter

from cardsvc.importing.limits import MAX_COLUMNS, ReadBudget, too_large
from cardsvc.importing.xlsx import Record, read_xlsx
from cardsvc.normalize import fold
from integrations.errors import InputError

__all__ = [
    "ERRORS_HEADER",
    "FIELD_ALIASES",
    "HEADER_SEARCH_ROWS",
    "MAX_FILE_BYTES",
    "RawRow",
    "RawTable",
    "ReadBudget",
    "SkippedRow",
    "header_key",
    "parse_bool",
    "read_member_table",
]

MAX_FILE_BYTES = 20 * 1024 * 1024
# The header must be among the first non-empty rows: titles take a few, never dozens.
HEADER_SEARCH_ROWS = 30
# The column that the file given back with its errors adds; a file uploaded again with it reads as before.
ERRORS_HEADER = "Lỗi / Errors"

_XLSX_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
# OLE2 compound file: old binary .xls, and also password-protected .xlsx.
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0"


@dataclass(frozen=True)
class RawRow:
    """One data row: its number as the user sees it in the file, and its non-empty cells by field name."""

    number: int
    values: dict[str, object]


@dataclass(frozen=True)
class SkippedRow:
    """A non-empty row that holds no member: ``reason`` is ``title``, ``column_numbers``, ``no_member_data``,
    ``total`` or ``signature``."""

    number: int
    reason: str


@dataclass(frozen=True)
class RawTable:
    """A member table read from a file, before any value is validated.

    ``columns`` maps each field to the header text the file gives it and ``letters`` to its column letter (a
    combined "Số CCCD/CMND" column serves both ID fields). ``records`` holds every non-empty row of the file as
    read, title and signature included, by 0-based column, so that the file can be given back with its errors.
    """

    format: str
    encoding: str | None
    columns: dict[str, str]
    letters: dict[str, str]
    ignored_columns: list[str]
    rows: list[RawRow]
    header_row: int
    skipped: list[SkippedRow]
    blank_rows: int
    records: list[Record]


# Header texts per canonical field; matching ignores accents, case, spaces, punctuation and "(…)" hints.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "member_number": (
        "Mã hội viên", "Mã HV", "Số thẻ hội viên", "Số thẻ", "member number", "member_number", "member no",
    ),
    "full_name": (
        "Họ và tên", "Họ tên", "Tên hội viên", "Họ và tên hội viên", "Họ tên hội viên", "full name",
        "full_name", "name",
    ),
    "birth_date": (
        "Ngày sinh", "Ngày tháng năm sinh", "Năm sinh", "date of birth", "birth_date", "birth date", "dob",
    ),
    "gender": ("Giới tính", "gender", "sex"),
    "id_number": (
        "Số CCCD", "CCCD", "Số định danh", "Số định danh cá nhân", "Số căn cước", "Số căn cước công dân",
        "citizen id", "id_number", "id number",
    ),
    "old_id_number": ("Số CMND", "CMND", "old id number", "old_id_number"),
    "phone": ("Số điện thoại", "Điện thoại", "SĐT", "SDT", "phone", "mobile", "phone number"),
    "join_date": ("Ngày vào hội", "Ngày kết nạp", "join date", "join_date"),
    "chapter_code": ("Mã chi hội", "Mã đơn vị", "chapter", "chapter_code", "chapter code"),
    "honorary": ("Hội viên danh dự", "Danh dự", "honorary"),
}  # fmt: skip
# One column for either number, as officers keep it: each cell goes to the field its number of digits says.
_EITHER_ID_ALIASES = (
    "Số CCCD/CMND", "CCCD/CMND", "Số CMND/CCCD", "CMND/CCCD", "Số định danh/CMND", "Số CMND/Số định danh",
    "Số CCCD/CMND/Số định danh", "Số căn cước/CMND", "ID/old ID number",
)  # fmt: skip
_EITHER_ID = "id_number|old_id_number"
# Row counter columns ("Số thứ tự") carry nothing, nor does the errors column of a file given back: they are
# dropped without being reported as ignored.
_SILENT_ALIASES = ("STT", "TT", "No.", "Số thứ tự", "#", ERRORS_HEADER)

_PARENTHESES = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def header_key(header: str) -> str:
    """Matching key of a column header: folded, without ``(…)`` hints, spaces or punctuation."""
    return _NON_ALNUM.sub("", fold(_PARENTHESES.sub(" ", header)))


_HEADER_FIELDS: dict[str, str] = {
    header_key(alias): field for field, aliases in FIELD_ALIASES.items() for alias in aliases
} | {header_key(alias): _EITHER_ID for alias in _EITHER_ID_ALIASES}
_SILENT_KEYS = frozenset(header_key(alias) for alias in _SILENT_ALIASES)

# Rows below the members, matched on folded text: "Tổng cộng", "Tổng số hội viên: 45", "Cộng: 45" (but not the
# family name "Công Tằng Tôn Nữ"), then dates and signatures: "Ba Đình, ngày 12 tháng 3 năm 2025",
# "Người lập biểu", "(Ký, ghi rõ họ tên)", "TM. Ban chấp hành", "Chi hội trưởng", "Nơi nhận:".
_TOTAL = re.compile(r"^(?:tong so|tong cong)\b|^(?:tong|cong|total|sum)(?:\s*[:.=-]|\s*\d|$)")
_SIGNATURE = re.compile(
    r"\bngay\b.*\bthang\b.*\bnam\b|^\(?\s*(?:ky|da ky)\b|^nguoi (?:lap|ky|duyet)|^xac nhan|^t/?m\b|"
    r"^thay mat|^(?:pho )?chu tich|^chi hoi truong|^to truong|^truong ban|^thu ky|^noi nhan|^ghi chu\s*:"
)
_COLUMN_NUMBER = re.compile(r"^\(?\d{1,2}\)?$")
# A member row names a person and gives at least one of these, with a digit in it.
_IDENTIFYING = ("birth_date", "id_number", "old_id_number", "member_number")


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _either_id_field(value: object) -> str:
    """The field of a cell from a combined "Số CCCD/CMND" column: old 9-digit numbers (8 once a spreadsheet
    dropped the leading zero) are CMND, longer ones citizen ID numbers, scientific notation too."""
    text = str(value).strip()
    if re.search(r"[eE][+-]?\d+$", text):
        return "id_number"
    return "old_id_number" if sum(char.isdigit() for char in text) <= 9 else "id_number"


@dataclass(frozen=True)
class _Header:
    row: int
    columns: dict[str, str]
    positions: dict[int, str]
    ignored: list[str]

    @classmethod
    def of(cls, number: int, cells: dict[int, object]) -> _Header:
        columns: dict[str, str] = {}
        positions: dict[int, str] = {}
        ignored: list[str] = []
        for position in sorted(cells):
            text = " ".join(str(cells[position]).split())
            key = header_key(text)
            field = _HEADER_FIELDS.get(key)
            if field is None:
                if key not in _SILENT_KEYS:
                    ignored.append(text)
                continue
            for name in field.split("|"):
                if name in columns:
                    raise InputError(
                        "duplicate_column",
                        f'The columns "{columns[name]}" and "{text}" hold the same information; keep only one.',
                        f'Hai cột "{columns[name]}" và "{text}" chứa cùng một thông tin; chỉ giữ lại một cột.',
                    )
                columns[name] = text
            positions[position] = field
        return cls(number, columns, positions, ignored)

    def letters(self) -> dict[str, str]:
        return {name: get_column_letter(position + 1)
                for position, field in self.positions.items() for name in field.split("|")}

    def values(self, cells: dict[int, object]) -> dict[str, object]:
        values: dict[str, object] = {}
        for position, field in self.positions.items():
            value = cells.get(position)
            if value is not None:
                values[_either_id_field(value) if field == _EITHER_ID else field] = value
        return values


def _find_header(records: list[Record]) -> tuple[int, _Header]:
    """Index in ``records`` and mapping of the header: the first of the first rows that has a name column."""
    best: tuple[int, _Header] | None = None
    for index, (number, cells) in enumerate(records[:HEADER_SEARCH_ROWS]):
        keys = {header_key(" ".join(str(value).split())) for value in cells.values()}
        if not any(key in _HEADER_FIELDS for key in keys):
            continue
        header = _Header.of(number, cells)
        if "full_name" in header.columns:
            return index, header
        if best is None or len(header.columns) > len(best[1].columns):
            best = index, header
    if best is None:
        raise InputError(
            "no_header",
            f"None of the first {HEADER_SEARCH_ROWS} rows holds the column names "
            '(e.g. "Họ và tên", "Ngày sinh", "Số CCCD").',
            f"Không thấy dòng tên cột trong {HEADER_SEARCH_ROWS} dòng đầu "
            '(ví dụ "Họ và tên", "Ngày sinh", "Số CCCD").',
        )
    raise InputError(
        "missing_column",
        'The file has no name column; name it "Họ và tên".',
        'Tệp thiếu cột họ tên; hãy đặt tên cột là "Họ và tên".',
    )


def _identifies_member(values: dict[str, object]) -> bool:
    if _is_blank(values.get("full_name")):
        return False
    return any(not isinstance(value, str) or any(char.isdigit() for char in value)
               for value in (values.get(field) for field in _IDENTIFYING) if value is not None)


def _footer_reason(cells: dict[int, object], name: object) -> str | None:
    """``total`` or ``signature`` for a row of the block below the members, else None.

    A row whose name cell holds an ordinary name is not one, whatever its other cells say (a member may be the
    "Chi hội trưởng").
    """
    texts = [fold(value) for value in cells.values() if isinstance(value, str)]
    if name is not None and not _is_blank(name):
        texts = [fold(str(name))]
    for text in texts:
        if _TOTAL.search(text):
            return "total"
        if _SIGNATURE.search(text):
            return "signature"
    return None


def _build_table(records: list[Record], *, fmt: str, encoding: str | None, max_rows: int) -> RawTable:
    if not records:
        raise InputError("empty_file", "The file contains no data.", "Tệp không có dữ liệu.")
    start, header = _find_header(records)
    skipped = [SkippedRow(number, "title") for number, _ in records[:start]]
    rows: list[RawRow] = []
    in_footer = False
    # Records from the header to the last member row: the row numbers in that span that no record has are blank.
    span = 1
    for index, (number, cells) in enumerate(records[start + 1:]):
        values = header.values(cells)
        reason = None
        if index == 0 and all(_COLUMN_NUMBER.match(str(value).strip()) for value in cells.values()):
            reason = "column_numbers"  # "(1) (2) (3)…" under the header of official forms.
        elif not _identifies_member(values):
            reason = _footer_reason(cells, values.get("full_name"))
            in_footer = in_footer or reason is not None
            if reason is None and in_footer:
                reason = "signature"  # The signers' names below the titles.
            elif reason is None and not values:
                reason = "no_member_data"  # Only a row counter, or only columns that are not used.
        if reason is not None:
            skipped.append(SkippedRow(number, reason))
            continue
        if len(rows) == max_rows:
            raise InputError(
                "too_many_rows",
                f"The file has more than {max_rows} members; split it into several files.",
                f"Tệp có hơn {max_rows} hội viên; hãy chia thành nhiều tệp.",
            )
        rows.append(RawRow(number=number, values=values))
        span = index + 2
    blank_rows = (rows[-1].number - header.row + 1 - span) if rows else 0
    return RawTable(format=fmt, encoding=encoding, columns=header.columns, letters=header.letters(),
                    ignored_columns=header.ignored, rows=rows, header_row=header.row, skipped=skipped,
                    blank_rows=blank_rows, records=records)


# ---------------------------------------------------------------------------------------------------------
# Text (CSV / TSV)

# Bytes 0xA1–0xBF are symbols in Windows-1258 (¡ … ¿), which do not sit inside words; in TCVN3 (ABC) they are
# common letters (Ă Â Ê Ô Ơ Ư Đ ă â ê ô ơ ư đ à ả ã á ạ …), so "Hà Nội" decodes as "Hµ Néi".
_TCVN3_SIGNS = re.compile(r"(?<=[A-Za-z])[\xa1-\xbf]|[\xa1-\xbf](?=[A-Za-z])")
_TCVN3_MIN_SIGNS = 3


def _bad_encoding() -> InputError:
    return InputError(
        "bad_encoding",
        'The text encoding of the file is not recognised. In Excel use "Save As" → "CSV UTF-8".',
        'Không nhận dạng được bảng mã của tệp. Trong Excel hãy chọn "Lưu thành" → "CSV UTF-8".',
    )


def _utf16_without_bom(data: bytes) -> str | None:
    sample = data[:4096]
    pairs = len(sample) // 2
    if pairs == 0:
        return None
    zeros_odd = sample[1::2].count(0)
    zeros_even = sample[0::2].count(0)
    # ASCII-heavy UTF-16 has a NUL in almost every other byte; other encodings have (nearly) none.
    if zeros_odd > pairs * 0.3 and zeros_even == 0:
        return "utf-16-le"
    if zeros_even > pairs * 0.3 and zeros_odd == 0:
        return "utf-16-be"
    return None


def _is_damaged_utf8(body: bytes) -> bool:
    """True for UTF-8 text with a few broken bytes, which must not be read as Windows-1258 mojibake.

    Windows-1258 Vietnamese text almost never forms valid UTF-8 multi-byte sequences: its continuation-range
    bytes (0x80–0xBF) are symbols, not letters.
    """
    text = body.decode("utf-8", errors="replace")
    broken = text.count("\ufffd")
    valid = sum(1 for char in text if char > "\x7f" and char != "\ufffd")
    return valid > broken


def _decode(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        encoding, body = "utf-8-sig", data[3:]
    elif data.startswith(b"\xff\xfe"):
        encoding, body = "utf-16-le", data[2:]
    elif data.startswith(b"\xfe\xff"):
        encoding, body = "utf-16-be", data[2:]
    else:
        encoding, body = _utf16_without_bom(data) or "utf-8", data
    try:
        text = body.decode(encoding.removesuffix("-sig"))
    except UnicodeDecodeError as exc:
        if encoding != "utf-8" or _is_damaged_utf8(body):
            raise _bad_encoding() from exc
        try:
            text = body.decode("cp1258")
        except UnicodeDecodeError as exc2:
            raise _bad_encoding() from exc2
        encoding = "cp1258"
        if len(_TCVN3_SIGNS.findall(text)) >= _TCVN3_MIN_SIGNS:
            raise InputError(
                "bad_encoding",
                "The file uses the old TCVN3 (ABC) encoding. Convert it to Unicode with Unikey "
                '(Công cụ chuyển mã), then save it as "CSV UTF-8".',
                "Tệp dùng bảng mã cũ TCVN3 (ABC). Hãy chuyển sang Unicode bằng Unikey (Công cụ chuyển mã) "
                'rồi lưu dưới dạng "CSV UTF-8".',
            ) from exc
    if "\x00" in text:
        raise _bad_encoding()
    # Windows-1258 writes tones as combining marks and macOS writes NFD: store composed letters.
    return unicodedata.normalize("NFC", text), encoding


def _sniff_delimiter(text: str) -> str:
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    counts = {delimiter: first_line.count(delimiter) for delimiter in ("\t", ";", ",")}
    best = max(counts, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def _text_records(text: str, delimiter: str, budget: ReadBudget) -> list[Record]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[Record] = []
    try:
        # Records, not physical lines: a quoted cell with a line break is still one row in Excel.
        for number, record in enumerate(reader, start=1):
            if number % 1000 == 0:
                budget.check_time()
            cells: dict[int, object] = {position: cell for position, cell in enumerate(record[:MAX_COLUMNS])
                                        if cell.strip()}
            if cells:
                records.append((number, cells))
            budget.rows_visited = number
    except csv.Error as exc:
        raise InputError(
            "bad_csv",
            "The CSV file is malformed (for example a quote that is never closed).",
            "Tệp CSV bị lỗi định dạng (ví dụ có dấu ngoặc kép không được đóng).",
        ) from exc
    return records


# ---------------------------------------------------------------------------------------------------------
# Entry point


def read_member_table(
    data: bytes, filename: str = "", *, max_rows: int = 200_000, budget: ReadBudget | None = None
) -> RawTable:
    """Read a member list from the bytes of an XLSX, CSV or tab-separated text file.

    The format is detected from the content; ``filename`` only helps to recognise formats that cannot be read
    (.xls, .ods, .pdf saved as text-like files). Text may be UTF-8 (with or without BOM), UTF-16 or
    Windows-1258; legacy TCVN3 (ABC) text is refused with advice to convert it. The header is the first of the
    first :data:`HEADER_SEARCH_ROWS` non-empty rows that has a name column; its columns are matched to canonical
    fields (see :data:`FIELD_ALIASES`) ignoring accents, case, spaces and punctuation. The work is bounded by
    ``budget`` (default: the limits of :mod:`cardsvc.importing.limits`), whose counters say what it took.
    Raises :class:`InputError`.
    """
    budget = budget or ReadBudget()
    budget.start()
    if len(data) > MAX_FILE_BYTES:
        raise too_large(
            f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; split it into several files.",
            f"Tệp lớn hơn {MAX_FILE_BYTES // (1024 * 1024)} MB; hãy chia thành nhiều tệp.",
        )
    if not data.strip():
        raise InputError("empty_file", "The file is empty.", "Tệp trống.")
    if data.startswith(_OLE2_MAGIC):
        raise InputError(
            "unsupported_format",
            "Old Excel files (.xls) and password-protected files cannot be read. "
            'In Excel use "Save As" and choose "Excel Workbook (.xlsx)" or "CSV UTF-8", without a password.',
            'Không đọc được tệp Excel cũ (.xls) hoặc tệp có mật khẩu. Trong Excel hãy chọn "Lưu thành" '
            '"Excel Workbook (.xlsx)" hoặc "CSV UTF-8", không đặt mật khẩu.',
        )
    if data.startswith(_XLSX_MAGIC) or data.startswith(_EMPTY_ZIP_MAGIC):
        return _build_table(read_xlsx(data, budget), fmt="xlsx", encoding=None, max_rows=max_rows)
    if data.startswith(b"%PDF") or filename.lower().endswith((".xls", ".ods", ".pdf", ".doc")):
        raise InputError(
            "unsupported_format",
            "Only Excel (.xlsx) and CSV files can be imported.",
            "Chỉ nhập được tệp Excel (.xlsx) và tệp CSV.",
        )
    text, encoding = _decode(data)
    records = _text_records(text, _sniff_delimiter(text), budget)
    return _build_table(records, fmt="csv", encoding=encoding, max_rows=max_rows)


# ---------------------------------------------------------------------------------------------------------
# Cell helpers

_TRUE = frozenset({"x", "co", "yes", "true", "1", "y"})
_FALSE = frozenset({"", "khong", "no", "false", "0", "n"})


def parse_bool(value: object) -> bool:
    """Read a yes/no cell (e.g. the honorary column): x/có/yes/true/1 or empty/không/no/false/0.

    Raises ``ValueError`` for anything else.
    """
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        key = fold(value)
        if key in _TRUE:
            return True
        if key in _FALSE:
            return False
    raise ValueError("not a yes/no value")
