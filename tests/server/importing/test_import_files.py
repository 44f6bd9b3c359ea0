"""Reading member list files: encodings, delimiters, XLSX, header mapping (DOMAIN.md §3)."""

from __future__ import annotations

import io
import re
import struct
import unicodedata
import zipfile
from collections.abc import Sequence
from datetime import datetime

import pytest
from openpyxl import Workbook

from cardsvc.importing.files import ReadBudget, parse_bool, read_member_table
from integrations.errors import InputError
from tests.server.importing.builders import rewrite_xlsx_part, to_cp1258, xlsx_from_xml

HEADER_VI = ["STT", "Họ và tên", "Ngày sinh", "Giới tính", "Số CCCD", "Số điện thoại"]
ROWS_VI = [
    ["1", "Nguyễn Thị Phương Thảo", "25/03/1985", "Nữ", "079185123456", "0912345678"],
    ["2", "Đặng Thị Huệ", "01/02/1990", "Nữ", "001190123456", ""],
]


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
    with pytest.raises(InputError) as info:
        read_member_table(data)
    assert info.value.code == "bad_encoding"
    assert "Unikey" in info.value.message_vi


def test_damaged_utf8_is_not_read_as_cp1258() -> None:
    data = csv_text([HEADER_VI, *ROWS_VI]).encode("utf-8") + b"Tr\xe1n Th\xef Lan,1985\r\n"
    with pytest.raises(InputError) as info:
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
    with pytest.raises(InputError) as info:
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
    with pytest.raises(InputError) as info:
        read_member_table(data[: len(data) // 2])
    assert info.value.code == "bad_xlsx"


def test_zip_that_is_not_xlsx() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(InputError) as info:
        read_member_table(buffer.getvalue())
    assert info.value.code == "bad_xlsx"


def test_old_xls_is_refused_with_advice() -> None:
    with pytest.raises(InputError) as info:
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
    with pytest.raises(InputError) as info:
        read_member_table("Họ và tên,Họ tên\nA,B\n".encode())
    assert info.value.code == "duplicate_column"


def test_missing_name_column() -> None:
    with pytest.raises(InputError) as info:
        read_member_table("Ngày sinh,Số CCCD\n1985,079185123456\n".encode())
    assert info.value.code == "missing_column"


def test_file_without_header() -> None:
    with pytest.raises(InputError) as info:
        read_member_table("Lê Thị Mai,1985\nTrần Thị Lan,1990\n".encode())
    assert info.value.code == "no_header"


# --- limits -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"   \r\n", b"\xef\xbb\xbf", b",,,\r\n,,\r\n"])
def test_empty_file(data: bytes) -> None:
    with pytest.raises(InputError) as info:
        read_member_table(data)
    assert info.value.code == "empty_file"


def test_too_large() -> None:
    with pytest.raises(InputError) as info:
        read_member_table(b"a" * (20 * 1024 * 1024 + 1))
    assert info.value.code == "too_large"


def test_too_many_rows() -> None:
    text = "Họ và tên\n" + "Lê Thị Mai\n" * 11
    assert len(read_member_table(text.encode(), max_rows=11).rows) == 11
    with pytest.raises(InputError) as info:
        read_member_table(text.encode(), max_rows=10)
    assert info.value.code == "too_many_rows"


def test_too_many_rows_xlsx() -> None:
    data = xlsx_bytes([["Họ và tên"]] + [["Lê Thị Mai"]] * 6)
    with pytest.raises(InputError) as info:
        read_member_table(data, max_rows=5)
    assert info.value.code == "too_many_rows"


def test_error_messages_are_bilingual() -> None:
    with pytest.raises(InputError) as info:
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


# --- bounded work (issue #13, item 3) -----------------------------------------------------------------------

_SHEET = "xl/worksheets/sheet1.xml"


def _two_members() -> bytes:
    return xlsx_bytes([HEADER_VI, *ROWS_VI])


def test_a_row_number_far_beyond_excel_is_refused_after_reading_the_rows_present() -> None:
    # The 1.6 kB file of the issue: its last row claims index 1,000,000,000 (openpyxl filled in every row before).
    data = rewrite_xlsx_part(_two_members(), _SHEET, lambda xml: re.sub(
        rb'<row r="3"(.*?)</row>', lambda m: b'<row r="1000000000"' + m.group(1).replace(b'3"', b'1000000000"')
        + b"</row>", xml, flags=re.S))
    assert len(data) < 8000
    budget = ReadBudget()
    with pytest.raises(InputError) as info:
        read_member_table(data, "far.xlsx", budget=budget)
    assert info.value.code == "bad_xlsx" and "1000000000" in info.value.message_vi
    assert budget.rows_visited == 2  # the header and the first member; the third row is refused
    assert budget.bytes_inflated < 10_000


def test_rows_are_read_as_the_xml_holds_them_not_by_index() -> None:
    # Excel's last row is legal: the member there keeps her row number, and nothing in between is visited.
    data = rewrite_xlsx_part(_two_members(), _SHEET, lambda xml: xml.replace(b'r="3"', b'r="1048576"').replace(
        b'3" t=', b'1048576" t='))
    budget = ReadBudget()
    table = read_member_table(data, budget=budget)
    assert [row.number for row in table.rows] == [2, 1048576]
    assert budget.rows_visited == 3


def test_rows_out_of_order_are_a_damaged_file() -> None:
    data = rewrite_xlsx_part(_two_members(), _SHEET, lambda xml: xml.replace(b'<row r="3"', b'<row r="2"'))
    with pytest.raises(InputError) as info:
        read_member_table(data)
    assert info.value.code == "bad_xlsx"


def _bomb(inflated: int) -> bytes:
    """A workbook whose sheet XML is padded with ``inflated`` bytes of whitespace: it compresses ~1000 times."""
    return rewrite_xlsx_part(_two_members(), _SHEET,
                             lambda xml: xml.replace(b"<sheetData>", b"<sheetData>" + b" " * inflated))


def test_a_zip_bomb_under_the_upload_cap_is_refused_before_anything_is_inflated() -> None:
    data = _bomb(40 * 1024 * 1024)
    assert len(data) < 200_000
    budget = ReadBudget()
    with pytest.raises(InputError) as info:
        read_member_table(data, budget=budget)
    assert info.value.code == "bad_xlsx" and "bom zip" in info.value.message_vi
    assert budget.bytes_inflated == 0 and budget.rows_visited == 0


def test_declared_uncompressed_size_is_capped() -> None:
    data = _bomb(2 * 1024 * 1024)
    with pytest.raises(InputError) as info:
        read_member_table(data, budget=ReadBudget(max_inflated_bytes=1024 * 1024, max_ratio=10_000))
    assert info.value.code == "too_large"
    # Within the caps, the same file reads.
    assert len(read_member_table(data, budget=ReadBudget(max_ratio=10_000)).rows) == 2


def _forge_declared_size(data: bytes, name: str, size: int) -> bytes:
    """``data`` with the uncompressed size of ``name`` declared as ``size`` in both zip headers."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(name)
        real = info.file_size
    forged = bytearray(data)
    local = info.header_offset
    struct.pack_into("<I", forged, local + 22, size)
    central = data.index(b"PK\x01\x02" + data[local + 4:local + 30][:0], data.rindex(name.encode()) - 46)
    assert struct.unpack_from("<I", forged, central + 24)[0] == real
    struct.pack_into("<I", forged, central + 24, size)
    return bytes(forged)


def test_a_part_that_inflates_beyond_its_declared_size_is_refused_at_that_size() -> None:
    data = _forge_declared_size(_bomb(8 * 1024 * 1024), _SHEET, 100_000)
    budget = ReadBudget()
    with pytest.raises(InputError) as info:
        read_member_table(data, budget=budget)
    assert info.value.code == "bad_xlsx"
    assert budget.bytes_inflated <= 200_000


def test_the_time_budget_refuses_a_slow_file() -> None:
    ticks = iter([0.0, 0.0, 1000.0, 1000.0])
    text = "Họ và tên\n" + "Lê Thị Mai\n" * 2500
    with pytest.raises(InputError) as info:
        read_member_table(text.encode(), budget=ReadBudget(seconds=60, clock=lambda: next(ticks)))
    assert info.value.code == "too_large" and "thời gian" in info.value.message_vi


def test_xml_declaring_entities_is_refused() -> None:
    data = rewrite_xlsx_part(_two_members(), _SHEET, lambda xml: xml.replace(
        b"<worksheet", b'<!DOCTYPE worksheet [<!ENTITY name "L\xc3\xaa Th\xe1\xbb\x8b Mai">]><worksheet', 1
    ).replace("Đặng Thị Huệ".encode(), b"&name;"))
    with pytest.raises(InputError) as info:
        read_member_table(data)
    assert info.value.code == "bad_xlsx"


def test_cells_far_to_the_right_are_not_read() -> None:
    rows: list[list[object]] = [[*HEADER_VI, *([None] * 200), "Ghi chú xa"], [*ROWS_VI[0], *([None] * 200), "x"]]
    table = read_member_table(xlsx_bytes(rows))
    assert table.ignored_columns == []
    assert max(max(cells) for _, cells in table.records) < 128


# --- sheets as Excel writes them ----------------------------------------------------------------------------


def test_excel_style_parts_shared_strings_dates_and_prefixes() -> None:
    data = xlsx_from_xml(
        '<x:row r="2"><x:c r="B2" t="s"><x:v>0</x:v></x:c><x:c r="C2" t="s"><x:v>1</x:v></x:c>'
        '<x:c r="D2" t="s"><x:v>2</x:v></x:c></x:row>'
        '<x:row r="3"><x:c r="B3" t="s"><x:v>3</x:v></x:c><x:c r="C3" s="1"><x:v>31131</x:v></x:c>'
        '<x:c r="D3"><x:v>79185123456</x:v></x:c><x:c r="E3" t="b"><x:v>1</x:v></x:c></x:row>'
        '<x:row r="4"><x:c r="B4" t="inlineStr"><x:is><x:r><x:t>Trần Thị </x:t></x:r><x:r><x:t>Bích</x:t></x:r>'
        '</x:is></x:c><x:c r="C4" s="2"><x:v>1</x:v></x:c><x:c r="D4" t="str"><x:f>A1</x:f><x:v>001190123456</x:v>'
        "</x:c></x:row>",
        shared_strings=["Họ và tên", "Ngày sinh", "Số CCCD", "Nguyễn Thị Lan"],
        num_fmts='<x:numFmt numFmtId="164" formatCode="dd/mm/yyyy"/>', cell_formats=[0, 164, 14], date1904=True,
        prefix="x",
    )
    table = read_member_table(data, "excel.xlsx")
    assert table.header_row == 2 and table.letters == {"full_name": "B", "birth_date": "C", "id_number": "D"}
    first, second = (row.values for row in table.rows)
    assert first == {"full_name": "Nguyễn Thị Lan", "birth_date": datetime(1989, 3, 26),  # 1904 calendar
                     "id_number": 79185123456}
    assert second == {"full_name": "Trần Thị Bích", "birth_date": datetime(1904, 1, 2), "id_number": "001190123456"}


# --- real lists (issue #13, item 4) -------------------------------------------------------------------------

_TITLE = [["HỘI LIÊN HIỆP PHỤ NỮ PHƯỜNG BA ĐÌNH"], ["DANH SÁCH HỘI VIÊN CHI HỘI 1"],
          ["Tính đến ngày 12/3/2025"], []]
_FOOTER = [[], ["", "Tổng cộng: 2 hội viên"], ["", "", "", "", "Ba Đình, ngày 12 tháng 3 năm 2025"],
           ["", "NGƯỜI LẬP BIỂU", "", "", "CHI HỘI TRƯỞNG"], ["", "(Ký, ghi rõ họ tên)", "", "", "(Ký, ghi rõ họ tên)"],
           [], ["", "Phạm Thị Thu", "", "", "Trần Thị Hoa"]]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_title_above_and_total_and_signatures_below_are_skipped_and_reported(fmt: str) -> None:
    rows = [*_TITLE, HEADER_VI, ["(1)", "(2)", "(3)", "(4)", "(5)", "(6)"], *ROWS_VI, *_FOOTER]
    data = xlsx_bytes(rows) if fmt == "xlsx" else csv_text([[str(cell) for cell in row] for row in rows]).encode()
    table = read_member_table(data)
    assert table.header_row == 5
    assert [row.number for row in table.rows] == [7, 8]
    _check_vietnamese_table([row.values for row in table.rows])
    assert [(row.number, row.reason) for row in table.skipped] == [
        (1, "title"), (2, "title"), (3, "title"), (6, "column_numbers"), (10, "total"), (11, "signature"),
        (12, "signature"), (13, "signature"), (15, "signature"),
    ]


def test_member_rows_stay_member_rows_among_lookalikes() -> None:
    rows = [
        ["Họ và tên", "Ngày sinh", "Số CCCD", "Chức vụ"],
        ["Công Tằng Tôn Nữ Thị Hoa", "", "", ""],  # a family name, not "Cộng" (total): an incomplete member row
        ["Lê Thị Mai", "01/02/1990", "001190123456", "Chi hội trưởng"],
        ["Cộng: 2"],
        ["Trần Thị Lan", "03/04/1985", "001185123456", ""],  # a member after a subtotal is still a member
        ["", "", "", ""],
        ["7"],  # a pre-numbered row counter only
    ]
    table = read_member_table(csv_text(rows).encode())
    assert [row.number for row in table.rows] == [2, 3, 5]
    assert [(row.number, row.reason) for row in table.skipped] == [(4, "total"), (7, "signature")]


def test_blank_rows_among_members_are_counted() -> None:
    table = read_member_table(csv_text([HEADER_VI, ROWS_VI[0], [], [], ROWS_VI[1], [], []]).encode())
    assert table.blank_rows == 2


def test_header_beyond_the_first_rows_is_not_searched() -> None:
    text = "Danh sách\n" * 30 + "Họ và tên,Ngày sinh\nLê Thị Mai,1990\n"
    with pytest.raises(InputError) as info:
        read_member_table(text.encode())
    assert info.value.code == "no_header" and "30" in info.value.message_vi


@pytest.mark.parametrize("header", ["Số CCCD/CMND", "CMND/CCCD", "Số CMND / CCCD"])
def test_one_column_for_either_id_number(header: str) -> None:
    text = (f"Họ và tên,Năm sinh,{header}\nLê Thị Mai,1985,079185123456\nTrần Thị Lan,1970,023456789\n"
            "Đỗ Thị Hà,1960,12345678\nPhan Thị Yến,1962,7.91235E+10\n")
    table = read_member_table(text.encode())
    assert table.columns["id_number"] == table.columns["old_id_number"] == header
    assert table.letters["id_number"] == table.letters["old_id_number"] == "C"
    assert [sorted(set(row.values) - {"full_name", "birth_date"}) for row in table.rows] == [
        ["id_number"], ["old_id_number"], ["old_id_number"], ["id_number"]]


def test_combined_id_column_beside_a_cccd_column_is_a_duplicate() -> None:
    with pytest.raises(InputError) as info:
        read_member_table("Họ và tên,Số CCCD,Số CCCD/CMND\nA,1,2\n".encode())
    assert info.value.code == "duplicate_column"


def test_merged_chapter_code_applies_to_every_row_of_the_merge() -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Danh sách hội viên"])
    sheet.append(["Họ và tên", "Năm sinh", "Số CCCD", "Mã chi hội"])
    for index, name in enumerate(["Lê Thị Mai", "Trần Thị Lan", "Đỗ Thị Hà", "Phan Thị Yến"]):
        sheet.append([name, 1980 + index, f"00118{index}123456", "HN-01" if index == 0 else "HN-02" if index == 3
                      else None])
    sheet.merge_cells("A1:D1")  # a title across columns gives nothing to other rows
    sheet.merge_cells("D3:D5")
    buffer = io.BytesIO()
    workbook.save(buffer)
    table = read_member_table(buffer.getvalue())
    assert [row.values.get("chapter_code") for row in table.rows] == ["HN-01", "HN-01", "HN-01", "HN-02"]
    assert [row.reason for row in table.skipped] == ["title"]


def test_the_error_column_of_a_file_given_back_is_not_an_ignored_column() -> None:
    table = read_member_table(csv_text([[*HEADER_VI, "Lỗi / Errors"], [*ROWS_VI[0], "Cột 'Ngày sinh' (C): …"]])
                              .encode())
    assert table.ignored_columns == []
