"""The live-code vectors (tests/vectors/card-v2-live.json) through the Python verifier, and the live layer's rules.

The same file runs through the check-in page's JavaScript verifier in tests/web/test_checkin_js_vectors.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from issuance.binding import holder_key_of, live_code, sign_bound_credential
from tests.vectors import make_live_vectors
from tests.verification.test_negative_vectors import status_of
from verification.crypto import key_from_jwk
from verification.format import ALG_EDDSA, QR_PREFIX
from verification.live import (
    LIVE_STEP_SECONDS,
    is_fresh,
    is_live_text,
    live_code_from_text,
    parse_live_code,
    to_live_qr_text,
)
from verification.trust import TrustAnchor, TrustBundle, TrustedKey
from verification.verify import Verdict, verify

FILE: dict[str, Any] = json.loads(make_live_vectors.LIVE_PATH.read_text(encoding="utf-8"))


def trust_of(vector: dict[str, Any]) -> TrustBundle:
    keys = {}
    for kid_hex, status in vector["trust"].items():
        kid, algorithm, key = key_from_jwk(FILE["keys"][kid_hex])
        keys[kid] = TrustedKey(kid, algorithm, key, status)
    anchor = TrustAnchor(*key_from_jwk(FILE["keys"]["7e01"]))
    return TrustBundle("https://cards.example", "Hội", 0, 2**40, keys, {}, anchor, "")


def run(vector: dict[str, Any]) -> Verdict:
    given = vector["input"]
    scanned = given["qr_text"] if "qr_text" in given else bytes.fromhex(given["credential"])
    return verify(scanned, trust_of(vector), status_of(vector), datetime.fromtimestamp(vector["now"], UTC))


def test_the_file_is_what_the_generator_writes() -> None:
    assert make_live_vectors.main(["--check"]) == 0


@pytest.mark.parametrize("vector", FILE["vectors"], ids=lambda v: v["name"])
def test_negative_live_vector(vector: dict[str, Any]) -> None:
    verdict = run(vector)
    assert (verdict.ok, verdict.reason) == (False, vector["reason"]), vector["description"]
    assert (verdict.claims is not None) is vector["shows_claims"], vector["name"]


@pytest.mark.parametrize("vector", FILE["accepted"], ids=lambda v: v["name"])
def test_accepted_live_vector(vector: dict[str, Any]) -> None:
    verdict = run(vector)
    assert verdict.ok and verdict.reason is None and verdict.claims is not None, vector["description"]
    assert verdict.live and verdict.status_checked


def test_every_live_code_reason_has_three_vectors() -> None:
    counts = {reason: sum(v["reason"] == reason for v in FILE["vectors"])
              for reason in make_live_vectors.LIVE_CODE_REASONS}
    assert counts == FILE["reasons"] and min(counts.values()) >= 3, counts
    assert len({v["name"] for v in FILE["vectors"] + FILE["accepted"]}) == len(FILE["vectors"]) + len(FILE["accepted"])


@pytest.mark.parametrize("vector", FILE["golden"], ids=lambda v: v["name"])
def test_golden_live_codes(vector: dict[str, Any]) -> None:
    """Every stage decodes back, the live code verifies at its time, and the size stays in the budget."""
    code = live_code_from_text(vector["qr_text"])
    assert code.hex() == vector["live_code"] and to_live_qr_text(code) == vector["qr_text"]
    live = parse_live_code(code)
    assert live.time_step == vector["time_step"] and live.proof.hex() == vector["proof"]
    assert live.credential.raw.hex() == vector["bound_credential"]
    assert live.holder.public.hex() == vector["device_public_key"]
    lists = {str(vector["claims"]["status_list"]): {"size": 65536, "entries": {}}}
    context = {"trust": {vector["card_kid"]: "active"}, "status_lists": lists, "now": vector["now"],
               "input": {"qr_text": vector["qr_text"]}}
    verdict = run(context)
    assert verdict.ok and verdict.live and verdict.claims is not None
    assert verdict.claims.status_index == make_live_vectors.BINDING_INDEX
    if vector["name"].startswith("size_budget"):
        # docs/card-format.md §8.7: the size-budget card stays at QR version 13 or below at level M.
        assert vector["qr_version_ecc_m"] <= 13


def test_a_bound_credential_cannot_pass_as_a_printed_card() -> None:
    """A copy of a live code's credential, without the phone's key, in every form a door reads."""
    golden = FILE["golden"][0]
    bound = bytes.fromhex(golden["bound_credential"])
    context = {"trust": {golden["card_kid"]: "active"}, "status_lists": {"1": {"size": 65536, "entries": {}}},
               "now": golden["now"]}
    for scanned in ({"qr_text": QR_PREFIX + golden["qr_text"][len(QR_PREFIX):]},
                    {"qr_text": make_live_vectors.to_qr_text(bound)}, {"credential": bound.hex()}):
        verdict = run({**context, "input": scanned})
        assert not verdict.ok and verdict.reason in ("holder_proof_invalid", "malformed"), scanned


def test_live_text_is_recognised_through_scanner_framing() -> None:
    text = FILE["golden"][0]["qr_text"]
    assert is_live_text(text) and is_live_text(" \ufeff]Q1\\000026" + text + "\r\n")
    assert not is_live_text("8401" + text[4:]) and not is_live_text("]Q18401123") and not is_live_text("x" * 5000)


def test_the_window_is_two_steps_back_and_one_ahead() -> None:
    step = 1000
    assert [is_fresh(step, t * LIVE_STEP_SECONDS) for t in (998, 999, 1000, 1001, 1002, 1003)] == [
        False, True, True, True, True, False]
    assert is_fresh(step, 1002 * LIVE_STEP_SECONDS + 29.9) and not is_fresh(step, 1003 * LIVE_STEP_SECONDS)


@pytest.mark.parametrize("device", [Ed25519PrivateKey.from_private_bytes(bytes(32)),
                                    ec.derive_private_key(12345, ec.SECP256R1())], ids=["ed25519", "p256"])
def test_the_python_phone_makes_codes_that_verify(device: Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> None:
    from tests.vectors.make_vectors import SIZE_BUDGET_CLAIMS, fixed_signers

    signer = fixed_signers()[ALG_EDDSA]
    bound = sign_bound_credential(make_live_vectors.bound_claims(), holder_key_of(device), signer)
    now = make_live_vectors.NOW
    text = to_live_qr_text(live_code(bound, SIZE_BUDGET_CLAIMS.card_id, now // LIVE_STEP_SECONDS, device))
    verdict = run({"trust": {"7e01": "active"}, "status_lists": {"1": {"size": 65536, "entries": {}}}, "now": now,
                   "input": {"qr_text": text}})
    assert verdict.ok and verdict.live

