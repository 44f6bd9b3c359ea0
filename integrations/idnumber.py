"""Vietnamese citizen ID numbers (số định danh cá nhân) and old CMND numbers.

Rules from Decree 137/2015 art. 13, the Law on Identity 2023 art. 12 and Circular 07/2016/TT-BCA (see
DOMAIN.md §2). The numbers carry no check digit, so validation can only check the structure and its agreement
with the holder's birth year and gender.

Error messages never contain the number itself: ID numbers must stay out of logs and API error bodies.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date
from types import MappingProxyType
from typing import Literal

from integrations.errors import InputError

__all__ = [
    "PROVINCE_CODES",
    "mask_id_number",
    "repair_spreadsheet_id",
    "restore_dropped_zeros",
    "validate_citizen_id",
    "validate_old_id_number",
]

# Circular 07/2016/TT-BCA. The list is frozen: codes were not reissued after the 2025 province merger, so
# cards issued before it keep their pre-merger province code.
PROVINCE_CODES: Mapping[str, str] = MappingProxyType(
    {
        "001": "Hà Nội",
        "002": "Hà Giang",
        "004": "Cao Bằng",
        "006": "Bắc Kạn",
        "008": "Tuyên Quang",
        "010": "Lào Cai",
        "011": "Điện Biên",
        "012": "Lai Châu",
        "014": "Sơn La",
        "015": "Yên Bái",
        "017": "Hòa Bình",
        "019": "Thái Nguyên",
        "020": "Lạng Sơn",
        "022": "Quảng Ninh",
        "024": "Bắc Giang",
        "025": "Phú Thọ",
        "026": "Vĩnh Phúc",
        "027": "Bắc Ninh",
        "030": "Hải Dương",
        "031": "Hải Phòng",
        "033": "Hưng Yên",
        "034": "Thái Bình",
        "035": "Hà Nam",
        "036": "Nam Định",
        "037": "Ninh Bình",
        "038": "Thanh Hóa",
        "040": "Nghệ An",
        "042": "Hà Tĩnh",
        "044": "Quảng Bình",
        "045": "Quảng Trị",
        "046": "Thừa Thiên Huế",
        "048": "Đà Nẵng",
        "049": "Quảng Nam",
        "051": "Quảng Ngãi",
        "052": "Bình Định",
        "054": "Phú Yên",
        "056": "Khánh Hòa",
        "058": "Ninh Thuận",
        "060": "Bình Thuận",
        "062": "Kon Tum",
        "064": "Gia Lai",
        "066": "Đắk Lắk",
        "067": "Đắk Nông",
        "068": "Lâm Đồng",
        "070": "Bình Phước",
        "072": "Tây Ninh",
        "074": "Bình Dương",
        "075": "Đồng Nai",
        "077": "Bà Rịa–Vũng Tàu",
        "079": "TP Hồ Chí Minh",
        "080": "Long An",
        "082": "Tiền Giang",
        "083": "Bến Tre",
        "084": "Trà Vinh",
        "086": "Vĩnh Long",
        "087": "Đồng Tháp",
        "089": "An Giang",
        "091": "Kiên Giang",
        "092": "Cần Thơ",
        "093": "Hậu Giang",
        "094": "Sóc Trăng",
        "095": "Bạc Liêu",
        "096": "Cà Mau",
    }
)

CITIZEN_ID_LENGTH = 12
OLD_ID_LENGTH = 9

# Warning code returned by repair_spreadsheet_id when a zero lost by a spreadsheet was put back.
LEADING_ZERO_RESTORED = "leading_zero_restored"
# Warning code for the two zeros put back by restore_dropped_zeros.
LEADING_ZEROS_RESTORED = "leading_zeros_restored"

_SEPARATORS = re.compile(r"[\s.\-]+")
# "7.91235E+10", "7,91235E+10" (Vietnamese Excel uses a decimal comma), "7.9E10".
_SCIENTIFIC = re.compile(r"^[+-]?\d+(?:[.,]\d*)?[eE][+-]?\d+$")
# A number written out by a program that read the cell as a float: "79123456789.0".
_FLOAT_TEXT = re.compile(r"^(\d{8,12})\.0$")


def _strip_separators(number: str) -> str:
    return _SEPARATORS.sub("", number)


def _check_digits(digits: str, expected_length: int, what_en: str, what_vi: str) -> None:
    if not digits:
        raise InputError("empty", f"The {what_en} is empty.", f"{what_vi} đang để trống.")
    if not (digits.isascii() and digits.isdigit()):
        raise InputError(
            "not_digits",
            f"The {what_en} must contain only digits.",
            f"{what_vi} chỉ được gồm các chữ số.",
        )
    if len(digits) != expected_length:
        raise InputError(
            "length",
            f"The {what_en} must have exactly {expected_length} digits.",
            f"{what_vi} phải có đúng {expected_length} chữ số.",
        )


def validate_citizen_id(
    number: str,
    *,
    birth_year: int | None = None,
    gender: Literal["female", "male"] | None = None,
) -> str:
    """Check a 12-digit citizen ID number and return it canonical (digits only).

    Spaces, dots and dashes are ignored. The first three digits must be a province code from
    :data:`PROVINCE_CODES` or, for births registered abroad, a country code that does not start with 0.
    When ``birth_year`` or ``gender`` are given, the century/gender digit and the two year digits must agree
    with them. Raises :class:`InputError`.
    """
    digits = _strip_separators(number)
    _check_digits(digits, CITIZEN_ID_LENGTH, "citizen ID number", "Số định danh cá nhân")

    place = digits[:3]
    if place not in PROVINCE_CODES and place[0] == "0":
        raise InputError(
            "province",
            "The first three digits of the citizen ID number are not a known province code.",
            "Ba chữ số đầu của số định danh cá nhân không phải là mã tỉnh, thành phố hợp lệ.",
        )

    # Fourth digit: 1900s → 0/1, 2000s → 2/3, … 2300s → 8/9; the odd digit is female.
    century_digit = int(digits[3])
    century_start = 1900 + (century_digit // 2) * 100
    digit_gender: Literal["female", "male"] = "female" if century_digit % 2 else "male"
    # The scheme reaches the 2300s, but a digit for a century that has not started yet is a typo.
    if century_start > date.today().year:
        raise InputError(
            "century_gender",
            "The fourth digit of the citizen ID number (century and gender) is not possible.",
            "Chữ số thứ tư của số định danh cá nhân (thế kỷ sinh và giới tính) không hợp lệ.",
        )
    if birth_year is not None and century_digit // 2 != birth_year // 100 - 19:
        raise InputError(
            "century_gender",
            "The fourth digit of the citizen ID number does not match the century of the date of birth.",
            "Chữ số thứ tư của số định danh cá nhân không khớp với thế kỷ của năm sinh.",
        )
    if gender is not None and gender != digit_gender:
        raise InputError(
            "century_gender",
            "The fourth digit of the citizen ID number does not match the gender.",
            "Chữ số thứ tư của số định danh cá nhân không khớp với giới tính.",
        )
    if birth_year is not None and digits[4:6] != f"{birth_year % 100:02d}":
        raise InputError(
            "birth_year",
            "Digits 5 and 6 of the citizen ID number do not match the year of birth.",
            "Chữ số thứ năm và thứ sáu của số định danh cá nhân không khớp với năm sinh.",
        )
    return digits


def validate_old_id_number(number: str) -> str:
    """Check an old 9-digit identity card (CMND) number and return it as digits only.

    Raises :class:`InputError`.
    """
    digits = _strip_separators(number)
    _check_digits(digits, OLD_ID_LENGTH, "old identity card (CMND) number", "Số CMND")
    return digits


def _precision_lost() -> InputError:
    return InputError(
        "precision_lost",
        "The ID number was damaged by Excel (shown in scientific notation such as 7.9E+10, so its last "
        "digits are lost). Format the column as Text and type the number again.",
        "Số giấy tờ đã bị Excel làm hỏng (hiển thị dạng số mũ như 7.9E+10 nên mất các chữ số cuối). "
        "Hãy định dạng cột là Văn bản (Text) và nhập lại số.",
    )


def _not_digits() -> InputError:
    return InputError("not_digits", "The ID number must contain only digits.", "Số giấy tờ chỉ được gồm các chữ số.")


def repair_spreadsheet_id(raw: object) -> tuple[str, str | None]:
    """Turn an ID number cell read from a spreadsheet into digits, undoing the damage that can be undone.

    Accepts ``str``, ``int`` and ``float`` cells. An 11-digit value (citizen ID) or 8-digit value (old CMND)
    lost its leading zero: the zero is put back and the warning code ``"leading_zero_restored"`` is returned.
    Scientific notation text and non-integral floats have lost digits for good: they raise
    :class:`InputError` with code ``precision_lost``. Returns ``(digits, warning_code_or_None)``; the
    province, length and birth-year rules are left to :func:`validate_citizen_id` and
    :func:`validate_old_id_number`.
    """
    if raw is None:
        raise InputError("empty", "The ID number is empty.", "Số giấy tờ đang để trống.")
    if isinstance(raw, bool):
        raise _not_digits()
    if isinstance(raw, int):
        text = str(raw)
    elif isinstance(raw, float):
        if not math.isfinite(raw) or not raw.is_integer():
            raise _precision_lost()
        text = str(int(raw))
    elif isinstance(raw, str):
        # A leading apostrophe is how Excel users force a cell to text; it is not part of the number.
        text = raw.strip().removeprefix("'").strip()
        if _SCIENTIFIC.match(text):
            raise _precision_lost()
        float_text = _FLOAT_TEXT.match(text)
        if float_text:
            text = float_text.group(1)
        text = _strip_separators(text)
    else:
        raise _not_digits()

    if not text:
        raise InputError("empty", "The ID number is empty.", "Số giấy tờ đang để trống.")
    if text.startswith("-") or not (text.isascii() and text.isdigit()):
        raise _not_digits()
    if len(text) in (CITIZEN_ID_LENGTH - 1, OLD_ID_LENGTH - 1):
        # Province codes (and the first digit of old CMND numbers from the north) start with 0, which a
        # spreadsheet drops when the column is numeric. No valid number has 11 or 8 digits.
        return "0" + text, LEADING_ZERO_RESTORED
    return text, None


def restore_dropped_zeros(
    digits: str, *, birth_year: int, gender: Literal["female", "male"] | None = None
) -> str | None:
    """The citizen ID number a 10-digit spreadsheet value stood for, or None when that is not certain.

    A numeric cell drops every leading zero: numbers of the provinces whose code starts with ``00`` (001 Hà Nội,
    002 Hà Giang, 004 Cao Bằng, 006 Bắc Kạn, 008 Tuyên Quang) lose two and keep 10 digits. ``"00"`` is put back
    only when the result is a valid citizen ID number of such a province whose century/gender digit and year
    digits agree with ``birth_year`` (and ``gender`` when it is known); otherwise the value stays a wrong number
    for :func:`validate_citizen_id` to refuse.
    """
    if len(digits) != CITIZEN_ID_LENGTH - 2 or not (digits.isascii() and digits.isdigit()):
        return None
    try:
        # "00" + 10 digits starts with 0, so validation accepts it only with one of the province codes above.
        return validate_citizen_id("00" + digits, birth_year=birth_year, gender=gender)
    except InputError:
        return None


def mask_id_number(number: str) -> str:
    """Hide an ID number for display: ``079*******89`` (12 digits), ``12*****89`` (9 digits).

    Other lengths keep only the last two characters visible (none if the value is very short).
    """
    digits = _strip_separators(number)
    if len(digits) == CITIZEN_ID_LENGTH:
        return digits[:3] + "*" * 7 + digits[-2:]
    if len(digits) == OLD_ID_LENGTH:
        return digits[:2] + "*" * 5 + digits[-2:]
    if len(digits) <= 4:
        return "*" * len(digits)
    return "*" * (len(digits) - 2) + digits[-2:]
