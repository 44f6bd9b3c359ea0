"""Regenerate the live-code test vectors (verification/live.py, docs/card-format.md §8, §8.7).

``tests/vectors/card-v2-live.json`` holds golden live codes (every stage in hex: bound claims, bound credential, the
proof's input and signature, the live code, its QR text and QR version), inputs a verifier must refuse (each with its
trust, status and clock context and the reason code) and inputs at the edges it must accept.

Run ``.venv/bin/python tests/vectors/make_live_vectors.py`` to rewrite the file, or ``--check`` to only compare;
``tests/verification/test_live_vectors.py`` fails when the file and this script disagree. The card keys are those of
``make_vectors.py``; the phone keys are PUBLISHED TEST KEYS too (RFC 8032 §7.1 TEST 3 seed; the P-256 scalar of RFC
6979 A.2.5 plus one). ES256 signatures use RFC 6979 nonces, normalised to low S, so the file is reproducible.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from issuance.binding import holder_key_of, sign_bound_credential
from issuance.keys import LocalSigner, PrivateKey, Signer
from tests.vectors import make_vectors
from tests.vectors.make_vectors import (
    ED25519_KID,
    ES256_KID,
    IMPOSTOR_SEED,
    LONG_NAME_CLAIMS,
    P256_SCALAR,
    SIZE_BUDGET_CLAIMS,
    UNKNOWN_KID,
    DeterministicSigner,
    ed25519_test_key,
    fixed_signers,
    qr_version_ecc_m,
    render,
    status_lists,
)
from verification.crypto import P256_ORDER
from verification.format import (
    ALG_EDDSA,
    ALG_ES256,
    CardClaims,
    assemble,
    day_start,
    encode_claims,
    protected_header,
    sig_structure,
    to_qr_text,
)
from verification.live import (
    LIVE_REASONS,
    LIVE_STEP_SECONDS,
    LIVE_STEPS_AHEAD,
    LIVE_STEPS_BEHIND,
    HolderKey,
    assemble_live_code,
    cose_key,
    proof_input,
    to_live_qr_text,
)

LIVE_PATH = Path(__file__).with_name("card-v2-live.json")
DEVICE_SEED = bytes.fromhex("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7")
DEVICE_P256_SCALAR = (int.from_bytes(P256_SCALAR, "big") + 1).to_bytes(32, "big")
# The bound credentials' status slot: the binding's own, in list 1 (docs/card-format.md §8.5).
BINDING_INDEX = 51234
# The verifier's clock (09:30 in Vietnam) and the time step the golden live codes were made in.
NOW = make_vectors.NOW
STEP = NOW // LIVE_STEP_SECONDS
SHOWS_CLAIMS = {"not_yet_valid", "expired", "revoked", "suspended", "superseded", *LIVE_REASONS}
# What a verifier's verdicts on live codes must cover: every reason a live code can get.
LIVE_CODE_REASONS = ("malformed", "unsupported_version", "unknown_key", "bad_signature", "key_retired",
                     "holder_proof_invalid", "stale_live_code", "not_yet_valid", "expired", "revoked", "suspended",
                     "superseded")


def case(name: str, description: str, reason: str | None, **context: Any) -> dict[str, Any]:
    """:func:`make_vectors.case`; the claims are shown once the card's signature verified (live reasons too),
    unless ``shows_claims`` says otherwise."""
    context.setdefault("shows_claims", reason is None or reason in SHOWS_CLAIMS)
    return make_vectors.case(name, description, reason, **context)


def bound_claims(claims: CardClaims = SIZE_BUDGET_CLAIMS) -> CardClaims:
    """``claims`` with the binding's status slot."""
    return CardClaims(claims.card_id, claims.member_number, claims.display_name, claims.chapter_code,
                      claims.card_version, claims.issued_on, claims.expires_on, claims.status_list, BINDING_INDEX)


def device_keys() -> dict[int, PrivateKey]:
    """The phone's test key of each algorithm."""
    return {ALG_EDDSA: Ed25519PrivateKey.from_private_bytes(DEVICE_SEED),
            ALG_ES256: ec.derive_private_key(int.from_bytes(DEVICE_P256_SCALAR, "big"), ec.SECP256R1())}


def device_signer(key: PrivateKey) -> Signer:
    """The phone's key as a deterministic signer (the kid of a holder key is never used)."""
    if isinstance(key, Ed25519PrivateKey):
        return LocalSigner(b"\x00\x00", ALG_EDDSA, key)
    return DeterministicSigner(b"\x00\x00", ALG_ES256, key)


def make_live(credential: bytes, card_id: bytes, device: PrivateKey, step: int = STEP, *,
              signed_step: int | None = None, signed_card: bytes | None = None) -> bytes:
    """A live code of ``step``; ``signed_step``/``signed_card`` make the proof sign something else."""
    data = proof_input(signed_card or card_id, step if signed_step is None else signed_step)
    return assemble_live_code(step, device_signer(device).sign(data), credential)


def signed_bound(payload: bytes, signer: Signer) -> bytes:
    return assemble(protected_header(signer.algorithm, signer.kid), payload,
                    signer.sign(sig_structure(protected_header(signer.algorithm, signer.kid), payload)))


def bound_payload(cnf: Any, claims: CardClaims = SIZE_BUDGET_CLAIMS) -> bytes:
    """Bound claims with any ``cnf`` value (in or out of §8.1), in deterministic CBOR."""
    body = cbor2.loads(encode_claims(bound_claims(claims)))
    body[8] = cnf
    return bytes(cbor2.dumps(body, canonical=True))


def golden(name: str, description: str, claims: CardClaims, signer: Signer, device: PrivateKey) -> dict[str, Any]:
    holder = holder_key_of(device)
    bound = bound_claims(claims)
    payload = encode_claims(bound, {1: cose_key(holder.algorithm, holder.public)})
    credential = sign_bound_credential(bound, holder, signer)
    data = proof_input(claims.card_id, STEP)
    proof = device_signer(device).sign(data)
    code = assemble_live_code(STEP, proof, credential)
    text = to_live_qr_text(code)
    return {
        "name": name, "description": description, "card_kid": signer.kid.hex(),
        "device_algorithm": "EdDSA" if holder.algorithm == ALG_EDDSA else "ES256",
        "device_public_key": holder.public.hex(),
        "claims": make_vectors.claims_json(bound),
        "bound_payload": payload.hex(), "bound_credential": credential.hex(),
        "bound_credential_bytes": len(credential),
        "time_step": STEP, "proof_input": data.hex(), "proof": proof.hex(),
        "live_code": code.hex(), "live_code_bytes": len(code),
        "qr_text": text, "qr_text_length": len(text), "qr_version_ecc_m": qr_version_ecc_m(text),
        "now": NOW,
    }


def negative_vectors() -> list[dict[str, Any]]:
    """Live codes a verifier must refuse, at least three per live-code reason (§8.4 order)."""
    signers = fixed_signers()
    ed, es = signers[ALG_EDDSA], signers[ALG_ES256]
    devices = device_keys()
    device, device_es = devices[ALG_EDDSA], devices[ALG_ES256]
    holder, holder_es = holder_key_of(device), holder_key_of(device_es)
    impostor = Ed25519PrivateKey.from_private_bytes(IMPOSTOR_SEED)
    claims = SIZE_BUDGET_CLAIMS
    card_id = claims.card_id
    bound = sign_bound_credential(bound_claims(), holder, ed)
    bound_es = sign_bound_credential(bound_claims(), holder_es, ed)
    good = make_live(bound, card_id, device)
    iat, exp = day_start(claims.issued_on), day_start(claims.expires_on) + 86400

    def live(code: bytes) -> str:
        return to_live_qr_text(code)

    def on_key(cnf: Any) -> str:
        return live(make_live(signed_bound(bound_payload(cnf), ed), card_id, device))

    okp = {1: cose_key(ALG_EDDSA, holder.public)}
    high_s = make_live(bound_es, card_id, device_es)
    s = int.from_bytes(high_s[6 + 32:6 + 64], "big")
    high_s = high_s[:6 + 32] + (P256_ORDER - s).to_bytes(32, "big") + high_s[6 + 64:]
    off_curve = HolderKey(ALG_ES256, holder_es.public[:32] + (int.from_bytes(holder_es.public[32:], "big") ^ 1)
                          .to_bytes(32, "big"))
    ahead = (STEP + LIVE_STEPS_AHEAD + 1) * LIVE_STEP_SECONDS
    stale_now = (STEP + LIVE_STEPS_BEHIND + 1) * LIVE_STEP_SECONDS
    return [
        # --- the text and the structure ---
        case("live_digits_not_bytes", "8402 then a group of 17 digits above 2**56", "malformed",
             qr_text="8402" + "9" * 17),
        case("live_text_with_letter", "a letter between the digits of a live code", "malformed",
             qr_text=live(good)[:40] + "a" + live(good)[40:]),
        case("live_step_not_shortest", "time step 5 written in four bytes", "malformed",
             qr_text=live(b"\x83\x1a\x00\x00\x00\x05" + good[6:])),
        case("live_step_64_bits", "time step of 2**32", "malformed",
             qr_text=live(b"\x83\x1b\x00\x00\x00\x01\x00\x00\x00\x00" + good[6:])),
        case("live_proof_63_bytes", "a 63-byte proof", "malformed",
             qr_text=live(good[:6] + b"\x58\x3f" + good[8:8 + 63] + good[8 + 64:])),
        case("live_trailing_byte", "a byte after the credential", "malformed", qr_text=live(good + b"\x00")),
        case("live_array_of_four", "an array of four items", "malformed", qr_text=live(b"\x84" + good[1:] + b"\x00")),
        case("live_unbound_credential", "a version 1 credential (no cnf) in a live code", "malformed",
             qr_text=live(make_live(bytes.fromhex(make_vectors.build_vectors()["vectors"][0]["credential"]),
                                    card_id, device))),
        case("live_cnf_with_alg", "a COSE_Key with an alg parameter, validly signed", "malformed",
             qr_text=on_key({1: {**okp[1], 3: -8}})),
        case("live_cnf_x_31_bytes", "an Ed25519 key of 31 bytes, validly signed", "malformed",
             qr_text=on_key({1: {1: 1, -1: 6, -2: holder.public[:31]}})),
        case("live_cnf_okp_p256", "kty OKP with crv P-256, validly signed", "malformed",
             qr_text=on_key({1: {1: 1, -1: 1, -2: holder.public}})),
        case("live_cnf_jwk_thumbprint", "cnf holding another confirmation method (3: a thumbprint)", "malformed",
             qr_text=on_key({3: holder.public})),
        case("live_version_03", "8403: a format version no verifier knows", "unsupported_version",
             qr_text="8403" + live(good)[4:]),
        case("live_version_99_framed", "8499 with an AIM identifier before it", "unsupported_version",
             qr_text="]Q1" + "8499" + live(good)[4:]),
        case("live_claims_version_2", "a bound credential whose card claim says version 2, validly signed",
             "unsupported_version", shows_claims=False,
             qr_text=live(make_live(signed_bound(bound_payload(okp).replace(b"\x87\x01", b"\x87\x02"), ed),
                                    card_id, device))),
        # --- the card key ---
        case("live_unknown_kid", "the bound credential signed under kid beef", "unknown_key",
             qr_text=live(make_live(signed_bound(bound_payload(okp), LocalSigner(UNKNOWN_KID, ALG_EDDSA,
                                                                                  ed25519_test_key())),
                                    card_id, device))),
        case("live_es_kid_not_trusted", "a credential signed by 7e02 with only 7e01 trusted", "unknown_key",
             qr_text=live(make_live(sign_bound_credential(bound_claims(), holder, es), card_id, device)),
             trust={ED25519_KID.hex(): "active"}),
        case("live_unknown_kid_stale", "kid beef on a stale code: the key before the time step", "unknown_key",
             qr_text=live(make_live(signed_bound(bound_payload(okp), LocalSigner(UNKNOWN_KID, ALG_EDDSA,
                                                                                  ed25519_test_key())),
                                    card_id, device)), now=stale_now),
        case("live_compromised_key", "the card key marked compromised", "key_retired", qr_text=live(good),
             trust={ED25519_KID.hex(): "compromised", ES256_KID.hex(): "active"}),
        case("live_compromised_key_bad_proof", "compromised key and a forged proof: key_retired first",
             "key_retired", qr_text=live(make_live(bound, card_id, impostor)),
             trust={ED25519_KID.hex(): "compromised", ES256_KID.hex(): "active"}),
        case("live_compromised_key_stale", "compromised key on a stale code", "key_retired", qr_text=live(good),
             trust={ED25519_KID.hex(): "compromised", ES256_KID.hex(): "active"}, now=stale_now),
        case("live_card_signature_flipped", "the bound credential's last signature bit flipped", "bad_signature",
             qr_text=live(good[:-1] + bytes((good[-1] ^ 1,)))),
        case("live_holder_key_swapped", "another phone's key put in cnf without re-signing", "bad_signature",
             qr_text=live(make_live(bound.replace(holder.public, holder_key_of(impostor).public), card_id,
                                    impostor))),
        case("live_card_signature_bad_and_stale", "a broken card signature on a stale code: the signature first",
             "bad_signature", qr_text=live(good[:-1] + bytes((good[-1] ^ 1,))), now=stale_now),
        # --- the holder's proof ---
        case("live_proof_other_phone", "a proof signed by another phone's key (RFC 8032 TEST 2)",
             "holder_proof_invalid", qr_text=live(make_live(bound, card_id, impostor))),
        case("live_proof_bit_flipped", "the proof's last bit flipped", "holder_proof_invalid",
             qr_text=live(good[:6 + 2 + 63] + bytes((good[6 + 2 + 63] ^ 1,)) + good[6 + 2 + 64:])),
        case("live_proof_other_card", "a proof over another card id", "holder_proof_invalid",
             qr_text=live(make_live(bound, card_id, device, signed_card=bytes(8)))),
        case("live_proof_other_step", "time step moved by one without a new proof", "holder_proof_invalid",
             qr_text=live(make_live(bound, card_id, device, STEP + 1, signed_step=STEP))),
        case("live_proof_high_s", "a P-256 phone's proof with s replaced by n - s", "holder_proof_invalid",
             qr_text=live(high_s)),
        case("live_holder_key_off_curve", "an EC2 key that is no point of P-256, signed by the issuer",
             "holder_proof_invalid",
             qr_text=live(make_live(sign_bound_credential(bound_claims(), off_curve, ed), card_id, device_es))),
        case("bound_credential_as_v1_text", "the bound credential alone, as a version 1 QR text (a copy of the "
             "credential without the phone's key)", "holder_proof_invalid", qr_text=to_qr_text(bound),
             shows_claims=False),
        case("bound_credential_as_nfc_bytes", "the bound credential alone, as raw bytes", "holder_proof_invalid",
             credential=bound, shows_claims=False),
        case("live_proof_bad_and_stale", "a forged proof on a stale code: the proof before the time step",
             "holder_proof_invalid", qr_text=live(make_live(bound, card_id, impostor)), now=stale_now),
        # --- the time step ---
        case("live_stale_90_seconds", "three steps behind the verifier's clock", "stale_live_code",
             qr_text=live(good), now=stale_now),
        case("live_stale_a_day", "a capture a day old", "stale_live_code", qr_text=live(good), now=NOW + 86400),
        case("live_two_steps_ahead", "two steps ahead of the verifier's clock", "stale_live_code",
             qr_text=live(good), now=(STEP - LIVE_STEPS_AHEAD - 1) * LIVE_STEP_SECONDS),
        case("live_stale_and_revoked", "stale and revoked: the time step before the status", "stale_live_code",
             qr_text=live(good), now=stale_now, status=status_lists({BINDING_INDEX: 1})),
        case("live_stale_es256_phone", "a P-256 phone's code, stale", "stale_live_code",
             qr_text=live(make_live(bound_es, card_id, device_es)), now=ahead + 120),
        # --- the card's dates and the binding's status ---
        case("live_not_yet_valid", "a live code made before the card's issue day", "not_yet_valid",
             qr_text=live(make_live(bound, card_id, device, (iat - 601) // LIVE_STEP_SECONDS)), now=iat - 601),
        case("live_not_yet_valid_day_before", "a day before the issue day", "not_yet_valid",
             qr_text=live(make_live(bound, card_id, device, (iat - 86400) // LIVE_STEP_SECONDS)), now=iat - 86400),
        case("live_not_yet_valid_and_superseded", "early and superseded: the dates first", "not_yet_valid",
             qr_text=live(make_live(bound, card_id, device, (iat - 700) // LIVE_STEP_SECONDS)), now=iat - 700,
             status=status_lists({BINDING_INDEX: 3})),
        case("live_expired", "a live code after the card's expiry", "expired",
             qr_text=live(make_live(bound, card_id, device, (exp + 600) // LIVE_STEP_SECONDS)), now=exp + 600),
        case("live_expired_years", "years after the expiry", "expired",
             qr_text=live(make_live(bound, card_id, device, (exp + 10**8) // LIVE_STEP_SECONDS)), now=exp + 10**8),
        case("live_expired_es256_phone", "a P-256 phone, after the expiry", "expired",
             qr_text=live(make_live(bound_es, card_id, device_es, (exp + 3600) // LIVE_STEP_SECONDS)),
             now=exp + 3600),
        case("live_binding_revoked", "the binding's slot is 1 (card revoked, or the phone de-activated)",
             "revoked", qr_text=live(good), status=status_lists({BINDING_INDEX: 1})),
        case("live_binding_list_missing", "no status list 1: fail closed", "revoked", qr_text=live(good), status={}),
        case("live_binding_revoked_es256", "a P-256 phone, binding revoked", "revoked",
             qr_text=live(make_live(bound_es, card_id, device_es)), status=status_lists({BINDING_INDEX: 1})),
        case("live_binding_suspended", "the binding's slot is 2 (card suspended)", "suspended", qr_text=live(good),
             status=status_lists({BINDING_INDEX: 2})),
        case("live_binding_suspended_es256", "a P-256 phone, binding suspended", "suspended",
             qr_text=live(make_live(bound_es, card_id, device_es)), status=status_lists({BINDING_INDEX: 2})),
        case("live_binding_suspended_framed", "binding suspended, text with scanner framing", "suspended",
             qr_text="]Q1" + live(good) + "\r\n", status=status_lists({BINDING_INDEX: 2})),
        case("live_binding_superseded", "the binding's slot is 3: another phone was activated", "superseded",
             qr_text=live(good), status=status_lists({BINDING_INDEX: 3})),
        case("live_binding_superseded_es256", "a P-256 phone, superseded", "superseded",
             qr_text=live(make_live(bound_es, card_id, device_es)), status=status_lists({BINDING_INDEX: 3})),
        case("live_binding_superseded_neighbours", "superseded between two valid entries", "superseded",
             qr_text=live(good), status=status_lists({BINDING_INDEX - 1: 1, BINDING_INDEX: 3, BINDING_INDEX + 1: 1})),
    ]


def accepted_vectors() -> list[dict[str, Any]]:
    """Live codes at the edges that a verifier must accept."""
    signers = fixed_signers()
    ed, es = signers[ALG_EDDSA], signers[ALG_ES256]
    devices = device_keys()
    device, device_es = devices[ALG_EDDSA], devices[ALG_ES256]
    card_id = SIZE_BUDGET_CLAIMS.card_id
    bound = sign_bound_credential(bound_claims(), holder_key_of(device), ed)
    good = to_live_qr_text(make_live(bound, card_id, device))
    return [
        case("live_first_second_of_step", "the verifier's clock at the start of the code's step", None,
             qr_text=good, now=STEP * LIVE_STEP_SECONDS),
        case("live_oldest_accepted", "the last second of the second step after the code's", None, qr_text=good,
             now=(STEP + LIVE_STEPS_BEHIND + 1) * LIVE_STEP_SECONDS - 1),
        case("live_one_step_ahead", "the code one step ahead of the verifier's clock", None, qr_text=good,
             now=(STEP - LIVE_STEPS_AHEAD) * LIVE_STEP_SECONDS),
        case("live_es256_phone", "a P-256 phone (low-S proof)", None,
             qr_text=to_live_qr_text(make_live(sign_bound_credential(bound_claims(), holder_key_of(device_es), ed),
                                               card_id, device_es))),
        case("live_es256_card_key", "a credential signed by the ES256 card key, an Ed25519 phone", None,
             qr_text=to_live_qr_text(make_live(sign_bound_credential(bound_claims(), holder_key_of(device), es),
                                               card_id, device))),
        case("live_scanner_framing", "BOM, AIM identifier and ECI escape before, CR LF after", None,
             qr_text="\ufeff]Q1\\000026" + good + "\r\n"),
        case("live_card_slot_revoked", "the card's own slot (48213) says revoked, the binding's says valid: a "
             "live code names its binding's slot, which follows the card (§8.5)", None, qr_text=good,
             status=status_lists({SIZE_BUDGET_CLAIMS.status_index: 1})),
    ]


def build_live_vectors() -> dict[str, Any]:
    signers = fixed_signers()
    ed, es = signers[ALG_EDDSA], signers[ALG_ES256]
    devices = device_keys()
    vectors = negative_vectors()
    device_public = {("EdDSA" if algorithm == ALG_EDDSA else "ES256"): {
        "private_key": (DEVICE_SEED if algorithm == ALG_EDDSA else DEVICE_P256_SCALAR).hex(),
        "public_key": holder_key_of(key).public.hex(),
        "spki_der": key.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo).hex(),
    } for algorithm, key in devices.items()}
    return {
        "description": "Live codes of the cardsvc card, format 84 version 02 (docs/card-format.md §8): golden "
                       "vectors, inputs a verifier must refuse and inputs at the edges it must accept.",
        "warning": "TEST KEYS ONLY: the card keys of tests/vectors/card-v1.json; phone keys from the RFC 8032 "
                   "section 7.1 TEST 3 seed and the RFC 6979 A.2.5 P-256 scalar plus one.",
        "generator": "tests/vectors/make_live_vectors.py",
        "time_step_seconds": LIVE_STEP_SECONDS,
        "steps_behind": LIVE_STEPS_BEHIND,
        "steps_ahead": LIVE_STEPS_AHEAD,
        "reasons": {reason: sum(vector["reason"] == reason for vector in vectors) for reason in LIVE_CODE_REASONS},
        "notes": {
            "time_step": "floor(unix seconds / 30) on the phone's clock corrected by the server's",
            "proof_input": "deterministic CBOR [\"LiveProof1\", card_id, time_step, challenge], challenge empty",
            "input, trust, status_lists, now, reason, shows_claims": "as in tests/vectors/card-v1-negative.json",
            "status_lists": "a live code names its binding's slot (index 51234 of list 1), not the card's",
        },
        "keys": make_vectors.build_negative_vectors()["keys"],
        "device_keys": device_public,
        "golden": [
            golden("size_budget_ed25519_phone", "the size-budget card (§3), Ed25519 card key and phone",
                   SIZE_BUDGET_CLAIMS, ed, devices[ALG_EDDSA]),
            golden("size_budget_p256_phone", "the size-budget card, Ed25519 card key, a P-256 phone (the WebCrypto "
                   "fallback)", SIZE_BUDGET_CLAIMS, ed, devices[ALG_ES256]),
            golden("size_budget_es256_card_p256_phone", "ES256 card key and a P-256 phone", SIZE_BUDGET_CLAIMS, es,
                   devices[ALG_ES256]),
            golden("name_100_bytes_p256_phone", "the 100-byte name (the largest card), a P-256 phone",
                   LONG_NAME_CLAIMS, ed, devices[ALG_ES256]),
        ],
        "vectors": vectors,
        "accepted": accepted_vectors(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not up to date")
    args = parser.parse_args(argv)
    text = render(build_live_vectors())
    if args.check:
        if not LIVE_PATH.exists() or LIVE_PATH.read_text(encoding="utf-8") != text:
            sys.stderr.write(f"{LIVE_PATH} is out of date: run {Path(__file__).name}\n")
            return 1
        return 0
    LIVE_PATH.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
