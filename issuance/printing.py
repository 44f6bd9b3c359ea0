"""Printable member cards: one CR80 card per PDF, or A4 sheets of ten cards with cut marks.

Card layout (CR80, 85.6 × 54 mm, origin bottom left)::

    +--------------------------------------------------------------+
    |                 union name (white on a colour band)          |
    +--------------------------------------------------------------+
    | THẺ HỘI VIÊN                                                 |
    | Full Name (bold, one line, shrunk to fit the card width)     |
    | +-----+ member no. label               +-------------------+ |
    | |photo| 0000 0018 67                   |                   | |
    | |     | chapter label                  |   QR (vector),    | |
    | +-----+ chapter name (≤ 2 lines)       |   quiet zone 4    | |
    | issued on                              |                   | |
    | Giá trị đến / Valid until: dd/mm/yyyy  +-------------------+ |
    +--------------------------------------------------------------+

The QR symbol and its quiet zone always occupy a fixed 29 mm square, so the symbol itself is at least 21 mm wide
(version 1) and 25.2 mm at version 9, i.e. modules of about 0.48 mm: tiny QR codes on printed PDFs are a known
complaint from iPhone users (DOMAIN.md §9). It is drawn as filled rectangles, not as a bitmap, so it stays sharp
at any printer resolution. Text is set in DejaVu Sans, which covers Vietnamese, embedded as a TrueType subset.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from PIL import Image, UnidentifiedImageError
from qrcode import constants as qr_constants
from qrcode import util as qr_util
from reportlab import rl_config
from reportlab.lib.colors import HexColor, black, white
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from issuance.render import qr_matrix, qr_version

__all__ = [
    "CARD_HEIGHT_MM",
    "CARD_WIDTH_MM",
    "DEFAULT_FONT_DIRS",
    "MAX_CARD_QR_VERSION",
    "CardFace",
    "FontNotFoundError",
    "card_pdf",
    "sheets_pdf",
]

CARD_WIDTH_MM = 85.6
CARD_HEIGHT_MM = 54.0
# Typical credentials are version 9 at ECC M; the longest the format allows (a 100-byte name and a 32-character
# chapter code) is version 12. Version 13 in the 29 mm square still has 0.38 mm modules, above the ~0.33 mm that
# phone cameras and cheap scanners read reliably; anything larger would not be.
MAX_CARD_QR_VERSION = 13

# Debian/Ubuntu (fonts-dejavu-core), then Fedora and Arch locations of the same files.
DEFAULT_FONT_DIRS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu-sans-fonts"),
    Path("/usr/share/fonts/TTF"),
)
_REGULAR_FONT_FILE = "DejaVuSans.ttf"
_BOLD_FONT_FILE = "DejaVuSans-Bold.ttf"

_CARD_W = CARD_WIDTH_MM * mm
_CARD_H = CARD_HEIGHT_MM * mm
_SIDE = 4 * mm
_BAND_H = 10 * mm
_QR_BOX = 29 * mm
_QR_QUIET_MODULES = 4
_QR_X = _CARD_W - 2.5 * mm - _QR_BOX
_QR_Y = 3 * mm
_TEXT_RIGHT = _QR_X - 1.5 * mm
_PHOTO_W = 14 * mm
_PHOTO_H = 18.7 * mm
_PHOTO_Y = 12 * mm
_PHOTO_GAP = 2.5 * mm

_BAND_COLOUR = HexColor("#1d4f91")
_LABEL_COLOUR = HexColor("#1d4f91")
_MUTED_COLOUR = HexColor("#555555")
_TEXT_COLOUR = HexColor("#111111")

_SHEET_COLUMNS = 2
_SHEET_ROWS = 5
_SHEET_GAP_X = 10 * mm
_SHEET_GAP_Y = 3 * mm
_CUT_MARK_OFFSET = 1 * mm
_CUT_MARK_LENGTH = 4 * mm
_CUT_MARK_WIDTH = 0.25  # points: a hairline that still survives laser printing

# reportlab wraps every compressed stream in ASCII85 by default, a 7-bit-transport relic that makes the file 25 %
# larger and costs a slow pure-Python encoding pass. Nothing else in cardsvc uses reportlab; the setting is read when
# streams are written and is set once here, never toggled, so every PDF of the process is encoded the same way.
rl_config.useA85 = 0


class FontNotFoundError(RuntimeError):
    """DejaVu Sans (regular and bold) is not installed where the card renderer looks for it."""


@dataclass(frozen=True)
class CardFace:
    """Everything printed on the front of one member card.

    ``member_number`` is printed in groups of four characters; ``qr_text`` is the credential as ASCII digits.
    Text may arrive in NFD; it is printed NFC-normalised.
    """

    union_name: str
    full_name: str
    member_number: str
    chapter_name: str
    issued_on: date
    expires_on: date
    qr_text: str
    photo_jpeg: bytes | None = None
    card_label: str = "THẺ HỘI VIÊN"


class _Fonts(NamedTuple):
    regular: str
    bold: str


def card_pdf(face: CardFace, *, font_dir: Path | None = None, font_dirs: Sequence[Path] = DEFAULT_FONT_DIRS) -> bytes:
    """Render one card as a PDF whose single page is exactly CR80 (85.6 × 54 mm).

    Args:
        face: What to print.
        font_dir: A folder searched first for ``DejaVuSans.ttf`` and ``DejaVuSans-Bold.ttf``.
        font_dirs: Folders searched after ``font_dir``; defaults to the usual system locations.

    Returns:
        The PDF file.

    Raises:
        FontNotFoundError: If neither ``font_dir`` nor ``font_dirs`` holds both DejaVu Sans files.
        ValueError: If ``face.qr_text`` is not a digit string that fits version 9 at ECC M, or ``face.photo_jpeg``
            is not a readable image.
    """
    fonts = _load_fonts(_search_path(font_dir, font_dirs))
    _check_face(face)
    out = io.BytesIO()
    canvas = _new_canvas(out, (_CARD_W, _CARD_H), title=_nfc(face.full_name))
    _draw_card(canvas, face, fonts)
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def sheets_pdf(
    faces: Sequence[CardFace], *, font_dir: Path | None = None, font_dirs: Sequence[Path] = DEFAULT_FONT_DIRS
) -> bytes:
    """Render cards on A4 portrait sheets, ten per page (2 columns × 5 rows, centred), with corner cut marks.

    Args:
        faces: The cards, in print order (left to right, top to bottom).
        font_dir: A folder searched first for ``DejaVuSans.ttf`` and ``DejaVuSans-Bold.ttf``.
        font_dirs: Folders searched after ``font_dir``; defaults to the usual system locations.

    Returns:
        The PDF file, ``ceil(len(faces) / 10)`` pages.

    Raises:
        FontNotFoundError: If neither ``font_dir`` nor ``font_dirs`` holds both DejaVu Sans files.
        ValueError: If ``faces`` is empty, or a face fails the checks of :func:`card_pdf`.
    """
    if not faces:
        raise ValueError("no cards to print")
    fonts = _load_fonts(_search_path(font_dir, font_dirs))
    # Check every face before drawing so that a bad card fails the batch instead of yielding a partial sheet.
    for face in faces:
        _check_face(face)
    page_w, page_h = A4
    per_page = _SHEET_COLUMNS * _SHEET_ROWS
    left = (page_w - _SHEET_COLUMNS * _CARD_W - (_SHEET_COLUMNS - 1) * _SHEET_GAP_X) / 2
    bottom = (page_h - _SHEET_ROWS * _CARD_H - (_SHEET_ROWS - 1) * _SHEET_GAP_Y) / 2
    out = io.BytesIO()
    canvas = _new_canvas(out, A4, title="Thẻ hội viên")
    for start in range(0, len(faces), per_page):
        for slot, face in enumerate(faces[start : start + per_page]):
            row, column = divmod(slot, _SHEET_COLUMNS)
            x = left + column * (_CARD_W + _SHEET_GAP_X)
            y = bottom + (_SHEET_ROWS - 1 - row) * (_CARD_H + _SHEET_GAP_Y)
            canvas.saveState()
            canvas.translate(x, y)
            _draw_card(canvas, face, fonts)
            canvas.restoreState()
            _draw_cut_marks(canvas, x, y, margin_x=left, margin_y=bottom)
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def _new_canvas(out: io.BytesIO, page_size: tuple[float, float], *, title: str) -> Canvas:
    # invariant=1 drops the creation date and random document id: the same cards give the same bytes.
    canvas = Canvas(out, pagesize=page_size, pageCompression=1, invariant=1)
    canvas.setTitle(title)
    canvas.setCreator("cardsvc")
    return canvas


def _search_path(font_dir: Path | None, font_dirs: Sequence[Path]) -> tuple[Path, ...]:
    return (font_dir, *font_dirs) if font_dir is not None else tuple(font_dirs)


@lru_cache(maxsize=8)
def _load_fonts(search_path: tuple[Path, ...]) -> _Fonts:
    """Find and register DejaVu Sans regular and bold from the first folder that holds both files."""
    for folder in search_path:
        regular, bold = folder / _REGULAR_FONT_FILE, folder / _BOLD_FONT_FILE
        if regular.is_file() and bold.is_file():
            return _Fonts(regular=_register_font(regular), bold=_register_font(bold))
    searched = ", ".join(str(folder) for folder in search_path) or "no folder"
    raise FontNotFoundError(
        f"{_REGULAR_FONT_FILE} and {_BOLD_FONT_FILE} not found in {searched}; install the Debian package "
        "fonts-dejavu-core (apt-get install fonts-dejavu-core) or pass font_dir"
    )


def _register_font(path: Path) -> str:
    # reportlab's font registry is process-wide and keyed by name, so the name is derived from the file path:
    # two callers with different font folders never overwrite each other's font.
    name = f"CardSans-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(name, str(path)))
    return name


def _check_face(face: CardFace) -> None:
    # In numeric mode the version depends only on the number of digits, so a length bound is an exact version check
    # that costs nothing; encoding the symbol here (as qr_version does) would double the cost of a batch, whose
    # symbols no cache can hold between this check and the drawing. Only a refused text is encoded, for the message.
    text = face.qr_text
    if not (text.isascii() and text.isdigit()) or len(text) > _max_card_digits():
        version = qr_version(text)  # raises ValueError for text that is not ASCII digits or exceeds version 40
        if version > MAX_CARD_QR_VERSION:
            raise ValueError(
                f"QR text of {len(text)} digits needs version {version}; the card holds at most version "
                f"{MAX_CARD_QR_VERSION} at ECC M"
            )
    if face.photo_jpeg is not None:
        try:
            with Image.open(io.BytesIO(face.photo_jpeg)) as photo:
                photo.verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ValueError("photo_jpeg is not a readable image") from exc


@lru_cache(maxsize=1)
def _max_card_digits() -> int:
    """How many digits a version ``MAX_CARD_QR_VERSION`` symbol holds in numeric mode at ECC M (796 for version 13).

    Computed from the capacity tables of ``qrcode``, which :func:`issuance.render.qr_version` relies on; the tests
    pin it against ``qr_version``.
    """
    bits: int = (
        qr_util.BIT_LIMIT_TABLE[qr_constants.ERROR_CORRECT_M][MAX_CARD_QR_VERSION]
        - 4  # mode indicator
        - qr_util.length_in_bits(qr_util.MODE_NUMBER, MAX_CARD_QR_VERSION)
    )
    # Numeric mode: 10 bits per 3 digits, then 7 bits for 2 or 4 bits for 1 remaining digit.
    groups, rest = divmod(bits, 10)
    return 3 * groups + (2 if rest >= 7 else 1 if rest >= 4 else 0)


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _grouped(member_number: str) -> str:
    digits = "".join(member_number.split())
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))


@lru_cache(maxsize=4096)
def _fit_lines(text: str, font: str, width: float, max_sizes: tuple[float, ...]) -> tuple[float, tuple[str, ...]]:
    """Choose 1 or 2 lines and the largest font size (≤ ``max_sizes[lines - 1]``) at which ``text`` fits ``width``.

    The text is never cut: if it fits nowhere at the maximum size, the font shrinks until it does. Cached: on a
    sheet the union name, chapter names and dates repeat from card to card.
    """
    one_line_size = min(max_sizes[0], width / max(pdfmetrics.stringWidth(text, font, 1), 1e-6))
    best: tuple[float, tuple[str, ...]] = (one_line_size, (text,))
    words = text.split()
    if len(max_sizes) > 1 and len(words) > 1 and one_line_size < max_sizes[0]:
        # Split at the word boundary that balances the two lines best, i.e. allows the largest size.
        split_widths = (
            (max(pdfmetrics.stringWidth(" ".join(part), font, 1) for part in (words[:i], words[i:])), i)
            for i in range(1, len(words))
        )
        widest, split = min(split_widths)
        two_line_size = min(max_sizes[1], width / widest)
        if two_line_size > one_line_size:
            best = (two_line_size, (" ".join(words[:split]), " ".join(words[split:])))
    return best


def _draw_card(canvas: Canvas, face: CardFace, fonts: _Fonts) -> None:
    """Draw ``face`` with the card's bottom-left corner at the canvas origin."""
    canvas.setFillColor(white)
    canvas.rect(0, 0, _CARD_W, _CARD_H, stroke=0, fill=1)
    _draw_band(canvas, _nfc(face.union_name), fonts)

    canvas.setFillColor(_LABEL_COLOUR)
    canvas.setFont(fonts.bold, 7)
    canvas.drawString(_SIDE, 40.3 * mm, _nfc(face.card_label))

    full_name = _nfc(face.full_name)
    size, _ = _fit_lines(full_name, fonts.bold, _CARD_W - 2 * _SIDE, (12.0,))
    canvas.setFillColor(_TEXT_COLOUR)
    canvas.setFont(fonts.bold, size)
    canvas.drawString(_SIDE, 34.8 * mm, full_name)

    details_x = _SIDE
    if face.photo_jpeg is not None:
        _draw_photo(canvas, face.photo_jpeg)
        details_x += _PHOTO_W + _PHOTO_GAP
    details_w = _TEXT_RIGHT - details_x
    _draw_details(canvas, face, fonts, details_x, details_w)
    _draw_validity(canvas, face, fonts)
    _draw_qr(canvas, face.qr_text)


def _draw_band(canvas: Canvas, union_name: str, fonts: _Fonts) -> None:
    canvas.setFillColor(_BAND_COLOUR)
    canvas.rect(0, _CARD_H - _BAND_H, _CARD_W, _BAND_H, stroke=0, fill=1)
    size, lines = _fit_lines(union_name, fonts.bold, _CARD_W - 2 * _SIDE, (9.0, 7.0))
    pitch = size * 1.15
    # Centre the block of lines vertically in the band; 0.36 em puts the middle of capitals on the centre line.
    first_baseline = _CARD_H - _BAND_H / 2 + (len(lines) - 1) * pitch / 2 - 0.36 * size
    canvas.setFillColor(white)
    canvas.setFont(fonts.bold, size)
    for index, line in enumerate(lines):
        canvas.drawCentredString(_CARD_W / 2, first_baseline - index * pitch, line)


def _draw_photo(canvas: Canvas, photo_jpeg: bytes) -> None:
    # Fit the whole photo inside the box (never crop a face) and centre it.
    canvas.drawImage(
        ImageReader(io.BytesIO(photo_jpeg)),
        _SIDE,
        _PHOTO_Y,
        width=_PHOTO_W,
        height=_PHOTO_H,
        preserveAspectRatio=True,
        anchor="c",
    )
    canvas.setStrokeColor(_MUTED_COLOUR)
    canvas.setLineWidth(0.4)
    canvas.rect(_SIDE, _PHOTO_Y, _PHOTO_W, _PHOTO_H, stroke=1, fill=0)


def _draw_details(canvas: Canvas, face: CardFace, fonts: _Fonts, x: float, width: float) -> None:
    canvas.setFillColor(_MUTED_COLOUR)
    canvas.setFont(fonts.regular, 5)
    canvas.drawString(x, 29.3 * mm, "Số hội viên / Member No.")
    member_number = _grouped(_nfc(face.member_number))
    size, _ = _fit_lines(member_number, fonts.bold, width, (9.5,))
    canvas.setFillColor(_TEXT_COLOUR)
    canvas.setFont(fonts.bold, size)
    canvas.drawString(x, 25.6 * mm, member_number)

    canvas.setFillColor(_MUTED_COLOUR)
    canvas.setFont(fonts.regular, 5)
    canvas.drawString(x, 21.6 * mm, "Chi hội / Chapter")
    size, lines = _fit_lines(_nfc(face.chapter_name), fonts.regular, width, (6.5, 6.5))
    canvas.setFillColor(_TEXT_COLOUR)
    canvas.setFont(fonts.regular, size)
    for index, line in enumerate(lines):
        canvas.drawString(x, 18.8 * mm - index * size * 1.15, line)


def _draw_validity(canvas: Canvas, face: CardFace, fonts: _Fonts) -> None:
    width = _TEXT_RIGHT - _SIDE
    issued = f"Ngày cấp / Issued: {face.issued_on:%d/%m/%Y}"
    size, _ = _fit_lines(issued, fonts.regular, width, (5.5,))
    canvas.setFillColor(_MUTED_COLOUR)
    canvas.setFont(fonts.regular, size)
    canvas.drawString(_SIDE, 8.0 * mm, issued)

    label, until = "Giá trị đến / Valid until: ", f"{face.expires_on:%d/%m/%Y}"
    natural = pdfmetrics.stringWidth(label, fonts.regular, 1) + pdfmetrics.stringWidth(until, fonts.bold, 1)
    size = min(6.5, width / natural)
    # One text object keeps label and date a single line of text for copy-paste and text extraction.
    line = canvas.beginText(_SIDE, 4.6 * mm)
    line.setFillColor(_TEXT_COLOUR)
    line.setFont(fonts.regular, size)
    line.textOut(label)
    line.setFont(fonts.bold, size)
    line.textOut(until)
    canvas.drawText(line)


def _draw_qr(canvas: Canvas, qr_text: str) -> None:
    canvas.addLiteral(_qr_operators(qr_text))


_DARK_RUN = re.compile(rb"\x01+")


def _qr_operators(qr_text: str) -> str:
    """PDF content operators that paint the quiet-zone square white and the QR symbol black, as vector shapes.

    Why vector and not a 1-bit image (which would be smaller, ~0.4 kB): a printer or viewer scales an image to its
    own device pixels however it likes; ``/Interpolate false`` is only a hint, which several viewers and printer
    drivers ignore, blurring module edges. Even with nearest-neighbour scaling, 0.4–0.5 mm modules are not a whole
    number of device pixels at 300/600/1200 dpi, so the image would be resampled with uneven module widths. Filled
    rectangles are rasterised by the device itself at full resolution, every module edge on the device grid, at any
    zoom; the symbol also stays the same object on a single card and on a sheet, and its text content is nothing
    but path data. The cost of vector shapes was never the PDF: it was building them (one ``rect()`` and several
    float-formatting calls per run of modules), which this function avoids:

    - the coordinates are whole module numbers: one ``cm`` maps module units (rows counted downward) onto the
      29 mm box, so each rectangle is four small integers instead of four formatted floats, which also makes
      the page stream much smaller;
    - runs of dark modules in a row are merged, and a run that repeats in the rows below (finder patterns,
      timing, vertical strokes) becomes one taller rectangle: ~620 rectangles for a version 9 symbol instead of
      ~1,400 dark modules. They are all one filled path, so an anti-aliasing viewer shows no seams between them;
    - the operators are written as one literal, inside ``q``/``Q`` so the canvas's own colour state is untouched.
      Black is DeviceGray 0 (``0 g``): pure black ink or toner, never a mix of colours that could misregister.
    """
    matrix = qr_matrix(qr_text)
    count = len(matrix)
    module = _QR_BOX / (count + 2 * _QR_QUIET_MODULES)
    origin_x = _QR_X + _QR_QUIET_MODULES * module
    top = _QR_Y + _QR_BOX - _QR_QUIET_MODULES * module
    # All rows in one byte string, each followed by a light separator module, so that one C-level regex scan finds
    # every run of dark modules; position // stride is the row, position % stride the column.
    stride = count + 1
    modules = b"\x00".join(bytes(row) for row in matrix) + b"\x00"
    runs = [match.span() for match in _DARK_RUN.finditer(modules)]
    end_of_run_at = dict(runs)
    below_first_row: set[int] = set()
    rects: list[str] = []
    for start, end in runs:
        if start in below_first_row:
            continue  # already part of a taller rectangle begun higher up
        height = 1
        # Extend downward while the row below has a run with exactly the same columns.
        while end_of_run_at.get(start + height * stride) == end + height * stride:
            below_first_row.add(start + height * stride)
            height += 1
        row_index, column = divmod(start, stride)
        rects.append(f"{column} {row_index} {end - start} {height} re")
    # The quiet zone is painted white explicitly so the symbol stays readable on any card background.
    return (
        f"q 1 g {_QR_X:.4f} {_QR_Y:.4f} {_QR_BOX:.4f} {_QR_BOX:.4f} re f\n"
        f"0 g {module:.6f} 0 0 {-module:.6f} {origin_x:.4f} {top:.4f} cm\n" + "\n".join(rects) + "\nf Q"
    )


def _draw_cut_marks(canvas: Canvas, x: float, y: float, *, margin_x: float, margin_y: float) -> None:
    """Draw short lines extending the card's edges outwards from each corner, never reaching another card."""
    # Marks of neighbouring cards lie on the same cut lines, so they may meet in a gutter without harm, but they
    # must stop short of the next card and of the page edge.
    horizontal = min(_CUT_MARK_LENGTH, _SHEET_GAP_X - _CUT_MARK_OFFSET, margin_x - _CUT_MARK_OFFSET)
    vertical = min(_CUT_MARK_LENGTH, _SHEET_GAP_Y - _CUT_MARK_OFFSET, margin_y - _CUT_MARK_OFFSET)
    canvas.setStrokeColor(black)
    canvas.setLineWidth(_CUT_MARK_WIDTH)
    for corner_x, direction_x in ((x, -1), (x + _CARD_W, 1)):
        for corner_y, direction_y in ((y, -1), (y + _CARD_H, 1)):
            start_x = corner_x + direction_x * _CUT_MARK_OFFSET
            canvas.line(start_x, corner_y, start_x + direction_x * horizontal, corner_y)
            start_y = corner_y + direction_y * _CUT_MARK_OFFSET
            canvas.line(corner_x, start_y, corner_x, start_y + direction_y * vertical)
