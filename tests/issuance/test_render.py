"""QR rendering: numeric mode at ECC M, version bounds, PNG decodes back, SVG matches the matrix."""

from __future__ import annotations

import io
import random
import re
import xml.etree.ElementTree as ET

import pytest
import qrcode
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from issuance import render
from issuance.render import qr_matrix, qr_png, qr_svg, qr_version

SVG_NS = "{http://www.w3.org/2000/svg}"


def credential_text(length: int, seed: int) -> str:
    """A realistic credential QR text: the "8401" prefix followed by random digits, ``length`` digits in all."""
    rng = random.Random(seed)
    return "8401" + "".join(rng.choice("0123456789") for _ in range(length - 4))


def decode_png(png: bytes) -> list[zxingcpp.Barcode]:
    return zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))


def svg_dark_modules(svg: str, border: int) -> list[list[bool]]:
    """Rasterise the SVG path (``M x y h w v1 h-w z`` runs) back into a module matrix without the quiet zone."""
    root = ET.fromstring(svg)
    size = int(root.attrib["viewBox"].split()[2])
    grid = [[False] * size for _ in range(size)]
    path = root.find(f"{SVG_NS}path")
    assert path is not None
    for x, y, run in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\3z", path.attrib["d"]):
        for column in range(int(x), int(x) + int(run)):
            assert not grid[int(y)][column], "runs must not overlap"
            grid[int(y)][column] = True
    return [row[border : size - border] for row in grid[border : size - border]]


@pytest.mark.parametrize(("length", "seed"), [(300, 1), (380, 2), (428, 3), (432, 4)])
def test_png_decodes_to_exact_text(length: int, seed: int) -> None:
    text = credential_text(length, seed)
    results = decode_png(qr_png(text))
    assert [result.text for result in results] == [text]
    assert results[0].format == zxingcpp.BarcodeFormat.QRCode
    assert results[0].ec_level == "M"


def test_428_digit_credential_needs_version_9() -> None:
    assert qr_version(credential_text(428, 5)) == 9


def test_380_digit_credential_fits_version_9_or_less() -> None:
    assert qr_version(credential_text(380, 6)) <= 9


def test_432_digits_is_the_version_9_limit() -> None:
    # 432 digits is the numeric capacity of 9-M; one more digit must move to version 10. Byte mode would already
    # need a far larger version, so this also pins numeric mode.
    assert qr_version("1" * 432) == 9
    assert qr_version("1" * 433) == 10


@given(st.text(alphabet="0123456789", min_size=1, max_size=432))
@settings(max_examples=40, deadline=None)
def test_matrix_size_follows_version(text: str) -> None:
    version = qr_version(text)
    matrix = qr_matrix(text)
    assert len(matrix) == 17 + 4 * version
    assert all(len(row) == len(matrix) for row in matrix)
    assert version <= 9


def qrcode_reference_matrix(text: str) -> list[list[bool]]:
    """The symbol qrcode itself builds for the text in numeric mode at ECC M, with its own mask selection."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    code.add_data(qrcode.util.QRData(text, mode=qrcode.util.MODE_NUMBER))
    code.make(fit=True)
    return [[bool(module) for module in row] for row in code.get_matrix()]


@given(st.text(alphabet="0123456789", min_size=1, max_size=1600))
@settings(max_examples=60, deadline=None)
def test_matrix_is_identical_to_qrcode_own_symbol(text: str) -> None:
    # Our encoder and mask selection replace qrcode's for speed; the symbols must be identical, mask included.
    assert qr_matrix(text) == qrcode_reference_matrix(text)


@pytest.mark.parametrize(("length", "seed"), [(300, 20), (380, 21), (428, 22), (432, 23)])
def test_credential_matrix_is_identical_to_qrcode_own_symbol(length: int, seed: int) -> None:
    text = credential_text(length, seed)
    assert qr_matrix(text) == qrcode_reference_matrix(text)


def test_matrix_is_identical_to_qrcode_over_seeded_random_texts() -> None:
    # The encoder (version choice, bit packing, Reed–Solomon, interleaving, placement, mask choice) is our own;
    # qrcode stays the reference. 250 texts cover versions 1–19; qrcode's slow reference encoder bounds the count
    # (1,000 texts took up to a minute), and the mask/penalty test below checks every candidate exactly.
    rng = random.Random(20250701)
    for _ in range(250):
        text = "".join(rng.choices("0123456789", k=rng.randint(1, 1000)))
        assert qr_matrix(text) == qrcode_reference_matrix(text), len(text)


def qrcode_test_symbols(text: str) -> tuple[int, list[list[list[bool]]]]:
    """qrcode's version for the text and the eight symbols its mask selection scores (format information light)."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    code.add_data(qrcode.util.QRData(text, mode=qrcode.util.MODE_NUMBER))
    version = code.best_fit()
    symbols = []
    for pattern in range(8):
        code.makeImpl(True, pattern)
        symbols.append([[bool(module) for module in row] for row in code.modules])
    return version, symbols


def symbol_modules(symbol: int, size: int) -> list[list[bool]]:
    return [[bool(symbol >> (row * size + column) & 1) for column in range(size)] for row in range(size)]


@pytest.mark.parametrize(("length", "seed"), [(1, 30), (40, 31), (154, 32), (412, 33), (700, 34), (1500, 35)])
def test_mask_scores_are_qrcode_lost_points(length: int, seed: int) -> None:
    # Every mask's candidate symbol and score, not only the winner, must be qrcode's, so that ties break alike.
    text = "".join(random.Random(seed).choices("0123456789", k=length))
    version, expected = qrcode_test_symbols(text)
    layout = render._layout(version)
    unmasked = render._unmasked_symbol(render._codewords(text, version), layout)
    for pattern, modules in enumerate(expected):
        symbol = unmasked ^ layout.mask_bits[pattern]
        assert symbol_modules(symbol, layout.size) == modules
        assert render._penalty(symbol, layout) == qrcode.util.lost_point(modules)


def qrcode_best_fit(digits: int) -> int | None:
    """qrcode's version for a numeric text of ``digits`` digits at ECC M, None when it does not fit version 40."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(qrcode.util.QRData("7" * digits, mode=qrcode.util.MODE_NUMBER))
    try:
        return int(code.best_fit())
    except (qrcode.exceptions.DataOverflowError, ValueError):
        return None


def test_capacity_table_agrees_with_qrcode_best_fit() -> None:
    for version in range(1, 41):
        capacity = render._CAPACITY[version - 1]
        assert qrcode_best_fit(capacity) == render._version_for(capacity) == version
        if version < 40:
            assert qrcode_best_fit(capacity + 1) == render._version_for(capacity + 1) == version + 1
    assert qrcode_best_fit(5597) is None
    assert render._CAPACITY[:1] == (34,)  # ISO/IEC 18004 Table 7: 1-M holds 34 digits, 40-M 5596
    assert render._CAPACITY[-1] == 5596


@pytest.mark.parametrize("length", [1, 34, 300, 412, 432, 1000])
def test_all_zero_text_encodes_and_decodes(length: int) -> None:
    # qrcode's own Reed–Solomon division raises ValueError("glog(0)") when a whole data block is zero, as for
    # "0" * 300; ours must encode it.
    text = "0" * length
    version = qr_version(text)
    assert version == render._version_for(length)
    assert len(qr_matrix(text)) == 17 + 4 * version
    results = decode_png(qr_png(text))
    assert [result.text for result in results] == [text]
    assert results[0].ec_level == "M"


def test_reed_solomon_of_a_zero_block_is_zero() -> None:
    assert render._rs_remainder(bytes(36), 22) == bytes(22)


def rs_syndromes(block: bytes) -> list[int]:
    """The block polynomial evaluated at α⁰…α^(n−1) in GF(256) with x⁸ + x⁴ + x³ + x² + 1; all 0 for a codeword."""
    exp = [1]
    for _ in range(254):
        value = exp[-1] << 1
        exp.append(value ^ 0x11D if value & 0x100 else value)

    def mul(a: int, b: int) -> int:
        return 0 if 0 in (a, b) else exp[(exp.index(a) + exp.index(b)) % 255]

    syndromes = []
    for power in range(len(block)):
        value = 0
        for coefficient in block:
            value = mul(value, exp[power]) ^ coefficient
        syndromes.append(value)
    return syndromes


@pytest.mark.parametrize("ecc_count", [10, 16, 22, 26, 28])
def test_reed_solomon_blocks_are_codewords(ecc_count: int) -> None:
    data = bytes(random.Random(ecc_count).choices(range(256), k=40))
    block = data + render._rs_remainder(data, ecc_count)
    assert rs_syndromes(block)[:ecc_count] == [0] * ecc_count


def test_matrix_is_a_fresh_copy() -> None:
    text = credential_text(300, 7)
    first = qr_matrix(text)
    first[0][0] = not first[0][0]
    assert qr_matrix(text)[0][0] != first[0][0]


def test_png_is_small_1_bit_with_quiet_zone() -> None:
    text = credential_text(428, 8)
    image = Image.open(io.BytesIO(qr_png(text, module_px=8, border=4)))
    modules = 17 + 4 * 9
    assert image.format == "PNG"
    assert image.mode == "1"
    assert image.size == ((modules + 8) * 8, (modules + 8) * 8)
    # The quiet zone is white, and the top-left finder pattern starts right after it.
    assert image.getpixel((4 * 8 - 1, 4 * 8 - 1)) == 255
    assert image.getpixel((4 * 8, 4 * 8)) == 0
    assert len(qr_png(text)) < 4_000


def test_png_pixels_match_matrix() -> None:
    text = credential_text(350, 9)
    matrix = qr_matrix(text)
    image = Image.open(io.BytesIO(qr_png(text, module_px=3, border=2)))
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            assert image.getpixel(((x + 2) * 3 + 1, (y + 2) * 3 + 1)) == (0 if dark else 255)


def test_svg_is_one_path_over_a_white_background_and_matches_matrix() -> None:
    text = credential_text(400, 10)
    svg = qr_svg(text, border=4)
    root = ET.fromstring(svg)
    size = 17 + 4 * qr_version(text) + 8
    assert root.tag == f"{SVG_NS}svg"
    assert root.attrib["viewBox"] == f"0 0 {size} {size}"
    background = root.find(f"{SVG_NS}rect")
    assert background is not None
    assert background.attrib["fill"] == "#fff"
    assert (background.attrib["width"], background.attrib["height"]) == (str(size), str(size))
    assert len(root.findall(f"{SVG_NS}path")) == 1
    assert svg_dark_modules(svg, border=4) == qr_matrix(text)


@pytest.mark.parametrize("text", ["", "8401 2345", "84O1", "8401٣", "abc"])
def test_non_digit_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ASCII digits"):
        qr_png(text)


def test_text_beyond_version_40_is_refused() -> None:
    # 5596 digits is the numeric capacity of 40-M.
    assert qr_version("1" * 5596) == 40
    with pytest.raises(ValueError, match="version 40"):
        qr_version("1" * 5597)


@pytest.mark.parametrize("kwargs", [{"module_px": 0}, {"border": -1}])
def test_bad_png_geometry_is_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        qr_png(credential_text(300, 11), **kwargs)


def test_svg_border_zero_is_allowed_and_negative_refused() -> None:
    text = credential_text(300, 12)
    assert svg_dark_modules(qr_svg(text, border=0), border=0) == qr_matrix(text)
    with pytest.raises(ValueError):
        qr_svg(text, border=-1)
