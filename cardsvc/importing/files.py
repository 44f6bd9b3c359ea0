"""Reading member list files (XLSX or CSV/TSV text) into raw rows keyed by canonical field names.

This module only finds the table, its encoding and its columns; :mod:`cardsvc.importing.rows` validates the
values. Row numbers are those the user sees in Excel (header row 1, first data row 2), so problems can be
found in the original file.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from openpyxl import load_workbook

from cardsvc.normalize import fold

__all__ = [
    "FIELD_ALIASES",
    "MAX_FILE_BYTES",
    "ImportFileError",
    "RawRow",
    "RawTable",
    "header_key",
    "parse_bool",
    "read_member_table",
]

MAX_FILE_BYTES = 20 * 1024 * 1024
# An XLSX is a zip: bound what it expands to, so a small zip bomb cannot exhaust memory.
MAX_XLSX_UNCOMPRESSED_BYTES = 400 * 1024 * 1024

_XLSX_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
# OLE2 compound file: old binary .xls, and also password-protected .xlsx.
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0"


class ImportFileError(ValueError):
    """A member list file that cannot be read; ``code`` is stable, the messages are for people."""

    def __init__(self, code: str, message_en: str, message_vi: str) -> None:
        super().__init__(message_en)
        self.code = code
        self.message_en = message_en
        self.message_vi = message_vi

    def __str__(self) -> str:
        return self.message_en


@dataclass(frozen=True)
class RawRow:
    """One data row: its number as the user sees it in the file, and its non-empty cells by field name."""

    number: int
    values: dict[str, object]


@dataclass(frozen=True)
class RawTable:
    """A member table read from a file, before any value is validated."""

    format: str
    encoding: str | None
    columns: dict[str, str]
    ignored_columns: list[str]
    rows: list[RawRow]


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
# Row counter columns ("Số thứ tự") carry nothing: they are dropped without being reported as ignored.
_COUNTER_ALIASES = ("STT", "TT", "No.", "Số thứ tự", "#")

_PARENTHESES = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def header_key(header: str) -> str:
    """Matching key of a column header: folded, without ``(…)`` hints, spaces or punctuation."""
    return _NON_ALNUM.sub("", fold(_PARENTHESES.sub(" ", header)))


_HEADER_FIELDS: dict[str, str] = {
    header_key(alias): field for field, aliases in FIELD_ALIASES.items() for alias in aliases
}
_COUNTER_KEYS = frozenset(header_key(alias) for alias in _COUNTER_ALIASES)


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# ---------------------------------------------------------------------------------------------------------
# Table assembly, shared by both formats


def _build_table(
    records: Iterable[tuple[int, Sequence[object]]], *, fmt: str, encoding: str | None, max_rows: int
) -> RawTable:
    iterator = iter(records)
    header: Sequence[object] | None = None
    for _, record in iterator:
        if not all(_is_blank(cell) for cell in record):
            header = record
            break
    if header is None:
        raise ImportFileError("empty_file", "The file contains no data.", "Tệp không có dữ liệu.")

    columns: dict[str, str] = {}
    positions: dict[int, str] = {}
    ignored: list[str] = []
    for position, cell in enumerate(header):
        if _is_blank(cell):
            continue
        text = " ".join(str(cell).split())
        key = header_key(text)
        field = _HEADER_FIELDS.get(key)
        if field is None:
            if key not in _COUNTER_KEYS:
                ignored.append(text)
            continue
        if field in columns:
            raise ImportFileError(
                "duplicate_column",
                f'The columns "{columns[field]}" and "{text}" hold the same information; keep only one.',
                f'Hai cột "{columns[field]}" và "{text}" chứa cùng một thông tin; chỉ giữ lại một cột.',
            )
        columns[field] = text
        positions[position] = field
    if not columns:
        raise ImportFileError(
            "no_header",
            'The first row must hold the column names (e.g. "Họ và tên", "Ngày sinh", "Số CCCD").',
            'Dòng đầu tiên phải là tên các cột (ví dụ "Họ và tên", "Ngày sinh", "Số CCCD").',
        )
    if "full_name" not in columns:
        raise ImportFileError(
            "missing_column",
            'The file has no name column; name it "Họ và tên".',
            'Tệp thiếu cột họ tên; hãy đặt tên cột là "Họ và tên".',
        )

    rows: list[RawRow] = []
    for number, record in iterator:
        values = {
            field: record[position]
            for position, field in positions.items()
            if position < len(record) and not _is_blank(record[position])
        }
        # Rows with nothing in a known column are skipped: templates often come with the STT column
        # pre-numbered far below the last member.
        if not values:
            continue
        if len(rows) == max_rows:
            raise ImportFileError(
                "too_many_rows",
                f"The file has more than {max_rows} members; split it into several files.",
                f"Tệp có hơn {max_rows} hội viên; hãy chia thành nhiều tệp.",
            )
        rows.append(RawRow(number=number, values=values))
    return RawTable(format=fmt, encoding=encoding, columns=columns, ignored_columns=ignored, rows=rows)


# ---------------------------------------------------------------------------------------------------------
# XLSX


def _bad_xlsx() -> ImportFileError:
    return ImportFileError(
        "bad_xlsx",
        "The Excel file is damaged or is not a real .xlsx file. Open it in Excel and save it again as .xlsx.",
        "Tệp Excel bị hỏng hoặc không phải tệp .xlsx. Hãy mở bằng Excel và lưu lại dưới dạng .xlsx.",
    )


def _xlsx_records(data: bytes) -> Iterator[tuple[int, Sequence[object]]]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise _bad_xlsx() from exc
    if expanded > MAX_XLSX_UNCOMPRESSED_BYTES:
        raise ImportFileError(
            "too_large",
            "The Excel file is too large; split it into several files.",
            "Tệp Excel quá lớn; hãy chia thành nhiều tệp.",
        )
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    # openpyxl reports malformed packages with many exception types (KeyError, ValueError, XML errors…);
    # all of them mean the same thing to the user.
    except Exception as exc:
        raise _bad_xlsx() from exc
    try:
        if not workbook.worksheets:
            raise ImportFileError("empty_file", "The file contains no data.", "Tệp không có dữ liệu.")
        sheet = workbook.worksheets[0]
        # Some programs write a wrong <dimension>; trusting it would silently cut columns or rows.
        sheet.reset_dimensions()
        try:
            # min_row=1 makes openpyxl yield empty tuples for missing rows, so positions are row numbers.
            yield from enumerate(sheet.iter_rows(min_row=1, values_only=True), start=1)
        except Exception as exc:
            raise _bad_xlsx() from exc
    finally:
        workbook.close()


# ---------------------------------------------------------------------------------------------------------
# Text (CSV / TSV)

# Bytes 0xA1–0xBF are symbols in Windows-1258 (¡ … ¿), which do not sit inside words; in TCVN3 (ABC) they are
# common letters (Ă Â Ê Ô Ơ Ư Đ ă â ê ô ơ ư đ à ả ã á ạ …), so "Hà Nội" decodes as "Hµ Néi".
_TCVN3_SIGNS = re.compile(r"(?<=[A-Za-z])[\xa1-\xbf]|[\xa1-\xbf](?=[A-Za-z])")
_TCVN3_MIN_SIGNS = 3


def _bad_encoding() -> ImportFileError:
    return ImportFileError(
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
            raise ImportFileError(
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


def _text_records(text: str, delimiter: str) -> Iterator[tuple[int, Sequence[object]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        # Records, not physical lines: a quoted cell with a line break is still one row in Excel.
        yield from enumerate(reader, start=1)
    except csv.Error as exc:
        raise ImportFileError(
            "bad_csv",
            "The CSV file is malformed (for example a quote that is never closed).",
            "Tệp CSV bị lỗi định dạng (ví dụ có dấu ngoặc kép không được đóng).",
        ) from exc


# ---------------------------------------------------------------------------------------------------------
# Entry point


def read_member_table(data: bytes, filename: str = "", *, max_rows: int = 200_000) -> RawTable:
    """Read a member list from the bytes of an XLSX, CSV or tab-separated text file.

    The format is detected from the content; ``filename`` only helps to recognise formats that cannot be read
    (.xls, .ods, .pdf saved as text-like files). Text may be UTF-8 (with or without BOM), UTF-16 or
    Windows-1258; legacy TCVN3 (ABC) text is refused with advice to convert it. The first non-empty row is the
    header; its columns are matched to canonical fields (see :data:`FIELD_ALIASES`) ignoring accents, case,
    spaces and punctuation. Raises :class:`ImportFileError`.
    """
    if len(data) > MAX_FILE_BYTES:
        raise ImportFileError(
            "too_large",
            f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; split it into several files.",
            f"Tệp lớn hơn {MAX_FILE_BYTES // (1024 * 1024)} MB; hãy chia thành nhiều tệp.",
        )
    if not data.strip():
        raise ImportFileError("empty_file", "The file is empty.", "Tệp trống.")
    if data.startswith(_OLE2_MAGIC):
        raise ImportFileError(
            "unsupported_format",
            "Old Excel files (.xls) and password-protected files cannot be read. "
            'In Excel use "Save As" and choose "Excel Workbook (.xlsx)" or "CSV UTF-8", without a password.',
            'Không đọc được tệp Excel cũ (.xls) hoặc tệp có mật khẩu. Trong Excel hãy chọn "Lưu thành" '
            '"Excel Workbook (.xlsx)" hoặc "CSV UTF-8", không đặt mật khẩu.',
        )
    if data.startswith(_XLSX_MAGIC) or data.startswith(_EMPTY_ZIP_MAGIC):
        return _build_table(_xlsx_records(data), fmt="xlsx", encoding=None, max_rows=max_rows)
    if data.startswith(b"%PDF") or filename.lower().endswith((".xls", ".ods", ".pdf", ".doc")):
        raise ImportFileError(
            "unsupported_format",
            "Only Excel (.xlsx) and CSV files can be imported.",
            "Chỉ nhập được tệp Excel (.xlsx) và tệp CSV.",
        )
    text, encoding = _decode(data)
    return _build_table(_text_records(text, _sniff_delimiter(text)), fmt="csv", encoding=encoding, max_rows=max_rows)


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
