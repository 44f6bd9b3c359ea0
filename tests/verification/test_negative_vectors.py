"""The negative vectors (tests/vectors/card-v1-negative.json) through the Python verifier, :func:`verify`.

Each vector carries its own context: the trust list (kid → key status, keys from the file), the status lists (size
and non-zero entries; a list that is not there is unavailable) and the verifier's clock. The same file runs through the
check-in page's JavaScript verifier in tests/web/test_checkin_js_vectors.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from issuance.status_list import build_status_bytes
from tests.vectors import make_vectors
from verification.crypto import key_from_jwk
from verification.format import SIGNATURE_LENGTH, sig_structure
from verification.status import StatusListView
from verification.trust import TrustAnchor, TrustBundle, TrustedKey
from verification.verify import StatusLists, Verdict, verify

FILE: dict[str, Any] = json.loads(make_vectors.NEGATIVE_PATH.read_text(encoding="utf-8"))
NEGATIVE: list[dict[str, Any]] = FILE["vectors"]
ACCEPTED: list[dict[str, Any]] = FILE["accepted"]


def trust_of(vector: dict[str, Any]) -> TrustBundle:
    """The verified trust bundle a station would hold for this vector: its kids with their statuses."""
    keys = {}
    for kid_hex, status in vector["trust"].items():
        kid, algorithm, key = key_from_jwk(FILE["keys"][kid_hex])
        keys[kid] = TrustedKey(kid, algorithm, key, status)
    anchor_kid, anchor_algorithm, anchor_key = key_from_jwk(FILE["keys"][make_vectors.ED25519_KID.hex()])
    return TrustBundle("https://cards.example", "Hội", 0, 2**40, keys, {}, TrustAnchor(anchor_kid, anchor_algorithm,
                                                                                      anchor_key), "")


def status_of(vector: dict[str, Any]) -> StatusLists:
    """Verified status lists as the vector describes them (every entry not listed is 0)."""
    lists = {}
    for list_id, described in vector["status_lists"].items():
        data = build_status_bytes(described["size"], ((int(index), value)
                                                      for index, value in described["entries"].items()))
        lists[int(list_id)] = StatusListView(f"https://cards.example/v1/status-lists/{list_id}", data, 0, 2**40, 1)
    return StatusLists(lists)


def run(vector: dict[str, Any]) -> Verdict:
    given = vector["input"]
    scanned = given["qr_text"] if "qr_text" in given else bytes.fromhex(given["credential"])
    return verify(scanned, trust_of(vector), status_of(vector), datetime.fromtimestamp(vector["now"], UTC))


@pytest.mark.parametrize("vector", NEGATIVE, ids=lambda v: v["name"])
def test_negative_vector(vector: dict[str, Any]) -> None:
    verdict = run(vector)
    assert (verdict.ok, verdict.reason) == (False, vector["reason"]), vector["description"]
    assert (verdict.claims is not None) is vector["shows_claims"]


@pytest.mark.parametrize("vector", ACCEPTED, ids=lambda v: v["name"])
def test_accepted_vector(vector: dict[str, Any]) -> None:
    verdict = run(vector)
    assert verdict.ok and verdict.reason is None and verdict.claims is not None, vector["description"]


def test_at_least_three_vectors_per_reason_code() -> None:
    counts = {reason: sum(vector["reason"] == reason for vector in NEGATIVE) for reason in make_vectors.V1_REASONS}
    assert counts == FILE["reasons"]
    assert min(counts.values()) >= 3, counts
    assert {vector["reason"] for vector in NEGATIVE} == set(make_vectors.V1_REASONS)
    assert len({vector["name"] for vector in NEGATIVE + ACCEPTED}) == len(NEGATIVE) + len(ACCEPTED)


def test_the_claims_payload_helper_writes_what_the_issuer_writes() -> None:
    # The malformed-claims vectors change one field of this encoding; unchanged it is the issuer's own.
    assert make_vectors.claims_payload() == make_vectors.encode_claims(make_vectors.SIZE_BUDGET_CLAIMS)


VALIDLY_SIGNED = [
    "noncanonical_integer_in_claims", "noncanonical_integer_in_header", "duplicate_claim_key", "duplicate_header_key",
    "alg_not_allowed", "claims_version_negative", "claims_version_2", "name_bidi_override", "name_bidi_isolate",
    "name_zero_width_space", "name_control", "name_c1_control", "name_not_nfc", "name_101_bytes", "chapter_lowercase",
    "iat_not_midnight", "exp_equals_iat", "member_number_11_digits", "status_index_2_32",
]


@pytest.mark.parametrize("name", VALIDLY_SIGNED)
def test_format_refusals_carry_valid_signatures(name: str) -> None:
    """These are refused by the format's rules, not by a broken signature: a signer could have made them."""
    vector = next(v for v in NEGATIVE if v["name"] == name)
    protected, _, payload, signature = cbor2.loads(bytes.fromhex(vector["input"]["credential"])).value
    key = key_from_jwk(FILE["keys"][make_vectors.ED25519_KID.hex()])[2]
    assert isinstance(key, Ed25519PublicKey) and len(signature) == SIGNATURE_LENGTH
    key.verify(signature, sig_structure(protected, payload))


def test_the_high_s_vector_is_the_twin_of_a_valid_signature() -> None:
    vector = next(v for v in NEGATIVE if v["name"] == "es256_high_s")
    signature = bytes.fromhex(vector["input"]["credential"])[-64:]
    golden = next(v for v in json.loads(make_vectors.VECTORS_PATH.read_text(encoding="utf-8"))["vectors"]
                  if v["name"] == "size_budget_es256")["signature"]
    s = int.from_bytes(signature[32:], "big")
    assert signature[:32].hex() == golden[:64]
    assert make_vectors.P256_ORDER - s == int(golden[64:], 16)
