"""Reading member list files: encodings, delimiters, XLSX, header mapping (DOMAIN.md §3)."""

from __future__ import annotations

import io
import unicodedata
import zipfile
from collections.abc import Sequence
from datetime import datetime

import pytest
from openpyxl import Workbook

from cardsvc.importing.files import ImportFileError, parse_bool, read_member_table

HEADER_VI = ["STT", "Họ và tên", "Ngày sinh", "Giới tính", "Số CCCD", "Số điện thoại"]
ROWS_VI = [
    ["1", "Nguyễn Thị Phương Thảo", "25/03/1985", "Nữ", "079185123456", "0912345678"],
    ["2", "Đặng Thị Huệ", "01/02/1990", "Nữ", "001190123456", ""],
]

_TONE_MARKS = frozenset("\u0300\u0301\u0303\u0309\u0323")


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


def csv_text(rows: list[list[str]], delimiter: str = ",") -> str:
    return "\r\n".join(delimiter.join(row) for row in rows) + "\r\n"


def xlsx_bytes(rows: Sequence[Sequence[object]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _check_vietnamese_table(table_rows: list[dict[str, object]]) -> None:
    assert table_rows[0]["full_name"] == "Nguyễn Thị Phương Thảo"
    assert table_rows[1]["full_name"] == "Đặng Thị Huệ"
    assert table_rows[0]["id_number"] == "079185123456"
    assert "phone" not in table_rows[1]  # empty cells are absent


# --- text encodings -----------------------------------------------------------------------------------------


def test_utf8_bom_csv() -> None:
    data = b"\xef\xbb\xbf" + csv_text([HEADER_VI, *ROWS_VI]).encode("utf-8")
    table = read_member_table(data, "hoi_vien.csv")
    assert table.format == "csv"
    assert table.encoding == "utf-8-sig"
    assert table.columns == {
        "full_name": "Họ và tên",
        "birth_date": "Ngày sinh",
        "gender": "Giới tính",
        "id_number": "Số CCCD",
        "phone": "Số điện thoại",
    }
    assert table.ignored_columns == []  # STT is dropped silently
    assert [row.number for row in table.rows] == [2, 3]
    _check_vietnamese_table([row.values for row in table.rows])


def test_plain_utf8_semicolon_csv() -> None:
    table = read_member_table(csv_text([HEADER_VI, *ROWS_VI], ";").encode("utf-8"))
    assert table.encoding == "utf-8"
    _check_vietnamese_table([row.values for row in table.rows])


def test_utf16le_tab_separated_with_bom() -> None:
    data = csv_text([HEADER_VI, *ROWS_VI], "\t").encode("utf-16")  # Python writes a BOM, little-endian here
    assert data.startswith(b"\xff\xfe")
    table = read_member_table(data, "hoi_vien.txt")
    assert table.encoding == "utf-16-le"
    _check_vietnamese_table([row.values for row in table.rows])


@pytest.mark.parametrize(("codec", "bom"), [("utf-16-le", b""), ("utf-16-be", b""), ("utf-16-be", b"\xfe\xff")])
def test_utf16_variants(codec: str, bom: bytes) -> None:
    data = bom + csv_text([HEADER_VI, *ROWS_VI], "\t").encode(codec)
    table = read_member_table(data)
    assert table.encoding == codec
    _check_vietnamese_table([row.values for row in table.rows])


def test_cp1258_csv_comes_out_nfc() -> None:
    data = to_cp1258(csv_text([HEADER_VI, *ROWS_VI]))
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    table = read_member_table(data)
    assert table.encoding == "cp1258"
    assert "full_name" in table.columns
    _check_vietnamese_table([row.values for row in table.rows])
    name = table.rows[0].values["full_name"]
    assert isinstance(name, str) and unicodedata.is_normalized("NFC", name)


def test_tcvn3_file_is_refused_with_advice() -> None:
    # "Phạm Văn Hà", "Trần Thị Lâm" in TCVN3 (ABC): ạ=B9, ă=A8, à=B5, â=A9.
    data = b"Ho ten,Ngay sinh\r\nPh\xb9m V\xa8n H\xb5,1985\r\nTr\xa9n Th\xb5 L\xa9m,1990\r\n"
    with pytest.raises(ImportFileError) as info:
        read_member_table(data)
    assert info.value.code == "bad_encoding"
    assert "Unikey" in info.value.message_vi


def test_damaged_utf8_is_not_read_as_cp1258() -> None:
    data = csv_text([HEADER_VI, *ROWS_VI]).encode("utf-8") + b"Tr\xe1n Th\xef Lan,1985\r\n"
    with pytest.raises(ImportFileError) as info:
        read_member_table(data)
    assert info.value.code == "bad_encoding"


def test_nfd_utf8_is_normalised() -> None:
    text = unicodedata.normalize("NFD", csv_text([HEADER_VI, *ROWS_VI]))
    table = read_member_table(text.encode("utf-8"))
    _check_vietnamese_table([row.values for row in table.rows])


def test_quoted_cells_with_line_breaks_keep_excel_row_numbers() -> None:
    text = 'Họ và tên,Ghi chú\r\n"Lê Thị A","dòng 1\r\ndòng 2"\r\n\r\nTrần Thị B,"a, b"\r\n'
    table = read_member_table(text.encode("utf-8"))
    assert [(row.number, row.values["full_name"]) for row in table.rows] == [
        (2, "Lê Thị A"),
        (4, "Trần Thị B"),
    ]
    assert table.ignored_columns == ["Ghi chú"]


def test_bad_utf16_is_reported() -> None:
    with pytest.raises(ImportFileError) as info:
        read_member_table(b"\xff\xfe" + b"\x00\xd8a\x00")  # lone surrogate
    assert info.value.code == "bad_encoding"


# --- XLSX ---------------------------------------------------------------------------------------------------


def test_xlsx_with_numeric_id_and_real_date() -> None:
    data = xlsx_bytes(
        [
            [],
            [None, None],
            ["STT", "Họ và tên", "Ngày sinh", "Số CCCD", "Hội viên danh dự", "Quê quán"],
            [1, "NGUYỄN THỊ LAN", datetime(1985, 3, 25), 79185123456, None, "Huế"],
            [None, None, None, None, None, None],
            [2, "Trần Thị Bích", datetime(1990, 1, 2), "001190123456", "x", None],
            [3, None, None, None, None, None],  # pre-numbered template row
        ]
    )
    table = read_member_table(data, "danh_sach.xlsx")
    assert table.format == "xlsx"
    assert table.encoding is None
    assert table.ignored_columns == ["Quê quán"]
    assert [row.number for row in table.rows] == [4, 6]
    first, second = (row.values for row in table.rows)
    assert first["id_number"] == 79185123456  # raw; the row validator repairs it
    assert first["birth_date"] == datetime(1985, 3, 25)
    assert "honorary" not in first
    assert second["honorary"] == "x"


def test_xlsx_first_sheet_is_read() -> None:
    workbook = Workbook()
    first = workbook.active
    assert first is not None
    first.append(["Họ tên"])
    first.append(["Lê Thị Mai"])
    other = workbook.create_sheet("Khác")
    other.append(["Họ tên"])
    other.append(["Sai"])
    workbook.active = 1
    buffer = io.BytesIO()
    workbook.save(buffer)
    table = read_member_table(buffer.getvalue())
    assert [row.values["full_name"] for row in table.rows] == ["Lê Thị Mai"]


def test_broken_xlsx() -> None:
    data = xlsx_bytes([["Họ và tên"], ["Lê Thị Mai"]])
    with pytest.raises(ImportFileError) as info:
        read_member_table(data[: len(data) // 2])
    assert info.value.code == "bad_xlsx"


def test_zip_that_is_not_xlsx() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(ImportFileError) as info:
        read_member_table(buffer.getvalue())
    assert info.value.code == "bad_xlsx"


def test_old_xls_is_refused_with_advice() -> None:
    with pytest.raises(ImportFileError) as info:
        read_member_table(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "cu.xls")
    assert info.value.code == "unsupported_format"
    assert "XLSX" in info.value.message_en.upper() and "CSV UTF-8" in info.value.message_vi


# --- headers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("Mã hội viên", "member_number"),
        ("MA HV", "member_number"),
        ("Số thẻ hội viên", "member_number"),
        ("member_number", "member_number"),
        ("Member No", "member_number"),
        ("HỌ VÀ TÊN", "full_name"),
        ("ho ten", "full_name"),
        ("Tên hội viên", "full_name"),
        ("Full Name", "full_name"),
        ("Ngày tháng năm sinh", "birth_date"),
        ("Năm sinh", "birth_date"),
        ("Ngày sinh (dd/mm/yyyy)", "birth_date"),
        ("DOB", "birth_date"),
        ("Giới tính", "gender"),
        ("Sex", "gender"),
        ("Số định danh cá nhân", "id_number"),
        ("CCCD", "id_number"),
        ("Số căn cước", "id_number"),
        ("Citizen ID", "id_number"),
        ("Số CMND", "old_id_number"),
        ("old id number", "old_id_number"),
        ("SĐT", "phone"),
        ("SDT", "phone"),
        ("Điện thoại", "phone"),
        ("Mobile", "phone"),
        ("Ngày kết nạp", "join_date"),
        ("Ngày vào Hội", "join_date"),
        ("Mã chi hội", "chapter_code"),
        ("Mã đơn vị", "chapter_code"),
        ("Chapter", "chapter_code"),
        ("Danh dự", "honorary"),
        ("Honorary", "honorary"),
    ],
)
def test_header_aliases(header: str, field: str) -> None:
    name_header = "Name" if field != "full_name" else "Ghi chú"
    text = f"{name_header},{header}\nLê Thị Mai,v\n"
    table = read_member_table(text.encode("utf-8"))
    assert table.columns[field] == header


def test_english_headers() -> None:
    text = "No.,Full name,Date of birth,Gender,ID number,Phone,Join date,Chapter code,Honorary,Notes\n"
    text += "1,Mai Le,1985-03-25,female,079185123456,0912345678,2020-01-01,HN01,no,hi\n"
    table = read_member_table(text.encode("utf-8"))
    assert set(table.columns) == {
        "full_name", "birth_date", "gender", "id_number", "phone", "join_date", "chapter_code", "honorary",
    }  # fmt: skip
    assert table.ignored_columns == ["Notes"]
    assert table.rows[0].values["chapter_code"] == "HN01"


def test_duplicate_column() -> None:
    with pytest.raises(ImportFileError) as info:
        read_member_table("Họ và tên,Họ tên\nA,B\n".encode())
    assert info.value.code == "duplicate_column"


def test_missing_name_column() -> None:
    with pytest.raises(ImportFileError) as info:
        read_member_table("Ngày sinh,Số CCCD\n1985,079185123456\n".encode())
    assert info.value.code == "missing_column"


def test_file_without_header() -> None:
    with pytest.raises(ImportFileError) as info:
        read_member_table("Lê Thị Mai,1985\nTrần Thị Lan,1990\n".encode())
    assert info.value.code == "no_header"


# --- limits -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"   \r\n", b"\xef\xbb\xbf", b",,,\r\n,,\r\n"])
def test_empty_file(data: bytes) -> None:
    with pytest.raises(ImportFileError) as info:
        read_member_table(data)
    assert info.value.code == "empty_file"


def test_too_large() -> None:
    with pytest.raises(ImportFileError) as info:
        read_member_table(b"a" * (20 * 1024 * 1024 + 1))
    assert info.value.code == "too_large"


def test_too_many_rows() -> None:
    text = "Họ và tên\n" + "Lê Thị Mai\n" * 11
    assert len(read_member_table(text.encode(), max_rows=11).rows) == 11
    with pytest.raises(ImportFileError) as info:
        read_member_table(text.encode(), max_rows=10)
    assert info.value.code == "too_many_rows"


def test_too_many_rows_xlsx() -> None:
    data = xlsx_bytes([["Họ và tên"]] + [["Lê Thị Mai"]] * 6)
    with pytest.raises(ImportFileError) as info:
        read_member_table(data, max_rows=5)
    assert info.value.code == "too_many_rows"


def test_error_messages_are_bilingual() -> None:
    with pytest.raises(ImportFileError) as info:
        read_member_table(b"")
    assert str(info.value) == info.value.message_en
    assert info.value.message_vi and info.value.message_vi != info.value.message_en


# --- parse_bool ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["x", "X", "có", "Có", "co", "yes", "TRUE", "1", 1, True])
def test_parse_bool_true(value: object) -> None:
    assert parse_bool(value) is True


@pytest.mark.parametrize("value", ["", " ", "không", "Không", "khong", "no", "false", "0", 0, None, False])
def test_parse_bool_false(value: object) -> None:
    assert parse_bool(value) is False


@pytest.mark.parametrize("value", ["maybe", "2", 2, 0.5])
def test_parse_bool_refuses(value: object) -> None:
    with pytest.raises(ValueError):
        parse_bool(value)
