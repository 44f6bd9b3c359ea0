"""Validating rows of an imported member list, collecting every problem of every row.

Problems name the column and what is wrong, never the value: the value may be an ID number, a birth date or a
phone number, and problem lists end up in API responses and logs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from cardsvc.days import vietnam_today
from cardsvc.importing.files import RawRow, parse_bool
from cardsvc.normalize import normalize_name, normalize_phone, parse_date, parse_gender
from integrations.errors import InputError
from integrations.idnumber import (
    LEADING_ZEROS_RESTORED,
    repair_spreadsheet_id,
    restore_dropped_zeros,
    validate_citizen_id,
    validate_old_id_number,
)

__all__ = [
    "ADULT_AGE",
    "MEMBER_NUMBER_RE",
    "MemberRow",
    "RowProblem",
    "format_member_number",
    "is_valid_member_number",
    "luhn_check_digit",
    "validate_row",
    "validate_rows",
]

ADULT_AGE = 18
CHAPTER_CODE_MAX_LENGTH = 64

# 9-digit sequence + 1 Luhn check digit. Digits only, so a number typed by a keyboard-wedge scanner survives
# any input method (DOMAIN.md §3).
MEMBER_NUMBER_RE = re.compile(r"^[0-9]{10}$")
_MEMBER_SEQUENCE_MAX = 999_999_999

Severity = Literal["error", "warning"]

# Column labels for messages, (English, Vietnamese).
_LABELS: dict[str, tuple[str, str]] = {
    "member_number": ("member number", "Mã hội viên"),
    "full_name": ("full name", "Họ và tên"),
    "birth_date": ("date of birth", "Ngày sinh"),
    "gender": ("gender", "Giới tính"),
    "id_number": ("citizen ID number", "Số CCCD"),
    "old_id_number": ("old ID number (CMND)", "Số CMND"),
    "phone": ("phone number", "Số điện thoại"),
    "join_date": ("join date", "Ngày vào hội"),
    "chapter_code": ("chapter code", "Mã chi hội"),
    "honorary": ("honorary member", "Hội viên danh dự"),
}


@dataclass(frozen=True)
class RowProblem:
    """One problem of one row; ``column`` is a canonical field name, or ``""`` for the whole row."""

    row: int
    column: str
    code: str
    message_en: str
    message_vi: str
    severity: Severity


@dataclass(frozen=True)
class MemberRow:
    """A row that passed validation, with every value normalised.

    A row of a list keyed by member number may give no ID number, birth date or gender (None): it can only update
    the member with that number, whose stored values it keeps (:attr:`updates_only`).
    """

    row: int
    member_number: str | None
    full_name: str
    birth_date: date | None
    birth_date_precision: Literal["day", "year"] | None
    gender: Literal["female", "male"] | None
    id_number: str | None
    old_id_number: str | None
    phone: str | None
    join_date: date | None
    chapter_code: str | None
    honorary: bool

    @property
    def updates_only(self) -> bool:
        """True for a row without any ID number: it cannot register a new member."""
        return self.id_number is None and self.old_id_number is None


# ---------------------------------------------------------------------------------------------------------
# Member numbers


def luhn_check_digit(digits: str) -> str:
    """Luhn check digit for a string of digits (the digit to append so the whole passes the Luhn test)."""
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError("digits only")
    total = 0
    # Doubling starts from the rightmost payload digit, because the check digit will sit to its right.
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def is_valid_member_number(s: str) -> bool:
    """True if ``s`` is 10 digits whose last digit is the Luhn check digit of the first nine."""
    return bool(MEMBER_NUMBER_RE.match(s)) and luhn_check_digit(s[:9]) == s[9]


def format_member_number(sequence: int) -> str:
    """Member number for a sequence number: 9 zero-padded digits followed by the Luhn check digit."""
    if not 0 <= sequence <= _MEMBER_SEQUENCE_MAX:
        raise ValueError("member sequence out of range")
    payload = f"{sequence:09d}"
    return payload + luhn_check_digit(payload)


# ---------------------------------------------------------------------------------------------------------
# Row validation


def _age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _integral(value: object) -> int | None:
    """The integer a numeric spreadsheet cell holds, or None if it is not a whole number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


@dataclass
class _Check:
    """Problems and normalised values of one row while it is being validated."""

    raw: RawRow
    today: date
    problems: list[RowProblem] = field(default_factory=list)

    def add(self, column: str, code: str, en: str, vi: str, severity: Severity = "error") -> None:
        self.problems.append(RowProblem(self.raw.number, column, code, en, vi, severity))

    def add_error(self, column: str, exc: InputError) -> None:
        self.add(column, exc.code, exc.message_en, exc.message_vi)

    def required(self, column: str) -> None:
        en, vi = _LABELS[column]
        self.add(column, "required", f"The {en} is required.", f"Thiếu {vi}.")

    def value(self, column: str) -> object:
        value = self.raw.values.get(column)
        return None if _blank(value) else value

    @property
    def has_errors(self) -> bool:
        return any(problem.severity == "error" for problem in self.problems)


def _check_name(check: _Check) -> str | None:
    value = check.value("full_name")
    if value is None:
        check.required("full_name")
        return None
    try:
        return normalize_name(str(value))
    except InputError as exc:
        check.add_error("full_name", exc)
        return None


def _check_date(check: _Check, column: str, *, allow_year_only: bool) -> tuple[date, Literal["day", "year"]] | None:
    value = check.value(column)
    if value is None:
        return None
    try:
        return parse_date(value, allow_year_only=allow_year_only, today=check.today)
    except InputError as exc:
        check.add_error(column, exc)
        return None


def _check_honorary(check: _Check) -> bool:
    try:
        return parse_bool(check.value("honorary"))
    except ValueError:
        check.add(
            "honorary",
            "invalid_boolean",
            'The honorary member column must be "x" (yes) or empty (no).',
            'Cột hội viên danh dự phải ghi "x" (có) hoặc để trống (không).',
        )
        return False


def _check_gender(check: _Check) -> Literal["female", "male"] | None:
    value = check.value("gender")
    if value is None:
        return None
    try:
        return parse_gender(value)
    except InputError as exc:
        check.add_error("gender", exc)
        return None


def _repaired(check: _Check, column: str) -> str | None:
    value = check.value(column)
    if value is None:
        return None
    try:
        digits, warning = repair_spreadsheet_id(value)
    except InputError as exc:
        check.add_error(column, exc)
        return None
    if warning is not None:
        check.add(
            column,
            warning,
            "The number had lost its leading 0 in the spreadsheet; the 0 was put back. Please check it.",
            "Số đã bị bảng tính làm mất chữ số 0 ở đầu; hệ thống đã thêm lại số 0. Vui lòng kiểm tra lại.",
            "warning",
        )
    return digits


def _check_id_number(check: _Check, birth: date | None, gender: Literal["female", "male"] | None) -> str | None:
    digits = _repaired(check, "id_number")
    if digits is None:
        return None
    restored = restore_dropped_zeros(digits, birth_year=birth.year, gender=gender) if birth else None
    if restored is not None:
        digits = restored
        check.add(
            "id_number",
            LEADING_ZEROS_RESTORED,
            "Excel dropped the two leading zeros (00) of the number; they were put back because the number then "
            "agrees with the date of birth. Please check it.",
            "Excel đã làm mất hai chữ số 0 ở đầu số; hệ thống đã thêm lại vì khi đó số khớp với ngày sinh. "
            "Vui lòng kiểm tra lại.",
            "warning",
        )
    try:
        return validate_citizen_id(digits, birth_year=birth.year if birth else None, gender=gender)
    except InputError as exc:
        check.add_error("id_number", exc)
        return None


def _check_old_id_number(check: _Check) -> str | None:
    digits = _repaired(check, "old_id_number")
    if digits is None:
        return None
    try:
        return validate_old_id_number(digits)
    except InputError as exc:
        check.add_error("old_id_number", exc)
        return None


def _check_phone(check: _Check) -> str | None:
    value = check.value("phone")
    if value is None:
        return None
    number = _integral(value)
    if number is None and not isinstance(value, str):
        check.add("phone", "invalid_phone", "The phone number is not valid.", "Số điện thoại không hợp lệ.")
        return None
    try:
        return normalize_phone(number if number is not None else str(value))
    except InputError as exc:
        check.add_error("phone", exc)
        return None


def _check_member_number(check: _Check) -> str | None:
    value = check.value("member_number")
    if value is None:
        return None
    number = _integral(value)
    if number is not None and number >= 0:
        text = str(number)
        if len(text) < 10:
            # A numeric cell drops leading zeros; zeros on the left do not change a Luhn sum, so padding is
            # safe, and the check digit still catches a wrong number.
            text = text.zfill(10)
            check.add(
                "member_number",
                "leading_zero_restored",
                "The member number had lost its leading zeros in the spreadsheet; they were put back.",
                "Mã hội viên đã bị bảng tính làm mất các chữ số 0 ở đầu; hệ thống đã thêm lại.",
                "warning",
            )
    else:
        text = re.sub(r"[\s\-.]", "", str(value))
    if is_valid_member_number(text):
        return text
    check.add(
        "member_number",
        "invalid_member_number",
        "The member number is not valid (10 digits with a correct check digit).",
        "Mã hội viên không hợp lệ (phải gồm 10 chữ số với chữ số kiểm tra đúng).",
    )
    return None


def _check_chapter_code(check: _Check) -> str | None:
    value = check.value("chapter_code")
    if value is None:
        return None
    number = _integral(value)
    text = str(number) if number is not None else " ".join(str(value).split())
    if len(text) > CHAPTER_CODE_MAX_LENGTH or not text.isprintable():
        check.add(
            "chapter_code",
            "invalid_chapter_code",
            "The chapter code is not valid.",
            "Mã chi hội không hợp lệ.",
        )
        return None
    return text


def _validate(raw: RawRow, today: date, *, by_member_number: bool
              ) -> tuple[_Check, MemberRow | None, dict[str, str]]:
    """Validate one row; also return the canonical values that must be unique within a file.

    With ``by_member_number``, a row with a member number and no ID number is an update of that member: its ID
    number, birth date and gender may be missing (the stored ones are kept).
    """
    check = _Check(raw, today)
    full_name = _check_name(check)
    member_number = _check_member_number(check)
    keyed = (by_member_number and check.value("member_number") is not None
             and check.value("id_number") is None and check.value("old_id_number") is None)
    birth = _check_date(check, "birth_date", allow_year_only=True)
    if birth is None and check.value("birth_date") is None and not keyed:
        check.required("birth_date")
    honorary = _check_honorary(check)
    given_gender = _check_gender(check)
    id_number = _check_id_number(check, birth[0] if birth else None, given_gender)
    old_id_number = _check_old_id_number(check)
    if check.value("id_number") is None and check.value("old_id_number") is None and not keyed:
        check.add(
            "id_number",
            "required",
            "The citizen ID number is required (or the old CMND number if there is no CCCD yet).",
            "Thiếu số CCCD (hoặc số CMND nếu chưa có CCCD).",
        )
    phone = _check_phone(check)
    joined = _check_date(check, "join_date", allow_year_only=False)
    chapter_code = _check_chapter_code(check)

    gender = given_gender
    if gender is None and check.value("gender") is None and not keyed:
        if id_number is not None:
            # The fourth digit of a valid citizen ID number records the gender (odd = female).
            gender = "female" if int(id_number[3]) % 2 else "male"
        elif honorary:
            # Honorary members may be men: nothing to default to.
            check.required("gender")
        else:
            gender = "female"
            check.add(
                "gender",
                "gender_defaulted",
                "The gender is missing; it was set to female.",
                "Thiếu giới tính; hệ thống ghi là Nữ.",
                "warning",
            )
    if gender == "male" and not honorary:
        check.add(
            "gender",
            "male_member",
            "Only women can be ordinary members; mark a man as an honorary member.",
            "Chỉ phụ nữ mới là hội viên chính thức; nam giới phải được đánh dấu là hội viên danh dự.",
        )

    # A year-only birth date counts as 1 January: only members who are certainly too young are refused.
    if birth is not None and not honorary:
        on = joined[0] if joined else today
        if _age_on(birth[0], on) < ADULT_AGE:
            when_en, when_vi = ("on the join date", "vào ngày vào hội") if joined else ("today", "hiện nay")
            check.add(
                "birth_date",
                "too_young",
                f"Members must be at least {ADULT_AGE} years old {when_en}.",
                f"Hội viên phải đủ {ADULT_AGE} tuổi {when_vi}.",
            )

    unique = {
        column: value
        for column, value in (
            ("id_number", id_number),
            ("old_id_number", old_id_number),
            ("member_number", member_number),
        )
        if value is not None
    }
    if check.has_errors or full_name is None or (not keyed and (birth is None or gender is None)):
        return check, None, unique
    member = MemberRow(
        row=raw.number,
        member_number=member_number,
        full_name=full_name,
        birth_date=birth[0] if birth else None,
        birth_date_precision=birth[1] if birth else None,
        gender=gender,
        id_number=id_number,
        old_id_number=old_id_number,
        phone=phone,
        join_date=joined[0] if joined else None,
        chapter_code=chapter_code,
        honorary=honorary,
    )
    return check, member, unique


def validate_row(raw: RawRow, *, today: date | None = None) -> tuple[MemberRow | None, list[RowProblem]]:
    """Validate and normalise one row, collecting all its problems.

    Returns ``(member, problems)``; ``member`` is None when any problem has severity ``"error"``. ``today``
    (default: today in Vietnam) is used to refuse future dates and to check the age of members without a join
    date.
    """
    check, member, _ = _validate(raw, today or vietnam_today(), by_member_number=False)
    return member, check.problems


def validate_rows(
    rows: Iterable[RawRow], *, today: date | None = None
) -> list[tuple[MemberRow | None, list[RowProblem]]]:
    """Validate every row like :func:`validate_row` and also refuse duplicates inside the file.

    Unlike :func:`validate_row`, a row with a member number and no ID number is accepted as an update of that
    member without a birth date or gender (see :class:`MemberRow`): a list keyed by member number updates the
    members it names. A citizen ID number, old ID number or member number seen on an earlier row makes the later
    row an error that names the earlier row. Results are in the order of ``rows``.
    """
    day = today or vietnam_today()
    first_seen: dict[tuple[str, str], int] = {}
    results: list[tuple[MemberRow | None, list[RowProblem]]] = []
    for raw in rows:
        check, member, unique = _validate(raw, day, by_member_number=True)
        for column, value in unique.items():
            earlier = first_seen.setdefault((column, value), raw.number)
            if earlier != raw.number:
                en, vi = _LABELS[column]
                check.add(
                    column,
                    "duplicate_in_file",
                    f"Same {en} as row {earlier} (duplicate of row {earlier}).",
                    f"Trùng {vi} với dòng {earlier}.",
                )
                member = None
        results.append((member, check.problems))
    return results
