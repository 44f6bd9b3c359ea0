"""Trust bundles and status lists are accepted only when signed by the pinned anchor, fresh and well formed."""

import base64
import json
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from issuance.jws import sign_jwt
from issuance.keys import LocalSigner, algorithm_of, generate_private_key
from issuance.status_list import build_status_bytes, compress_status_bytes, status_list_jwt
from verification.crypto import public_jwk
from verification.errors import TrustError
from verification.status import STATUS_LIST_TYP, verify_status_list
from verification.trust import TRUST_BUNDLE_TYP, TrustAnchor, verify_trust_bundle

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
URI = "https://cards.example/v1/status-lists/1"


def _signer(kid: bytes, alg: str = "ed25519") -> LocalSigner:
    key = generate_private_key(alg)  # type: ignore[arg-type]
    return LocalSigner(kid, algorithm_of(key), key)


def _anchor(signer: LocalSigner) -> TrustAnchor:
    return TrustAnchor.from_jwk(public_jwk(signer.kid, signer.algorithm, signer.private_key.public_key()))


def _bundle_payload(card: LocalSigner, **overrides: Any) -> dict[str, Any]:
    jwk = public_jwk(card.kid, card.algorithm, card.private_key.public_key())
    payload = {"iss": "https://cards.example", "issuer_name": "Hội", "iat": int(NOW.timestamp()),
               "exp": int((NOW + timedelta(days=7)).timestamp()), "keys": [{**jwk, "status": "active"}],
               "status_lists": [{"id": 1, "uri": URI, "bits": 2}]}
    payload.update(overrides)
    return payload


@pytest.mark.parametrize("alg", ["ed25519", "es256"])
def test_a_good_bundle_verifies(alg: str) -> None:
    trust, card = _signer(b"\x00\x01", alg), _signer(b"\x00\x02")
    bundle = verify_trust_bundle(sign_jwt(trust, _bundle_payload(card), typ=TRUST_BUNDLE_TYP), _anchor(trust), now=NOW)
    assert set(bundle.keys) == {b"\x00\x02"}
    assert bundle.status_lists == {1: URI}


def test_bundle_from_another_key_is_refused() -> None:
    trust, other, card = _signer(b"\x00\x01"), _signer(b"\x00\x01"), _signer(b"\x00\x02")
    token = sign_jwt(other, _bundle_payload(card), typ=TRUST_BUNDLE_TYP)  # same kid, different key
    with pytest.raises(TrustError):
        verify_trust_bundle(token, _anchor(trust), now=NOW)


def test_tampered_expired_and_mistyped_bundles_are_refused() -> None:
    trust, card = _signer(b"\x00\x01"), _signer(b"\x00\x02")
    anchor = _anchor(trust)
    token = sign_jwt(trust, _bundle_payload(card), typ=TRUST_BUNDLE_TYP)
    header, payload, signature = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged["keys"][0]["status"] = "compromised"
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    forged_token = f"{header}.{forged_payload}.{signature}"
    with pytest.raises(TrustError):
        verify_trust_bundle(forged_token, anchor, now=NOW)
    with pytest.raises(TrustError, match="expired"):
        verify_trust_bundle(token, anchor, now=NOW + timedelta(days=8))
    with pytest.raises(TrustError):
        verify_trust_bundle(sign_jwt(trust, _bundle_payload(card), typ="JWT"), anchor, now=NOW)
    duplicate = _bundle_payload(card)
    duplicate["keys"] = duplicate["keys"] * 2
    with pytest.raises(TrustError):
        verify_trust_bundle(sign_jwt(trust, duplicate, typ=TRUST_BUNDLE_TYP), anchor, now=NOW)
    none_header = json.dumps({"alg": "none", "kid": "0001", "typ": TRUST_BUNDLE_TYP}).encode()
    none_alg = f"{base64.urlsafe_b64encode(none_header).rstrip(b'=').decode()}.{payload}."
    with pytest.raises(TrustError):
        verify_trust_bundle(none_alg, anchor, now=NOW)


def test_status_list_round_trip_and_refusals() -> None:
    trust = _signer(b"\x00\x01")
    anchor = _anchor(trust)
    data = build_status_bytes(4096, [(5, 1), (6, 2), (4095, 3)])
    token = status_list_jwt(trust, uri=URI, compressed=compress_status_bytes(data), issued_at=NOW, ttl_seconds=600)
    view = verify_status_list(token, algorithm=anchor.algorithm, key=anchor.key, kid=anchor.kid, uri=URI, now=NOW)
    assert [view.status(i) for i in (4, 5, 6, 4095)] == [0, 1, 2, 3]
    with pytest.raises(TrustError):  # a list for another URI
        verify_status_list(token, algorithm=anchor.algorithm, key=anchor.key, kid=anchor.kid, uri=URI + "0", now=NOW)
    with pytest.raises(TrustError, match="expired"):
        verify_status_list(token, algorithm=anchor.algorithm, key=anchor.key, kid=anchor.kid, uri=URI,
                           now=NOW + timedelta(seconds=1300))


def test_status_list_zip_bomb_is_refused_after_signature_check() -> None:
    trust = _signer(b"\x00\x01")
    anchor = _anchor(trust)
    bomb = zlib.compress(b"\x00" * (2**24 * 2 // 8 + 1024), 9)
    payload = {"sub": URI, "iat": int(NOW.timestamp()), "exp": int(NOW.timestamp()) + 600, "ttl": 300,
               "status_list": {"bits": 2, "lst": base64.urlsafe_b64encode(bomb).rstrip(b"=").decode()}}
    token = sign_jwt(trust, payload, typ=STATUS_LIST_TYP)
    with pytest.raises(TrustError, match="larger than allowed"):
        verify_status_list(token, algorithm=anchor.algorithm, key=anchor.key, kid=anchor.kid, uri=URI, now=NOW)


def test_station_clock_slightly_behind_is_tolerated() -> None:
    trust, card = _signer(b"\x00\x01"), _signer(b"\x00\x02")
    token = sign_jwt(trust, _bundle_payload(card), typ=TRUST_BUNDLE_TYP)
    verify_trust_bundle(token, _anchor(trust), now=NOW - timedelta(minutes=5))
    with pytest.raises(TrustError, match="future"):
        verify_trust_bundle(token, _anchor(trust), now=NOW - timedelta(hours=2))


def test_es256_signatures_are_low_s() -> None:
    signer = _signer(b"\x00\x03", "es256")
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    for n in range(64):
        signature = signer.sign(n.to_bytes(2, "big"))
        assert int.from_bytes(signature[32:], "big") <= order // 2


def _status_token(trust: LocalSigner, lst: bytes | str, **changes: Any) -> str:
    encoded = lst if isinstance(lst, str) else base64.urlsafe_b64encode(lst).rstrip(b"=").decode()
    payload = {"sub": URI, "iat": int(NOW.timestamp()), "exp": int(NOW.timestamp()) + 1200, "ttl": 600,
               "status_list": {"bits": 2, "lst": encoded}, **changes}
    return sign_jwt(trust, {k: v for k, v in payload.items() if v is not None}, typ=STATUS_LIST_TYP)


@pytest.mark.parametrize(("label", "lst", "changes"), [
    ("exp is not iat + 2 ttl", None, {"exp": int(NOW.timestamp()) + 600}),
    ("no ttl", None, {"ttl": None}),
    ("ttl 0", None, {"ttl": 0, "exp": int(NOW.timestamp())}),
    ("iat true", None, {"iat": True}),
    ("truncated zlib stream", "truncated", {}),
    ("data after the zlib stream", "trailing", {}),
    ("padded base64", "padded", {}),
    ("bits true", None, {"status_list": {"bits": True, "lst": "eJwDAAAAAAE"}}),
])
def test_status_list_tokens_outside_the_spec_are_refused(label: str, lst: str | None, changes: dict[str, Any]) -> None:
    """docs/card-format.md §6.4: ttl, exp = iat + 2·ttl, integers, unpadded base64url of one complete zlib stream."""
    trust = _signer(b"\x00\x01")
    anchor = _anchor(trust)
    data = build_status_bytes(4096, [(5, 1)])
    compressed = compress_status_bytes(data)
    padded = base64.urlsafe_b64encode(zlib.compress(data, 1)).decode()  # 20 bytes of zlib: its base64 ends in "="
    assert padded.endswith("=")
    body: bytes | str = {None: compressed, "truncated": compressed[:-4], "trailing": compressed + b"\x00",
                         "padded": padded}[lst]
    assert verify_status_list(_status_token(trust, compressed), algorithm=anchor.algorithm, key=anchor.key,
                              kid=anchor.kid, uri=URI, now=NOW).status(5) == 1
    with pytest.raises(TrustError):
        verify_status_list(_status_token(trust, body, **changes), algorithm=anchor.algorithm, key=anchor.key,
                           kid=anchor.kid, uri=URI, now=NOW)
