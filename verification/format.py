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

import bisect
import re
import struct
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta, timezone
from functools import lru_cache
from typing import Any, ClassVar, Final

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
CWT_CNF: Final = 8  # RFC 8747 confirmation claim: only in a holder-bound credential (docs/card-format.md §8)
HEADER_ALG: Final = 1
HEADER_KID: Final = 4
ALG_EDDSA: Final = -8
ALG_ES256: Final = -7
ALGORITHM_NAMES: Final = {ALG_EDDSA: "EdDSA", ALG_ES256: "ES256"}
KID_LENGTH: Final = 2
CARD_ID_LENGTH: Final = 8
SIGNATURE_LENGTH: Final = 64
# The limits of docs/card-format.md §6.2, which the issuer (check_claims) and every verifier enforce.
MAX_MEMBER_NUMBER: Final = 10**10 - 1
MAX_NAME_BYTES: Final = 100
MAX_CHAPTER_CHARS: Final = 32
UINT32_LIMIT: Final = 2**32  # card_version, status_list and status_index lie below it
# Dates are whole days in Vietnam time (UTC+7): iat is the start of the issue day, exp the end of the last valid day.
VIETNAM_TZ: Final = timezone(timedelta(hours=7))
# A verifier's clock may be this far off at both validity edges (and for the iat of trust bundles and status lists).
CLOCK_SKEW_SECONDS: Final = 600

# Code points a name must not hold (docs/card-format.md §6.3; verify.js holds the same list): controls, bidi
# formatting, zero-width and other invisible or non-printing characters, surrogates, private use and noncharacters.
# Written as fixed ranges rather than Unicode categories so that every implementation, whatever its Unicode
# version, draws the same line. It covers categories Cc, Cf, Zl, Zp, Co and Cs and every Default_Ignorable_Code_Point.
FORBIDDEN_TEXT_RANGES: Final[tuple[tuple[int, int], ...]] = (
    (0x0000, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x034F, 0x034F), (0x0600, 0x0605), (0x061C, 0x061C),
    (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x2028, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164), (0xD800, 0xF8FF),
    (0xFDD0, 0xFDEF), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFFB), (0xFFFE, 0xFFFF),
    (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    *((plane << 16 | 0xFFFE, plane << 16 | 0xFFFF) for plane in range(1, 14)),
    (0xE0000, 0xE0FFF), (0xEFFFE, 0x10FFFF),
)
_FORBIDDEN_STARTS: Final = tuple(low for low, _ in FORBIDDEN_TEXT_RANGES)
# Every forbidden code point of the BMP and every code point beyond it. Python's re tests a class of BMP ranges with a
# bitmap but walks astral ranges one by one (ten times slower on every scan), so the few astral code points that are
# not forbidden are told apart only when a name holds one.
_SUSPECT_TEXT: Final = re.compile("[" + "".join(f"{re.escape(chr(low))}-{re.escape(chr(high))}"
                                                for low, high in FORBIDDEN_TEXT_RANGES if high < 0x10000)
                                  + "\U00010000-\U0010FFFF]")
_CHAPTER_CODE: Final = re.compile(rf"[A-Z0-9][A-Z0-9._-]{{0,{MAX_CHAPTER_CHARS - 1}}}")

_CHUNK_BYTES = 7
_DIGITS_FOR_BYTES = {1: 3, 2: 5, 3: 8, 4: 10, 5: 13, 6: 15, 7: 17}
_BYTES_FOR_DIGITS = {digits: size for size, digits in _DIGITS_FOR_BYTES.items()}
# A scanned text (docs/card-format.md §2): leading whitespace and byte order marks, an AIM symbology identifier (]Q1),
# one ECI escape (\000026), the digits, trailing whitespace. Nothing may stand between the digits.
_SCANNED_TEXT = re.compile(r"[\t\n\r \ufeff]*(?:\][A-Za-z][0-9A-Za-z])?(?:\\[0-9]{6})?([0-9]+)[\t\n\r ]*")


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

    # The fast parser stores the Sig_structure on the instance, cut from the received bytes.
    _signed: ClassVar[bytes | None] = None

    def signed_bytes(self) -> bytes:
        """The COSE Sig_structure over exactly the received protected header and payload bytes."""
        return self._signed or sig_structure(self.protected, self.payload)


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
_from_ordinal = date.fromordinal
_VIETNAM_OFFSET = 7 * 3600


def day_start(day: date) -> int:
    """NumericDate of 00:00 Vietnam time on ``day``."""
    return (day.toordinal() - _EPOCH_ORDINAL) * 86400 - _VIETNAM_OFFSET


# The latest exp a date can represent with a day to spare: verifiers add a day to expires_on.
LAST_NUMERIC_DATE: Final = day_start(date(9999, 12, 31))
_DAY_SECONDS: Final = 86400


def forbidden_code_point(code_point: int) -> bool:
    """Whether ``code_point`` lies in one of :data:`FORBIDDEN_TEXT_RANGES`."""
    at = bisect.bisect_right(_FORBIDDEN_STARTS, code_point) - 1
    return at >= 0 and code_point <= FORBIDDEN_TEXT_RANGES[at][1]


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a card's display name (docs/card-format.md §6.3), or None when it can.

    Args:
        name: The display name as text.

    Returns:
        None for 1 to 100 bytes of UTF-8 in Unicode NFC without a code point of :data:`FORBIDDEN_TEXT_RANGES`;
        otherwise what is wrong, in English, for logs (never the name itself).
    """
    # The forbidden code points come first: they include lone surrogates, which would not encode below.
    if _SUSPECT_TEXT.search(name) is not None and any(map(forbidden_code_point, map(ord, name))):
        return "display name holds a control, bidi, invisible or non-printing character"
    if not 0 < len(name.encode()) <= MAX_NAME_BYTES:
        return "display name must be 1 to 100 bytes of UTF-8"
    if not unicodedata.is_normalized("NFC", name):
        return "display name is not in Unicode NFC"
    return None


def _check_values(card_id: bytes, member_number: int, name: str, chapter: str, version: int, status_list: int,
                  status_index: int, iat: int, exp: int) -> None:
    """The limits of docs/card-format.md §6.2 on decoded claims of the right types.

    Raises:
        CredentialError: ``malformed``, naming the first limit broken.
    """
    if len(card_id) != CARD_ID_LENGTH:
        raise CredentialError("malformed", "card id must be 8 bytes")
    if not 0 <= member_number <= MAX_MEMBER_NUMBER:
        raise CredentialError("malformed", "member number out of range")
    if not (0 <= version < UINT32_LIMIT and 0 <= status_list < UINT32_LIMIT and 0 <= status_index < UINT32_LIMIT):
        raise CredentialError("malformed", "card version and status reference must be 32-bit unsigned integers")
    if not 0 <= iat < exp <= LAST_NUMERIC_DATE:
        raise CredentialError("malformed", "validity dates out of range")
    if (iat + _VIETNAM_OFFSET) % _DAY_SECONDS or (exp + _VIETNAM_OFFSET) % _DAY_SECONDS:
        raise CredentialError("malformed", "validity dates must be 00:00 Vietnam time")
    problem = name_problem(name)
    if problem is not None:
        raise CredentialError("malformed", problem)
    if _CHAPTER_CODE.fullmatch(chapter) is None:
        raise CredentialError("malformed", "chapter code must be 1 to 32 of A-Z, 0-9, '.', '_', '-'")


def encode_claims(claims: CardClaims, cnf: Mapping[int, Any] | None = None) -> bytes:
    """The deterministic CBOR encoding of a claims set (what gets signed).

    Args:
        claims: The card's claims.
        cnf: For a holder-bound credential (docs/card-format.md §8.1), the ``cnf`` claim: ``{1: COSE_Key}``.
    """
    check_claims(claims)
    body: dict[int, Any] = {
        CWT_EXP: day_start(claims.expires_on + timedelta(days=1)),
        CWT_IAT: day_start(claims.issued_on),
        CWT_CTI: claims.card_id,
    }
    if cnf is not None:
        body[CWT_CNF] = cnf
    body[PRIVATE_CLAIM] = [
        FORMAT_VERSION, int(claims.member_number), claims.display_name, claims.chapter_code,
        claims.card_version, claims.status_list, claims.status_index,
    ]
    # The keys are already in deterministic order (4, 6, 7, -65537), so plain encoding is deterministic; a cnf map is
    # sorted by the canonical encoder.
    return bytes(cbor2.dumps(body, canonical=cnf is not None))


def check_claims(claims: CardClaims) -> None:
    """Refuse claims that the format cannot carry faithfully: the limits verifiers enforce (§6.2), checked at issue.

    Raises:
        ValueError: What is wrong (never the name itself).
    """
    if not (claims.member_number.isascii() and claims.member_number.isdigit() and len(claims.member_number) == 10):
        raise ValueError("member number must be 10 digits")
    # The dates as the claims carry them: an expiry before the issue day, or outside 1970-01-02 .. 9999-12-30,
    # breaks iat < exp within the limits.
    try:
        _check_values(claims.card_id, int(claims.member_number), claims.display_name, claims.chapter_code,
                      claims.card_version, claims.status_list, claims.status_index, day_start(claims.issued_on),
                      day_start(claims.expires_on) + _DAY_SECONDS)
    except CredentialError as exc:
        raise ValueError(exc.message) from None


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


@lru_cache(maxsize=128)
def _group_reader(groups: int, start: int) -> tuple[struct.Struct, struct.Struct]:
    """How to cut ``groups`` 17-digit groups from ``start`` on, and how to pack their values as 8-byte words."""
    return struct.Struct(f"{start}x" + "17s" * groups), struct.Struct(f">{groups}Q")


def _digits_to_bytes(digits: bytes, start: int) -> bytes:
    """:func:`digits_to_bytes` of ``digits[start:]``, known to be ASCII digits only (int() would accept more)."""
    groups, rest = divmod(len(digits) - start, 17)
    if rest and rest not in _BYTES_FOR_DIGITS:
        raise CredentialError("malformed", "digit count does not match the encoding")
    cut, words = _group_reader(groups, start)
    try:
        out = bytearray(words.pack(*map(int, cut.unpack_from(digits))))
    except struct.error as exc:  # not from 17 digits (< 2**57); kept so that nothing escapes as another error
        raise CredentialError("malformed", "digit group out of range") from exc
    # A group's value fits its 7 bytes exactly when the first byte of its 8-byte word is zero.
    if out[::8].count(0) != groups:
        raise CredentialError("malformed", "digit group out of range")
    del out[::8]
    if rest:
        try:
            out += int(digits[start + 17 * groups:]).to_bytes(_BYTES_FOR_DIGITS[rest], "big")
        except OverflowError as exc:
            raise CredentialError("malformed", "digit group out of range") from exc
    return bytes(out)


def digits_after(digits: bytes, start: int) -> bytes:
    """The bytes written by ASCII ``digits`` (0-9 only, checked by the caller) from ``start`` on (§2).

    Raises:
        CredentialError: ``malformed`` when the digit count or a group's value is not the encoding's.
    """
    return _digits_to_bytes(digits, start)


def digits_to_bytes(digits: str) -> bytes:
    if len(digits) > MAX_QR_TEXT:
        raise CredentialError("malformed", "too many digits for a credential")
    encoded = _ascii_digits(digits)
    if digits and not encoded:
        raise CredentialError("malformed", "credential digits must be 0-9 only")
    return _digits_to_bytes(encoded, 0)


def _ascii_digits(text: str) -> bytes:
    """``text`` as bytes if it is one or more ASCII digits, else empty.

    str.isdigit() accepts other scripts' digits and is slow; bytes.isdigit() accepts only 0-9, and int() reads bytes
    a little faster than text.
    """
    encoded = text.encode() if text.isascii() else b""
    return encoded if encoded.isdigit() else b""


def to_qr_text(credential: bytes) -> str:
    return QR_PREFIX + bytes_to_digits(credential)


def clean_scanned_text(text: str) -> str:
    """The digits of a scanned QR text, without what a scanner adds around them (docs/card-format.md §2).

    Args:
        text: What the scanner typed: leading spaces, tabs, CR/LF and byte order marks, an AIM symbology identifier
            (``]Q1``), one ECI escape (``\\000026``), the digits, then trailing spaces, tabs and CR/LF.

    Returns:
        The digits.

    Raises:
        CredentialError: ``malformed`` for anything else, such as a character between the digits.
    """
    found = _SCANNED_TEXT.fullmatch(text)
    if found is None:
        raise CredentialError("malformed", "scanned text is not a run of digits with scanner framing around it")
    return found.group(1)


def credential_from_text(text: str) -> bytes:
    """The credential bytes carried by a scanned QR text."""
    if len(text) > MAX_QR_TEXT:
        raise CredentialError("malformed", "scanned text too long")
    # Most scans are digits already; cleaning them would change nothing.
    digits = _ascii_digits(text)
    if not digits:
        text = clean_scanned_text(text)
        digits = text.encode()
    if not text.startswith("84") or len(text) < 4:
        raise CredentialError("malformed", "not a member card")
    if text[:4] != QR_PREFIX:
        raise CredentialError("unsupported_version", f"card format version {text[2:4]} is not supported")
    return _digits_to_bytes(digits, len(QR_PREFIX))


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
    # Issued credentials all have one shape, read directly; the general parser decides on anything else.
    if type(raw) is bytes and len(raw) <= MAX_CREDENTIAL_BYTES:
        parsed = _parse_issued_shape(raw)
        if parsed is not None:
            return parsed
    return _parse_credential_general(raw)


def _parse_credential_general(raw: bytes, bound: dict[str, Any] | None = None) -> ParsedCredential:
    """:func:`parse_credential` for any input: decode with cbor2, then require deterministic CBOR at every level.

    With ``bound`` (a holder-bound credential, :func:`parse_bound_credential`) the claims must hold ``cnf`` as well,
    and its value is stored in ``bound["cnf"]``.
    """
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
    # type() and not isinstance/==: True, -8.0 and containers must never pass for an algorithm number. The format has
    # room for two algorithms only, so any other is a malformed credential (docs/card-format.md §6.1, step 2).
    if type(algorithm) is not int or algorithm not in ALGORITHM_NAMES:
        raise CredentialError("malformed", "algorithm not allowed")
    if not isinstance(kid, bytes) or len(kid) != KID_LENGTH:
        raise CredentialError("malformed", "key id must be 2 bytes")
    if len(signature) != SIGNATURE_LENGTH:
        raise CredentialError("malformed", "signature must be 64 raw bytes")
    return ParsedCredential(raw, protected, algorithm, kid, payload, signature, _parse_claims(payload, bound))


def parse_bound_credential(raw: bytes) -> tuple[ParsedCredential, Any]:
    """Check the structure of a holder-bound credential (docs/card-format.md §8.1); the signature is not checked.

    Args:
        raw: The credential bytes cut from a live code.

    Returns:
        The parsed credential and the value of its ``cnf`` claim, still to be checked as a COSE_Key by the caller.

    Raises:
        CredentialError: As :func:`parse_credential`, except that the claims must be exactly 4, 6, 7, 8 and −65537.
    """
    parsed, cnf, key = parse_bound_parts(raw)
    if key is not None:
        algorithm, public = key
        cnf = {1: {1: 1, -1: 6, -2: public}} if algorithm == ALG_EDDSA else {1: {1: 2, -1: 1, -2: public[:32],
                                                                                  -3: public[32:]}}
    return parsed, cnf


def parse_bound_parts(raw: bytes) -> tuple[ParsedCredential, Any, tuple[int, bytes] | None]:
    """:func:`parse_bound_credential` without a round trip through a decoded ``cnf`` where it can be spared.

    Returns:
        The parsed credential, then either (``cnf``, None) with the claim still to be checked by the caller, or
        (None, (algorithm, public key)) when the credential has the one shape the fast parser reads, whose ``cnf``
        is an OKP/Ed25519 or EC2/P-256 COSE_Key of exactly the parameters of §8.1: what ``live.holder_key`` would
        return for it, as a pair.

    Raises:
        CredentialError: As :func:`parse_bound_credential`.
    """
    bound: dict[str, Any] = {}
    parsed = _parse_issued_shape(raw, bound) if type(raw) is bytes and len(raw) <= MAX_CREDENTIAL_BYTES else None
    if parsed is not None:
        return parsed, None, bound["key"]
    return _parse_credential_general(raw, bound), bound["cnf"], None


# A CBOR unsigned integer in shortest form (RFC 8949 §4.2.1) as one group, head and argument: the lookaheads refuse an
# argument that a shorter head could carry.
_UINT_ITEM: Final = rb"([\x00-\x17]|\x18[\x18-\xff]|\x19[\x01-\xff].|\x1a(?!\x00\x00)....|\x1b(?!\x00{4}).{8})"
# The head of a text string of up to 255 bytes, in shortest form.
_TEXT_HEAD: Final = rb"([\x60-\x77]|\x78[\x18-\xff])"
# An issued credential up to its name: tag 18, array(4), bstr(7) protected header (a known prefix, then the kid), empty
# unprotected map, bstr(n ≥ 24) payload holding {4: exp, 6: iat, 7: card_id, -65537: [1, member_number, name...
_ISSUED_START: Final = re.compile(
    rb"\xd2\x84\x47(" + b"|".join(map(re.escape, _PROTECTED_PREFIXES)) + rb")(..)\xa0\x58([\x18-\xff])"
    rb"\xa4\x04" + _UINT_ITEM + rb"\x06" + _UINT_ITEM + rb"\x07\x48(.{8})\x3a\x00\x01\x00\x00\x87\x01" + _UINT_ITEM
    + _TEXT_HEAD,
    re.DOTALL,
)
# A holder-bound credential (docs/card-format.md §8.1) up to its name: the same, with a map of five claims and
# 8: {1: COSE_Key} after the card id, the key OKP/Ed25519 {1: 1, -1: 6, -2: x} or EC2/P-256 {1: 2, -1: 1, -2: x, -3: y}.
_BOUND_START: Final = re.compile(
    _ISSUED_START.pattern.replace(rb"\xa4\x04", rb"\xa5\x04").replace(
        rb"\x07\x48(.{8})", rb"\x07\x48(.{8})\x08(\xa1\x01(?:\xa3\x01\x01\x20\x06\x21\x58\x20.{32}"
                            rb"|\xa4\x01\x02\x20\x01\x21\x58\x20.{32}\x22\x58\x20.{32}))"),
    re.DOTALL,
)
# ... chapter_code, version, status_list, status_index]}, then the signature's bstr(64) head.
_ISSUED_CHAPTER_HEAD: Final = re.compile(_TEXT_HEAD, re.DOTALL)
_ISSUED_END: Final = re.compile(_UINT_ITEM * 3 + rb"\x58\x40", re.DOTALL)


def _parse_issued_shape(raw: bytes, bound: dict[str, Any] | None = None) -> ParsedCredential | None:
    """What the general parser returns, read straight from the bytes, for the one shape an issued credential has.

    That shape is :func:`assemble` over a protected header from :data:`_PROTECTED_PREFIXES`, a payload of 24 to 255
    bytes that :func:`encode_claims` could have written (every head in shortest form, texts of up to 255 bytes) and a
    64-byte signature, with nothing after. The general parser accepts all such bytes and builds an equal result; for
    any other bytes this returns None and leaves the verdict to it. With ``bound``, the shape is a holder-bound
    credential's (:data:`_BOUND_START`) and its holder key is stored in ``bound["key"]`` as (algorithm, raw public key),
    the pair :func:`parse_bound_parts` hands over (the general parser stores the decoded ``cnf`` in ``bound["cnf"]``).
    """
    start = (_ISSUED_START if bound is None else _BOUND_START).match(raw)
    if start is None:
        return None
    if bound is None:
        prefix, kid, size, exp_item, iat_item, card_id, member_item, name_head = start.groups()
    else:
        prefix, kid, size, exp_item, iat_item, card_id, cnf, member_item, name_head = start.groups()
        # The key's two shapes, as (algorithm, raw public key): what live.holder_key reads from the cnf that
        # cbor2 decodes, {1: {1: 1, -1: 6, -2: x}} or {1: {1: 2, -1: 1, -2: x, -3: y}}; parse_bound_credential
        # builds that map only when asked for it.
        bound["key"] = (ALG_EDDSA, cnf[-32:]) if cnf[2] == 0xA3 else (ALG_ES256, cnf[10:42] + cnf[-32:])
    payload_end = 13 + size[0]
    name_end = start.end() + (name_head[1] if len(name_head) == 2 else name_head[0] - 0x60)
    if len(raw) != payload_end + 2 + SIGNATURE_LENGTH:
        return None
    chapter = _ISSUED_CHAPTER_HEAD.match(raw, name_end, payload_end)
    if chapter is None:
        return None
    chapter_head = chapter.group(1)
    chapter_end = chapter.end() + (chapter_head[1] if len(chapter_head) == 2 else chapter_head[0] - 0x60)
    end = _ISSUED_END.fullmatch(raw, chapter_end, payload_end + 2)
    if end is None:
        return None
    try:
        name = raw[start.end():name_end].decode()
        chapter_code = raw[chapter.end():chapter_end].decode()
    except UnicodeDecodeError:
        return None
    version_item, list_item, index_item = end.groups()
    # A one-byte item is its own value; a longer one's argument follows its head.
    exp = int.from_bytes(exp_item[1:] or exp_item, "big")
    iat = int.from_bytes(iat_item[1:] or iat_item, "big")
    member_number = int.from_bytes(member_item[1:] or member_item, "big")
    version = int.from_bytes(version_item[1:] or version_item, "big")
    status_list = int.from_bytes(list_item[1:] or list_item, "big")
    status_index = int.from_bytes(index_item[1:] or index_item, "big")
    # The limits _parse_claims checks; the general parser names the one broken.
    try:
        _check_values(card_id, member_number, name, chapter_code, version, status_list, status_index, iat, exp)
    except CredentialError:
        return None
    parsed = object.__new__(ParsedCredential)
    # As in _card_claims; the received bstr(protected) and bstr(payload) are already what the Sig_structure holds.
    parsed.__dict__.update(
        raw=raw, protected=raw[3:10], algorithm=_PROTECTED_PREFIXES[prefix], kid=kid, payload=raw[13:payload_end],
        signature=raw[payload_end + 2:],
        claims=_card_claims(card_id, member_number, name, chapter_code, version, iat, exp, status_list, status_index),
        _signed=_SIG_STRUCTURE_HEAD + raw[2:10] + b"\x40" + raw[11:payload_end],
    )
    return parsed


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


_CLAIM_KEYS: Final = frozenset({CWT_EXP, CWT_IAT, CWT_CTI, PRIVATE_CLAIM})
_BOUND_CLAIM_KEYS: Final = _CLAIM_KEYS | {CWT_CNF}


def _parse_claims(payload: bytes, bound: dict[str, Any] | None = None) -> CardClaims:
    body = _loads(payload)
    # The fast check implies the four int keys; only the general path needs to look for them.
    if bound is not None or not _is_deterministic_claims(body, payload):
        _require_canonical(body, payload, "claims")
        keys = frozenset(body) if isinstance(body, dict) and _int_keys(body) else None
        if bound is None and keys == _BOUND_CLAIM_KEYS:
            # A copy of a live code's credential without its holder's proof (docs/card-format.md §8.3).
            raise CredentialError("holder_proof_invalid", "a holder-bound credential is valid only in a live code")
        if keys != (_CLAIM_KEYS if bound is None else _BOUND_CLAIM_KEYS):
            raise CredentialError("malformed", "claims set has missing or unknown claims")
        if bound is not None:
            bound["cnf"] = body[CWT_CNF]
    card = body[PRIVATE_CLAIM]
    version = card[0] if isinstance(card, list | tuple) and card else None
    # A version is an unsigned integer; a negative one or another type is no version at all.
    if type(version) is not int or version < 0:
        raise CredentialError("malformed", "card claim missing or without a version")
    if version != FORMAT_VERSION:
        raise CredentialError("unsupported_version", f"claims version {version} is not supported")
    if len(card) != 7:
        raise CredentialError("malformed", "card claim has the wrong number of fields")
    _, member_number, name, chapter, version, status_list, status_index = card
    exp, iat, cti = body[CWT_EXP], body[CWT_IAT], body[CWT_CTI]
    # Written out rather than as a generator over a tuple: this runs on every scan.
    if not (type(member_number) is int and type(version) is int and type(status_list) is int
            and type(status_index) is int and type(exp) is int and type(iat) is int and type(name) is str
            and type(chapter) is str and type(cti) is bytes):
        raise CredentialError("malformed", "claims have wrong types")
    _check_values(cti, member_number, name, chapter, version, status_list, status_index, iat, exp)
    return _card_claims(cti, member_number, name, chapter, version, iat, exp, status_list, status_index)


def _card_claims(card_id: bytes, member_number: int, name: str, chapter: str, version: int, iat: int, exp: int,
                 status_list: int, status_index: int) -> CardClaims:
    claims = object.__new__(CardClaims)
    # The instance CardClaims(...) would build, filled in directly: a frozen dataclass's __init__ pays for an
    # object.__setattr__ call per field, on every scan.
    claims.__dict__.update(
        card_id=card_id,
        member_number=str(member_number).zfill(10),
        display_name=name,
        chapter_code=chapter,
        card_version=version,
        # The Vietnam-time days holding iat and exp - one day, in plain arithmetic as this runs on every scan. The
        # last valid day is the one before exp's day; exp - one day ≥ -86400 still maps to a real date.
        issued_on=_from_ordinal(_EPOCH_ORDINAL + (iat + _VIETNAM_OFFSET) // _DAY_SECONDS),
        expires_on=_from_ordinal(_EPOCH_ORDINAL - 1 + (exp + _VIETNAM_OFFSET) // _DAY_SECONDS),
        status_list=status_list,
        status_index=status_index,
    )
    return claims
