"""A4 card sheets for a whole province, written as a stream: one ZIP archive of PDF files, chapter by chapter.

One PDF of a million cards would be 100,000 pages that the PDF library keeps in memory until it writes the file.
Here each chapter's cards go to their own PDF (split in parts of at most ``pages_per_file`` pages), rendered and
written into the archive before the next chapter is read, so memory holds one part at a time however large the job:
the print shop prints chapter by chapter anyway, and each file is named after its chapter.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import BinaryIO

from issuance.printing import CardFace, sheets_pdf

CARDS_PER_PAGE = 10
PAGES_PER_FILE = 500
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _file_name(chapter_code: str, part: int, parts_so_far: dict[str, int]) -> str:
    base = _UNSAFE.sub("_", chapter_code)[:60] or "chapter"
    seen = parts_so_far.get(base, 0) + 1
    parts_so_far[base] = seen
    return f"{base}.pdf" if part == 1 and seen == 1 else f"{base}-{seen}.pdf"


def write_sheet_archive(
    out: BinaryIO,
    chapters: Iterable[tuple[str, Iterable[CardFace]]],
    *,
    pages_per_file: int = PAGES_PER_FILE,
) -> int:
    """Write ``chapters`` (chapter code, its cards in print order) to ``out`` as a ZIP of A4 sheet PDFs.

    The cards of each chapter are consumed lazily, ``pages_per_file × 10`` at a time; a chapter without cards gets
    no file. The archive is written as it goes (``out`` need not be seekable).

    Returns:
        The number of cards written.

    Raises:
        ValueError: If no chapter has a card, or a face fails the checks of :func:`issuance.printing.card_pdf`.
    """
    if pages_per_file < 1:
        raise ValueError("pages_per_file must be at least 1")
    per_file = pages_per_file * CARDS_PER_PAGE
    written = 0
    names: dict[str, int] = {}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:  # PDFs are compressed already
        for code, faces in chapters:
            cards: Iterator[CardFace] = iter(faces)
            part = 0
            while batch := list(islice(cards, per_file)):
                part += 1
                archive.writestr(_file_name(code, part, names), sheets_pdf(batch))
                written += len(batch)
    if not written:
        raise ValueError("no cards to print")
    return written
