"""QR rendering of a credential text: module matrix, PNG and SVG.

The credential travels as a QR text made only of ASCII digits so that it is encoded in QR numeric mode (3 digits in
10 bits) and survives keyboard-wedge scanners under Vietnamese input methods (DOMAIN.md §3). Every symbol uses error
correction level M and the smallest version that fits.

Where the time goes, and what is done about it (see bench/qr_render.py):

- ``qrcode`` chooses the mask by building the whole symbol eight times and scoring each with per-module Python
  loops; that is about three quarters of ``qrcode.make``. Here the data modules' positions are computed once per
  version, the eight masked symbols are assembled with C-level string operations (a big-integer XOR, then an
  ``itemgetter`` gather into rows and columns), and scored with regular expressions and bit operations. The
  scores are the very ones ``qrcode`` computes (its quirks included), so the chosen mask and the symbol are
  identical to ``qrcode``'s; tests pin that. Data coding and error correction stay with ``qrcode``.
- The module matrix is kept in a small LRU cache per text: issuing a card renders the same text as PNG, SVG and
  PDF.
- The PNG is one byte per module scaled by Pillow with nearest-neighbour resampling and saved as 1-bit, instead of
  one rectangle drawn per module.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from functools import lru_cache
from itertools import pairwise
from operator import itemgetter
from typing import NamedTuple

import qrcode
from PIL import Image
from qrcode import constants, exceptions, util
from qrcode.image.base import BaseImage

__all__ = ["qr_matrix", "qr_png", "qr_svg", "qr_version"]

_DARK = 0x00
_LIGHT = 0xFF
# Turns 1/0 module bytes into the 0/255 pixel bytes of Pillow's "1;8" raw mode with bytes.translate, in C.
_MODULE_TO_PIXEL = bytes.maketrans(b"\x00\x01", bytes((_LIGHT, _DARK)))


class _Symbol(NamedTuple):
    """An encoded QR symbol without quiet zone; ``rows`` holds one byte per module, 1 for dark."""

    version: int
    rows: tuple[bytes, ...]


# Mask penalty rules 1 and 3 of ISO/IEC 18004 §7.8.3, applied to rows/columns written as "0"/"1" lines.
_SAME_COLOUR_RUN = re.compile(r"0{5,}|1{5,}")
_FINDER_LIKE = re.compile(r"(?=10111010000|00001011101)")


class _Layout(NamedTuple):
    """Where the data modules of one QR version go, and what the eight masks do to them.

    ``gather_rows`` / ``gather_columns`` turn the string of data bits (in placement order) followed by "01\n" into
    the symbol's rows / columns, one "0"/"1" line each, function patterns included.
    """

    size: int
    data_modules: int
    mask_bits: tuple[int, ...]
    gather_rows: Callable[[str], tuple[str, ...]]
    gather_columns: Callable[[str], tuple[str, ...]]


@lru_cache(maxsize=40)
def _layout(version: int) -> _Layout:
    """Build the data module layout of ``version`` the way ``QRCode.makeImpl(test=True, ...)`` lays out a symbol."""
    size = version * 4 + 17
    probe: qrcode.QRCode[BaseImage] = qrcode.QRCode(version=version, error_correction=constants.ERROR_CORRECT_M)
    probe.modules_count = size
    probe.modules = [[None] * size for _ in range(size)]
    probe.setup_position_probe_pattern(0, 0)
    probe.setup_position_probe_pattern(size - 7, 0)
    probe.setup_position_probe_pattern(0, size - 7)
    probe.setup_position_adjust_pattern()
    probe.setup_timing_pattern()
    # qrcode scores masks with format and version information left light (test=True); do the same to choose
    # the same mask.
    probe.setup_type_info(True, 0)
    if version >= 7:
        probe.setup_type_number(True)
    modules = probe.modules
    # The zigzag data placement of QRCode.map_data: two-module columns from the right, alternately up and down,
    # skipping the vertical timing pattern.
    order: list[tuple[int, int]] = []
    row, step = size - 1, -1
    for right in range(size - 1, 0, -2):
        if right <= 6:
            right -= 1
        while 0 <= row < size:
            order.extend((row, column) for column in (right, right - 1) if modules[row][column] is None)
            row += step
        row -= step
        step = -step
    placement = {cell: index for index, cell in enumerate(order)}
    light, dark, newline = len(order), len(order) + 1, len(order) + 2

    def source(row: int, column: int) -> int:
        module = modules[row][column]
        if module is None:
            return placement[(row, column)]
        return dark if module else light

    rows = [index for r in range(size) for index in (*(source(r, c) for c in range(size)), newline)]
    columns = [index for c in range(size) for index in (*(source(r, c) for r in range(size)), newline)]
    mask_bits = tuple(
        int("".join("1" if util.mask_func(pattern)(r, c) else "0" for r, c in order), 2) for pattern in range(8)
    )
    return _Layout(size, len(order), mask_bits, itemgetter(*rows), itemgetter(*columns))


def _penalty(rows: str, columns: str, size: int) -> int:
    """Score one masked symbol exactly as ``qrcode.util.lost_point`` does."""
    score = 0
    for lines in (rows, columns):
        runs = _SAME_COLOUR_RUN.findall(lines)
        score += sum(map(len, runs)) - 2 * len(runs)
        score += 40 * len(_FINDER_LIKE.findall(lines))
    # 2×2 blocks of one colour: bit j of a row value is one module, so a block at (j, j+1) is equal neighbours
    # in both rows and equal modules above each other.
    values = [int(line, 2) for line in rows.split()]
    pairs = (1 << (size - 1)) - 1
    for upper, lower in pairwise(values):
        blocks = ~(upper ^ (upper >> 1)) & ~(lower ^ (lower >> 1)) & ~(upper ^ lower) & pairs
        score += 3 * blocks.bit_count()
    dark_share = float(rows.count("1")) / (size**2)
    return score + int(abs(dark_share * 100 - 50) / 5) * 10


def _best_mask(version: int, codewords: list[int]) -> int:
    """Return the mask pattern ``QRCode.best_mask_pattern`` would choose: the lowest penalty, first on ties."""
    layout = _layout(version)
    # Data bits in placement order; the few remainder modules after the last codeword stay 0.
    data = int.from_bytes(bytes(codewords), "big") << (layout.data_modules - 8 * len(codewords))
    scores = []
    for pattern in range(8):
        bits = format(data ^ layout.mask_bits[pattern], f"0{layout.data_modules}b") + "01\n"
        rows = "".join(layout.gather_rows(bits))
        columns = "".join(layout.gather_columns(bits))
        scores.append((_penalty(rows, columns, layout.size), pattern))
    return min(scores)[1]


@lru_cache(maxsize=128)
def _encode(text: str) -> _Symbol:
    """Encode ``text`` in numeric mode at ECC M, smallest version, and cache the result per text."""
    if not (text.isascii() and text.isdigit()):
        # str.isdigit() alone also accepts non-ASCII digits such as "٣", which numeric mode cannot carry.
        raise ValueError("QR text must be a non-empty string of ASCII digits (QR numeric mode)")
    code: qrcode.QRCode[BaseImage] = qrcode.QRCode(error_correction=constants.ERROR_CORRECT_M, border=0)
    code.add_data(util.QRData(text, mode=util.MODE_NUMBER))
    try:
        version = code.best_fit()
    except (exceptions.DataOverflowError, ValueError) as exc:
        # The text is already known to be digits, so qrcode fails here only for want of room: DataOverflowError,
        # or ValueError("Invalid version (was 41 ...)") when its best-fit search steps past version 40.
        raise ValueError(f"QR text of {len(text)} digits does not fit in a version 40 symbol at ECC M") from exc
    # Data and error-correction codewords come from qrcode; handing them back through its data_cache keeps
    # make() from computing them a second time.
    code.data_cache = util.create_data(version, code.error_correction, code.data_list)
    code.mask_pattern = _best_mask(version, code.data_cache)
    code.make(fit=False)
    rows = tuple(bytes(1 if module else 0 for module in row) for row in code.get_matrix())
    return _Symbol(version=version, rows=rows)


def _check_border(border: int) -> None:
    if border < 0:
        raise ValueError(f"border must be 0 or more modules, got {border}")


def qr_version(text: str) -> int:
    """Return the QR version (1–40) that ``text`` needs at error-correction level M in numeric mode.

    Args:
        text: The credential text, ASCII digits only.

    Returns:
        The smallest version whose ECC M numeric capacity holds ``text``.

    Raises:
        ValueError: If ``text`` is empty, holds anything but ASCII digits, or exceeds version 40.
    """
    return _encode(text).version


def qr_matrix(text: str) -> list[list[bool]]:
    """Return the modules of the QR symbol for ``text``, without quiet zone.

    Args:
        text: The credential text, ASCII digits only.

    Returns:
        A fresh square list of rows (size ``17 + 4 * version``); ``True`` is a dark module. The caller may mutate it.

    Raises:
        ValueError: If ``text`` is empty, holds anything but ASCII digits, or exceeds version 40.
    """
    return [[module == 1 for module in row] for row in _encode(text).rows]


def qr_png(text: str, *, module_px: int = 8, border: int = 4) -> bytes:
    """Render the QR symbol for ``text`` as a 1-bit black-on-white PNG.

    Args:
        text: The credential text, ASCII digits only.
        module_px: Width of one module in pixels (at least 1).
        border: Quiet zone around the symbol, in modules; the QR standard asks for at least 4.

    Returns:
        The PNG file, ``(17 + 4 * version + 2 * border) * module_px`` pixels square.

    Raises:
        ValueError: If ``text`` is not an encodable digit string, ``module_px`` < 1 or ``border`` < 0.
    """
    if module_px < 1:
        raise ValueError(f"module_px must be at least 1, got {module_px}")
    _check_border(border)
    rows = _encode(text).rows
    width = len(rows) + 2 * border
    quiet_row = bytes([_LIGHT]) * width
    quiet_edge = bytes([_LIGHT]) * border
    body = b"".join(quiet_edge + row.translate(_MODULE_TO_PIXEL) + quiet_edge for row in rows)
    pixels = quiet_row * border + body + quiet_row * border
    image = Image.frombytes("1", (width, width), pixels, "raw", "1;8")
    if module_px > 1:
        image = image.resize((width * module_px, width * module_px), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def qr_svg(text: str, *, border: int = 4) -> str:
    """Render the QR symbol for ``text`` as a compact SVG document.

    All dark modules form a single ``<path>`` (one sub-path per horizontal run of dark modules) over a white
    background rectangle; the ``viewBox`` is in module units, so the caller scales the image freely.

    Args:
        text: The credential text, ASCII digits only.
        border: Quiet zone around the symbol, in modules; the QR standard asks for at least 4.

    Returns:
        The SVG document as text.

    Raises:
        ValueError: If ``text`` is not an encodable digit string or ``border`` < 0.
    """
    _check_border(border)
    rows = _encode(text).rows
    width = len(rows) + 2 * border
    commands: list[str] = []
    for y, row in enumerate(rows, start=border):
        x = row.find(1)
        while x != -1:
            end = row.find(0, x)
            if end == -1:
                end = len(row)
            run = end - x
            commands.append(f"M{x + border} {y}h{run}v1h-{run}z")
            x = row.find(1, end)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {width}" shape-rendering="crispEdges">'
        f'<rect width="{width}" height="{width}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(commands)}"/></svg>'
    )
