"""Regenerate the card credential's test vectors (verification/format.py, docs/card-format.md §7).

* ``tests/vectors/card-v1.json``: golden vectors, the hex of every stage of valid credentials.
* ``tests/vectors/card-v1-negative.json``: inputs a verifier must refuse, each with the trust and status context it
  needs, the verifier's clock and the reason code, plus a few inputs at the edges that it must accept.

Run ``.venv/bin/python tests/vectors/make_vectors.py`` to rewrite both files, or add ``--check`` to only compare.
The output depends on nothing but the fixed test keys, claims and times below: Ed25519 is deterministic, and the ES256
vectors are signed with RFC 6979 deterministic ECDSA, normalised to low S (the production signer draws a random nonce
instead; a verifier cannot tell the difference). ``tests/verification/test_format_vectors.py`` fails when a file and
this script disagree, so the files can only change together with the format.

The keys are PUBLISHED TEST KEYS (RFC 8032 §7.1 TEST 1 and TEST 2 seeds, RFC 6979 A.2.5 P-256 key). Never trust them
anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import cbor2
import qrcode
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from qrcode import constants, util

from issuance.keys import LocalSigner, PrivateKey, Signer, public_spki
from verification.crypto import P256_ORDER, load_public_key, public_jwk
from verification.errors import REASONS
from verification.format import (
    ALG_EDDSA,
    ALG_ES256,
    ALGORITHM_NAMES,
    QR_PREFIX,
    CardClaims,
    assemble,
    bytes_to_digits,
    day_start,
    encode_claims,
    protected_header,
    sig_structure,
    to_qr_text,
)
from verification.live import LIVE_REASONS
from verification.ndef import CARD_RECORD_TYPE, encode_card_ndef, encode_ndef_tlv

VECTORS_PATH = Path(__file__).with_name("card-v1.json")
NEGATIVE_PATH = Path(__file__).with_name("card-v1-negative.json")

# RFC 8032 §7.1 TEST 1 and TEST 2 secret keys (32-byte Ed25519 seeds) and RFC 6979 A.2.5 private scalar (P-256).
ED25519_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
IMPOSTOR_SEED = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
P256_SCALAR = bytes.fromhex("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721")
ED25519_KID = bytes.fromhex("7e01")
ES256_KID = bytes.fromhex("7e02")
UNKNOWN_KID = bytes.fromhex("beef")
# The reasons a version 1 card can get (live codes add theirs: tests/vectors/make_live_vectors.py).
V1_REASONS = tuple(reason for reason in REASONS if reason not in LIVE_REASONS)

NTAG_USER_BYTES = {"NTAG213": 144, "NTAG215": 504, "NTAG216": 888}

SIZE_BUDGET_CLAIMS = CardClaims(
    card_id=bytes.fromhex("3f9a0c51d27e46b8"),
    member_number="0000001867",
    display_name="Nguyễn Thị Phương Thảo Vy",
    chapter_code="HNI-BADINH-01",
    card_version=1,
    issued_on=date(2025, 7, 1),
    expires_on=date(2030, 6, 30),
    status_list=1,
    status_index=48213,
)
SHORT_NAME_CLAIMS = CardClaims(
    card_id=bytes.fromhex("0000000000000001"),
    member_number="0000000001",
    display_name="Lan",
    chapter_code="HNI",
    card_version=0,
    issued_on=date(2025, 1, 1),
    expires_on=date(2025, 1, 1),
    status_list=0,
    status_index=0,
)
LONG_NAME_CLAIMS = CardClaims(
    card_id=bytes.fromhex("ffffffffffffffff"),
    member_number="9999999999",
    display_name="Tôn Nữ Hoàng Thị Phương Thảo Nguyễn Huỳnh Bảo Ngọc Quỳnh Như Đỗ Ánh Tuyết",
    chapter_code="HCM-Q1.BEN_NGHE-0000000000000001",
    card_version=2**32 - 1,
    issued_on=date(2000, 1, 1),
    expires_on=date(2100, 12, 31),
    status_list=2**32 - 1,
    status_index=2**32 - 1,
)


@dataclass(frozen=True)
class DeterministicSigner:
    """ES256 with RFC 6979 nonces, so that regenerating the vectors gives the same bytes."""

    kid: bytes
    algorithm: int
    private_key: ec.EllipticCurvePrivateKey

    def sign(self, data: bytes) -> bytes:
        der = self.private_key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        # Low-S, as the issuer's signer emits and verifiers require.
        s = min(s, P256_ORDER - s)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def ed25519_test_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(ED25519_SEED)


def p256_test_key() -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(P256_SCALAR, "big"), ec.SECP256R1())


def fixed_signers() -> dict[int, Signer]:
    """The signer of each algorithm, keyed by COSE algorithm id."""
    return {
        ALG_EDDSA: LocalSigner(ED25519_KID, ALG_EDDSA, ed25519_test_key()),
        ALG_ES256: DeterministicSigner(ES256_KID, ALG_ES256, p256_test_key()),
    }


def private_key_hex(key: PrivateKey) -> str:
    if isinstance(key, Ed25519PrivateKey):
        return ED25519_SEED.hex()
    return key.private_numbers().private_value.to_bytes(32, "big").hex()


def qr_version_ecc_m(text: str) -> int:
    """The smallest QR version holding ``text`` in numeric mode at error-correction level M."""
    code = qrcode.QRCode(version=None, error_correction=constants.ERROR_CORRECT_M)
    code.add_data(util.QRData(text, mode=util.MODE_NUMBER))
    code.make(fit=True)
    return int(code.version)


def ndef_sizes(credential: bytes) -> dict[str, Any]:
    """Bytes of the card's NDEF message (the card record alone) and of its NDEF TLV on a Type 2 tag (§3a)."""
    message = encode_card_ndef(credential)
    tlv = encode_ndef_tlv(message)
    return {
        "record": f"one NFC Forum external-type record (TNF 4), type {CARD_RECORD_TYPE.decode()!r}",
        "message_bytes": len(message),
        "tlv_bytes": len(tlv),
        "fits": {tag: len(tlv) <= size for tag, size in NTAG_USER_BYTES.items()},
    }


def claims_json(claims: CardClaims) -> dict[str, Any]:
    return {
        "card_id": claims.card_id.hex(),
        "member_number": claims.member_number,
        "display_name": claims.display_name,
        "display_name_utf8_bytes": len(claims.display_name.encode()),
        "chapter_code": claims.chapter_code,
        "card_version": claims.card_version,
        "issued_on": claims.issued_on.isoformat(),
        "expires_on": claims.expires_on.isoformat(),
        "status_list": claims.status_list,
        "status_index": claims.status_index,
    }


def positive_vector(name: str, description: str, claims: CardClaims, signer: Signer) -> dict[str, Any]:
    assert isinstance(signer, LocalSigner | DeterministicSigner)
    public = public_spki(signer.private_key)
    protected = protected_header(signer.algorithm, signer.kid)
    payload = encode_claims(claims)
    to_sign = sig_structure(protected, payload)
    signature = signer.sign(to_sign)
    credential = assemble(protected, payload, signature)
    qr_text = to_qr_text(credential)
    return {
        "name": name,
        "description": description,
        "algorithm": ALGORITHM_NAMES[signer.algorithm],
        "alg": signer.algorithm,
        "kid": signer.kid.hex(),
        "private_key": private_key_hex(signer.private_key),
        "public_key": {
            "spki_der": public.hex(),
            "jwk": public_jwk(signer.kid, signer.algorithm, load_public_key(signer.algorithm, public)),
        },
        "claims": claims_json(claims),
        "cwt": {"iat": day_start(claims.issued_on), "exp": day_start(claims.expires_on) + 86400},
        "protected_header": protected.hex(),
        "payload": payload.hex(),
        "sig_structure": to_sign.hex(),
        "signature": signature.hex(),
        "credential": credential.hex(),
        "credential_bytes": len(credential),
        "qr_text": qr_text,
        "qr_text_length": len(qr_text),
        "qr_version_ecc_m": qr_version_ecc_m(qr_text),
        "ndef": ndef_sizes(credential),
    }


def _signed(signer: Signer, protected: bytes, payload: bytes) -> bytes:
    """A credential whose signature is valid over exactly these (possibly malformed) bytes."""
    return assemble(protected, payload, signer.sign(sig_structure(protected, payload)))


def _replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    if data.count(old) != 1:
        raise ValueError(f"expected exactly one {old.hex()} in {data.hex()}")
    return data.replace(old, new)


# The verifier's clock of the negative vectors (09:30 in Vietnam), inside the validity of their cards.
NOW = int(datetime(2026, 5, 4, 2, 30, tzinfo=UTC).timestamp())
LIST_ID = SIZE_BUDGET_CLAIMS.status_list
LIST_SIZE = 65536
ACTIVE = {ED25519_KID.hex(): "active", ES256_KID.hex(): "active"}
# Reasons reached after the signature verified: only these verdicts show the claims.
SHOWS_CLAIMS = {"not_yet_valid", "expired", "revoked", "suspended", "superseded"}
CARD_FIELDS = ("version", "member_number", "name", "chapter", "card_version", "status_list", "status_index")


def claims_payload(claims: CardClaims = SIZE_BUDGET_CLAIMS, *, card: list[Any] | None = None, **changes: Any) -> bytes:
    """The claims of ``claims`` with raw values changed (any value, in or out of the limits), in deterministic CBOR.

    Unchanged, this is exactly :func:`encode_claims`; ``card`` replaces the whole card-claim array.
    """
    fields: dict[str, Any] = {
        "exp": day_start(claims.expires_on) + 86400, "iat": day_start(claims.issued_on), "cti": claims.card_id,
        "version": 1, "member_number": int(claims.member_number), "name": claims.display_name,
        "chapter": claims.chapter_code, "card_version": claims.card_version, "status_list": claims.status_list,
        "status_index": claims.status_index, **changes,
    }
    array = [fields[name] for name in CARD_FIELDS] if card is None else card
    return bytes(cbor2.dumps({4: fields["exp"], 6: fields["iat"], 7: fields["cti"], -65537: array}))


def status_lists(entries: dict[int, int] | None = None, *, size: int = LIST_SIZE) -> dict[str, Any]:
    """The status context of one available list (id 1): its size and every entry that is not 0."""
    return {str(LIST_ID): {"size": size, "entries": {str(index): value for index, value in (entries or {}).items()}}}


def case(name: str, description: str, reason: str | None, *, credential: bytes | None = None,
         qr_text: str | None = None, now: int = NOW, trust: dict[str, str] | None = None,
         status: dict[str, Any] | None = None, shows_claims: bool | None = None) -> dict[str, Any]:
    """One vector: the input, the context a verifier needs (trust, status lists, clock) and the expected verdict."""
    return {
        "name": name,
        "description": description,
        "reason": reason,
        "shows_claims": (reason is None or reason in SHOWS_CLAIMS) if shows_claims is None else shows_claims,
        "input": {"qr_text": qr_text} if qr_text is not None else {"credential": (credential or b"").hex()},
        "trust": ACTIVE if trust is None else trust,
        "status_lists": status_lists() if status is None else status,
        "now": now,
    }


def negative_vectors(signers: dict[int, Signer]) -> list[dict[str, Any]]:
    """At least three inputs per reason code, each refused for exactly one documented reason (§6.1 order)."""
    ed, es = signers[ALG_EDDSA], signers[ALG_ES256]
    impostor = LocalSigner(ED25519_KID, ALG_EDDSA, Ed25519PrivateKey.from_private_bytes(IMPOSTOR_SEED))
    unknown = LocalSigner(UNKNOWN_KID, ALG_EDDSA, ed25519_test_key())
    claims = SIZE_BUDGET_CLAIMS
    payload = encode_claims(claims)
    ed_protected = protected_header(ALG_EDDSA, ED25519_KID)
    es_protected = protected_header(ALG_ES256, ES256_KID)

    def sign(body: bytes, signer: Signer = ed) -> bytes:
        return _signed(signer, protected_header(signer.algorithm, signer.kid), body)

    ed_credential, es_credential = sign(payload), sign(payload, es)
    es_signature = es_credential[-64:]
    iat, exp = day_start(claims.issued_on), day_start(claims.expires_on) + 86400
    short = sign(encode_claims(SHORT_NAME_CLAIMS))
    short_iat, short_exp = day_start(SHORT_NAME_CLAIMS.issued_on), day_start(SHORT_NAME_CLAIMS.expires_on) + 86400
    card_claim_start = cbor2.dumps(-65537) + b"\x87"  # the private claim key, then its 7-element array
    flipped = bytearray(ed_credential)
    flipped[-1] ^= 0x01
    bad_signature = bytes(flipped)
    r, s = int.from_bytes(es_signature[:32], "big"), int.from_bytes(es_signature[32:], "big")
    digits = bytes_to_digits(ed_credential)
    text = QR_PREFIX + digits
    compromised = {ED25519_KID.hex(): "compromised", ES256_KID.hex(): "compromised"}
    ed_only = {ED25519_KID.hex(): "active"}
    name_with = claims.display_name.replace(" Vy", "{} Vy")
    return [
        # --- step 1: the scanned text ---
        case("qr_not_a_card", "QR text without the 84 prefix", "malformed", qr_text="1201" + digits),
        case("qr_truncated_group", "QR text with the last 17-digit group cut to 16 digits", "malformed",
             qr_text=text[:-1]),
        case("qr_group_out_of_range", "first 17-digit group 99999999999999999 (>= 2^56)", "malformed",
             qr_text=QR_PREFIX + "9" * 17 + digits[17:]),
        case("qr_letters", "QR text with a letter in it (as an input method would leave it)", "malformed",
             qr_text=QR_PREFIX + "a" + digits[1:]),
        case("qr_space_between_digits", "a space between two digit groups: scanner framing may only surround the "
             "digits", "malformed", qr_text=text[:38] + " " + text[38:]),
        case("qr_eci_between_digits", "an ECI escape in the middle of the digits", "malformed",
             qr_text=text[:38] + "\\000026" + text[38:]),
        case("qr_two_eci_escapes", "two ECI escapes before the digits (one is allowed)", "malformed",
             qr_text="\\000026\\000026" + text),
        case("qr_prefix_8403", "QR text announcing card format version 03 (02 is the live code of §8)",
             "unsupported_version", qr_text="8403" + digits),
        case("qr_prefix_8400", "QR text announcing card format version 00", "unsupported_version",
             qr_text="8400" + digits),
        case("qr_prefix_8403_framed", "version 03 behind an AIM identifier and an ECI escape, with CR LF after",
             "unsupported_version", qr_text="]Q1\\000026" + "8403" + digits + "\r\n"),
        # --- step 2: the structure ---
        case("untagged", "the COSE_Sign1 array without tag 18", "malformed", credential=ed_credential[1:]),
        case("truncated", "size_budget_ed25519 without its last byte", "malformed", credential=ed_credential[:-1]),
        case("trailing_byte", "size_budget_ed25519 followed by one 00 byte", "malformed",
             credential=ed_credential + b"\x00"),
        case("noncanonical_integer_in_claims", "iat encoded as an 8-byte integer (1b) instead of 4 bytes (1a); "
             "signed over those bytes, so only the deterministic-encoding check refuses it", "malformed",
             credential=sign(_replace_once(payload, b"\x06\x1a" + iat.to_bytes(4, "big"),
                                           b"\x06\x1b" + iat.to_bytes(8, "big")))),
        case("noncanonical_integer_in_header", "alg -8 encoded as 38 07 instead of 27 in the protected header, "
             "validly signed", "malformed",
             credential=_signed(ed, _replace_once(ed_protected, b"\x01\x27", b"\x01\x38\x07"), payload)),
        case("duplicate_claim_key", "claims map with key 4 (exp) twice: first 2100-01-01, then the real expiry; "
             "validly signed (decoders keeping the first or the last value would disagree)", "malformed",
             credential=sign(b"\xa5\x04" + cbor2.dumps(4102419600) + _replace_once(
                 payload, b"\xa4\x04\x1a" + exp.to_bytes(4, "big"), b"\x04\x1a" + exp.to_bytes(4, "big")))),
        case("duplicate_header_key", "protected header with alg twice (-8, then -8), validly signed", "malformed",
             credential=_signed(ed, b"\xa3\x01\x27" + ed_protected[1:], payload)),
        case("unprotected_header_not_empty", "kid repeated in the unprotected header", "malformed",
             credential=cbor2.dumps(cbor2.CBORTag(18, [ed_protected, {4: ED25519_KID}, payload,
                                                       ed_credential[-64:]]), canonical=True)),
        case("alg_not_allowed", "validly signed with alg -35 (ES384) in the protected header: the format has room "
             "for EdDSA and ES256 only", "malformed",
             credential=_signed(ed, cbor2.dumps({1: -35, 4: ED25519_KID}), payload)),
        case("alg_not_allowed_unknown_kid", "alg -35 under a kid no trust list holds: the structure is checked "
             "before the key id", "malformed", credential=_signed(ed, cbor2.dumps({1: -35, 4: UNKNOWN_KID}), payload)),
        case("der_ecdsa_signature", "ES256 credential carrying the 70-byte DER signature instead of raw r||s",
             "malformed", credential=assemble(es_protected, payload, encode_dss_signature(r, s))),
        case("signature_65_bytes", "size_budget_ed25519 with one 00 byte appended to its signature", "malformed",
             credential=assemble(ed_protected, payload, ed_credential[-64:] + b"\x00")),
        case("claims_version_negative", "card claim starting with -1: a version is an unsigned integer",
             "malformed", credential=sign(claims_payload(version=-1))),
        case("claims_version_text", "card claim starting with the text \"1\"", "malformed",
             credential=sign(claims_payload(version="1"))),
        case("claims_version_2", "card claim array starting with 2 instead of 1, validly signed",
             "unsupported_version", credential=sign(_replace_once(payload, card_claim_start + b"\x01",
                                                                 card_claim_start + b"\x02"))),
        case("claims_version_2_other_fields", "version 2 with three fields: the version is read before the field "
             "count", "unsupported_version", credential=sign(claims_payload(card=[2, "x", 5]))),
        case("claims_version_2_unknown_kid", "version 2 under a kid no trust list holds: the structure, version "
             "included, is checked before the key id", "unsupported_version",
             credential=sign(claims_payload(version=2), unknown)),
        # --- step 2: the limits of §6.2 ---
        case("name_bidi_override", "name holding U+202E RIGHT-TO-LEFT OVERRIDE, validly signed", "malformed",
             credential=sign(claims_payload(name=name_with.format("\u202e")))),
        case("name_bidi_isolate", "name holding U+2067 RIGHT-TO-LEFT ISOLATE and U+2069 POP DIRECTIONAL ISOLATE",
             "malformed", credential=sign(claims_payload(name=name_with.format("\u2067Vy\u2069")))),
        case("name_zero_width_space", "name holding U+200B ZERO WIDTH SPACE", "malformed",
             credential=sign(claims_payload(name=name_with.format("\u200b")))),
        case("name_control", "name holding U+001B ESCAPE", "malformed",
             credential=sign(claims_payload(name=name_with.format("\x1b[2J")))),
        case("name_c1_control", "name holding U+0085 NEXT LINE", "malformed",
             credential=sign(claims_payload(name=name_with.format("\x85")))),
        case("name_not_nfc", "name in NFD (decomposed marks), validly signed", "malformed",
             credential=sign(claims_payload(name=unicodedata.normalize("NFD", claims.display_name)))),
        case("name_101_bytes", "a name of 101 bytes of UTF-8", "malformed",
             credential=sign(claims_payload(name="Đ" * 50 + "a"))),
        case("name_empty", "an empty name", "malformed", credential=sign(claims_payload(name=""))),
        case("chapter_lowercase", "chapter code in lower case", "malformed",
             credential=sign(claims_payload(chapter="hni-badinh-01"))),
        case("chapter_33_characters", "chapter code of 33 characters", "malformed",
             credential=sign(claims_payload(chapter="C" * 33))),
        case("iat_not_midnight", "iat one second after 00:00 Vietnam time", "malformed",
             credential=sign(claims_payload(iat=iat + 1))),
        case("exp_not_midnight", "exp one second before 00:00 Vietnam time", "malformed",
             credential=sign(claims_payload(exp=exp - 1))),
        case("exp_equals_iat", "exp equal to iat", "malformed", credential=sign(claims_payload(exp=iat))),
        case("exp_before_iat", "exp one day before iat", "malformed",
             credential=sign(claims_payload(exp=iat - 86400))),
        case("exp_after_9999", "exp at 00:00 on 10000-01-01 Vietnam time, past the last date", "malformed",
             credential=sign(claims_payload(exp=day_start(date(9999, 12, 31)) + 86400))),
        case("member_number_11_digits", "member number 10^10", "malformed",
             credential=sign(claims_payload(member_number=10**10))),
        case("card_version_2_32", "card version 2^32", "malformed",
             credential=sign(claims_payload(card_version=2**32))),
        case("status_index_2_32", "status index 2^32", "malformed",
             credential=sign(claims_payload(status_index=2**32))),
        case("card_id_7_bytes", "card id of 7 bytes", "malformed", credential=sign(claims_payload(cti=bytes(7)))),
        # --- step 3: the key and the signature ---
        case("unknown_kid", "validly signed by the Ed25519 test key under kid beef, which the trust list lacks",
             "unknown_key", credential=sign(payload, unknown)),
        case("es256_kid_not_trusted", "size_budget_es256 with a trust list that holds only 7e01", "unknown_key",
             credential=es_credential, trust=ed_only),
        case("unknown_kid_bad_signature", "kid beef and a broken signature: the key id is looked up first",
             "unknown_key", credential=sign(payload, unknown)[:-1] + b"\x00"),
        case("unknown_kid_expired", "kid beef on a card past its expiry: the key before the dates", "unknown_key",
             credential=sign(payload, unknown), now=exp + 86400),
        case("compromised_key", "size_budget_ed25519 with its key marked compromised", "key_retired",
             credential=ed_credential, trust=compromised),
        case("compromised_key_es256", "size_budget_es256 with its key marked compromised", "key_retired",
             credential=es_credential, trust=compromised),
        case("compromised_key_bad_signature", "compromised key and a broken signature: key_retired comes first",
             "key_retired", credential=bad_signature, trust=compromised),
        case("compromised_key_alg_mismatch", "compromised Ed25519 key, header saying ES256: key_retired comes "
             "before the algorithm check", "key_retired",
             credential=assemble(protected_header(ALG_ES256, ED25519_KID), payload, ed_credential[-64:]),
             trust=compromised),
        case("flipped_signature_bit", "size_budget_ed25519 with the lowest bit of the last signature byte flipped",
             "bad_signature", credential=bad_signature),
        case("flipped_claims_byte", "size_budget_ed25519 with the name's last letter changed (Vy to Vz)",
             "bad_signature", credential=_replace_once(ed_credential, b"\x56\x79", b"\x56\x7a")),
        case("alg_es256_on_eddsa", "EdDSA-signed credential whose protected header says ES256 (alg -7): the kid "
             "binds EdDSA", "bad_signature",
             credential=assemble(protected_header(ALG_ES256, ED25519_KID), payload, ed_credential[-64:])),
        case("alg_eddsa_on_es256", "an Ed25519 signature under kid 7e02, which binds ES256, with a header saying "
             "EdDSA (alg -8): the kid's binding decides", "bad_signature",
             credential=_signed(ed, protected_header(ALG_EDDSA, ES256_KID), payload)),
        case("es256_high_s", "size_budget_es256 with s replaced by n - s: a valid ECDSA signature, refused because "
             "verifiers accept only low S", "bad_signature",
             credential=assemble(es_protected, payload, es_signature[:32] + (P256_ORDER - s).to_bytes(32, "big"))),
        case("es256_s_zero", "size_budget_es256 with s = 0", "bad_signature",
             credential=assemble(es_protected, payload, es_signature[:32] + bytes(32))),
        case("wrong_key_same_kid", "signed under kid 7e01 by another Ed25519 key (RFC 8032 TEST 2)",
             "bad_signature", credential=sign(payload, impostor)),
        case("bad_signature_expired", "broken signature on a card past its expiry: the signature before the dates",
             "bad_signature", credential=bad_signature, now=exp + 86400),
        # --- step 4: the dates ---
        case("not_yet_valid_601_seconds", "601 seconds before 00:00 Vietnam time of the issue day", "not_yet_valid",
             credential=ed_credential, now=iat - 601),
        case("not_yet_valid_day_before", "a day before the issue day, ES256", "not_yet_valid",
             credential=es_credential, now=iat - 86400),
        case("not_yet_valid_and_revoked", "601 seconds early and revoked: the dates before the status",
             "not_yet_valid", credential=ed_credential, now=iat - 601,
             status=status_lists({claims.status_index: 1})),
        case("not_yet_valid_one_day_card", "short_name_ed25519 (valid one day) 601 seconds early",
             "not_yet_valid", credential=short, now=short_iat - 601),
        case("expired_600_seconds", "600 seconds after 00:00 Vietnam time of the day after the last valid day",
             "expired", credential=ed_credential, now=exp + 600),
        case("expired_years", "ten years after expiry, ES256", "expired", credential=es_credential,
             now=exp + 3650 * 86400),
        case("expired_and_revoked", "expired and revoked: the dates before the status", "expired",
             credential=ed_credential, now=exp + 600, status=status_lists({claims.status_index: 1})),
        case("expired_one_day_card", "short_name_ed25519 (valid one day) at its exp + 600 s", "expired",
             credential=short, now=short_exp + 600),
        # --- step 5: the status list ---
        case("revoked", "status value 1", "revoked", credential=ed_credential,
             status=status_lists({claims.status_index: 1})),
        case("revoked_es256_qr", "status value 1, ES256, scanned as QR text", "revoked",
             qr_text=to_qr_text(es_credential), status=status_lists({claims.status_index: 1})),
        case("status_list_missing", "the verifier holds no status list 1: fail closed as revoked (§6.1 step 5)",
             "revoked", credential=ed_credential, status={}),
        case("suspended", "status value 2", "suspended", credential=ed_credential,
             status=status_lists({claims.status_index: 2})),
        case("suspended_es256", "status value 2, ES256", "suspended", credential=es_credential,
             status=status_lists({claims.status_index: 2})),
        case("suspended_qr_framed", "status value 2, QR text with a BOM, AIM identifier, ECI escape and CR LF",
             "suspended", qr_text="\ufeff]Q1\\000026" + text + "\r\n",
             status=status_lists({claims.status_index: 2})),
        case("superseded", "status value 3", "superseded", credential=ed_credential,
             status=status_lists({claims.status_index: 3})),
        case("superseded_es256", "status value 3, ES256", "superseded", credential=es_credential,
             status=status_lists({claims.status_index: 3})),
        case("superseded_between_revoked", "status value 3 with both neighbouring entries revoked", "superseded",
             credential=ed_credential, status=status_lists({claims.status_index - 1: 1, claims.status_index: 3,
                                                            claims.status_index + 1: 1})),
        case("status_index_outside_list", "status index 48213 and a list of 4096 entries: signed by a trusted key, "
             "so the claims are shown", "malformed", credential=ed_credential, status=status_lists(size=4096),
             shows_claims=True),
        case("status_index_equals_size", "status index 4096 in a list of 4096 entries", "malformed",
             credential=sign(claims_payload(status_index=4096)), status=status_lists(size=4096), shows_claims=True),
    ]


def accepted_vectors(signers: dict[int, Signer]) -> list[dict[str, Any]]:
    """Inputs at the edges that a verifier must accept (reason null)."""
    ed, es = signers[ALG_EDDSA], signers[ALG_ES256]
    payload = encode_claims(SIZE_BUDGET_CLAIMS)
    credential = _signed(ed, protected_header(ALG_EDDSA, ED25519_KID), payload)
    iat = day_start(SIZE_BUDGET_CLAIMS.issued_on)
    exp = day_start(SIZE_BUDGET_CLAIMS.expires_on) + 86400
    text = to_qr_text(credential)
    return [
        case("first_second", "600 seconds before 00:00 Vietnam time of the issue day", None, credential=credential,
             now=iat - 600),
        case("last_second", "599 seconds after 00:00 Vietnam time of the day after the last valid day", None,
             credential=credential, now=exp + 599),
        case("scanner_framing", "leading spaces, a BOM, an AIM identifier and an ECI escape; trailing tab and CR LF",
             None, qr_text=" \ufeff]Q1\\000026" + text + "\t\r\n"),
        case("retired_key", "size_budget_es256 signed by a retired key (it verifies until its cards expire)", None,
             credential=_signed(es, protected_header(ALG_ES256, ES256_KID), payload),
             trust={ES256_KID.hex(): "retired"}),
        case("status_last_entry", "status index 4095, the last entry of a list of 4096", None,
             credential=_signed(ed, protected_header(ALG_EDDSA, ED25519_KID), claims_payload(status_index=4095)),
             status=status_lists({4094: 1}, size=4096)),
    ]


def build_vectors() -> dict[str, Any]:
    signers = fixed_signers()
    ed, es = signers[ALG_EDDSA], signers[ALG_ES256]
    return {
        "description": "Golden vectors of the cardsvc card credential, format 84 version 01 (docs/card-format.md).",
        "warning": "TEST KEYS ONLY. The private keys are published test keys (Ed25519: RFC 8032 section 7.1 TEST 1 "
                   "seed; P-256: RFC 6979 appendix A.2.5 scalar). Never add them to a trust bundle.",
        "generator": "tests/vectors/make_vectors.py",
        "negative_vectors": "tests/vectors/card-v1-negative.json",
        "notes": {
            "private_key": "Ed25519: the 32-byte seed; ES256: the 32-byte big-endian P-256 scalar",
            "es256_signatures": "deterministic (RFC 6979), normalised to low S, so the file is reproducible; "
                                "production uses random nonces",
            "cwt": "iat = 00:00 of issued_on and exp = 00:00 of the day after expires_on, both in UTC+7",
            "qr_version_ecc_m": "smallest QR version holding qr_text in numeric mode at error-correction level M",
            "ndef": "the NDEF message holding the card record alone, and its TLV: 03, length, message, FE "
                    "(no Lock Control TLV)",
        },
        "vectors": [
            positive_vector("size_budget_ed25519", "the size-budget example of docs/card-format.md §3 (25 characters, "
                            "33 bytes UTF-8)", SIZE_BUDGET_CLAIMS, ed),
            positive_vector("size_budget_es256", "the same claims signed with ES256", SIZE_BUDGET_CLAIMS, es),
            positive_vector("short_name_ed25519", "short name, smallest values, issued and expiring the same day",
                            SHORT_NAME_CLAIMS, ed),
            positive_vector("name_100_bytes_ed25519", "100-byte name, 32-character chapter code, largest values",
                            LONG_NAME_CLAIMS, ed),
            positive_vector("name_100_bytes_es256", "the 100-byte vector signed with ES256", LONG_NAME_CLAIMS, es),
        ],
    }


def build_negative_vectors() -> dict[str, Any]:
    signers = fixed_signers()
    vectors = negative_vectors(signers)
    return {
        "description": "Negative vectors of the cardsvc card credential, format 84 version 01: inputs a verifier "
                       "must refuse, each with the reason code docs/card-format.md §6 gives, and inputs at the edges "
                       "it must accept.",
        "warning": "TEST KEYS ONLY (see tests/vectors/card-v1.json). The RFC 8032 TEST 2 key signs "
                   "wrong_key_same_kid.",
        "generator": "tests/vectors/make_vectors.py",
        "reasons": {reason: sum(vector["reason"] == reason for vector in vectors) for reason in V1_REASONS},
        "notes": {
            "input": "qr_text: the scanned text exactly (JSON escapes included); credential: hex of the raw bytes, as "
                     "read from an NFC tag's card record or sent as the check-in API's payload_base64",
            "keys": "the public key of each kid; trust gives each kid's status for one vector (active, retired or "
                    "compromised), and a kid it does not list is unknown to the verifier",
            "status_lists": "by list id: size (number of 2-bit entries, a multiple of 4) and every entry whose value "
                            "is not 0; a list id that is not listed is unavailable to the verifier, which then "
                            "applies the default policy (refuse as revoked)",
            "now": "the verifier's clock, seconds since 1970-01-01T00:00:00Z",
            "reason": "the reason code of the refusal; null in accepted (the verifier must accept)",
            "shows_claims": "whether the verdict carries the claims (only once the signature verified)",
        },
        "keys": {vector["kid"]: vector["public_key"]["jwk"] for vector in build_vectors()["vectors"]},
        "vectors": vectors,
        "accepted": accepted_vectors(signers),
    }


def render(vectors: dict[str, Any]) -> str:
    return json.dumps(vectors, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is not up to date")
    args = parser.parse_args(argv)
    outputs = {VECTORS_PATH: render(build_vectors()), NEGATIVE_PATH: render(build_negative_vectors())}
    if args.check:
        stale = [path for path, text in outputs.items()
                 if not path.exists() or path.read_text(encoding="utf-8") != text]
        for path in stale:
            sys.stderr.write(f"{path} is out of date: run {Path(__file__).name}\n")
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
