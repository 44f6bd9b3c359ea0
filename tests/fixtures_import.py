"""Builders for member-list files used by the import tests: rows of realistic people, CSV in every encoding
Vietnamese offices produce, and XLSX workbooks."""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from openpyxl import Workbook

HEADER_VI = ("Họ và tên", "Ngày sinh", "Giới tính", "Số CCCD", "Số điện thoại", "Mã chi hội")
HEADER_EN = ("full name", "date of birth", "gender", "citizen id", "phone", "chapter code")

_TONE_MARKS = frozenset("\u0300\u0301\u0303\u0309\u0323")


@dataclass(frozen=True)
class Person:
    """One person of a test file, with the values a chapter's spreadsheet would hold."""

    full_name: str
    birth: date
    id_number: str
    phone: str
    chapter_code: str = ""

    def cells(self) -> list[str]:
        """The person as text cells in the order of :data:`HEADER_VI` (dates as dd/mm/yyyy)."""
        return [self.full_name, self.birth.strftime("%d/%m/%Y"), "Nữ", self.id_number, self.phone,
                self.chapter_code]


_serial = iter(range(200_000, 999_999))


def citizen_id(birth: date, *, province: str = "001", female: bool = True) -> str:
    """A structurally valid citizen ID number (DOMAIN.md §2) that no other test uses."""
    century = (birth.year // 100 - 19) * 2 + (1 if female else 0)
    return f"{province}{century}{birth.year % 100:02d}{next(_serial):06d}"


_NAMES = ("Nguyễn Thị Phương Thảo", "Trần Thị Lan", "Lê Thị Hồng Nhung", "Phạm Thị Mai", "Đặng Thị Huệ",
          "Võ Thị Ngọc Ánh", "Bùi Thị Thu Hà", "Hoàng Thị Yến")
_phone_serial = iter(range(1_000_000, 9_999_999))


def people(count: int, *, chapter_code: str = "", province: str = "001") -> list[Person]:
    """``count`` distinct valid people; ID numbers of province ``province`` (079 keeps a leading 0 too)."""
    made = []
    for index in range(count):
        birth = date(1960 + index % 40, 1 + index % 12, 1 + index % 28)
        made.append(Person(
            full_name=_NAMES[index % len(_NAMES)],
            birth=birth,
            id_number=citizen_id(birth, province=province),
            phone=f"091{next(_phone_serial):07d}",
            chapter_code=chapter_code,
        ))
    return made


def table(persons: Sequence[Person], header: Sequence[str] = HEADER_VI) -> list[list[str]]:
    """Header row followed by one row per person."""
    return [list(header), *(person.cells() for person in persons)]


def csv_bytes(rows: Sequence[Sequence[object]], *, encoding: str = "utf-8", delimiter: str = ",") -> bytes:
    """CSV text in ``encoding``: ``utf-8``, ``utf-8-sig`` (Excel "CSV UTF-8"), ``utf-16`` (Excel "Unicode
    text", which is tab-separated with a BOM) or ``cp1258`` (tones written as combining marks, like Windows)."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    text = buffer.getvalue()
    if encoding == "cp1258":
        return to_cp1258(text)
    return text.encode(encoding)


def to_cp1258(text: str) -> bytes:
    """Encode like Windows does for Vietnamese: base letters precomposed (â, ơ…), tones as combining marks."""
    out = bytearray()
    for char in unicodedata.normalize("NFC", text):
        try:
            out += char.encode("cp1258")
        except UnicodeEncodeError:
            decomposed = unicodedata.normalize("NFD", char)
            base = unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in _TONE_MARKS))
            out += base.encode("cp1258")
            out += "".join(c for c in decomposed if c in _TONE_MARKS).encode("cp1258")
    return bytes(out)


def xlsx_bytes(rows: Sequence[Sequence[object]]) -> bytes:
    """An XLSX workbook whose first sheet holds ``rows`` (cells keep their Python types: int, float, date…)."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
