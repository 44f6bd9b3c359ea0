"""QR rendering of a credential text: module matrix, PNG and SVG.

The credential travels as a QR text made only of ASCII digits so that it is encoded in QR numeric mode (3 digits in
10 bits) and survives keyboard-wedge scanners under Vietnamese input methods (DOMAIN.md §3). Every symbol uses error
correction level M and the smallest version that fits.

The symbols are exactly those ``qrcode`` makes for ``QRData(text, mode=MODE_NUMBER)`` at ECC M with ``fit=True``
(same version, same codewords, same mask; the tests pin that), but built without ``qrcode``'s per-bit and
per-module Python code, which cost about 5.6 ms per symbol (see bench/qr_render.py):

- Version: the smallest one whose numeric capacity at ECC M (a table built once from ``qrcode``'s RS block
  table) holds the text, instead of ``best_fit``.
- Data codewords: numeric groups (3 digits → 10 bits, 2 → 7, 1 → 4) looked up as bit strings and joined, with mode
  indicator 0001, the version's character-count length, terminator, zero bits to a byte and 0xEC/0x11 pad bytes.
- Error correction: Reed–Solomon over GF(256) with a table per ECC block length that maps the feedback byte to the
  generator polynomial times that byte, held as one integer, so each data byte costs a few big-integer operations
  instead of ``qrcode``'s polynomial objects. Blocks are interleaved per ISO/IEC 18004 §7.6. (``qrcode``'s own
  division fails with ``ValueError("glog(0)")`` on an all-zero data block, e.g. for "0" * 300; this encoder does not.)
- Mask: the data modules' positions are computed once per version; the unmasked symbol is gathered once into a
  row-major big integer (bit ``row * size + column``), and each of the eight masks is one XOR. The penalty of each
  masked symbol is scored with big-integer shifts, ANDs and ``bit_count`` over the whole symbol, giving exactly the
  score of ``qrcode.util.lost_point`` (function modules, light format areas and remainder bits included as
  ``qrcode`` has them while choosing), so the chosen mask is ``qrcode``'s: the lowest score, the first on ties.
- The final symbol is that integer with the chosen mask and the format and version information ORed in.
- The module matrix is kept in a small LRU cache per text: issuing a card renders the same text as PNG, SVG and
  PDF.
- The PNG is one byte per module scaled by Pillow with nearest-neighbour resampling and saved as 1-bit, instead of
  one rectangle drawn per module.
"""

from __future__ import annotations

import io
from bisect import bisect_left
from collections.abc import Callable
from functools import cache, lru_cache
from itertools import chain
from operator import itemgetter
from typing import NamedTuple

import qrcode
from PIL import Image
from qrcode import base, constants, util
from qrcode.image.base import BaseImage

__all__ = ["qr_matrix", "qr_png", "qr_svg", "qr_version"]

_DARK = 0x00
_LIGHT = 0xFF
# Turns 1/0 module bytes into the 0/255 pixel bytes of Pillow's "1;8" raw mode with bytes.translate, in C.
_MODULE_TO_PIXEL = bytes.maketrans(b"\x00\x01", bytes((_LIGHT, _DARK)))
# Turns the "0"/"1" characters of a binary string into 0/1 module bytes.
_BINARY_TO_MODULE = bytes.maketrans(b"01", b"\x00\x01")

_MAX_VERSION = 40


class _Symbol(NamedTuple):
    """An encoded QR symbol without quiet zone; ``rows`` holds one byte per module, 1 for dark."""

    version: int
    rows: tuple[bytes, ...]


# --- Data codewords -----------------------------------------------------------------------------------------------

# Bit strings of numeric-mode groups: three digits in 10 bits; a trailing pair in 7 bits, a trailing digit in 4.
_TRIPLE_BITS = {f"{number:03d}": f"{number:010b}" for number in range(1000)}
_TAIL_BITS = {f"{number:02d}": f"{number:07b}" for number in range(100)} | {str(n): f"{n:04b}" for n in range(10)}
_NUMERIC_MODE = "0001"
_PAD_BYTES = b"\xec\x11"


def _count_bits(version: int) -> int:
    """Length of the numeric-mode character count indicator (ISO/IEC 18004 Table 3)."""
    return 10 if version < 10 else 12 if version < 27 else 14


def _numeric_bits(digits: int) -> int:
    return 10 * (digits // 3) + (0, 4, 7)[digits % 3]


class _Blocks(NamedTuple):
    """The ECC M error correction blocks of one version: data codewords per block (ascending) and ECC per block."""

    data_counts: tuple[int, ...]
    ecc_count: int

    @property
    def data_bytes(self) -> int:
        return sum(self.data_counts)


@lru_cache(maxsize=_MAX_VERSION)
def _blocks(version: int) -> _Blocks:
    rows = base.rs_blocks(version, constants.ERROR_CORRECT_M)
    data_counts = tuple(int(block.data_count) for block in rows)
    ecc_counts = {int(block.total_count) - int(block.data_count) for block in rows}
    if len(ecc_counts) != 1 or list(data_counts) != sorted(data_counts):  # pragma: no cover - the standard's table
        raise AssertionError(f"unexpected RS block layout for version {version}")
    return _Blocks(data_counts, ecc_counts.pop())


# _CAPACITY[v - 1]: the most digits version v holds at ECC M in numeric mode, as ``qrcode.best_fit`` counts room
# (mode indicator, character count and data bits within the data codewords; the terminator may be cut short).
_CAPACITY: tuple[int, ...] = tuple(
    max(
        digits
        for digits in range(8 * _blocks(version).data_bytes * 3 // 10 + 3)
        if 4 + _count_bits(version) + _numeric_bits(digits) <= 8 * _blocks(version).data_bytes
    )
    for version in range(1, _MAX_VERSION + 1)
)


def _version_for(digits: int) -> int:
    """The smallest version whose ECC M numeric capacity holds ``digits`` digits."""
    version = bisect_left(_CAPACITY, digits) + 1
    if version > _MAX_VERSION:
        raise ValueError(f"QR text of {digits} digits does not fit in a version 40 symbol at ECC M")
    return version


def _data_codewords(text: str, version: int) -> bytes:
    """The data codewords of ``text`` in numeric mode: header, digit groups, terminator and pad bytes."""
    length = len(text)
    full = length - length % 3
    parts = [_NUMERIC_MODE, format(length, f"0{_count_bits(version)}b")]
    parts.extend(map(_TRIPLE_BITS.__getitem__, [text[i : i + 3] for i in range(0, full, 3)]))
    if full < length:
        parts.append(_TAIL_BITS[text[full:]])
    bits = "".join(parts)
    capacity = _blocks(version).data_bytes
    # Terminator of up to four 0 bits, then 0 bits to the byte boundary: rounding up to whole bytes covers both,
    # because the terminator is cut short only at the very end of the capacity.
    used = (len(bits) + 4 + 7) // 8 if len(bits) + 4 <= 8 * capacity else capacity
    head = (int(bits, 2) << (8 * used - len(bits))).to_bytes(used, "big")
    return head + (_PAD_BYTES * capacity)[: capacity - used]


# --- Reed–Solomon error correction --------------------------------------------------------------------------------

_GF_EXP = [0] * 512
_GF_LOG = [0] * 256
_value = 1
for _power in range(255):
    _GF_EXP[_power] = _value
    _GF_LOG[_value] = _power
    _value <<= 1
    if _value & 0x100:
        _value ^= 0x11D  # x^8 + x^4 + x^3 + x^2 + 1, the QR code field polynomial
for _power in range(255, 512):
    _GF_EXP[_power] = _GF_EXP[_power - 255]
del _value, _power


def _gf_mul(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else _GF_EXP[_GF_LOG[a] + _GF_LOG[b]]


@cache
def _rs_feedback(ecc_count: int) -> tuple[int, ...]:
    """For each feedback byte f, the generator polynomial's coefficients below the leading 1, times f, as an int.

    The generator is (x − α⁰)(x − α¹)…(x − α^(ecc_count − 1)); the coefficients are packed big-endian, highest
    degree first, ``ecc_count`` bytes.
    """
    generator = [1]
    for power in range(ecc_count):
        root = _GF_EXP[power]
        product = [*generator, 0]
        for index, coefficient in enumerate(generator):
            product[index + 1] ^= _gf_mul(coefficient, root)
        generator = product
    lower = generator[1:]
    return tuple(int.from_bytes(bytes(_gf_mul(c, f) for c in lower), "big") for f in range(256))


def _rs_remainder(data: bytes, ecc_count: int) -> bytes:
    """The ``ecc_count`` error correction codewords of one block: data·x^ecc_count modulo the generator."""
    feedback = _rs_feedback(ecc_count)
    shift = 8 * (ecc_count - 1)
    keep = (1 << shift) - 1
    remainder = 0
    for byte in data:
        remainder = ((remainder & keep) << 8) ^ feedback[(remainder >> shift) ^ byte]
    return remainder.to_bytes(ecc_count, "big")


def _codewords(text: str, version: int) -> bytes:
    """All codewords of the symbol in placement order: interleaved data codewords, then interleaved ECC codewords."""
    blocks = _blocks(version)
    data = _data_codewords(text, version)
    data_blocks: list[bytes] = []
    offset = 0
    for count in blocks.data_counts:
        data_blocks.append(data[offset : offset + count])
        offset += count
    ecc_blocks = [_rs_remainder(block, blocks.ecc_count) for block in data_blocks]
    # Blocks differ by at most one data codeword, longer ones last: zip takes the common columns, then the last
    # codeword of each longer block follows.
    shortest = blocks.data_counts[0]
    interleaved = bytes(chain.from_iterable(zip(*data_blocks, strict=False)))
    extra = bytes(block[shortest] for block in data_blocks if len(block) > shortest)
    return interleaved + extra + bytes(chain.from_iterable(zip(*ecc_blocks, strict=True)))


# --- Module placement and masking ---------------------------------------------------------------------------------


class _PenaltyMasks(NamedTuple):
    """Valid start positions (as bits of a symbol integer) of the windows the penalty rules look at."""

    run_rows: int  # five modules in a row: column <= size - 5
    run_columns: int  # five modules in a column: row <= size - 5
    finder_rows: int  # eleven modules in a row: column <= size - 11
    finder_columns: int  # eleven modules in a column: row <= size - 11
    blocks: int  # 2×2 blocks: row, column <= size - 2


class _Layout(NamedTuple):
    """Where the data modules of one QR version go, and what the masks and format information add.

    Module ``(row, column)`` is bit ``row * size + column`` of a symbol integer. ``gather`` turns the string of data
    bits (in placement order) followed by "01" into the symbol's modules, last module first, so that ``int(…, 2)``
    of the joined result is the unmasked symbol as ``qrcode`` scores it: function patterns set, format and version
    information light. ``mask_bits[p]`` holds the data modules mask pattern ``p`` inverts, and ``type_bits[p]`` the
    dark modules of the format information for pattern ``p``, the version information and the dark module.
    """

    size: int
    data_modules: int
    gather: Callable[[str], tuple[str, ...]]
    mask_bits: tuple[int, ...]
    type_bits: tuple[int, ...]
    masks: _PenaltyMasks


def _positions(size: int, predicate: Callable[[int, int], bool]) -> int:
    return sum(1 << (row * size + column) for row in range(size) for column in range(size) if predicate(row, column))


def _function_modules(version: int, test: bool, mask_pattern: int) -> list[list[bool | None]]:
    """The function patterns ``QRCode.makeImpl(test, mask_pattern)`` lays out; ``None`` where data goes."""
    size = version * 4 + 17
    probe: qrcode.QRCode[BaseImage] = qrcode.QRCode(version=version, error_correction=constants.ERROR_CORRECT_M)
    probe.modules_count = size
    probe.modules = [[None] * size for _ in range(size)]
    probe.setup_position_probe_pattern(0, 0)
    probe.setup_position_probe_pattern(size - 7, 0)
    probe.setup_position_probe_pattern(0, size - 7)
    probe.setup_position_adjust_pattern()
    probe.setup_timing_pattern()
    probe.setup_type_info(test, mask_pattern)
    if version >= 7:
        probe.setup_type_number(test)
    modules: list[list[bool | None]] = probe.modules
    return modules


@lru_cache(maxsize=_MAX_VERSION)
def _layout(version: int) -> _Layout:
    """Build the module layout of ``version`` the way ``QRCode.makeImpl`` and ``QRCode.map_data`` lay out a symbol."""
    size = version * 4 + 17
    # qrcode scores masks with format and version information left light (test=True); do the same to choose
    # the same mask.
    modules = _function_modules(version, True, 0)
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
    light, dark = len(order), len(order) + 1

    def source(row: int, column: int) -> int:
        module = modules[row][column]
        if module is None:
            return placement[(row, column)]
        return dark if module else light

    last_first = [source(r, c) for r in reversed(range(size)) for c in reversed(range(size))]
    mask_bits = tuple(
        sum(1 << (r * size + c) for r, c in order if util.mask_func(pattern)(r, c)) for pattern in range(8)
    )
    type_bits = []
    for pattern in range(8):
        final = _function_modules(version, False, pattern)
        type_bits.append(
            sum(1 << (r * size + c) for r in range(size) for c in range(size) if final[r][c] and not modules[r][c])
        )
    masks = _PenaltyMasks(
        run_rows=_positions(size, lambda r, c: c <= size - 5),
        run_columns=_positions(size, lambda r, c: r <= size - 5),
        finder_rows=_positions(size, lambda r, c: c <= size - 11),
        finder_columns=_positions(size, lambda r, c: r <= size - 11),
        blocks=_positions(size, lambda r, c: r <= size - 2 and c <= size - 2),
    )
    return _Layout(size, len(order), itemgetter(*last_first), mask_bits, tuple(type_bits), masks)


def _line_penalty(dark: int, light: int, step: int, runs: int, finders: int) -> int:
    """Penalty rules 1 and 3 of ``qrcode.util.lost_point`` along rows (``step`` 1) or columns (``step`` size).

    Rule 1: every run of L ≥ 5 modules of one colour costs L − 2, i.e. one per five-module window of one colour
    (L − 4 of them) plus two per run (counted at its first window). Rule 3: 40 for every position where
    1011101 is followed or preceded by 0000 (reading order), within the line.
    """
    same = ~(dark ^ (dark >> step))  # bit p: module p equals module p + step
    windows = same & (same >> step) & (same >> 2 * step) & (same >> 3 * step) & runs
    score = windows.bit_count() + 2 * (windows & ~(windows << step)).bit_count()
    core = (
        dark
        & (light >> step)
        & (dark >> 2 * step)
        & (dark >> 3 * step)
        & (dark >> 4 * step)
        & (light >> 5 * step)
        & (dark >> 6 * step)
    )
    quiet = light & (light >> step) & (light >> 2 * step) & (light >> 3 * step)
    finder_like = ((core & (quiet >> 7 * step)) | (quiet & (core >> 4 * step))) & finders
    return score + 40 * finder_like.bit_count()


def _penalty(symbol: int, layout: _Layout) -> int:
    """Score a masked symbol integer exactly as ``qrcode.util.lost_point`` scores the module matrix."""
    size = layout.size
    masks = layout.masks
    light = ~symbol
    score = _line_penalty(symbol, light, 1, masks.run_rows, masks.finder_rows)
    score += _line_penalty(symbol, light, size, masks.run_columns, masks.finder_columns)
    # Rule 2: 3 for every 2×2 block of one colour.
    across = ~(symbol ^ (symbol >> 1))
    down = ~(symbol ^ (symbol >> size))
    score += 3 * (across & (across >> size) & down & masks.blocks).bit_count()
    # Rule 4, in qrcode's floating-point arithmetic.
    dark_share = float(symbol.bit_count()) / (size**2)
    return score + int(abs(dark_share * 100 - 50) / 5) * 10


def _unmasked_symbol(codewords: bytes, layout: _Layout) -> int:
    """The symbol integer with ``codewords`` placed, before masking, format and version information light."""
    # Data bits in placement order; the few remainder modules after the last codeword stay 0 before masking.
    bits = format(int.from_bytes(codewords, "big"), f"0{8 * len(codewords)}b")
    bits += "0" * (layout.data_modules - len(bits)) + "01"
    return int("".join(layout.gather(bits)), 2)


@lru_cache(maxsize=128)
def _encode(text: str) -> _Symbol:
    """Encode ``text`` in numeric mode at ECC M, smallest version, and cache the result per text."""
    if not (text.isascii() and text.isdigit()):
        # str.isdigit() alone also accepts non-ASCII digits such as "٣", which numeric mode cannot carry.
        raise ValueError("QR text must be a non-empty string of ASCII digits (QR numeric mode)")
    version = _version_for(len(text))
    layout = _layout(version)
    unmasked = _unmasked_symbol(_codewords(text, version), layout)
    # qrcode.best_mask_pattern: the lowest penalty, the first pattern on ties.
    scores = [(_penalty(unmasked ^ mask, layout), pattern) for pattern, mask in enumerate(layout.mask_bits)]
    pattern = min(scores)[1]
    symbol = (unmasked ^ layout.mask_bits[pattern]) | layout.type_bits[pattern]
    size = layout.size
    modules = format(symbol, f"0{size * size}b")[::-1].encode("ascii").translate(_BINARY_TO_MODULE)
    rows = tuple(modules[start : start + size] for start in range(0, size * size, size))
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
    return [list(map(bool, row)) for row in _encode(text).rows]


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
