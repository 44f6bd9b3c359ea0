"""The card credential wire format (normative text: docs/card-format.md).

A credential is a tagged COSE_Sign1 (RFC 9052) whose payload is a CWT-style (RFC 8392) claims map::

    18([ h'A2 01 <alg> 04 42 <kid:2>',  {},  h'<claims>',  h'<signature:64>' ])

    claims = { 4: exp, 6: iat, 7: card_id(8 bytes), -65537: [1, member_number, name, chapter, version,
                                                              status_list, status_index] }

It travels as raw bytes (NFC) or as QR text: the digits ``8401`` (format 84 = this union's card, version 01)
followed by the bytes in groups of 7, each written as a 17-digit decimal number (a last group of k < 7 bytes uses
3, 5, 8, 10, 13 or 15 digits). Digits only, so QR numeric mode packs them densely and a keyboard-wedge scanner types
them unchanged under any keyboard layout or Vietnamese input method.

This module only parses and checks structure; it never trusts anything before the signature is verified by
:mod:`verification.crypto`. Every failure is a :class:`CredentialError` with a stable reason code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta, timezone
from functools import lru_cache
from typing import Any, Final

import cbor2

from verification.errors import CredentialError

QR_PREFIX: Final = "8401"
FORMAT_VERSION: Final = 1
MAX_CREDENTIAL_BYTES: Final = 512
MAX_QR_TEXT: Final = 2048
COSE_SIGN1_TAG: Final = 18
PRIVATE_CLAIM: Final = -65537  # CWT private-use range (< -65536): this union's card claims
CWT_EXP: Final = 4
CWT_IAT: Final = 6
CWT_CTI: Final = 7
HEADER_ALG: Final = 1
HEADER_KID: Final = 4
ALG_EDDSA: Final = -8
ALG_ES256: Final = -7
ALGORITHM_NAMES: Final = {ALG_EDDSA: "EdDSA", ALG_ES256: "ES256"}
KID_LENGTH: Final = 2
CARD_ID_LENGTH: Final = 8
SIGNATURE_LENGTH: Final = 64
# Dates are whole days in Vietnam time (UTC+7): iat is the start of the issue day, exp the end of the last valid day.
VIETNAM_TZ: Final = timezone(timedelta(hours=7))

_CHUNK_BYTES = 7
_DIGITS_FOR_BYTES = {1: 3, 2: 5, 3: 8, 4: 10, 5: 13, 6: 15, 7: 17}
_BYTES_FOR_DIGITS = {digits: size for size, digits in _DIGITS_FOR_BYTES.items()}
# Scanner artefacts around the digits: AIM symbology identifiers (]Q1…), ECI escapes (\000026), whitespace, CR/LF.
_AIM_PREFIX = re.compile(r"^\][A-Za-z][0-9A-Za-z]")
_ECI_ESCAPE = re.compile(r"\\\d{6}")
# ASCII digits only; a compiled pattern is about three times faster than str.isdigit() on a 400-digit scan.
_ASCII_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class CardClaims:
    """What a card says about its holder. Never an ID number, birth date, phone or address."""

    card_id: bytes
    member_number: str
    display_name: str
    chapter_code: str
    card_version: int
    issued_on: date
    expires_on: date
    status_list: int
    status_index: int


@dataclass(frozen=True)
class ParsedCredential:
    """A structurally valid credential whose signature has NOT been checked yet."""

    raw: bytes
    protected: bytes
    algorithm: int
    kid: bytes
    payload: bytes
    signature: bytes
    claims: CardClaims

    def signed_bytes(self) -> bytes:
        """The COSE Sig_structure over exactly the received protected header and payload bytes."""
        return sig_structure(self.protected, self.payload)


def _bstr(data: bytes) -> bytes:
    """A CBOR byte string in its shortest (deterministic) form; written by hand because it is on the hot path."""
    size = len(data)
    if size < 24:
        return bytes((0x40 | size,)) + data
    if size < 256:
        return bytes((0x58, size)) + data
    if size < 65536:
        return b"\x59" + size.to_bytes(2, "big") + data
    raise ValueError("byte string too long for a credential")


_SIG_STRUCTURE_HEAD = b"\x84\x6aSignature1"  # array(4), text(10) "Signature1"
_COSE_SIGN1_HEAD = b"\xd2\x84"  # tag 18, array(4)


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """``["Signature1", protected, external_aad = h'', payload]`` (RFC 9052 §4.4), deterministic CBOR."""
    return _SIG_STRUCTURE_HEAD + _bstr(protected) + b"\x40" + _bstr(payload)


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_VIETNAM_OFFSET = 7 * 3600


def day_start(day: date) -> int:
    """NumericDate of 00:00 Vietnam time on ``day``."""
    return (day.toordinal() - _EPOCH_ORDINAL) * 86400 - _VIETNAM_OFFSET


def _day_of(timestamp: int) -> date:
    """The Vietnam-time day holding ``timestamp``; plain arithmetic, as this runs on every scan."""
    return date.fromordinal(_EPOCH_ORDINAL + (timestamp + _VIETNAM_OFFSET) // 86400)


# The latest exp a date can represent with a day to spare: verifiers add a day to expires_on.
_LAST_NUMERIC_DATE = day_start(date(9999, 12, 31))


def encode_claims(claims: CardClaims) -> bytes:
    """The deterministic CBOR encoding of a claims set (what gets signed)."""
    check_claims(claims)
    body = {
        CWT_EXP: day_start(claims.expires_on + timedelta(days=1)),
        CWT_IAT: day_start(claims.issued_on),
        CWT_CTI: claims.card_id,
        PRIVATE_CLAIM: [
            FORMAT_VERSION, int(claims.member_number), claims.display_name, claims.chapter_code,
            claims.card_version, claims.status_list, claims.status_index,
        ],
    }
    # The keys are already in deterministic order (4, 6, 7, -65537), so plain encoding is deterministic.
    return bytes(cbor2.dumps(body))


def check_claims(claims: CardClaims) -> None:
    """Refuse claims that the format cannot carry faithfully."""
    if len(claims.card_id) != CARD_ID_LENGTH:
        raise ValueError("card id must be 8 bytes")
    if not (claims.member_number.isascii() and claims.member_number.isdigit() and len(claims.member_number) == 10):
        raise ValueError("member number must be 10 digits")
    if not 0 < len(claims.display_name.encode()) <= 100:
        raise ValueError("display name must be 1 to 100 bytes of UTF-8")
    if not 0 < len(claims.chapter_code) <= 32:
        raise ValueError("chapter code must be 1 to 32 characters")
    if claims.expires_on < claims.issued_on:
        raise ValueError("expiry before issue")
    for value in (claims.card_version, claims.status_list, claims.status_index):
        if not 0 <= value < 2**32:
            raise ValueError("card version and status references must be 32-bit unsigned integers")


@lru_cache(maxsize=64)
def protected_header(algorithm: int, kid: bytes) -> bytes:
    return bytes(cbor2.dumps({HEADER_ALG: algorithm, HEADER_KID: kid}, canonical=True))


def assemble(protected: bytes, payload: bytes, signature: bytes) -> bytes:
    """The tagged COSE_Sign1 bytes: ``18([protected, {}, payload, signature])`` in deterministic CBOR."""
    return _COSE_SIGN1_HEAD + _bstr(protected) + b"\xa0" + _bstr(payload) + _bstr(signature)


def bytes_to_digits(data: bytes) -> str:
    full = len(data) - len(data) % _CHUNK_BYTES
    digits = "".join([f"{int.from_bytes(data[i:i + 7], 'big'):017d}" for i in range(0, full, _CHUNK_BYTES)])
    if full < len(data):
        tail = data[full:]
        digits += str(int.from_bytes(tail, "big")).zfill(_DIGITS_FOR_BYTES[len(tail)])
    return digits


def digits_to_bytes(digits: str) -> bytes:
    if digits and _ASCII_DIGITS.fullmatch(digits) is None:
        raise CredentialError("malformed", "credential digits must be 0-9 only")
    full, rest = divmod(len(digits), 17)
    if rest and rest not in _BYTES_FOR_DIGITS:
        raise CredentialError("malformed", "digit count does not match the encoding")
    end = full * 17
    try:
        # to_bytes refuses a value that does not fit its byte count, which is exactly the group range check.
        out = b"".join([int(digits[i:i + 17]).to_bytes(_CHUNK_BYTES, "big") for i in range(0, end, 17)])
        if rest:
            out += int(digits[end:]).to_bytes(_BYTES_FOR_DIGITS[rest], "big")
    except OverflowError as exc:
        raise CredentialError("malformed", "digit group out of range") from exc
    return out


def to_qr_text(credential: bytes) -> str:
    return QR_PREFIX + bytes_to_digits(credential)


def clean_scanned_text(text: str) -> str:
    """Strip what scanners add around the payload: whitespace, CR/LF, AIM identifiers, ECI escapes."""
    cleaned = text.strip().lstrip("\ufeff")
    cleaned = _AIM_PREFIX.sub("", cleaned)
    cleaned = _ECI_ESCAPE.sub("", cleaned)
    return "".join(cleaned.split())


def credential_from_text(text: str) -> bytes:
    """The credential bytes carried by a scanned QR text."""
    if len(text) > MAX_QR_TEXT:
        raise CredentialError("malformed", "scanned text too long")
    # Most scans are digits already; cleaning them would change nothing.
    cleaned = text if _ASCII_DIGITS.fullmatch(text) else clean_scanned_text(text)
    if _ASCII_DIGITS.fullmatch(cleaned) is None:
        raise CredentialError("malformed", "scanned text is not all digits")
    if not cleaned.startswith("84") or len(cleaned) < 4:
        raise CredentialError("malformed", "not a member card")
    if cleaned[:4] != QR_PREFIX:
        raise CredentialError("unsupported_version", f"card format version {cleaned[2:4]} is not supported")
    return digits_to_bytes(cleaned[4:])


def _loads(data: bytes) -> Any:
    try:
        return cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError, EOFError, IndexError,
            KeyError, MemoryError, UnicodeDecodeError) as exc:
        raise CredentialError("malformed", "not valid CBOR") from exc


def _require_canonical(value: Any, data: bytes, what: str) -> None:
    # Re-encoding must give back the very bytes: this refuses duplicate map keys, indefinite lengths, non-shortest
    # integers and trailing data, so two different byte strings can never mean the same credential.
    try:
        again = cbor2.dumps(value, canonical=True)
    except (ValueError, TypeError, OverflowError, RecursionError, cbor2.CBOREncodeError) as exc:
        raise CredentialError("malformed", f"{what} cannot be re-encoded") from exc
    if again != data:
        raise CredentialError("malformed", f"{what} is not in deterministic CBOR encoding")


def _int_keys(mapping: dict[Any, Any]) -> bool:
    # 4.0 and True compare equal to 4 and 1, so a set comparison alone would let float or boolean keys through.
    return all(type(key) is int for key in mapping)


# The protected header of a well-formed credential, as bytes: {1: alg, 4: h'<kid:2>'} in deterministic CBOR.
_PROTECTED_PREFIXES: Final = {b"\xa2\x01\x27\x04\x42": ALG_EDDSA, b"\xa2\x01\x26\x04\x42": ALG_ES256}


def _is_deterministic_envelope(outer: Any, raw: bytes) -> bool:
    """A fast, equivalent form of ``_require_canonical`` for the one shape a credential may have.

    When the decoded value is a tag 18 over four parts of the right types, its deterministic encoding is exactly
    ``assemble(...)``, so comparing with that spares a general re-encoding on every scan. Any other shape returns
    False and goes through the general check, which gives the same verdict it always did.
    """
    if type(outer) is not cbor2.CBORTag or outer.tag != COSE_SIGN1_TAG:
        return False
    parts = outer.value
    if type(parts) not in (list, tuple) or len(parts) != 4:
        return False
    protected, _, payload, signature = parts
    return (type(protected) is bytes and type(payload) is bytes and type(signature) is bytes
            and raw == assemble(protected, payload, signature))


def parse_credential(raw: bytes) -> ParsedCredential:
    """Check the structure of credential bytes and decode the claims (the signature is not checked here)."""
    if not isinstance(raw, bytes | bytearray) or not 0 < len(raw) <= MAX_CREDENTIAL_BYTES:
        raise CredentialError("malformed", "credential size out of bounds")
    raw = bytes(raw)
    outer = _loads(raw)
    if not _is_deterministic_envelope(outer, raw):
        _require_canonical(outer, raw, "credential")
    if not isinstance(outer, cbor2.CBORTag) or outer.tag != COSE_SIGN1_TAG:
        raise CredentialError("malformed", "not a tagged COSE_Sign1")
    parts = outer.value
    # Inside a tag cbor2 decodes immutable containers (tuple, frozendict).
    if not isinstance(parts, list | tuple) or len(parts) != 4:
        raise CredentialError("malformed", "COSE_Sign1 must have four parts")
    protected, unprotected, payload, signature = parts
    if not (isinstance(protected, bytes) and isinstance(payload, bytes) and isinstance(signature, bytes)):
        raise CredentialError("malformed", "COSE_Sign1 parts have wrong types")
    if not isinstance(unprotected, Mapping) or len(unprotected) != 0:
        raise CredentialError("malformed", "unprotected header must be empty")
    fast_algorithm = _PROTECTED_PREFIXES.get(protected[:5]) if len(protected) == 5 + KID_LENGTH else None
    if fast_algorithm is not None:
        # These exact bytes are the deterministic encoding of {1: alg, 4: kid}: nothing left to decode or check.
        algorithm, kid = fast_algorithm, protected[5:]
    else:
        header = _loads(protected)
        _require_canonical(header, protected, "protected header")
        if not isinstance(header, dict) or set(header) != {HEADER_ALG, HEADER_KID} or not _int_keys(header):
            raise CredentialError("malformed", "protected header must hold exactly alg and kid")
        algorithm, kid = header[HEADER_ALG], header[HEADER_KID]
    # type() and not isinstance/==: True, -8.0 and containers must never pass for an algorithm number.
    if type(algorithm) is not int or algorithm not in ALGORITHM_NAMES:
        raise CredentialError("bad_signature", "algorithm not allowed")
    if not isinstance(kid, bytes) or len(kid) != KID_LENGTH:
        raise CredentialError("malformed", "key id must be 2 bytes")
    if len(signature) != SIGNATURE_LENGTH:
        raise CredentialError("bad_signature", "signature must be 64 raw bytes")
    return ParsedCredential(raw, protected, algorithm, kid, payload, signature, _parse_claims(payload))


def _is_deterministic_claims(body: Any, payload: bytes) -> bool:
    """A fast, equivalent form of ``_require_canonical`` for a claims set whose every value has the expected type.

    With the four int keys in the order 4, 6, 7, -65537 and only ints, text, bytes and one flat array as values,
    cbor2's plain encoding is the deterministic one (shortest integers, definite lengths), so one plain re-encoding
    with int keys decides (a 4.0 or True key encodes differently and fails the comparison). Anything else returns
    False and goes through the general check.
    """
    if type(body) is not dict or len(body) != 4:
        return False
    exp, iat, cti, card = body.get(CWT_EXP), body.get(CWT_IAT), body.get(CWT_CTI), body.get(PRIVATE_CLAIM)
    if not isinstance(card, list | tuple) or len(card) != 7:
        return False
    first, member_number, name, chapter, version, status_list, status_index = card
    if not (type(exp) is int and type(iat) is int and type(cti) is bytes and type(first) is int
            and type(member_number) is int and type(name) is str and type(chapter) is str and type(version) is int
            and type(status_list) is int and type(status_index) is int):
        return False
    return payload == cbor2.dumps({CWT_EXP: exp, CWT_IAT: iat, CWT_CTI: cti, PRIVATE_CLAIM: list(card)})


_DAY_SECONDS: Final = 86400


def _parse_claims(payload: bytes) -> CardClaims:
    body = _loads(payload)
    # The fast check implies the four int keys; only the general path needs to look for them.
    if not _is_deterministic_claims(body, payload):
        _require_canonical(body, payload, "claims")
        if not isinstance(body, dict) or set(body) != {CWT_EXP, CWT_IAT, CWT_CTI, PRIVATE_CLAIM} or not _int_keys(body):
            raise CredentialError("malformed", "claims set has missing or unknown claims")
    card = body[PRIVATE_CLAIM]
    version = card[0] if isinstance(card, list | tuple) and card else None
    if type(version) is not int:
        raise CredentialError("malformed", "card claim missing or without a version")
    if version != FORMAT_VERSION:
        raise CredentialError("unsupported_version", f"claims version {version} is not supported")
    if len(card) != 7:
        raise CredentialError("malformed", "card claim has the wrong number of fields")
    _, member_number, name, chapter, version, status_list, status_index = card
    exp, iat, cti = body[CWT_EXP], body[CWT_IAT], body[CWT_CTI]
    # Written out rather than as a generator over a tuple: this runs on every scan.
    if not (type(member_number) is int and type(version) is int and type(status_list) is int
            and type(status_index) is int and type(exp) is int and type(iat) is int
            and 0 <= member_number < 2**40 and 0 <= version < 2**40 and 0 <= status_list < 2**40
            and 0 <= status_index < 2**40 and 0 <= exp < 2**40 and 0 <= iat < 2**40):
        raise CredentialError("malformed", "numeric claims out of range")
    if not (isinstance(name, str) and isinstance(chapter, str) and isinstance(cti, bytes)):
        raise CredentialError("malformed", "claims have wrong types")
    if member_number >= 10**10 or len(cti) != CARD_ID_LENGTH or exp <= iat or exp > _LAST_NUMERIC_DATE:
        raise CredentialError("malformed", "claims out of range")
    return CardClaims(
        card_id=cti,
        member_number=str(member_number).zfill(10),
        display_name=name,
        chapter_code=chapter,
        card_version=version,
        issued_on=_day_of(iat),
        # The last valid day is the one before exp's day; exp - one day ≥ -86400 still maps to a real date.
        expires_on=_day_of(exp - _DAY_SECONDS),
        status_list=status_list,
        status_index=status_index,
    )
