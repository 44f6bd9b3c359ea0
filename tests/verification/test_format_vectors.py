"""Golden vectors (tests/vectors/card-v1.json): every stage is recomputed from the previous one and from fixed keys.

The negative vectors (tests/vectors/card-v1-negative.json) are run in tests/verification/test_negative_vectors.py.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from tests.vectors import make_vectors
from verification.crypto import PublicKey, key_from_jwk, load_public_key, public_jwk, verify_signature
from verification.errors import CredentialError
from verification.format import (
    ALG_EDDSA,
    ALGORITHM_NAMES,
    CardClaims,
    assemble,
    credential_from_text,
    day_start,
    encode_claims,
    parse_credential,
    protected_header,
    sig_structure,
    to_qr_text,
)
from verification.ndef import CARD_RECORD_TYPE

ROOT = Path(__file__).resolve().parents[2]
VECTORS: dict[str, Any] = json.loads(make_vectors.VECTORS_PATH.read_text(encoding="utf-8"))
POSITIVE = VECTORS["vectors"]
# Numeric-mode data capacity at ECC M, in data codewords, for versions 1-20 (ISO/IEC 18004 table 9).
DATA_CODEWORDS_M = [16, 28, 44, 64, 86, 108, 124, 154, 182, 216, 254, 290, 334, 365, 415, 453, 507, 563, 627, 669]


def _claims(data: dict[str, Any]) -> CardClaims:
    return CardClaims(
        card_id=bytes.fromhex(data["card_id"]),
        member_number=data["member_number"],
        display_name=data["display_name"],
        chapter_code=data["chapter_code"],
        card_version=data["card_version"],
        issued_on=date.fromisoformat(data["issued_on"]),
        expires_on=date.fromisoformat(data["expires_on"]),
        status_list=data["status_list"],
        status_index=data["status_index"],
    )


def _private_key(vector: dict[str, Any]) -> Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
    raw = bytes.fromhex(vector["private_key"])
    if vector["alg"] == ALG_EDDSA:
        return Ed25519PrivateKey.from_private_bytes(raw)
    return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())


def _trust() -> dict[bytes, tuple[int, PublicKey]]:
    """The trust list a verifier would hold: kid -> (bound algorithm, public key), from the published JWKs."""
    trust: dict[bytes, tuple[int, PublicKey]] = {}
    for vector in POSITIVE:
        kid, algorithm, key = key_from_jwk(vector["public_key"]["jwk"])
        trust[kid] = (algorithm, key)
    return trust


TRUST = _trust()


def verify_credential(raw: bytes, trust: dict[bytes, tuple[int, PublicKey]] = TRUST) -> CardClaims:
    """Structure, then kid lookup, then signature: the order a verifier uses."""
    parsed = parse_credential(raw)
    try:
        algorithm, key = trust[parsed.kid]
    except KeyError:
        raise CredentialError("unknown_key", f"no key {parsed.kid.hex()}") from None
    verify_signature(parsed, algorithm, key)
    return parsed.claims


def _qr_version_by_bit_count(digits: int) -> int:
    """Independent of the qrcode package: numeric mode packs 3 digits in 10 bits (2 in 7, 1 in 4)."""
    for version, codewords in enumerate(DATA_CODEWORDS_M, start=1):
        count_bits = 10 if version <= 9 else 12
        bits = 4 + count_bits + 10 * (digits // 3) + (0, 4, 7)[digits % 3]
        if bits <= 8 * codewords:
            return version
    raise AssertionError("beyond the table")


def test_the_files_are_what_the_generator_writes() -> None:
    # Ed25519 and RFC 6979 ECDSA are deterministic: both files are reproducible from the fixed keys, claims and times.
    assert make_vectors.render(make_vectors.build_vectors()) == make_vectors.VECTORS_PATH.read_text(encoding="utf-8")
    assert make_vectors.render(make_vectors.build_negative_vectors()) == make_vectors.NEGATIVE_PATH.read_text(
        encoding="utf-8")
    assert make_vectors.main(["--check"]) == 0


def test_the_vectors_cite_only_files_of_the_repository() -> None:
    for path in (make_vectors.VECTORS_PATH, make_vectors.NEGATIVE_PATH):
        text = path.read_text(encoding="utf-8")
        for cited in re.findall(r"[\w./-]+\.(?:md|py|json)\b", text):
            assert (ROOT / cited).exists(), f"{path.name} cites {cited}, which is not in the repository"
        assert "placeholder" not in text and "example.org" not in text


def test_required_vectors_are_present() -> None:
    names = {vector["name"] for vector in POSITIVE}
    assert {"size_budget_ed25519", "size_budget_es256", "short_name_ed25519", "name_100_bytes_ed25519"} <= names
    budget = next(v for v in POSITIVE if v["name"] == "size_budget_ed25519")["claims"]
    assert (budget["display_name"], budget["chapter_code"], budget["member_number"]) == (
        "Nguyễn Thị Phương Thảo Vy", "HNI-BADINH-01", "0000001867")
    assert len(budget["display_name"]) == 25
    assert len(budget["display_name"].encode()) == budget["display_name_utf8_bytes"] == 33
    long_name = next(v for v in POSITIVE if v["name"] == "name_100_bytes_ed25519")["claims"]["display_name"]
    assert len(long_name.encode()) == 100
    assert {vector["algorithm"] for vector in POSITIVE} == {"EdDSA", "ES256"}
    assert "TEST KEYS ONLY" in VECTORS["warning"]


@pytest.mark.parametrize("vector", POSITIVE, ids=lambda v: v["name"])
def test_keys(vector: dict[str, Any]) -> None:
    private = _private_key(vector)
    spki = private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    assert spki.hex() == vector["public_key"]["spki_der"]
    kid = bytes.fromhex(vector["kid"])
    public = load_public_key(vector["alg"], spki)
    assert public_jwk(kid, vector["alg"], public) == vector["public_key"]["jwk"]
    assert key_from_jwk(vector["public_key"]["jwk"])[:2] == (kid, vector["alg"])
    assert vector["algorithm"] == ALGORITHM_NAMES[vector["alg"]]


@pytest.mark.parametrize("vector", POSITIVE, ids=lambda v: v["name"])
def test_every_stage(vector: dict[str, Any]) -> None:
    claims = _claims(vector["claims"])
    kid = bytes.fromhex(vector["kid"])
    assert day_start(claims.issued_on) == vector["cwt"]["iat"]
    assert day_start(claims.expires_on) + 86400 == vector["cwt"]["exp"]

    protected = protected_header(vector["alg"], kid)
    assert protected.hex() == vector["protected_header"]
    payload = encode_claims(claims)
    assert payload.hex() == vector["payload"]
    to_sign = sig_structure(protected, payload)
    assert to_sign.hex() == vector["sig_structure"]
    signature = bytes.fromhex(vector["signature"])
    credential = assemble(protected, payload, signature)
    assert credential.hex() == vector["credential"]
    assert len(credential) == vector["credential_bytes"]
    qr_text = to_qr_text(credential)
    assert qr_text == vector["qr_text"]
    assert len(qr_text) == vector["qr_text_length"]


@pytest.mark.parametrize("vector", POSITIVE, ids=lambda v: v["name"])
def test_signature(vector: dict[str, Any]) -> None:
    private = _private_key(vector)
    to_sign = bytes.fromhex(vector["sig_structure"])
    signature = bytes.fromhex(vector["signature"])
    if isinstance(private, Ed25519PrivateKey):
        # Ed25519 is deterministic: the fixed seed reproduces the signature byte for byte.
        assert private.sign(to_sign) == signature
        return
    # ES256: the published key verifies the raw r||s signature ...
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    private.public_key().verify(encode_dss_signature(r, s), to_sign, ec.ECDSA(hashes.SHA256()))
    # ... and, because the vectors were made with RFC 6979 nonces, the same nonce gives the same bytes.
    again = decode_dss_signature(private.sign(to_sign, ec.ECDSA(hashes.SHA256(), deterministic_signing=True)))
    assert again == (r, s)


@pytest.mark.parametrize("vector", POSITIVE, ids=lambda v: v["name"])
def test_positive_vectors_verify(vector: dict[str, Any]) -> None:
    raw = credential_from_text(vector["qr_text"])
    assert raw.hex() == vector["credential"]
    parsed = parse_credential(raw)
    assert parsed.protected.hex() == vector["protected_header"]
    assert parsed.payload.hex() == vector["payload"]
    assert parsed.signed_bytes().hex() == vector["sig_structure"]
    assert parsed.signature.hex() == vector["signature"]
    assert (parsed.algorithm, parsed.kid.hex()) == (vector["alg"], vector["kid"])
    assert verify_credential(raw) == _claims(vector["claims"])


@pytest.mark.parametrize("vector", POSITIVE, ids=lambda v: v["name"])
def test_sizes(vector: dict[str, Any]) -> None:
    digits = vector["qr_text_length"]
    assert vector["qr_version_ecc_m"] == make_vectors.qr_version_ecc_m(vector["qr_text"])
    assert vector["qr_version_ecc_m"] == _qr_version_by_bit_count(digits)
    credential = len(bytes.fromhex(vector["credential"]))
    # "8401", then 17 digits per 7 bytes and 3/5/8/10/13/15 digits for a last group of 1..6 bytes.
    assert digits == 4 + 17 * (credential // 7) + (0, 3, 5, 8, 10, 13, 15)[credential % 7]
    # NDEF record: header, type length, payload length (1 byte in a short record, else 4), type, payload.
    message = 2 + (1 if credential <= 255 else 4) + len(CARD_RECORD_TYPE) + credential
    assert vector["ndef"]["record"].endswith("'hoilhpn.vn:card1'")
    assert vector["ndef"]["message_bytes"] == message
    # TLV 03 + length (1 byte, or FF + 2 bytes from 255 on) + message + terminator FE.
    assert vector["ndef"]["tlv_bytes"] == message + (3 if message < 255 else 5)


def test_size_budget_numbers() -> None:
    """Pins the size of the budget example of docs/card-format.md §3 (2-byte kid, status reference included)."""
    by_name = {vector["name"]: vector for vector in POSITIVE}
    ed, es = by_name["size_budget_ed25519"], by_name["size_budget_es256"]
    # Raw 64-byte signatures: the algorithm does not change the size.
    assert ed["credential_bytes"] == es["credential_bytes"] == 166
    assert ed["qr_text_length"] == 408
    assert ed["qr_version_ecc_m"] == 9
    assert ed["ndef"]["fits"] == {"NTAG213": False, "NTAG215": True, "NTAG216": True}
    assert by_name["short_name_ed25519"]["ndef"]["fits"]["NTAG213"] is True
