"""Regenerate ``tests/vectors/card-v1.json``: golden vectors of the card credential format (verification/format.py).

Run ``.venv/bin/python tests/vectors/make_vectors.py`` to rewrite the file, or add ``--check`` to only compare.
The output depends on nothing but the fixed test keys and claims below: Ed25519 is deterministic, and the ES256
vectors are signed with RFC 6979 deterministic ECDSA (the production signer draws a random nonce instead; a verifier
cannot tell the difference). ``tests/verification/test_format_vectors.py`` fails when the file and this script
disagree, so the file can only change together with the format.

The keys are PUBLISHED TEST KEYS (RFC 8032 §7.1 TEST 1 seed, RFC 6979 A.2.5 P-256 key). Never trust them anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import date
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
from verification.crypto import load_public_key, public_jwk
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

VECTORS_PATH = Path(__file__).with_name("card-v1.json")

# RFC 8032 §7.1 TEST 1 secret key (a 32-byte Ed25519 seed) and RFC 6979 A.2.5 private scalar (P-256).
ED25519_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
P256_SCALAR = bytes.fromhex("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721")
ED25519_KID = bytes.fromhex("7e01")
ES256_KID = bytes.fromhex("7e02")
UNKNOWN_KID = bytes.fromhex("beef")

# The NFC record type is not fixed by the format yet; this placeholder (DOMAIN.md §5) only sets the byte count.
NDEF_RECORD_TYPE = "example.org:card"
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
    """Bytes of one NDEF external-type record carrying the credential, and of its NDEF TLV on a Type 2 tag."""
    record_type = NDEF_RECORD_TYPE.encode("ascii")
    short = len(credential) <= 255
    # Header byte (MB|ME|SR|TNF=4), type length, payload length (1 byte short, 4 bytes long), type, payload.
    message = 1 + 1 + (1 if short else 4) + len(record_type) + len(credential)
    # TLV: type 03, length (1 byte, or FF + 2 bytes from 255 on), value, then the FE terminator.
    tlv = 1 + (1 if message < 255 else 3) + message + 1
    return {
        "record": f"one NFC Forum external-type record (TNF 4), type {NDEF_RECORD_TYPE!r} (placeholder)",
        "message_bytes": message,
        "tlv_bytes": tlv,
        "fits": {tag: tlv <= size for tag, size in NTAG_USER_BYTES.items()},
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


def negative_vectors(signers: dict[int, Signer]) -> list[dict[str, Any]]:
    ed, es = signers[ALG_EDDSA], signers[ALG_ES256]
    claims = SIZE_BUDGET_CLAIMS
    payload = encode_claims(claims)
    ed_protected = protected_header(ALG_EDDSA, ED25519_KID)
    ed_credential = _signed(ed, ed_protected, payload)
    es_protected = protected_header(ALG_ES256, ES256_KID)
    es_signature = es.sign(sig_structure(es_protected, payload))
    iat, exp = day_start(claims.issued_on), day_start(claims.expires_on) + 86400
    card_claim_start = cbor2.dumps(-65537) + b"\x87"  # the private claim key, then its 7-element array

    def entry(name: str, description: str, reason: str, *, credential: bytes | None = None,
              qr_text: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "description": description, "reason": reason}
        if credential is not None:
            out["credential"] = credential.hex()
        if qr_text is not None:
            out["qr_text"] = qr_text
        return out

    flipped = bytearray(ed_credential)
    flipped[-1] ^= 0x01
    r, s = int.from_bytes(es_signature[:32], "big"), int.from_bytes(es_signature[32:], "big")
    der_signature = encode_dss_signature(r, s)
    valid_digits = bytes_to_digits(ed_credential)
    return [
        entry("flipped_signature_bit", "size_budget_ed25519 with the lowest bit of the last signature byte flipped",
              "bad_signature", credential=bytes(flipped)),
        entry("alg_es256_on_eddsa", "EdDSA-signed credential whose protected header says ES256 (alg -7): the kid "
              "binds EdDSA, and the header change also breaks the signature", "bad_signature",
              credential=assemble(protected_header(ALG_ES256, ED25519_KID), payload, ed_credential[-64:])),
        entry("alg_not_allowed", "validly signed with alg -35 (ES384) in the protected header: not on the allow-list",
              "bad_signature", credential=_signed(ed, cbor2.dumps({1: -35, 4: ED25519_KID}), payload)),
        {**entry("unknown_kid", "validly signed by the Ed25519 test key under kid beef, which no trust list holds",
                 "unknown_key", credential=_signed(ed, protected_header(ALG_EDDSA, UNKNOWN_KID), payload)),
         "kid": UNKNOWN_KID.hex()},
        entry("noncanonical_integer_in_claims", "iat encoded as an 8-byte integer (1b) instead of 4 bytes (1a); "
              "signed over those bytes, so only the deterministic-encoding check refuses it", "malformed",
              credential=_signed(ed, ed_protected, _replace_once(
                  payload, b"\x06\x1a" + iat.to_bytes(4, "big"), b"\x06\x1b" + iat.to_bytes(8, "big")))),
        entry("noncanonical_integer_in_header", "alg -8 encoded as 38 07 instead of 27 in the protected header, "
              "validly signed", "malformed",
              credential=_signed(ed, _replace_once(ed_protected, b"\x01\x27", b"\x01\x38\x07"), payload)),
        entry("duplicate_claim_key", "claims map with key 4 (exp) twice: first 2100-01-01, then the real expiry; "
              "validly signed (decoders keeping the first or the last value would disagree)", "malformed",
              credential=_signed(ed, ed_protected, b"\xa5\x04" + cbor2.dumps(4102419600) + _replace_once(
                  payload, b"\xa4\x04\x1a" + exp.to_bytes(4, "big"), b"\x04\x1a" + exp.to_bytes(4, "big")))),
        entry("duplicate_header_key", "protected header with alg twice (-8, then -8), validly signed", "malformed",
              credential=_signed(ed, b"\xa3\x01\x27" + ed_protected[1:], payload)),
        entry("claims_version_2", "card claim array starting with 2 instead of 1, validly signed",
              "unsupported_version",
              credential=_signed(ed, ed_protected, _replace_once(payload, card_claim_start + b"\x01",
                                                                 card_claim_start + b"\x02"))),
        entry("unprotected_header_not_empty", "kid repeated in the unprotected header", "malformed",
              credential=cbor2.dumps(cbor2.CBORTag(18, [ed_protected, {4: ED25519_KID}, payload,
                                                        ed_credential[-64:]]), canonical=True)),
        entry("untagged", "the COSE_Sign1 array without tag 18", "malformed", credential=ed_credential[1:]),
        entry("truncated", "size_budget_ed25519 without its last byte", "malformed", credential=ed_credential[:-1]),
        entry("trailing_byte", "size_budget_ed25519 followed by one 00 byte", "malformed",
              credential=ed_credential + b"\x00"),
        entry("der_ecdsa_signature", f"ES256 credential carrying the {len(der_signature)}-byte DER signature instead "
              "of raw r||s", "bad_signature", credential=assemble(es_protected, payload, der_signature)),
        entry("qr_prefix_8402", "QR text announcing card format version 02", "unsupported_version",
              qr_text="8402" + valid_digits),
        entry("qr_not_a_card", "QR text without the 84 prefix", "malformed", qr_text="1201" + valid_digits),
        entry("qr_truncated_group", "QR text with the last 17-digit group cut to 16 digits", "malformed",
              qr_text=QR_PREFIX + valid_digits[:-1]),
        entry("qr_group_out_of_range", "first 17-digit group 99999999999999999 (>= 2^56)", "malformed",
              qr_text=QR_PREFIX + "9" * 17 + valid_digits[17:]),
        entry("qr_letters", "QR text with a letter in it (as an input method would leave it)", "malformed",
              qr_text=QR_PREFIX + "a" + valid_digits[1:]),
    ]


def build_vectors() -> dict[str, Any]:
    signers = fixed_signers()
    ed, es = signers[ALG_EDDSA], signers[ALG_ES256]
    return {
        "description": "Golden vectors of the cardsvc card credential, format 84 version 01 (verification/format.py).",
        "warning": "TEST KEYS ONLY. The private keys are published test keys (Ed25519: RFC 8032 section 7.1 TEST 1 "
                   "seed; P-256: RFC 6979 appendix A.2.5 scalar). Never add them to a trust bundle.",
        "generator": "tests/vectors/make_vectors.py",
        "notes": {
            "private_key": "Ed25519: the 32-byte seed; ES256: the 32-byte big-endian P-256 scalar",
            "es256_signatures": "deterministic (RFC 6979) so the file is reproducible; production uses random nonces",
            "cwt": "iat = 00:00 of issued_on and exp = 00:00 of the day after expires_on, both in UTC+7",
            "qr_version_ecc_m": "smallest QR version holding qr_text in numeric mode at error-correction level M",
            "ndef": "tlv_bytes counts 03, length, NDEF message and the FE terminator (no Lock Control TLV)",
            "negative": "credential hex or qr_text, and the reason code a verifier must give; unknown_key means the "
                        "kid is in no trust list",
        },
        "vectors": [
            positive_vector("size_budget_ed25519", "DOMAIN.md size-budget sample (25 characters, 33 bytes UTF-8)",
                            SIZE_BUDGET_CLAIMS, ed),
            positive_vector("size_budget_es256", "the same claims signed with ES256", SIZE_BUDGET_CLAIMS, es),
            positive_vector("short_name_ed25519", "short name, smallest values, issued and expiring the same day",
                            SHORT_NAME_CLAIMS, ed),
            positive_vector("name_100_bytes_ed25519", "100-byte name, 32-character chapter code, largest values",
                            LONG_NAME_CLAIMS, ed),
            positive_vector("name_100_bytes_es256", "the 100-byte vector signed with ES256", LONG_NAME_CLAIMS, es),
        ],
        "negative": negative_vectors(signers),
    }


def render(vectors: dict[str, Any]) -> str:
    return json.dumps(vectors, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not up to date")
    args = parser.parse_args(argv)
    text = render(build_vectors())
    if args.check:
        current = VECTORS_PATH.read_text(encoding="utf-8") if VECTORS_PATH.exists() else ""
        if current != text:
            sys.stderr.write(f"{VECTORS_PATH} is out of date: run {Path(__file__).name}\n")
            return 1
        return 0
    VECTORS_PATH.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
