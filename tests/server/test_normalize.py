"""Names, search keys, phones, dates and gender (DOMAIN.md §3)."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cardsvc.normalize import (
    NAME_MAX_BYTES,
    fold,
    given_name_sort_key,
    invisible_character,
    name_search_key,
    normalize_name,
    normalize_phone,
    parse_date,
    parse_gender,
    refuse_invisible,
    search_terms,
)
from integrations.errors import InputError
from tests.conftest import NAME_TOO_LONG_FOR_CARD
from verification.format import CardClaims, check_claims

TODAY = date(2025, 6, 15)

# --- names ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Nguyễn Thị Phương Thảo", "Nguyễn Thị Phương Thảo"),
        ("  Nguyễn   Thị\tLan \u00a0", "Nguyễn Thị Lan"),
        ("NGUYỄN THỊ LAN", "Nguyễn Thị Lan"),
        ("nguyễn thị lan", "Nguyễn Thị Lan"),
        ("ĐẶNG THỊ ĐÀO", "Đặng Thị Đào"),
        ("McDonald Lan", "McDonald Lan"),  # mixed case is kept as typed
        ("H'Bia Niê", "H'Bia Niê"),
        ("h\u2019bia niê", "H'Bia Niê"),  # typographic apostrophe
        ("TRẦN LAN-ANH", "Trần Lan-Anh"),
        ("Nguyễn T. Lan", "Nguyễn T. Lan"),
        ("Nguyễn Thị\r\nLan", "Nguyễn Thị Lan"),  # a line break inside a spreadsheet cell
    ],
)
def test_normalize_name(raw: str, expected: str) -> None:
    assert normalize_name(raw) == expected


def test_nfd_input_comes_out_nfc() -> None:
    nfd = unicodedata.normalize("NFD", "Nguyễn Thị Phương Thảo")
    assert nfd != "Nguyễn Thị Phương Thảo"
    result = normalize_name(nfd)
    assert result == "Nguyễn Thị Phương Thảo"
    assert unicodedata.is_normalized("NFC", result)
    assert unicodedata.is_normalized("NFC", normalize_name(unicodedata.normalize("NFD", "NGUYỄN THỊ ẢNH")))


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("Lan 2", "invalid_characters"),
        ("Lan\x00Anh", "invisible_characters"),
        ("Lan@Anh", "invalid_characters"),
        ("Lan, Anh", "invalid_characters"),
        ("--", "invalid_characters"),
        ("L", "too_short"),
        ("A" * 101, "too_long"),
    ],
)
def test_normalize_name_refuses(raw: str, code: str) -> None:
    with pytest.raises(InputError) as info:
        normalize_name(raw)
    assert info.value.code == code
    assert str(info.value) == info.value.message_en
    assert info.value.message_vi


def test_name_length_limit_is_inclusive() -> None:
    assert len(normalize_name("a" * 100)) == 100


_NAME_ALPHABET = st.sampled_from(
    [
        *"aăâbcdđeêghiklmnoôơpqrstuưvxyAĂÂĐÊÔƠƯ àáảãạằẮẳỵỶỹ-'.ßıİǅ9,",
        "\u0301",
        "\u0323",
        "\u0306",
        "\u00a0",
        "\u200b",
    ]
)


@given(st.one_of(st.text(_NAME_ALPHABET, max_size=30), st.text(max_size=30)))
@example("ǅ a")
def test_normalize_name_is_idempotent(raw: str) -> None:
    try:
        once = normalize_name(raw)
    except InputError:
        return  # Refused input: nothing to be idempotent about (filtering would starve the generator).
    assert normalize_name(once) == once
    assert unicodedata.is_normalized("NFC", once)
    assert 2 <= len(once) <= 100
    assert len(once.encode()) <= NAME_MAX_BYTES
    assert invisible_character(once) is None


def test_name_must_fit_the_card_in_bytes() -> None:
    assert (len(NAME_TOO_LONG_FOR_CARD), len(NAME_TOO_LONG_FOR_CARD.encode())) == (88, 119)
    with pytest.raises(InputError) as info:
        normalize_name(NAME_TOO_LONG_FOR_CARD)
    assert info.value.code == "too_long"
    assert "100 bytes" in info.value.message_en and "100 byte" in info.value.message_vi
    fits = "Nguyễn Thị " + "Lan " * 20 + "Xuân"  # exactly 100 bytes
    assert len(fits.encode()) == NAME_MAX_BYTES
    assert normalize_name(fits) == fits
    assert normalize_name(fits.upper()) == fits  # title-casing keeps the byte count


_VIETNAMESE_LETTERS = "aăâbcdđeêghiklmnoôơpqrstuưvxyàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ"


@given(st.text(st.sampled_from(_VIETNAMESE_LETTERS + _VIETNAMESE_LETTERS.upper() + " "), min_size=30, max_size=100))
def test_every_accepted_name_fits_a_card(raw: str) -> None:
    try:
        name = normalize_name(raw)
    except InputError as exc:
        assert exc.code in ("empty", "too_short", "too_long")
        return
    check_claims(CardClaims(card_id=bytes(8), member_number="0000000018", display_name=name, chapter_code="HNI",
                            card_version=1, issued_on=TODAY, expires_on=TODAY, status_list=1, status_index=0))


@pytest.mark.parametrize(
    "invisible",
    [
        *"\u202a\u202b\u202c\u202d\u202e",  # bidi embeddings and overrides
        *"\u2066\u2067\u2068\u2069",  # bidi isolates
        *"\u200e\u200f\u061c",  # direction marks
        *"\u200b\u200c\u200d\u2060\ufeff\u00ad",  # zero-width characters, BOM, soft hyphen
        *"\x07\x1b\x7f\x85\u2028\u2029",  # control characters, line and paragraph separators
        *"\u3164\u115f\ufe0f\u034f",  # blank letters, a variation selector, the grapheme joiner
        "\U000e0041",  # a tag character
        "\ue000",  # private use
    ],
)
def test_invisible_and_direction_characters_are_refused_by_name(invisible: str) -> None:
    with pytest.raises(InputError) as info:
        normalize_name(f"Nguyễn Thị{invisible} Lan")
    assert info.value.code == "invisible_characters"
    point = f"U+{ord(invisible):04X}"
    assert point in info.value.message_en and point in info.value.message_vi
    assert "Họ tên" in info.value.message_vi


def test_visible_text_has_no_invisible_character() -> None:
    assert invisible_character("Nguyễn Thị Phương Thảo\tH'Bia Niê ơ\u0306 Lan") is None
    assert invisible_character("Chi hội 1 (Ba Đình) – 2025") is None
    assert invisible_character("Lan\u202eAnh") == "\u202e"
    with pytest.raises(InputError, match="The chapter name contains"):
        refuse_invisible("Chi hội\u2067 1", subject_en="The chapter name", subject_vi="Tên chi hội")


# --- folding and search -------------------------------------------------------------------------------------


def test_fold() -> None:
    assert fold("Nguyễn Thị Phương Thảo") == "nguyen thi phuong thao"
    assert fold("ĐẶNG") == "dang"
    assert fold("đào") == "dao"
    assert fold(unicodedata.normalize("NFD", "Đặng Thị Huệ")) == "dang thi hue"
    assert fold("  Lan \t  Anh ") == "lan anh"


@given(st.text())
def test_fold_is_idempotent(text: str) -> None:
    assert fold(fold(text)) == fold(text)


def test_accent_insensitive_search_finds_the_name() -> None:
    key = name_search_key("Nguyễn Thị Phương Thảo")
    assert key == " nguyen thi phuong thao "
    for word in search_terms("nguyen thi thao"):
        assert f" {word} " in key
    assert " thao " in name_search_key(unicodedata.normalize("NFD", "Nguyễn Thị Phương Thảo"))
    assert " anh " in name_search_key("Trần Lan-Anh")


def test_given_name_sort_key_orders_by_given_name() -> None:
    names = ["Trần Văn Bình", "Nguyễn Thị An", "Lê Thị Ánh", "Đặng Thị Dung"]
    assert sorted(names, key=given_name_sort_key) == [
        "Nguyễn Thị An",
        "Lê Thị Ánh",
        "Trần Văn Bình",
        "Đặng Thị Dung",
    ]
    assert given_name_sort_key("Nguyễn Thị Lan") == "lan nguyen thi lan"


def test_search_terms() -> None:
    assert search_terms("  Nguyễn   THỊ  ") == ["nguyen", "thi"]
    assert search_terms("100% lan_anh \\ x") == ["100", "lan", "anh", "x"]
    assert search_terms("") == []
    assert search_terms("%%% ___") == []
    assert len(search_terms(" ".join(f"w{i}" for i in range(20)))) == 8
    assert search_terms("a" * 100) == ["a" * 40]


@given(st.text())
def test_search_terms_are_safe_for_like(query: str) -> None:
    terms = search_terms(query)
    assert len(terms) <= 8
    for term in terms:
        assert term and len(term) <= 40
        assert not set(term) & {"%", "_", "\\", " "}


# --- phones -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "0912345678",
        "091 234 5678",
        "091.234.5678",
        "091-234-5678",
        "+84912345678",
        "84912345678",
        "(+84) 912-345-678",
        "+84 (0) 912 345 678",
        "0084912345678",
        "912345678",
        912345678,
        "'0912345678",
    ],
)
def test_normalize_phone_spellings(raw: str | int) -> None:
    assert normalize_phone(raw) == "+84912345678"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("0162", "032"), ("0163", "033"), ("0164", "034"), ("0165", "035"), ("0166", "036"), ("0167", "037"),
        ("0168", "038"), ("0169", "039"), ("0120", "070"), ("0121", "079"), ("0122", "077"), ("0126", "076"),
        ("0128", "078"), ("0123", "083"), ("0124", "084"), ("0125", "085"), ("0127", "081"), ("0129", "082"),
        ("0186", "056"), ("0188", "058"), ("0199", "059"),
    ],
)  # fmt: skip
def test_old_11_digit_numbers_use_the_2018_mapping(old: str, new: str) -> None:
    assert normalize_phone(old + "1234567") == "+84" + new[1:] + "1234567"


@pytest.mark.parametrize("first", ["3", "5", "7", "8", "9"])
def test_mobile_prefixes(first: str) -> None:
    assert normalize_phone(f"0{first}12345678") == f"+84{first}12345678"
    assert normalize_phone(f"{first}12345678") == f"+84{first}12345678"


@pytest.mark.parametrize(
    "raw",
    [
        "0241234567",  # Hà Nội landline
        "02838123456",  # HCMC landline
        "01301234567",  # 01xx prefix that was never a mobile range
        "091234567",  # 9 digits starting 0
        "09123456789",
        "+14155550100",
        "091234567a",
        "123",
        "0612345678",
        True,
    ],
)
def test_normalize_phone_refuses(raw: str | int) -> None:
    with pytest.raises(InputError) as info:
        normalize_phone(raw)
    assert info.value.code == "invalid_phone"
    assert "0241234567" not in info.value.message_en


def test_empty_phone() -> None:
    with pytest.raises(InputError) as info:
        normalize_phone("  ")
    assert info.value.code == "empty"


# --- dates --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (date(1985, 3, 25), date(1985, 3, 25)),
        (datetime(1985, 3, 25, 0, 0), date(1985, 3, 25)),
        (45292, date(2024, 1, 1)),
        (45292.75, date(2024, 1, 1)),
        ("45292", date(2024, 1, 1)),
        ("25/03/1985", date(1985, 3, 25)),
        ("5/3/1985", date(1985, 3, 5)),
        ("25-03-1985", date(1985, 3, 25)),
        ("25.03.1985", date(1985, 3, 25)),
        ("1985-03-25", date(1985, 3, 25)),
        ("1985-03-25 00:00:00", date(1985, 3, 25)),
        (" 01/02/2024 ", date(2024, 2, 1)),  # day first: 1 February, never 2 January
    ],
)
def test_parse_date(value: object, expected: date) -> None:
    assert parse_date(value, today=TODAY) == (expected, "day")


def test_excel_serial_epoch() -> None:
    assert parse_date(45292, today=TODAY)[0] == date(2024, 1, 1)
    assert parse_date(32000, today=TODAY)[0] == date(1987, 8, 11)


@pytest.mark.parametrize("value", ["1985", 1985, 1985.0])
def test_year_only(value: object) -> None:
    assert parse_date(value, allow_year_only=True, today=TODAY) == (date(1985, 1, 1), "year")
    with pytest.raises(InputError) as info:
        parse_date(value, today=TODAY)
    assert info.value.code == "invalid_date"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (None, "empty"),
        ("", "empty"),
        ("12/31/2020", "invalid_date"),  # month-first is never guessed
        ("31/02/2020", "invalid_date"),
        ("25/03/85", "invalid_date"),  # two-digit year: century unknown
        ("25/03-1985", "invalid_date"),
        ("hôm qua", "invalid_date"),
        (True, "invalid_date"),
        (999999, "invalid_date"),
        (float("inf"), "invalid_date"),
        ("01/01/1899", "too_early"),
        ("1850", "too_early"),
        ("16/06/2025", "future_date"),
        (date(2030, 1, 1), "future_date"),
    ],
)
def test_parse_date_refuses(value: object, code: str) -> None:
    with pytest.raises(InputError) as info:
        parse_date(value, allow_year_only=True, today=TODAY)
    assert info.value.code == code


def test_today_is_not_in_the_future() -> None:
    assert parse_date("15/06/2025", today=TODAY) == (TODAY, "day")


# --- gender -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["Nữ", "nữ", "NỮ", "nu", "Nu", "F", "f", "female", "Female", "Nữ giới", " nữ "])
def test_female(value: str) -> None:
    assert parse_gender(value) == "female"
    assert parse_gender(unicodedata.normalize("NFD", value)) == "female"


@pytest.mark.parametrize("value", ["Nam", "nam", "NAM", "M", "m", "male", "Nam giới"])
def test_male(value: str) -> None:
    assert parse_gender(value) == "male"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("0", "invalid_gender"),
        ("1", "invalid_gender"),
        (1, "invalid_gender"),
        ("x", "invalid_gender"),
        (None, "empty"),
        ("  ", "empty"),
    ],
)
def test_gender_refuses(value: object, code: str) -> None:
    with pytest.raises(InputError) as info:
        parse_gender(value)
    assert info.value.code == code
