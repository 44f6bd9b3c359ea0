"""Member numbers in a pasted text or an uploaded list (an event's invitees): whatever else the list holds.

A list of invitees is whatever a chapter has at hand: numbers typed one a line, a column copied from Excel, or a
spreadsheet with names, phones and the member number somewhere. Every 10-digit run is taken as a member number;
spreadsheet cells that Excel turned into numbers get back the leading zeros it dropped.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator

from openpyxl import load_workbook

from integrations.errors import InputError

MEMBER_NUMBER_DIGITS = 10
_NUMBER = re.compile(r"(?<![0-9])[0-9]{10}(?![0-9])")
_ZIP_MAGIC = b"PK\x03\x04"


def member_numbers_in_text(text: str) -> list[str]:
    """The 10-digit numbers in ``text``, in order, each once (spaces inside a number are not allowed)."""
    return list(dict.fromkeys(_NUMBER.findall(text)))


def _xlsx_cells(data: bytes) -> Iterator[str]:
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise InputError("bad_xlsx", "The Excel file cannot be read.", "Không đọc được tệp Excel.") from exc
    try:
        for sheet in workbook.worksheets:
            for row in sheet.iter_rows(values_only=True):
                for cell in row:
                    if isinstance(cell, int) and 0 < cell < 10**MEMBER_NUMBER_DIGITS:
                        # Excel stores 0001234567 as the number 1234567.
                        yield str(cell).zfill(MEMBER_NUMBER_DIGITS)
                    elif isinstance(cell, str):
                        yield cell
    finally:
        workbook.close()


def member_numbers_in_file(data: bytes) -> list[str]:
    """The member numbers in an uploaded list: an Excel workbook (every sheet), or CSV / plain text.

    Raises:
        InputError: An Excel file that cannot be read.
    """
    if data.startswith(_ZIP_MAGIC):
        return member_numbers_in_text("\n".join(_xlsx_cells(data)))
    # Digits are the same bytes in UTF-8, Windows-1258 and Latin-1; only UTF-16 needs decoding as such.
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return member_numbers_in_text(data.decode("utf-16", errors="replace"))
    return member_numbers_in_text(data.decode("latin-1"))
