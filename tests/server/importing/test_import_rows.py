"""Validating imported rows: normalisation, all problems per row, duplicates inside a file."""

from __future__ import annotations

import io
from datetime import date, datetime

import pytest
from openpyxl import Workbook

from cardsvc.importing.files import RawRow, read_member_table
from cardsvc.importing.rows import (
    MEMBER_NUMBER_RE,
    MemberRow,
    RowProblem,
    format_member_number,
    is_valid_member_number,
    luhn_check_digit,
    validate_row,
    validate_rows,
)

TODAY = date(2025, 6, 15)
ID_1985_F = "079185123456"


def row(number: int = 2, /, **values: object) -> RawRow:
    base: dict[str, object] = {
        "full_name": "Nguyễn Thị Lan",
        "birth_date": "25/03/1985",
        "gender": "Nữ",
        "id_number": ID_1985_F,
    }
    base.update(values)
    return RawRow(number=number, values={k: v for k, v in base.items() if v is not None})


def codes(problems: list[RowProblem]) -> set[tuple[str, str, str]]:
    return {(p.column, p.code, p.severity) for p in problems}


# --- member numbers -----------------------------------------------------------------------------------------


def test_luhn_known_value() -> None:
    assert luhn_check_digit("7992739871") == "3"  # the textbook example 79927398713
    assert luhn_check_digit("000000000") == "0"


def test_format_member_number() -> None:
    assert format_member_number(1) == "0000000018"
    assert format_member_number(999_999_999)[:9] == "999999999"
    for sequence in (0, 1, 42, 123_456_789, 999_999_999):
        number = format_member_number(sequence)
        assert MEMBER_NUMBER_RE.match(number)
        assert is_valid_member_number(number)
    with pytest.raises(ValueError):
        format_member_number(-1)
    with pytest.raises(ValueError):
        format_member_number(1_000_000_000)


def test_luhn_catches_single_digit_errors_and_swaps() -> None:
    number = format_member_number(123_456_789)
    for position in range(10):
        for digit in "0123456789":
            if digit != number[position]:
                changed = number[:position] + digit + number[position + 1 :]
                assert not is_valid_member_number(changed)
    swapped = number[1] + number[0] + number[2:]
    assert not is_valid_member_number(swapped)
    assert not is_valid_member_number("12345")
    assert not is_valid_member_number("123456789a")


# --- single rows --------------------------------------------------------------------------------------------


def test_valid_row_is_normalised() -> None:
    member, problems = validate_row(
        row(
            full_name="NGUYỄN  THỊ LAN",
            phone="091 234 5678",
            join_date="01/01/2020",
            chapter_code=" HN-01 ",
            honorary="",
            member_number=format_member_number(7),
        ),
        today=TODAY,
    )
    assert problems == []
    assert member == MemberRow(
        row=2,
        member_number="0000000075",
        full_name="Nguyễn Thị Lan",
        birth_date=date(1985, 3, 25),
        birth_date_precision="day",
        gender="female",
        id_number=ID_1985_F,
        old_id_number=None,
        phone="+84912345678",
        join_date=date(2020, 1, 1),
        chapter_code="HN-01",
        honorary=False,
    )


def test_year_only_birth_date() -> None:
    member, problems = validate_row(row(birth_date=1985), today=TODAY)
    assert problems == []
    assert member is not None
    assert (member.birth_date, member.birth_date_precision) == (date(1985, 1, 1), "year")


def test_all_problems_of_a_row_are_collected() -> None:
    member, problems = validate_row(
        RawRow(
            number=7,
            values={
                "full_name": "Lan 2",
                "birth_date": "31/02/1985",
                "gender": "?",
                "id_number": "7.91235E+10",
                "phone": "024 1234 567",
                "join_date": "2030-01-01",
                "member_number": "1234567890",
                "honorary": "maybe",
            },
        ),
        today=TODAY,
    )
    assert member is None
    assert codes(problems) >= {
        ("full_name", "invalid_characters", "error"),
        ("birth_date", "invalid_date", "error"),
        ("gender", "invalid_gender", "error"),
        ("id_number", "precision_lost", "error"),
        ("phone", "invalid_phone", "error"),
        ("join_date", "future_date", "error"),
        ("member_number", "invalid_member_number", "error"),
        ("honorary", "invalid_boolean", "error"),
    }
    assert all(p.row == 7 for p in problems)


def test_required_fields() -> None:
    member, problems = validate_row(RawRow(number=3, values={}), today=TODAY)
    assert member is None
    assert codes(problems) >= {
        ("full_name", "required", "error"),
        ("birth_date", "required", "error"),
        ("id_number", "required", "error"),
    }


def test_old_id_number_replaces_the_citizen_id() -> None:
    member, problems = validate_row(row(id_number=None, old_id_number=12345678), today=TODAY)
    assert member is not None
    assert member.old_id_number == "012345678"
    assert member.id_number is None
    assert codes(problems) == {("old_id_number", "leading_zero_restored", "warning")}


def test_numeric_id_cell_is_repaired_with_a_warning() -> None:
    member, problems = validate_row(row(id_number=79185123456), today=TODAY)
    assert member is not None and member.id_number == ID_1985_F
    assert codes(problems) == {("id_number", "leading_zero_restored", "warning")}


@pytest.mark.parametrize("cell", [1185123456, "1185123456", 1185123456.0])
def test_hanoi_id_number_that_lost_both_zeros_is_repaired_with_a_warning(cell: object) -> None:
    # 001 (Hà Nội) + 1 (a woman born in the 1900s) + 85: Excel keeps 10 digits of it.
    member, problems = validate_row(row(id_number=cell), today=TODAY)
    assert member is not None and member.id_number == "001185123456"
    assert codes(problems) == {("id_number", "leading_zeros_restored", "warning")}
    [problem] = problems
    assert "Excel" in problem.message_en and "Excel" in problem.message_vi
    assert "1185123456" not in problem.message_en + problem.message_vi


@pytest.mark.parametrize(
    ("cell", "values"),
    [
        ("1190123456", {}),  # year digits 90 for a woman born in 1985
        ("1085123456", {}),  # the digit of a man
        ("3185123456", {}),  # 003 is no province code
        ("1185123456", {"birth_date": None}),  # nothing to check the digits against
    ],
)
def test_ten_digits_that_do_not_agree_with_the_row_stay_an_error(cell: str, values: dict[str, object]) -> None:
    member, problems = validate_row(row(id_number=cell, **values), today=TODAY)
    assert member is None
    assert ("id_number", "length", "error") in codes(problems)
    assert not any(p.code == "leading_zeros_restored" for p in problems)


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"id_number": "079190123456"}, "birth_year"),
        ({"id_number": "079285123456"}, "century_gender"),
        ({"id_number": "079085123456"}, "century_gender"),  # male digit for a woman
        ({"id_number": "003185123456"}, "province"),
    ],
)
def test_id_number_must_agree_with_the_row(values: dict[str, object], code: str) -> None:
    member, problems = validate_row(row(**values), today=TODAY)
    assert member is None
    assert ("id_number", code, "error") in codes(problems)


def test_missing_gender_is_read_from_the_id_number() -> None:
    member, problems = validate_row(row(gender=None), today=TODAY)
    assert member is not None and member.gender == "female"
    assert problems == []


def test_missing_gender_defaults_to_female_with_a_warning() -> None:
    member, problems = validate_row(row(gender=None, id_number=None, old_id_number="123456789"), today=TODAY)
    assert member is not None and member.gender == "female"
    assert codes(problems) == {("gender", "gender_defaulted", "warning")}


def test_honorary_member_without_gender_needs_one() -> None:
    member, problems = validate_row(
        row(gender=None, id_number=None, old_id_number="123456789", honorary="x"), today=TODAY
    )
    assert member is None
    assert ("gender", "required", "error") in codes(problems)


def test_men_only_as_honorary_members() -> None:
    male = {"gender": "Nam", "id_number": "079085123456", "full_name": "Trần Văn Nam"}
    member, problems = validate_row(row(**male), today=TODAY)
    assert member is None
    assert ("gender", "male_member", "error") in codes(problems)
    member, problems = validate_row(row(honorary="x", **male), today=TODAY)
    assert problems == []
    assert member is not None and member.honorary and member.gender == "male"


def test_members_must_be_adults_at_join_date_or_today() -> None:
    young = {"birth_date": "16/06/2007", "id_number": "079307123456"}  # 18 on 16 June 2025
    member, problems = validate_row(row(**young), today=TODAY)
    assert member is None
    assert ("birth_date", "too_young", "error") in codes(problems)
    member, problems = validate_row(row(**young), today=date(2025, 6, 16))
    assert member is not None and problems == []
    member, problems = validate_row(row(join_date="01/01/2020"), today=TODAY)
    assert member is not None  # born 1985: 34 at join date
    member, problems = validate_row(
        row(birth_date="01/01/2000", id_number="079300123456", join_date="01/01/2017"), today=TODAY
    )
    assert ("birth_date", "too_young", "error") in codes(problems)
    member, problems = validate_row(row(honorary="x", **young), today=TODAY)
    assert member is not None  # the age rule is for ordinary members


def test_member_number_that_lost_its_zeros() -> None:
    number = format_member_number(7)
    member, problems = validate_row(row(member_number=int(number)), today=TODAY)
    assert member is not None and member.member_number == number
    assert codes(problems) == {("member_number", "leading_zero_restored", "warning")}


def test_phone_from_a_numeric_cell() -> None:
    member, _ = validate_row(row(phone=912345678.0), today=TODAY)
    assert member is not None and member.phone == "+84912345678"


def test_messages_never_contain_personal_values() -> None:
    values: dict[str, object] = {
        "full_name": "Nguyễn Thị Lan",
        "birth_date": "25/03/2011",
        "gender": "Nam",
        "id_number": "079190654321",
        "phone": "0241234567",
        "join_date": "02/02/2030",
    }
    _, problems = validate_row(RawRow(2, values), today=TODAY)
    assert problems
    for problem in problems:
        text = problem.message_en + problem.message_vi
        for secret in ("079190654321", "654321", "0241234567", "1234567", "25/03/2011", "2011", "2030"):
            assert secret not in text


# --- several rows -------------------------------------------------------------------------------------------


def test_duplicates_inside_a_file_name_the_earlier_row() -> None:
    number = format_member_number(5)
    results = validate_rows(
        [
            row(5, member_number=number),
            row(6, id_number="001190123456", birth_date="1990", member_number=number),
            row(9, full_name="Lê Thị Mai"),
            row(10, id_number=None, old_id_number="123456789"),
            row(11, id_number=None, old_id_number="123 456 789"),
        ],
        today=TODAY,
    )
    assert [member is not None for member, _ in results] == [True, False, False, True, False]
    (_, first), (_, second), (_, third), _, (_, fifth) = results
    assert first == []
    assert [(p.column, p.code) for p in second] == [("member_number", "duplicate_in_file")]
    assert "row 5" in second[0].message_en and "dòng 5" in second[0].message_vi
    assert [(p.column, p.code, p.row) for p in third] == [("id_number", "duplicate_in_file", 9)]
    assert "row 5" in third[0].message_en
    assert [(p.column, p.code) for p in fifth] == [("old_id_number", "duplicate_in_file")]


def test_from_xlsx_file_to_members() -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["STT", "Họ và tên", "Ngày sinh", "Giới tính", "Số CCCD", "SĐT", "Ngày kết nạp"])
    sheet.append([1, "NGUYỄN THỊ LAN", datetime(1985, 3, 25), "Nữ", 79185123456, 912345678, 45292])
    sheet.append([2, "Trần Thị Bích", 1990, "nu", "001190123456", None, None])
    sheet.append([3, "Lê Thị Mai", "25/03/1985", "Nữ", 79185123456, None, None])
    buffer = io.BytesIO()
    workbook.save(buffer)

    table = read_member_table(buffer.getvalue(), "ds.xlsx")
    results = validate_rows(table.rows, today=TODAY)
    (lan, lan_problems), (bich, bich_problems), (mai, mai_problems) = results
    assert lan is not None and lan.row == 2
    assert (lan.full_name, lan.id_number, lan.phone) == ("Nguyễn Thị Lan", ID_1985_F, "+84912345678")
    assert lan.join_date == date(2024, 1, 1)
    assert codes(lan_problems) == {("id_number", "leading_zero_restored", "warning")}
    assert bich is not None and bich.birth_date_precision == "year" and bich_problems == []
    assert mai is None
    assert ("id_number", "duplicate_in_file", "error") in codes(mai_problems)
    assert all(p.row == 4 for p in mai_problems)


def test_a_row_keyed_by_member_number_needs_no_id_number_birth_date_or_gender() -> None:
    number = format_member_number(7)
    keyed = row(4, member_number=number, id_number=None, birth_date=None, gender=None, phone="0912345678")
    [(member, problems)] = validate_rows([keyed], today=TODAY)
    assert problems == []
    assert member is not None and member.updates_only
    assert (member.member_number, member.birth_date, member.gender, member.phone) == (
        number, None, None, "+84912345678")
    # Only a file's row may update by number alone: a member created through the API needs everything.
    alone, alone_problems = validate_row(keyed, today=TODAY)
    assert alone is None and {"birth_date", "id_number"} <= {p.column for p in alone_problems}
    # Without a member number, the same row is refused as before.
    [(refused, refused_problems)] = validate_rows([row(4, id_number=None, birth_date=None)], today=TODAY)
    assert refused is None and {p.column for p in refused_problems} >= {"birth_date", "id_number"}
