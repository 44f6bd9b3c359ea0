"""Property tests of the card format: round trip, tamper resistance, the digit encoding and scanner noise."""

from __future__ import annotations

import unicodedata
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from issuance.credential import credential_qr_text, sign_credential
from issuance.keys import LocalSigner, Signer
from tests.vectors import make_vectors
from verification.crypto import PublicKey, verify_signature
from verification.errors import CredentialError
from verification.format import (
    ALG_EDDSA,
    ALG_ES256,
    QR_PREFIX,
    CardClaims,
    bytes_to_digits,
    credential_from_text,
    digits_to_bytes,
    name_problem,
    parse_credential,
)

# The production signer (random ECDSA nonces), over the published test keys.
SIGNERS: list[Signer] = [
    LocalSigner(make_vectors.ED25519_KID, ALG_EDDSA, make_vectors.ed25519_test_key()),
    LocalSigner(make_vectors.ES256_KID, ALG_ES256, make_vectors.p256_test_key()),
]
TRUST: dict[bytes, tuple[int, PublicKey]] = {
    make_vectors.ED25519_KID: (ALG_EDDSA, make_vectors.ed25519_test_key().public_key()),
    make_vectors.ES256_KID: (ALG_ES256, make_vectors.p256_test_key().public_key()),
}
EXAMPLES = settings(max_examples=200, deadline=None)

VIETNAMESE = "aàáảãạăằắẳẵặâầấẩẫậeèéẻẽẹêềếểễệiìíỉĩịoòóỏõọôồốổỗộơờớởỡợuùúủũụưừứửữựyỳýỷỹỵđ"
VIETNAMESE_ALPHABET = VIETNAMESE + VIETNAMESE.upper() + "bcdghklmnpqrstvx" + "BCDGHKLMNPQRSTVX" + " -'"
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)
U32 = st.integers(0, 2**32 - 1)


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


names = (
    st.one_of(st.text(VIETNAMESE_ALPHABET, min_size=1, max_size=60), st.text(min_size=1, max_size=60))
    .map(_nfc)
    .filter(lambda name: name_problem(name) is None)
)


@st.composite
def card_claims(draw: st.DrawFn) -> CardClaims:
    issued = draw(st.dates(FIRST_DAY, LAST_DAY))
    expires = issued + timedelta(days=draw(st.integers(0, (LAST_DAY - issued).days)))
    return CardClaims(
        card_id=draw(st.binary(min_size=8, max_size=8)),
        member_number=str(draw(st.integers(0, 10**10 - 1))).zfill(10),
        display_name=draw(names),
        chapter_code=draw(st.from_regex(r"[A-Z0-9][A-Z0-9._-]{0,31}", fullmatch=True)),
        card_version=draw(U32),
        issued_on=issued,
        expires_on=expires,
        status_list=draw(U32),
        status_index=draw(U32),
    )


def verify_credential(raw: bytes) -> CardClaims:
    parsed = parse_credential(raw)
    if parsed.kid not in TRUST:
        raise CredentialError("unknown_key", "kid not in the trust list")
    algorithm, key = TRUST[parsed.kid]
    verify_signature(parsed, algorithm, key)
    return parsed.claims


def _refused(raw: bytes) -> bool:
    """True when the verifier refuses ``raw`` with a CredentialError; any other exception propagates and fails."""
    try:
        verify_credential(raw)
    except CredentialError:
        return True
    return False


@st.composite
def issued(draw: st.DrawFn) -> bytes:
    return sign_credential(draw(card_claims()), draw(st.sampled_from(SIGNERS)))


@EXAMPLES
@given(claims=card_claims(), signer=st.sampled_from(SIGNERS))
def test_round_trip(claims: CardClaims, signer: Signer) -> None:
    text = credential_qr_text(sign_credential(claims, signer))
    assert text.isascii() and text.isdigit()
    assert text.startswith(QR_PREFIX)
    assert verify_credential(credential_from_text(text)) == claims


@EXAMPLES
@given(raw=issued(), data=st.data())
def test_any_bit_flip_is_refused(raw: bytes, data: st.DataObject) -> None:
    bit = data.draw(st.integers(0, 8 * len(raw) - 1))
    tampered = bytearray(raw)
    tampered[bit // 8] ^= 1 << (bit % 8)
    assert _refused(bytes(tampered))


@EXAMPLES
@given(raw=issued(), data=st.data())
def test_any_truncation_is_refused(raw: bytes, data: st.DataObject) -> None:
    assert _refused(raw[:data.draw(st.integers(0, len(raw) - 1))])


@EXAMPLES
@given(raw=issued(), extra=st.binary(min_size=1, max_size=64))
def test_appended_bytes_are_refused(raw: bytes, extra: bytes) -> None:
    assert _refused(raw + extra)


@EXAMPLES
@given(raw=issued(), data=st.data())
def test_any_byte_insertion_is_refused(raw: bytes, data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(raw)))
    byte = data.draw(st.integers(0, 255))
    assert _refused(raw[:at] + bytes([byte]) + raw[at:])


@EXAMPLES
@given(raw=issued(), data=st.data())
def test_any_digit_substitution_in_the_qr_text_is_refused(raw: bytes, data: st.DataObject) -> None:
    text = credential_qr_text(raw)
    at = data.draw(st.integers(0, len(text) - 1))
    digit = data.draw(st.sampled_from([d for d in "0123456789" if d != text[at]]))
    tampered = text[:at] + digit + text[at + 1:]
    try:
        changed = credential_from_text(tampered)
    except CredentialError:
        return
    assert changed != raw
    assert _refused(changed)


@EXAMPLES
@given(data=st.binary(max_size=600))
def test_digits_round_trip(data: bytes) -> None:
    digits = bytes_to_digits(data)
    assert digits.isascii() and (digits.isdigit() or not data)
    assert digits_to_bytes(digits) == data


@EXAMPLES
@given(groups=st.integers(0, 40), rest=st.sampled_from([1, 2, 4, 6, 7, 9, 11, 12, 14, 16]), data=st.data())
def test_invalid_digit_counts_are_malformed(groups: int, rest: int, data: st.DataObject) -> None:
    digits = data.draw(st.text("0123456789", min_size=17 * groups + rest, max_size=17 * groups + rest))
    try:
        digits_to_bytes(digits)
    except CredentialError as error:
        assert error.reason == "malformed"
    else:
        raise AssertionError(f"{len(digits)} digits were accepted")


@EXAMPLES
@given(size=st.sampled_from([1, 2, 3, 4, 5, 6, 7]), data=st.data())
def test_digit_groups_out_of_range_are_malformed(size: int, data: st.DataObject) -> None:
    width = {1: 3, 2: 5, 3: 8, 4: 10, 5: 13, 6: 15, 7: 17}[size]
    value = data.draw(st.integers(256**size, 10**width - 1))
    try:
        digits_to_bytes(str(value).zfill(width))
    except CredentialError as error:
        assert error.reason == "malformed"
    else:
        raise AssertionError(f"group {value} for {size} bytes was accepted")


whitespace = st.text(" \t\r\n", max_size=4)


@EXAMPLES
@given(raw=issued(), before=whitespace, after=whitespace, aim=st.sampled_from(["", "]Q1", "]Q2"]),
       eci=st.sampled_from(["", "\\000026", "\\000003"]), line_end=st.sampled_from(["", "\r", "\n", "\r\n"]))
def test_scanner_noise_gives_the_same_credential(raw: bytes, before: str, after: str, aim: str, eci: str,
                                                 line_end: str) -> None:
    scanned = before + aim + eci + credential_qr_text(raw) + after + line_end
    assert credential_from_text(scanned) == raw
