"""The door station's decision core: every reason code reached on purpose, scanner noise, claims disclosure rules."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import cbor2
import pytest

from issuance.binding import holder_key_of, live_qr_text, sign_bound_credential
from issuance.credential import credential_qr_text, sign_credential
from issuance.jws import sign_jwt
from issuance.keys import LocalSigner, algorithm_of, generate_private_key
from issuance.status_list import build_status_bytes, compress_status_bytes, status_list_jwt
from verification.crypto import public_jwk
from verification.errors import REASONS, TrustError
from verification.format import (
    ALG_EDDSA,
    ALG_ES256,
    CLOCK_SKEW_SECONDS,
    PRIVATE_CLAIM,
    CardClaims,
    assemble,
    day_start,
    encode_claims,
    protected_header,
    sig_structure,
)
from verification.live import time_step_at
from verification.status import STATUS_REVOKED, STATUS_SUPERSEDED, STATUS_SUSPENDED
from verification.trust import TRUST_BUNDLE_TYP, TrustAnchor, TrustBundle, verify_trust_bundle
from verification.verify import StatusLists, Verdict, verify

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2027, 6, 1, 9, 30, tzinfo=UTC)
PAST = datetime(2020, 1, 1, tzinfo=UTC)
ISSUED, EXPIRES = date(2026, 1, 1), date(2030, 12, 31)
LIST_ID, LIST_SIZE = 3, 4096
URI = f"https://cards.example/v1/status-lists/{LIST_ID}"
ED_KID, ES_KID, RETIRED_KID, COMPROMISED_KID = b"\x7e\x01", b"\x7e\x02", b"\x7e\x03", b"\x7e\x04"
UNTRUSTED_KID = b"\xbe\xef"
# Card indexes with a known status in the test list.
VALID_INDEX, REVOKED_INDEX, SUSPENDED_INDEX, SUPERSEDED_INDEX = 17, 1001, 2002, 3003


def signer(kid: bytes, algorithm: str = "ed25519") -> LocalSigner:
    """A fresh signing key under ``kid``."""
    key = generate_private_key(algorithm)  # type: ignore[arg-type]
    return LocalSigner(kid, algorithm_of(key), key)


@dataclass(frozen=True)
class World:
    """Everything a station holds (trust bundle, status lists) plus the issuer's signers to make test cards."""

    anchor_signer: LocalSigner
    signers: dict[bytes, LocalSigner]
    untrusted: LocalSigner
    trust: TrustBundle
    status: StatusLists


def build_world() -> World:
    """Keys active (Ed25519 and ES256), retired and compromised; one status list with each status value."""
    anchor_signer = signer(b"\x00\x01")
    signers = {
        ED_KID: signer(ED_KID), ES_KID: signer(ES_KID, "es256"), RETIRED_KID: signer(RETIRED_KID),
        COMPROMISED_KID: signer(COMPROMISED_KID),
    }
    statuses = {ED_KID: "active", ES_KID: "active", RETIRED_KID: "retired", COMPROMISED_KID: "compromised"}
    keys = [{**public_jwk(kid, s.algorithm, s.private_key.public_key()), "status": statuses[kid]}
            for kid, s in signers.items()]
    # iat lies in the real past: pyjwt checks "iat" against the wall clock, not the injected ``now`` (reported).
    payload = {"iss": "https://cards.example", "issuer_name": "Hội", "iat": int(PAST.timestamp()),
               "exp": int((NOW + timedelta(days=30)).timestamp()), "keys": keys,
               "status_lists": [{"id": LIST_ID, "uri": URI, "bits": 2}]}
    anchor = TrustAnchor.from_jwk(public_jwk(anchor_signer.kid, anchor_signer.algorithm,
                                             anchor_signer.private_key.public_key()))
    trust = verify_trust_bundle(sign_jwt(anchor_signer, payload, typ=TRUST_BUNDLE_TYP), anchor, now=NOW)
    entries = [(REVOKED_INDEX, STATUS_REVOKED), (SUSPENDED_INDEX, STATUS_SUSPENDED),
               (SUPERSEDED_INDEX, STATUS_SUPERSEDED)]
    token = status_list_jwt(anchor_signer, uri=URI, compressed=compress_status_bytes(build_status_bytes(
        LIST_SIZE, entries)), issued_at=PAST, ttl_seconds=int((NOW - PAST).total_seconds()))
    status = StatusLists.from_tokens(trust, {LIST_ID: token}, now=NOW)
    return World(anchor_signer, signers, signer(UNTRUSTED_KID), trust, status)


WORLD = build_world()


def claims(index: int = VALID_INDEX, *, issued: date = ISSUED, expires: date = EXPIRES,
           status_list: int = LIST_ID) -> CardClaims:
    return CardClaims(bytes(range(8)), "0000001867", "Nguyễn Thị Phương Thảo Vy", "HNI-BADINH-01", 1, issued,
                      expires, status_list, index)


def card(kid: bytes = ED_KID, **kwargs: object) -> bytes:
    """A credential signed by the issuer key ``kid`` (or the untrusted key)."""
    key = WORLD.untrusted if kid == UNTRUSTED_KID else WORLD.signers[kid]
    return sign_credential(claims(**kwargs), key)  # type: ignore[arg-type]


def check(scanned: str | bytes, now: datetime = NOW, **kwargs: object) -> Verdict:
    return verify(scanned, WORLD.trust, WORLD.status, now, **kwargs)  # type: ignore[arg-type]


def assert_denied(verdict: Verdict, reason: str, *, with_claims: bool) -> None:
    assert not verdict.ok
    assert verdict.reason == reason
    assert (verdict.claims is not None) is with_claims


@pytest.mark.parametrize("kid", [ED_KID, ES_KID, RETIRED_KID])
def test_valid_cards_pass_as_qr_text_and_as_nfc_bytes(kid: bytes) -> None:
    raw = card(kid)
    for scanned in (credential_qr_text(raw), raw):
        verdict = check(scanned)
        assert verdict.ok and verdict.reason is None and verdict.status_checked
        assert verdict.claims == claims()
        assert verdict.kid == kid


@pytest.mark.parametrize("noise", [
    "  {}  ", "{}\r\n", "\n{}\r", "]Q1{}", "]Q3\\000026{}\r\n", "\ufeff{}\t", "\\000026{}",
])
def test_scanner_noise_is_tolerated(noise: str) -> None:
    assert check(noise.format(credential_qr_text(card()))).ok


def test_bytearray_from_a_reader_is_accepted() -> None:
    assert check(bytearray(card())).ok  # type: ignore[arg-type]


@pytest.mark.parametrize("scanned", [
    "", " \r\n", "hello", "8401", "84011", "8401" + "9" * 17, "9401" + "0" * 17, "٨٤٠١", b"", b"\x00",
    b"\xd2" * 600, "8" * 5000, "8401\udcff", None, 12345, ["8401"],
])
def test_garbage_is_malformed_and_never_raises(scanned: object) -> None:
    assert_denied(check(scanned), "malformed", with_claims=False)  # type: ignore[arg-type]


def test_unknown_encoding_version_is_unsupported() -> None:
    text = credential_qr_text(card())
    assert_denied(check("8403" + text[4:]), "unsupported_version", with_claims=False)


def _signed(key: LocalSigner, protected: bytes, payload: bytes) -> bytes:
    return assemble(protected, payload, key.sign(sig_structure(protected, payload)))


def test_unknown_claims_version_is_unsupported_even_when_signed() -> None:
    body = cbor2.loads(encode_claims(claims()))
    body[PRIVATE_CLAIM][0] = 2
    key = WORLD.signers[ED_KID]
    raw = _signed(key, protected_header(ALG_EDDSA, ED_KID), cbor2.dumps(body, canonical=True))
    assert_denied(check(raw), "unsupported_version", with_claims=False)


def test_unknown_key_id() -> None:
    verdict = check(credential_qr_text(card(UNTRUSTED_KID)))
    assert_denied(verdict, "unknown_key", with_claims=False)
    assert verdict.kid == UNTRUSTED_KID


def test_flipped_signature_bit_is_bad_signature() -> None:
    raw = bytearray(card())
    raw[-1] ^= 0x01
    assert_denied(check(bytes(raw)), "bad_signature", with_claims=False)


def test_flipped_claims_bit_is_bad_signature() -> None:
    raw = card()
    name = "Nguyễn".encode()
    forged = raw.replace(name, "Nguyễm".encode())
    assert forged != raw
    assert_denied(check(forged), "bad_signature", with_claims=False)


@pytest.mark.parametrize(("kid", "header_alg"), [(ED_KID, ALG_ES256), (ES_KID, ALG_EDDSA)])
def test_algorithm_swapped_on_a_validly_signed_credential_is_never_accepted(kid: bytes, header_alg: int) -> None:
    # The signature really is made by the key bound to the kid; only the header's alg claims the other algorithm.
    key = WORLD.signers[kid]
    raw = _signed(key, protected_header(header_alg, kid), encode_claims(claims()))
    for scanned in (raw, credential_qr_text(raw)):
        assert_denied(check(scanned), "bad_signature", with_claims=False)


def test_alg_swapped_and_signed_by_a_key_of_the_other_algorithm_is_refused() -> None:
    # An attacker with their own ES256 key naming the Ed25519 kid: the kid's binding decides, not the header.
    attacker = signer(ED_KID, "es256")
    raw = _signed(attacker, protected_header(ALG_ES256, ED_KID), encode_claims(claims()))
    assert_denied(check(raw), "bad_signature", with_claims=False)


@pytest.mark.parametrize("kid", [ED_KID, ES_KID])
def test_wrong_key_under_a_known_kid_is_bad_signature(kid: bytes) -> None:
    impostor = signer(kid, "ed25519" if kid == ED_KID else "es256")
    verdict = check(sign_credential(claims(), impostor))
    assert_denied(verdict, "bad_signature", with_claims=False)
    assert verdict.kid == kid


def test_compromised_key_is_key_retired_without_claims() -> None:
    # The signature is genuine, but a compromised key proves nothing: no claims are disclosed.
    verdict = check(credential_qr_text(card(COMPROMISED_KID)))
    assert_denied(verdict, "key_retired", with_claims=False)
    assert verdict.kid == COMPROMISED_KID


def _vietnam_midnight(day: date) -> datetime:
    return datetime.fromtimestamp(day_start(day), tz=UTC)


def test_validity_starts_at_vietnam_midnight_with_600_seconds_of_clock_skew() -> None:
    raw = card()
    start = _vietnam_midnight(ISSUED)
    assert start == datetime(2025, 12, 31, 17, 0, tzinfo=UTC)
    assert CLOCK_SKEW_SECONDS == 600
    verdict = check(raw, start - timedelta(seconds=601))
    assert_denied(verdict, "not_yet_valid", with_claims=True)
    assert check(raw, start - timedelta(seconds=600)).ok
    assert_denied(check(raw, start - timedelta(seconds=600, microseconds=1)), "not_yet_valid", with_claims=True)


def test_validity_ends_after_the_last_day_in_vietnam_time_with_600_seconds_of_clock_skew() -> None:
    raw = card()
    end = _vietnam_midnight(EXPIRES + timedelta(days=1))
    assert end == datetime(2030, 12, 31, 17, 0, tzinfo=UTC)
    assert check(raw, end + timedelta(seconds=599)).ok
    assert check(raw, end + timedelta(seconds=599, microseconds=999_999)).ok
    verdict = check(raw, end + timedelta(seconds=600))
    assert_denied(verdict, "expired", with_claims=True)
    assert verdict.claims == claims()
    # Any timezone of the station's clock gives the same answer.
    later = (end + timedelta(seconds=600)).astimezone(datetime.now().astimezone().tzinfo)
    assert_denied(check(raw, later), "expired", with_claims=True)


@pytest.mark.parametrize(("index", "reason"), [
    (REVOKED_INDEX, "revoked"), (SUSPENDED_INDEX, "suspended"), (SUPERSEDED_INDEX, "superseded"),
])
def test_status_values_deny_with_claims(index: int, reason: str) -> None:
    verdict = check(credential_qr_text(card(index=index)))
    assert_denied(verdict, reason, with_claims=True)
    assert verdict.status_checked
    assert verdict.claims is not None and verdict.claims.status_index == index


def test_dates_are_checked_before_status() -> None:
    raw = card(index=REVOKED_INDEX, expires=date(2027, 1, 1))
    assert_denied(check(raw), "expired", with_claims=True)


def test_status_index_outside_the_list_is_malformed() -> None:
    assert_denied(check(card(index=LIST_SIZE)), "malformed", with_claims=True)
    assert check(card(index=LIST_SIZE - 1)).ok


def test_missing_status_list_fails_closed_by_default() -> None:
    raw = card(status_list=LIST_ID + 1)
    verdict = check(raw)
    assert_denied(verdict, "revoked", with_claims=True)
    assert not verdict.status_checked
    accepted = check(raw, on_missing_status="accept")
    assert accepted.ok and not accepted.status_checked and accepted.claims == claims(status_list=LIST_ID + 1)


def test_status_values_outside_two_bits_fail_closed() -> None:
    class Broken:
        def status(self, list_id: int, index: int) -> int | None:
            return 7

    verdict = verify(card(), WORLD.trust, Broken(), NOW)
    assert_denied(verdict, "revoked", with_claims=True)


def test_status_list_not_named_by_the_bundle_is_refused() -> None:
    token = status_list_jwt(WORLD.anchor_signer, uri=URI, compressed=compress_status_bytes(bytes(16)),
                            issued_at=PAST, ttl_seconds=60)
    with pytest.raises(TrustError):
        StatusLists.from_tokens(WORLD.trust, {LIST_ID + 1: token}, now=NOW)


def test_payload_hash_is_of_the_exact_input_and_never_the_payload() -> None:
    raw = card()
    text = " " + credential_qr_text(raw) + "\r\n"
    assert check(text).payload_hash == hashlib.sha256(text.encode()).hexdigest()
    assert check(raw).payload_hash == hashlib.sha256(raw).hexdigest()
    garbage = "\udcff garbage"
    assert check(garbage).payload_hash == hashlib.sha256(garbage.encode("utf-8", "surrogatepass")).hexdigest()
    assert all(len(field) < 100 for field in (check(text).payload_hash,))


def test_every_reason_code_is_covered_here() -> None:
    source = Path(__file__).read_text(encoding="utf-8")
    assert all(f'"{reason}"' in source for reason in REASONS)


def test_naive_clock_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone"):
        check(card(), NOW.replace(tzinfo=None))


def test_verdict_is_frozen() -> None:
    verdict = check(card())
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.ok = False  # type: ignore[misc]


def test_verification_handles_no_private_key() -> None:
    for path in (ROOT / "verification").rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert "PrivateKey" not in source, path
        assert "private_bytes" not in source, path


@pytest.mark.parametrize("changes", [
    {"display_name": "Lan \u202eanL"}, {"display_name": "La\u200bn"}, {"display_name": "Le\u0302"},
    {"display_name": "Đ" * 50 + "a"}, {"chapter_code": "hni"}, {"chapter_code": "C" * 33}, {"card_version": 2**32},
    {"expires_on": ISSUED - timedelta(days=1)}, {"expires_on": date(9999, 12, 31)},
], ids=repr)
def test_the_issuer_refuses_to_sign_what_verifiers_refuse(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        sign_credential(dataclasses.replace(claims(), **changes), WORLD.signers[ED_KID])  # type: ignore[arg-type]


def test_live_codes_take_the_same_steps_with_a_proof_and_a_time_step() -> None:
    """A live code (docs/card-format.md §8) of a revoked binding is ``revoked`` like a card; a forged proof is
    ``holder_proof_invalid``; a capture three steps old is ``stale_live_code``; the bound credential alone too."""
    device = generate_private_key("ed25519")
    bound = sign_bound_credential(claims(REVOKED_INDEX), holder_key_of(device), WORLD.signers[ED_KID])
    step = time_step_at(NOW.timestamp())
    assert check(live_qr_text(bound, bytes(range(8)), step, device)).reason == "revoked"
    forged = check(live_qr_text(bound, bytes(range(8)), step, generate_private_key("ed25519")))
    assert (forged.reason, forged.live, forged.claims is not None) == ("holder_proof_invalid", True, True)
    assert check(live_qr_text(bound, bytes(range(8)), step - 3, device)).reason == "stale_live_code"
    assert_denied(check(bound), "holder_proof_invalid", with_claims=False)
    assert check(card()).live is False
