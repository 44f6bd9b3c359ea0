"""Builders for member-list files used by the import tests: rows of realistic people, CSV in every encoding
Vietnamese offices produce, and XLSX workbooks."""

from __future__ import annotations

import csv
import io
import unicodedata
import zipfile
from collections.abc import Callable, Sequence
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


def rewrite_xlsx_part(data: bytes, name: str, change: Callable[[bytes], bytes]) -> bytes:
    """``data`` with the zip member ``name`` replaced by ``change(its bytes)`` (sizes declared honestly)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            body = source.read(info)
            target.writestr(info.filename, change(body) if info.filename == name else body)
    return out.getvalue()


_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"


def xlsx_from_xml(sheet_data: str, *, shared_strings: Sequence[str] = (), num_fmts: str = "",
                  cell_formats: Sequence[int] = (0,), date1904: bool = False, merges: Sequence[str] = (),
                  prefix: str = "") -> bytes:
    """A workbook written part by part the way Excel does (shared strings, styles, optional ``x:`` prefixes):
    ``sheet_data`` is the inner XML of ``<sheetData>``; ``cell_formats`` the ``numFmtId`` of each cell format."""
    p = f"{prefix}:" if prefix else ""
    xmlns = f'xmlns{":" + prefix if prefix else ""}="{_MAIN}"'
    strings = "".join(f"<{p}si><{p}t>{text}</{p}t></{p}si>" for text in shared_strings)
    merge_xml = (f'<{p}mergeCells count="{len(merges)}">'
                 + "".join(f'<{p}mergeCell ref="{ref}"/>' for ref in merges) + f"</{p}mergeCells>") if merges else ""
    parts = {
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                               'content-types"/>',
        "_rels/.rels": f'<Relationships xmlns="{_PKG}"><Relationship Id="rId1" Target="xl/workbook.xml" '
                       f'Type="{_REL}/officeDocument"/></Relationships>',
        "xl/workbook.xml": f'<{p}workbook {xmlns} xmlns:r="{_REL}">'
                           f'<{p}workbookPr date1904="{1 if date1904 else 0}"/><{p}sheets>'
                           f'<{p}sheet name="DS" sheetId="1" r:id="rId1"/></{p}sheets></{p}workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{_PKG}">'
                                      f'<Relationship Id="rId1" Target="/xl/worksheets/sheet1.xml" '
                                      f'Type="{_REL}/worksheet"/>'
                                      f'<Relationship Id="rId2" Target="sharedStrings.xml" '
                                      f'Type="{_REL}/sharedStrings"/>'
                                      f'<Relationship Id="rId3" Target="styles.xml" Type="{_REL}/styles"/>'
                                      "</Relationships>",
        "xl/sharedStrings.xml": f"<{p}sst {xmlns}>{strings}</{p}sst>",
        "xl/styles.xml": f"<{p}styleSheet {xmlns}><{p}numFmts>{num_fmts}</{p}numFmts><{p}cellXfs>"
                         + "".join(f'<{p}xf numFmtId="{fmt}"/>' for fmt in cell_formats)
                         + f"</{p}cellXfs></{p}styleSheet>",
        "xl/worksheets/sheet1.xml": f"<{p}worksheet {xmlns}><{p}sheetData>{sheet_data}</{p}sheetData>{merge_xml}"
                                    f"</{p}worksheet>",
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return out.getvalue()
