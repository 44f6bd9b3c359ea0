"""Citizen ID number rules (DOMAIN.md §2)."""

from __future__ import annotations

import re
from typing import Literal

import pytest

from integrations.errors import InputError
from integrations.idnumber import (
    PROVINCE_CODES,
    mask_id_number,
    repair_spreadsheet_id,
    restore_dropped_zeros,
    validate_citizen_id,
    validate_old_id_number,
)

# Copied from DOMAIN.md §2 (Circular 07/2016/TT-BCA), re-wrapped.
DOMAIN_PROVINCES = """
001 Hà Nội, 002 Hà Giang, 004 Cao Bằng, 006 Bắc Kạn, 008 Tuyên Quang, 010 Lào Cai, 011 Điện Biên,
012 Lai Châu, 014 Sơn La, 015 Yên Bái, 017 Hòa Bình, 019 Thái Nguyên, 020 Lạng Sơn, 022 Quảng Ninh,
024 Bắc Giang, 025 Phú Thọ, 026 Vĩnh Phúc, 027 Bắc Ninh, 030 Hải Dương, 031 Hải Phòng,
033 Hưng Yên, 034 Thái Bình, 035 Hà Nam, 036 Nam Định, 037 Ninh Bình, 038 Thanh Hóa, 040 Nghệ An,
042 Hà Tĩnh, 044 Quảng Bình, 045 Quảng Trị, 046 Thừa Thiên Huế, 048 Đà Nẵng, 049 Quảng Nam,
051 Quảng Ngãi, 052 Bình Định, 054 Phú Yên, 056 Khánh Hòa, 058 Ninh Thuận, 060 Bình Thuận,
062 Kon Tum, 064 Gia Lai, 066 Đắk Lắk, 067 Đắk Nông, 068 Lâm Đồng, 070 Bình Phước, 072 Tây Ninh,
074 Bình Dương, 075 Đồng Nai, 077 Bà Rịa–Vũng Tàu, 079 TP Hồ Chí Minh, 080 Long An, 082 Tiền Giang,
083 Bến Tre, 084 Trà Vinh, 086 Vĩnh Long, 087 Đồng Tháp, 089 An Giang, 091 Kiên Giang, 092 Cần Thơ,
093 Hậu Giang, 094 Sóc Trăng, 095 Bạc Liêu, 096 Cà Mau
"""


def _domain_provinces() -> dict[str, str]:
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"(\d{3}) ([^,\d]+)", DOMAIN_PROVINCES)}


def test_province_codes_are_exactly_the_63_of_the_circular() -> None:
    expected = _domain_provinces()
    assert len(expected) == 63
    assert dict(PROVINCE_CODES) == expected


def test_province_codes_are_read_only() -> None:
    with pytest.raises(TypeError):
        PROVINCE_CODES["003"] = "x"  # type: ignore[index]


@pytest.mark.parametrize("code", sorted(_domain_provinces()))
def test_every_province_code_is_accepted(code: str) -> None:
    number = f"{code}190123456"
    assert validate_citizen_id(number, birth_year=1990, gender="female") == number


@pytest.mark.parametrize(
    ("birth_year", "gender", "digit"),
    [
        (1990, "female", "1"),
        (1990, "male", "0"),
        (2001, "male", "2"),
        (2001, "female", "3"),
        (1900, "female", "1"),
        (2000, "male", "2"),
    ],
)
def test_century_gender_digit(birth_year: int, gender: str, digit: str) -> None:
    number = f"079{digit}{birth_year % 100:02d}123456"
    assert validate_citizen_id(number, birth_year=birth_year, gender=gender) == number  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("number", "birth_year", "gender"),
    [
        ("079190123456", 1990, "male"),  # odd digit is female
        ("079290123456", 1990, "female"),  # 2000s digit for a 1990 birth
        ("079301123456", 1901, "female"),  # 2000s digit for a 1901 birth
        ("079001123456", 2001, "male"),
    ],
)
def test_century_gender_mismatch(number: str, birth_year: int, gender: str) -> None:
    with pytest.raises(InputError) as info:
        validate_citizen_id(number, birth_year=birth_year, gender=gender)  # type: ignore[arg-type]
    assert info.value.code == "century_gender"


def test_century_not_started_yet_is_refused() -> None:
    # Digits 4–9 stand for births in the 2100s–2300s.
    with pytest.raises(InputError) as info:
        validate_citizen_id("079501123456")
    assert info.value.code == "century_gender"


def test_year_digits_must_match_birth_year() -> None:
    with pytest.raises(InputError) as info:
        validate_citizen_id("079191123456", birth_year=1990, gender="female")
    assert info.value.code == "birth_year"


def test_separators_are_stripped() -> None:
    assert validate_citizen_id(" 079 190-123.456 ") == "079190123456"


def test_birth_abroad_country_code_is_accepted() -> None:
    assert validate_citizen_id("840190123456", birth_year=1990) == "840190123456"


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("", "empty"),
        (" - ", "empty"),
        ("07919012345a", "not_digits"),
        ("０７９１９０１２３４５６", "not_digits"),  # full-width digits are not ASCII digits
        ("07919012345", "length"),
        ("0791901234567", "length"),
        ("003190123456", "province"),
        ("097190123456", "province"),
        ("000190123456", "province"),
    ],
)
def test_invalid_citizen_ids(number: str, code: str) -> None:
    with pytest.raises(InputError) as info:
        validate_citizen_id(number)
    error = info.value
    assert error.code == code
    assert str(error) == error.message_en
    assert isinstance(error, ValueError)
    assert re.search(r"[ạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹđ]", error.message_vi.lower())


def test_messages_do_not_contain_the_number() -> None:
    with pytest.raises(InputError) as info:
        validate_citizen_id("079191123456", birth_year=1990)
    assert "079191123456" not in info.value.message_en + info.value.message_vi


def test_old_id_number() -> None:
    assert validate_old_id_number("123 456 789") == "123456789"
    for bad, code in [
        ("", "empty"),
        ("12345678", "length"),
        ("079190123456", "length"),
        ("12345678x", "not_digits"),
    ]:
        with pytest.raises(InputError) as info:
            validate_old_id_number(bad)
        assert info.value.code == code


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (79123456789, ("079123456789", "leading_zero_restored")),
        ("79123456789", ("079123456789", "leading_zero_restored")),
        (79123456789.0, ("079123456789", "leading_zero_restored")),
        ("79123456789.0", ("079123456789", "leading_zero_restored")),
        (12345678, ("012345678", "leading_zero_restored")),
        ("079123456789", ("079123456789", None)),
        ("'079123456789", ("079123456789", None)),
        (" 079 123 456 789 ", ("079123456789", None)),
        (123456789, ("123456789", None)),
        (840190123456, ("840190123456", None)),
    ],
)
def test_repair_spreadsheet_id(raw: object, expected: tuple[str, str | None]) -> None:
    assert repair_spreadsheet_id(raw) == expected


@pytest.mark.parametrize("raw", ["7.91235E+10", "7,91235E+10", "7.91235e10", " 7.9E+10 ", 7.5, float("nan")])
def test_repair_refuses_numbers_damaged_by_excel(raw: object) -> None:
    with pytest.raises(InputError) as info:
        repair_spreadsheet_id(raw)
    assert info.value.code == "precision_lost"
    assert "Excel" in info.value.message_en and "Excel" in info.value.message_vi


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (None, "empty"),
        ("", "empty"),
        (True, "not_digits"),
        (-5, "not_digits"),
        ("abc", "not_digits"),
        (object(), "not_digits"),
    ],
)
def test_repair_refuses_non_numbers(raw: object, code: str) -> None:
    with pytest.raises(InputError) as info:
        repair_spreadsheet_id(raw)
    assert info.value.code == code


def test_repaired_id_then_validates() -> None:
    digits, warning = repair_spreadsheet_id(79190123456)
    assert warning == "leading_zero_restored"
    assert validate_citizen_id(digits, birth_year=1990, gender="female") == "079190123456"


@pytest.mark.parametrize(
    ("digits", "birth_year", "gender", "expected"),
    [
        ("1190123456", 1990, "female", "001190123456"),  # Hà Nội
        ("1190123456", 1990, None, "001190123456"),
        ("8300123456", 2000, "female", "008300123456"),  # Tuyên Quang, born in the 2000s
        ("4090123456", 1990, "male", "004090123456"),
        ("1190123456", 1991, "female", None),  # year digits disagree
        ("1190123456", 2090, "female", None),  # century disagrees
        ("1190123456", 1990, "male", None),  # gender disagrees
        ("3190123456", 1990, "female", None),  # 003 is not a province code
        ("79190123456", 1990, "female", None),  # 11 digits: one zero, not two
        ("119012345", 1990, "female", None),
        ("11901234x6", 1990, "female", None),
    ],
)
def test_restore_dropped_zeros(digits: str, birth_year: int, gender: Literal["female", "male"] | None,
                               expected: str | None) -> None:
    assert restore_dropped_zeros(digits, birth_year=birth_year, gender=gender) == expected


def test_mask_id_number() -> None:
    assert mask_id_number("079190123489") == "079*******89"
    assert mask_id_number("123456789") == "12*****89"
    assert mask_id_number("1234") == "****"
