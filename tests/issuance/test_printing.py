"""Printable cards: CR80 page, scannable vector QR of at least 20 mm, Vietnamese text intact, A4 sheets."""

from __future__ import annotations

import dataclasses
import io
import random
import re
import unicodedata
from datetime import date
from pathlib import Path
from typing import Any

import pypdfium2
import pytest
import zxingcpp
from PIL import Image

from issuance.printing import (
    CARD_HEIGHT_MM,
    CARD_WIDTH_MM,
    CardFace,
    FontNotFoundError,
    _qr_operators,
    card_pdf,
    sheets_pdf,
)
from issuance.render import qr_matrix, qr_version

DPI = 300
MM_PER_INCH = 25.4
POINTS_PER_MM = 72 / MM_PER_INCH
NAME = "Nguyễn Thị Phương Thảo Vy"
LONG_NAME = "Tôn Nữ Thị Hoàng Phương Thảo Nguyên Khánh Vy"
CHAPTER = "Chi hội Phụ nữ Tổ dân phố 5, Phường Thanh Xuân Trung"


def credential_text(length: int, seed: int) -> str:
    rng = random.Random(seed)
    return "8401" + "".join(rng.choice("0123456789") for _ in range(length - 4))


def make_face(seed: int = 0, **changes: Any) -> CardFace:
    face = CardFace(
        union_name="Hội Liên hiệp Phụ nữ Việt Nam",
        full_name=NAME,
        member_number="0000001867",
        chapter_name=CHAPTER,
        issued_on=date(2025, 7, 1),
        expires_on=date(2030, 6, 30),
        qr_text=credential_text(300 + (seed * 37) % 129, seed),
    )
    return dataclasses.replace(face, **changes)


def jpeg_photo() -> bytes:
    photo = Image.new("RGB", (300, 400), (190, 140, 110))
    out = io.BytesIO()
    photo.save(out, format="JPEG", quality=80)
    return out.getvalue()


def rasterise(pdf: bytes) -> list[Image.Image]:
    document = pypdfium2.PdfDocument(pdf)
    return [page.render(scale=DPI / 72).to_pil() for page in document]


def page_text(pdf: bytes, index: int = 0) -> str:
    return str(pypdfium2.PdfDocument(pdf)[index].get_textpage().get_text_range())


def decoded_texts(image: Image.Image) -> list[str]:
    return [result.text for result in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]


def test_card_page_is_cr80() -> None:
    page = pypdfium2.PdfDocument(card_pdf(make_face()))[0]
    width, height = page.get_size()
    assert width / POINTS_PER_MM == pytest.approx(CARD_WIDTH_MM, abs=0.1)
    assert height / POINTS_PER_MM == pytest.approx(CARD_HEIGHT_MM, abs=0.1)
    assert (CARD_WIDTH_MM, CARD_HEIGHT_MM) == (85.6, 54.0)


@pytest.mark.parametrize(("length", "seed"), [(300, 1), (380, 2), (428, 3)])
def test_card_qr_decodes_and_symbol_is_at_least_20_mm(length: int, seed: int) -> None:
    face = make_face(qr_text=credential_text(length, seed))
    (image,) = rasterise(card_pdf(face))
    (result,) = zxingcpp.read_barcodes(image)
    assert result.text == face.qr_text
    position = result.position
    width_px = max(position.top_right.x, position.bottom_right.x) - min(position.top_left.x, position.bottom_left.x)
    height_px = max(position.bottom_left.y, position.bottom_right.y) - min(position.top_left.y, position.top_right.y)
    assert width_px / DPI * MM_PER_INCH >= 20
    assert height_px / DPI * MM_PER_INCH >= 20
    # The symbol sits on the right half of the card, the text column on the left.
    assert min(position.top_left.x, position.bottom_left.x) > image.width / 2


def test_card_qr_is_vector_not_bitmap() -> None:
    document = pypdfium2.PdfDocument(card_pdf(make_face()))
    kinds = {obj.type for obj in document[0].get_objects()}
    assert pypdfium2.raw.FPDF_PAGEOBJ_IMAGE not in kinds
    assert pypdfium2.raw.FPDF_PAGEOBJ_PATH in kinds


def test_card_text_keeps_vietnamese_diacritics() -> None:
    text = page_text(card_pdf(make_face()))
    assert NAME in text
    # The chapter name may wrap onto two lines; with the line break read as a space it must be exactly as given.
    assert CHAPTER in " ".join(line.strip() for line in text.splitlines())
    assert "Hội Liên hiệp Phụ nữ Việt Nam" in text
    assert "THẺ HỘI VIÊN" in text
    assert "0000 0018 67" in text
    assert "Giá trị đến / Valid until: 30/06/2030" in text


def test_nfd_input_is_printed_nfc() -> None:
    text = page_text(card_pdf(make_face(full_name=unicodedata.normalize("NFD", NAME))))
    assert NAME in text


def test_very_long_name_is_printed_whole() -> None:
    face = make_face(full_name=LONG_NAME)
    pdf = card_pdf(face)
    assert LONG_NAME in page_text(pdf)
    (image,) = rasterise(pdf)
    assert decoded_texts(image) == [face.qr_text]


def test_long_chapter_name_wraps_to_two_lines_and_stays_whole() -> None:
    chapter = "Chi hội Phụ nữ Tổ dân phố số 12, Phường Thanh Xuân Trung, Quận Thanh Xuân, Thành phố Hà Nội"
    text = page_text(card_pdf(make_face(chapter_name=chapter)))
    lines = [line.strip() for line in text.splitlines()]
    start = next(index for index, line in enumerate(lines) if chapter.startswith(line) and line)
    assert " ".join(lines[start : start + 2]) == chapter


def test_card_with_photo_renders_and_scans() -> None:
    face = make_face(photo_jpeg=jpeg_photo())
    pdf = card_pdf(face)
    document = pypdfium2.PdfDocument(pdf)
    assert pypdfium2.raw.FPDF_PAGEOBJ_IMAGE in {obj.type for obj in document[0].get_objects()}
    (image,) = rasterise(pdf)
    assert decoded_texts(image) == [face.qr_text]
    assert NAME in page_text(pdf)


def test_unreadable_photo_is_refused() -> None:
    with pytest.raises(ValueError, match="photo"):
        card_pdf(make_face(photo_jpeg=b"not a jpeg"))


def test_longest_credentials_print_and_larger_ones_are_refused() -> None:
    longest = credential_text(658, 13)  # the 100-byte-name vector: version 12
    assert qr_version(longest) == 12
    assert card_pdf(make_face(qr_text=longest)).startswith(b"%PDF")
    too_large = credential_text(1000, 13)
    assert qr_version(too_large) > 13
    with pytest.raises(ValueError, match=f"version {qr_version(too_large)}"):
        card_pdf(make_face(qr_text=too_large))


def test_card_version_limit_matches_qr_version_at_the_boundary() -> None:
    # The face check bounds the digit count instead of encoding the symbol; the bound must be qr_version's own.
    assert qr_version("1" * 796) == 13
    assert card_pdf(make_face(qr_text="8401" + "7" * 792)).startswith(b"%PDF")
    assert qr_version("1" * 797) == 14
    with pytest.raises(ValueError, match="797 digits needs version 14"):
        card_pdf(make_face(qr_text="8401" + "7" * 793))
    with pytest.raises(ValueError, match="ASCII digits"):
        sheets_pdf([make_face(), make_face(qr_text="8401-0042")])


@pytest.mark.parametrize("seed", range(6))
def test_qr_rectangles_paint_exactly_the_dark_modules(seed: int) -> None:
    text = credential_text(300 + seed * 71, seed)
    matrix = qr_matrix(text)
    count = len(matrix)
    operators = _qr_operators(text)
    # Module units: one scale of box / (count + 8) and a translation to the inner corner of the quiet zone.
    scale = re.search(r"0 g ([\d.]+) 0 0 -([\d.]+) ", operators)
    assert scale is not None and scale.group(1) == scale.group(2)
    module = float(scale.group(1))
    assert module * (count + 8) == pytest.approx(29 * POINTS_PER_MM, abs=1e-3)
    painted = [[0] * count for _ in range(count)]
    for x, y, w, h in re.findall(r"^(\d+) (\d+) (\d+) (\d+) re$", operators, flags=re.M):
        for row in range(int(y), int(y) + int(h)):
            for column in range(int(x), int(x) + int(w)):
                painted[row][column] += 1
    assert painted == [[int(dark) for dark in row] for row in matrix]


def test_same_face_gives_same_bytes() -> None:
    assert card_pdf(make_face()) == card_pdf(make_face())


def test_sheets_put_ten_cards_per_a4_page_and_every_qr_scans() -> None:
    faces = [make_face(seed, full_name=LONG_NAME if seed % 3 == 0 else NAME) for seed in range(11)]
    pdf = sheets_pdf(faces)
    document = pypdfium2.PdfDocument(pdf)
    assert len(document) == 2
    for page in document:
        width, height = page.get_size()
        assert width / POINTS_PER_MM == pytest.approx(210, abs=0.1)
        assert height / POINTS_PER_MM == pytest.approx(297, abs=0.1)
    first, second = rasterise(pdf)
    assert sorted(decoded_texts(first)) == sorted(face.qr_text for face in faces[:10])
    assert decoded_texts(second) == [faces[10].qr_text]
    assert page_text(pdf, 1).count("THẺ HỘI VIÊN") == 1


def test_every_qr_of_a_25_card_sheet_decodes() -> None:
    faces = [make_face(seed, member_number=f"{seed:010d}") for seed in range(25)]
    pdf = sheets_pdf(faces)
    pages = rasterise(pdf)
    assert len(pages) == 3
    for index, page in enumerate(pages):
        expected = [face.qr_text for face in faces[index * 10 : index * 10 + 10]]
        assert sorted(decoded_texts(page)) == sorted(expected)
    assert page_text(pdf, 2).count("THẺ HỘI VIÊN") == 5
    assert "0000 0000 24" in page_text(pdf, 2)


def test_sheet_fonts_are_embedded_once_per_document() -> None:
    # Regular and bold, each one TrueType subset, however many cards and pages; the object dictionaries are not
    # compressed, so they can be counted in the file.
    one = sheets_pdf([make_face()])
    many = sheets_pdf([make_face(seed) for seed in range(25)])
    assert one.count(b"/FontFile2") == many.count(b"/FontFile2") == 2


def test_sheet_cut_marks_stay_outside_the_cards() -> None:
    (page,) = rasterise(sheets_pdf([make_face()]))
    gray = page.convert("L")
    px_per_mm = DPI / MM_PER_INCH
    card_w, card_h = CARD_WIDTH_MM * px_per_mm, CARD_HEIGHT_MM * px_per_mm
    left = (page.width - 2 * card_w - 10 * px_per_mm) / 2
    top = (page.height - 5 * card_h - 4 * 3 * px_per_mm) / 2
    # A hairline mark extends the top edge to the left of the first card, 1 to 4 mm outside it. Anti-aliasing spreads
    # it over a row or two, so look for the darkest pixel in a strip of 5 rows around the edge.
    for distance_mm in (2, 2.5, 3):
        x = round(left - distance_mm * px_per_mm)
        assert min(gray.getpixel((x, round(top) + dy)) for dy in range(-2, 3)) < 160
    # Just outside the card corner (inside the 1 mm offset) and inside the other slots stays blank.
    assert gray.getpixel((round(left - 0.4 * px_per_mm), round(top - 0.4 * px_per_mm))) > 200
    assert gray.getpixel((round(left + card_w + 20 * px_per_mm), round(top + card_h / 2))) > 200


def test_sheets_refuse_an_empty_batch() -> None:
    with pytest.raises(ValueError, match="no cards"):
        sheets_pdf([])


def test_missing_fonts_raise_font_not_found(tmp_path: Path) -> None:
    with pytest.raises(FontNotFoundError, match="fonts-dejavu-core"):
        card_pdf(make_face(), font_dir=tmp_path, font_dirs=())
    with pytest.raises(FontNotFoundError):
        sheets_pdf([make_face()], font_dir=tmp_path, font_dirs=())
    assert issubclass(FontNotFoundError, RuntimeError)


def test_font_dir_is_searched_first(tmp_path: Path) -> None:
    system_fonts = Path("/usr/share/fonts/truetype/dejavu")
    for name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"):
        (tmp_path / name).write_bytes((system_fonts / name).read_bytes())
    pdf = card_pdf(make_face(), font_dir=tmp_path, font_dirs=())
    assert NAME in page_text(pdf)
