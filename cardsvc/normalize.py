"""Normalising what people type or paste: names, search keys, phone numbers, dates and gender (DOMAIN.md §3).

Pure functions, no I/O. Errors are :class:`integrations.errors.InputError` with a stable ``code`` and messages in
English and Vietnamese; messages never repeat the value (it may be personal data).
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import Literal

from cardsvc.days import vietnam_day, vietnam_today
from integrations.errors import InputError
from verification.format import forbidden_code_point

__all__ = [
    "NAME_MAX_BYTES",
    "NAME_MAX_LENGTH",
    "NAME_MIN_LENGTH",
    "fold",
    "given_name_sort_key",
    "invisible_character",
    "name_search_key",
    "normalize_name",
    "normalize_phone",
    "parse_date",
    "parse_gender",
    "refuse_invisible",
    "search_terms",
]

NAME_MAX_LENGTH = 100
# The card carries the name as at most 100 bytes of UTF-8 (docs/card-format.md, display_name); a Vietnamese letter
# with its marks takes 2 or 3 bytes, so 100 characters may not fit.
NAME_MAX_BYTES = 100
NAME_MIN_LENGTH = 2
SEARCH_MAX_WORDS = 8
SEARCH_MAX_WORD_LENGTH = 40


# ---------------------------------------------------------------------------------------------------------
# Folding and search keys

_WHITESPACE = re.compile(r"\s+")


def fold(text: str) -> str:
    """Accent- and case-insensitive key: ``fold("Nguyễn Thị Phương Thảo") == "nguyen thi phuong thao"``.

    Lowercases, drops every combining mark, maps đ to d (it has no decomposition) and collapses whitespace.
    """
    # Lowercase first: lowercasing some letters (İ) produces combining marks, which must then be dropped too.
    decomposed = unicodedata.normalize("NFD", text.lower())
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return " ".join(stripped.replace("đ", "d").split())


# Characters that separate words inside names ("Lan-Anh", "H'Bia", "T. Lan"): searches treat them as spaces.
_NAME_PUNCTUATION = re.compile(r"[-'.]")
# LIKE metacharacters are removed from queries so callers can put the words straight into a pattern.
_QUERY_JUNK = re.compile(r"[-'.%_\\]")


def _name_words(full_name: str) -> list[str]:
    return _NAME_PUNCTUATION.sub(" ", fold(full_name)).split()


def name_search_key(full_name: str) -> str:
    """Stored search key of a name, padded with spaces so ``LIKE '% word %'`` matches whole words."""
    return " " + " ".join(_name_words(full_name)) + " "


def given_name_sort_key(full_name: str) -> str:
    """Sort key ordering by given name (the last word), then by the whole name, as Vietnamese lists do."""
    words = _name_words(full_name)
    if not words:
        return ""
    return words[-1] + " " + " ".join(words)


def search_terms(query: str) -> list[str]:
    """Fold a user's search query into at most 8 distinct words of at most 40 characters.

    The words contain no ``%``, ``_`` or backslash, so callers can build ``LIKE`` patterns from them safely.
    """
    terms: list[str] = []
    for word in _QUERY_JUNK.sub(" ", fold(query)).split():
        term = word[:SEARCH_MAX_WORD_LENGTH]
        if term not in terms:
            terms.append(term)
        if len(terms) == SEARCH_MAX_WORDS:
            break
    return terms


# ---------------------------------------------------------------------------------------------------------
# Invisible characters

# Verifiers refuse a card whose name holds a code point of verification.format.FORBIDDEN_TEXT_RANGES (controls, bidi
# formatting, zero-width and other invisible characters, private use, surrogates, noncharacters): every entry point
# refuses at least those. It also refuses what that fixed list leaves to each Unicode version — code points not
# assigned in this Python's Unicode data — and the braille blank, which draws nothing.
_ALSO_INVISIBLE = frozenset("\u2800")
# Tabs and line breaks are whitespace that every caller collapses into one space.
_COLLAPSED_WHITESPACE = frozenset("\t\n\r")


def _is_invisible(ch: str) -> bool:
    if ch in _COLLAPSED_WHITESPACE:
        return False
    return forbidden_code_point(ord(ch)) or ch in _ALSO_INVISIBLE or unicodedata.category(ch) == "Cn"


def invisible_character(text: str) -> str | None:
    """The first character of ``text`` that is invisible or changes how the text around it is displayed, or None.

    Such characters let one name look like another (or like nothing) on a card, a door station's screen or an
    officer's page: a right-to-left override shows "Lan" + U+202E + "hnA" as "LanAnh". The verifier refuses them in
    a card with its own copy of the rule (``verification/`` runs on door stations without cardsvc).
    """
    return next((ch for ch in text if _is_invisible(ch)), None)


def refuse_invisible(text: str, *, subject_en: str, subject_vi: str) -> None:
    """Raise :class:`InputError` (``invisible_characters``) if ``text`` holds an invisible character.

    ``subject_en`` / ``subject_vi`` name the value in the message ("The name", "Họ tên"); the message names the
    character's code point, never the value.
    """
    found = invisible_character(text)
    if found is not None:
        point = f"U+{ord(found):04X}"
        raise InputError(
            "invisible_characters",
            f"{subject_en} contains an invisible or text-direction control character ({point}); "
            "type it again instead of pasting it.",
            f"{subject_vi} có ký tự ẩn hoặc ký tự điều khiển hướng chữ ({point}); hãy gõ lại thay vì dán vào.",
        )


# ---------------------------------------------------------------------------------------------------------
# Names

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_NAME_PUNCT_ALLOWED = frozenset(" -'.")
# A new word starts after these, for title-casing ("Lan-Anh", "H'Bia").
_WORD_BREAKS = frozenset(" -'.")


def _is_name_letter(ch: str) -> bool:
    """Latin letters whose upper and lower case map one to one (so title-casing is reversible and stable).

    That covers Vietnamese and the Latin-script alphabets of Vietnam's ethnic minorities, and excludes letters
    such as ß or dotless ı whose case mapping changes length or does not round-trip.
    """
    if not ch.isalpha() or not unicodedata.name(ch, "").startswith("LATIN "):
        return False
    upper, lower = ch.upper(), ch.lower()
    return len(upper) == 1 and len(lower) == 1 and upper.lower() == lower and lower.upper() == upper


def _title_case(name: str) -> str:
    out: list[str] = []
    at_word_start = True
    for ch in name:
        if ch in _WORD_BREAKS:
            out.append(ch)
            at_word_start = True
        elif unicodedata.category(ch) == "Mn":
            out.append(ch)
        else:
            out.append(ch.upper() if at_word_start else ch.lower())
            at_word_start = False
    return "".join(out)


def normalize_name(raw: str) -> str:
    """Clean a person's full name: NFC, trimmed, single spaces, 2–100 characters and at most 100 bytes of UTF-8
    (what a card holds).

    Letters (all Vietnamese ones included), spaces, hyphens, apostrophes and dots are allowed; digits and other
    punctuation are refused, and so are invisible and text-direction control characters, with a message of their
    own (:func:`invisible_character`). A name typed ALL UPPERCASE or all lowercase, as is common in spreadsheets,
    is title-cased word by word; mixed case is kept as given.
    """
    refuse_invisible(raw, subject_en="The name", subject_vi="Họ tên")
    text = unicodedata.normalize("NFC", raw.translate(_APOSTROPHES))
    text = " ".join(_WHITESPACE.split(text.strip()))
    if not text:
        raise InputError("empty", "The name is empty.", "Họ tên đang để trống.")
    if len(text) > NAME_MAX_LENGTH:
        raise InputError(
            "too_long",
            f"The name is longer than {NAME_MAX_LENGTH} characters.",
            f"Họ tên dài quá {NAME_MAX_LENGTH} ký tự.",
        )
    previous_is_letter = False
    for ch in text:
        if _is_name_letter(ch):
            previous_is_letter = True
        # Combining marks survive NFC only where no precomposed letter exists (e.g. ơ̆ in Ê Đê names).
        elif unicodedata.category(ch) == "Mn" and previous_is_letter and "\u0300" <= ch <= "\u036f":
            continue
        elif ch in _NAME_PUNCT_ALLOWED:
            previous_is_letter = False
        else:
            raise InputError(
                "invalid_characters",
                "The name may contain only letters, spaces, hyphens, apostrophes and dots.",
                "Họ tên chỉ được gồm chữ cái, dấu cách, dấu gạch nối, dấu nháy đơn và dấu chấm.",
            )
    if not any(_is_name_letter(ch) for ch in text):
        raise InputError("invalid_characters", "The name contains no letters.", "Họ tên không có chữ cái nào.")
    if len(text) < NAME_MIN_LENGTH:
        raise InputError(
            "too_short",
            f"The name is shorter than {NAME_MIN_LENGTH} characters.",
            f"Họ tên ngắn hơn {NAME_MIN_LENGTH} ký tự.",
        )
    if text in (text.upper(), text.lower()):
        # Casing can change how NFC composes a letter with a following mark, so normalise again.
        text = unicodedata.normalize("NFC", _title_case(text))
    if len(text.encode()) > NAME_MAX_BYTES:
        raise InputError(
            "too_long",
            f"The name is too long for the card: at most {NAME_MAX_BYTES} bytes of UTF-8, and each letter with "
            "a Vietnamese accent takes 2 or 3 bytes. Shorten it, e.g. write a middle name as its initial.",
            f"Họ tên quá dài để ghi lên thẻ: tối đa {NAME_MAX_BYTES} byte UTF-8, mỗi chữ có dấu chiếm 2 hoặc 3 "
            "byte. Hãy rút gọn, ví dụ viết tắt tên đệm.",
        )
    return text


# ---------------------------------------------------------------------------------------------------------
# Phones

# The 2018 conversion of 11-digit mobile numbers to 10 digits, old prefix → new prefix.
_OLD_MOBILE_PREFIXES = {
    "0162": "032", "0163": "033", "0164": "034", "0165": "035", "0166": "036", "0167": "037",
    "0168": "038", "0169": "039",
    "0120": "070", "0121": "079", "0122": "077", "0126": "076", "0128": "078",
    "0123": "083", "0124": "084", "0125": "085", "0127": "081", "0129": "082",
    "0186": "056", "0188": "058", "0199": "059",
}  # fmt: skip
_MOBILE_FIRST_DIGITS = frozenset("35789")
_PHONE_SEPARATORS = re.compile(r"[\s.\-()/]+")


def _invalid_phone() -> InputError:
    return InputError(
        "invalid_phone",
        "Not a Vietnamese mobile number (10 digits starting with 03, 05, 07, 08 or 09, or +84).",
        "Không phải số điện thoại di động Việt Nam (10 chữ số bắt đầu bằng 03, 05, 07, 08, 09 hoặc +84).",
    )


def normalize_phone(raw: str | int) -> str:
    """Return a Vietnamese mobile number in E.164 form, ``+84`` followed by 9 digits.

    Accepts the usual spellings (``0912 345 678``, ``091.234.5678``, ``(+84) 912-345-678``, ``84912345678``),
    a 9-digit number whose leading 0 a spreadsheet dropped, and old 11-digit ``01xx`` numbers, which are
    converted with the 2018 mapping. Landlines and anything else raise :class:`InputError`
    (``empty`` or ``invalid_phone``).
    """
    if isinstance(raw, bool):
        raise _invalid_phone()
    text = str(raw) if isinstance(raw, int) else raw
    text = _PHONE_SEPARATORS.sub("", text.strip().removeprefix("'"))
    if not text:
        raise InputError("empty", "The phone number is empty.", "Số điện thoại đang để trống.")
    if text.startswith("+"):
        if not text.startswith("+84"):
            raise _invalid_phone()
        text = "84" + text[3:]
    elif text.startswith("0084"):
        text = text[2:]
    if not (text.isascii() and text.isdigit()):
        raise _invalid_phone()

    if text.startswith("84") and len(text) in (11, 12):
        national = text[2:].removeprefix("0") if len(text) == 12 else text[2:]
    elif text.startswith("0") and len(text) == 10:
        national = text[1:]
    elif text.startswith("01") and len(text) == 11 and text[:4] in _OLD_MOBILE_PREFIXES:
        national = _OLD_MOBILE_PREFIXES[text[:4]][1:] + text[4:]
    elif len(text) == 9:
        national = text
    else:
        raise _invalid_phone()
    if len(national) != 9 or national[0] not in _MOBILE_FIRST_DIGITS:
        raise _invalid_phone()
    return "+84" + national


# ---------------------------------------------------------------------------------------------------------
# Dates

# Excel's day 0 for the 1900 date system; its fictitious 29 Feb 1900 only shifts serials below 61.
_EXCEL_EPOCH = date(1899, 12, 30)
_EXCEL_SERIAL_MAX = 80000
# Whole numbers up to 2200 are years, never serials: as serials they would be dates before 1906, while a
# "Năm sinh" column holds exactly such numbers. Years before 1900 are then refused as too early.
_NUMBER_YEAR_MAX = 2200
_YEAR_MIN = 1900
_TIME_SUFFIX = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
_DAY_FIRST = re.compile(r"^(\d{1,2})([/.\-])(\d{1,2})\2(\d{4})" + _TIME_SUFFIX + "$")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})" + _TIME_SUFFIX + "$")
_YEAR = re.compile(r"^\d{4}$")
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)?$")


def _invalid_date() -> InputError:
    return InputError(
        "invalid_date",
        "Not a valid date. Write it as day/month/year, e.g. 25/03/1985.",
        "Ngày không hợp lệ. Hãy ghi theo dạng ngày/tháng/năm, ví dụ 25/03/1985.",
    )


def _year_not_allowed() -> InputError:
    return InputError(
        "invalid_date",
        "A full date is needed here (day/month/year), not only a year.",
        "Cần ghi đủ ngày/tháng/năm, không chỉ ghi năm.",
    )


def _from_number(number: float, allow_year_only: bool) -> tuple[date, Literal["day", "year"]]:
    if not math.isfinite(number):
        raise _invalid_date()
    if number.is_integer() and 1 <= number <= _NUMBER_YEAR_MAX:
        if not allow_year_only:
            raise _year_not_allowed()
        return date(int(number), 1, 1), "year"
    if _NUMBER_YEAR_MAX < number <= _EXCEL_SERIAL_MAX:
        # A fractional serial is a date with a time of day; the date is its integral part.
        return _EXCEL_EPOCH + timedelta(days=math.floor(number)), "day"
    raise _invalid_date()


def _from_text(text: str, allow_year_only: bool) -> tuple[date, Literal["day", "year"]]:
    text = text.strip().removeprefix("'").strip()
    if not text:
        raise InputError("empty", "The date is empty.", "Ngày đang để trống.")
    try:
        if _YEAR.match(text):
            if not allow_year_only:
                raise _year_not_allowed()
            return date(int(text), 1, 1), "year"
        # Vietnam writes dates day first; a month-first reading is never tried.
        match = _DAY_FIRST.match(text)
        if match:
            return date(int(match.group(4)), int(match.group(3)), int(match.group(1))), "day"
        match = _ISO.match(text)
        if match:
            return date(int(match.group(1)), int(match.group(2)), int(match.group(3))), "day"
    except ValueError as exc:
        # date() refuses 31/02 and the like.
        raise _invalid_date() from exc
    if _NUMBER.match(text):
        return _from_number(float(text.replace(",", ".")), allow_year_only)
    raise _invalid_date()


def parse_date(
    value: object, *, allow_year_only: bool = False, today: date | None = None
) -> tuple[date, Literal["day", "year"]]:
    """Read a date from a form field or spreadsheet cell; return it with its precision.

    Accepts ``date``/``datetime`` objects, Excel serial numbers (as numbers or text), ``dd/mm/yyyy`` with
    ``/``, ``-`` or ``.`` separators (day first, always), ISO ``yyyy-mm-dd``, and, if ``allow_year_only``, a
    year alone (returned as 1 January with precision ``"year"``). Dates before 1900 and after ``today``
    (default: today in Vietnam) are refused. Raises :class:`InputError` (``empty``, ``invalid_date``,
    ``too_early``, ``future_date``).
    """
    result: tuple[date, Literal["day", "year"]]
    if value is None:
        raise InputError("empty", "The date is empty.", "Ngày đang để trống.")
    if isinstance(value, datetime):
        # A spreadsheet's datetime is a wall-clock value; an instant (with a zone) falls on a day in Vietnam.
        result = (vietnam_day(value) if value.tzinfo else value.date()), "day"
    elif isinstance(value, date):
        result = value, "day"
    elif isinstance(value, bool):
        raise _invalid_date()
    elif isinstance(value, int | float):
        result = _from_number(float(value), allow_year_only)
    elif isinstance(value, str):
        result = _from_text(value, allow_year_only)
    else:
        raise _invalid_date()

    parsed = result[0]
    if parsed.year < _YEAR_MIN:
        raise InputError(
            "too_early",
            "Dates before the year 1900 are not accepted.",
            "Không chấp nhận ngày trước năm 1900.",
        )
    if parsed > (today or vietnam_today()):
        raise InputError("future_date", "The date is in the future.", "Ngày này nằm trong tương lai.")
    return result


# ---------------------------------------------------------------------------------------------------------
# Gender

_GENDERS: dict[str, Literal["female", "male"]] = {
    "nu": "female",
    "nu gioi": "female",
    "f": "female",
    "female": "female",
    "woman": "female",
    "nam": "male",
    "nam gioi": "male",
    "m": "male",
    "male": "male",
    "man": "male",
}


def parse_gender(value: object) -> Literal["female", "male"]:
    """Read a gender written as Nữ/Nam (with or without accents), F/M or female/male, in any case.

    Digit codes are refused: offices use both 0/1 and 1/2 conventions. Raises :class:`InputError`
    (``empty`` or ``invalid_gender``).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError("empty", "The gender is empty.", "Giới tính đang để trống.")
    if isinstance(value, str):
        gender = _GENDERS.get(fold(value).rstrip("."))
        if gender is not None:
            return gender
    raise InputError(
        "invalid_gender",
        "The gender must be Nữ (female) or Nam (male).",
        "Giới tính phải là Nữ hoặc Nam.",
    )
