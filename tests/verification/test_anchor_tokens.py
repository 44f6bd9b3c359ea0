"""The three documents signed by the trust key — trust bundle, status list, event bundle — pass the same checks
(docs/card-format.md §6.4, :func:`verification.trust.decode_anchor_jwt`): one contract, every kind.

The event bundle used to have a copy of its own that skipped the "issued in the future" check.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from issuance.jws import sign_jwt
from issuance.keys import LocalSigner, generate_private_key
from issuance.status_list import build_status_bytes, compress_status_bytes, status_list_jwt
from verification.crypto import public_jwk
from verification.errors import TrustError
from verification.event_bundle import EVENT_BUNDLE_TYP, verify_event_bundle
from verification.format import ALG_EDDSA
from verification.status import STATUS_LIST_TYP, verify_status_list
from verification.trust import TRUST_BUNDLE_TYP, TrustAnchor, verify_trust_bundle

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ISSUER = "https://cards.example.vn"
URI = f"{ISSUER}/v1/status-lists/1"
TRUST = LocalSigner(b"\xa1\x01", ALG_EDDSA, generate_private_key("ed25519"))
CARD = LocalSigner(b"\xc1\x01", ALG_EDDSA, generate_private_key("ed25519"))
ANCHOR = TrustAnchor.from_jwk(public_jwk(TRUST.kid, TRUST.algorithm, TRUST.private_key.public_key()))
STAMP = int(NOW.timestamp())


def _trust_claims(iat: int) -> dict[str, Any]:
    jwk = public_jwk(CARD.kid, CARD.algorithm, CARD.private_key.public_key())
    return {"iss": ISSUER, "issuer_name": "Hội", "iat": iat, "exp": iat + 7 * 86400,
            "keys": [{**jwk, "status": "active"}], "status_lists": [{"id": 1, "uri": URI, "bits": 2}]}


def _status_claims(iat: int) -> dict[str, Any]:
    lst = base64.urlsafe_b64encode(compress_status_bytes(build_status_bytes(4096, []))).rstrip(b"=").decode()
    return {"sub": URI, "iat": iat, "exp": iat + 7200, "ttl": 3600, "status_list": {"bits": 2, "lst": lst}}


def _event_claims(iat: int) -> dict[str, Any]:
    # Only the outer token's times vary: the event and the nested trust bundle and status list are of NOW.
    return {
        "iss": ISSUER, "iat": iat, "exp": iat + 2 * 86400,
        "event": {"id": 1, "title": "Hội nghị", "venue": "", "starts_at": NOW.isoformat(),
                  "ends_at": (NOW + timedelta(hours=3)).isoformat(),
                  "checkin_opens_at": (NOW - timedelta(hours=1)).isoformat(),
                  "checkin_closes_at": (NOW + timedelta(hours=3)).isoformat(), "eligibility": "subtree",
                  "mode": "entry", "allow_reentry": False, "status": "open"},
        "trust_bundle": sign_jwt(TRUST, _trust_claims(STAMP), typ=TRUST_BUNDLE_TYP),
        "status_lists": {"1": status_list_jwt(TRUST, uri=URI, compressed=compress_status_bytes(bytes(1024)),
                                              issued_at=NOW, ttl_seconds=3600)},
        "roster": [], "checkins": [],
    }


@dataclass(frozen=True)
class Kind:
    name: str
    typ: str
    claims: Callable[[int], dict[str, Any]]
    verify: Callable[[str, datetime], object]


KINDS = [
    Kind("trust_bundle", TRUST_BUNDLE_TYP, _trust_claims, lambda token, now: verify_trust_bundle(token, ANCHOR,
                                                                                                 now=now)),
    Kind("status_list", STATUS_LIST_TYP, _status_claims, lambda token, now: verify_status_list(
        token, algorithm=ANCHOR.algorithm, key=ANCHOR.key, kid=ANCHOR.kid, uri=URI, now=now)),
    Kind("event_bundle", EVENT_BUNDLE_TYP, _event_claims, lambda token, now: verify_event_bundle(token, ANCHOR,
                                                                                                 now)),
]


@pytest.fixture(params=KINDS, ids=lambda kind: kind.name)
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param  # type: ignore[no-any-return]


def test_a_good_token_verifies(kind: Kind) -> None:
    kind.verify(sign_jwt(TRUST, kind.claims(STAMP), typ=kind.typ), NOW)


def test_issued_in_the_future_beyond_the_clock_skew_is_refused(kind: Kind) -> None:
    """A clock ten minutes behind is tolerated, one second more is not — for the event bundle too."""
    kind.verify(sign_jwt(TRUST, kind.claims(STAMP + 600), typ=kind.typ), NOW)
    with pytest.raises(TrustError, match="issued in the future"):
        kind.verify(sign_jwt(TRUST, kind.claims(STAMP + 601), typ=kind.typ), NOW)


def test_expired_is_refused(kind: Kind) -> None:
    with pytest.raises(TrustError, match="expired"):
        kind.verify(sign_jwt(TRUST, kind.claims(STAMP - 8 * 86400), typ=kind.typ), NOW)


def test_another_type_or_signer_is_refused(kind: Kind) -> None:
    other = LocalSigner(TRUST.kid, ALG_EDDSA, generate_private_key("ed25519"))
    with pytest.raises(TrustError, match="wrong type"):
        kind.verify(sign_jwt(TRUST, kind.claims(STAMP), typ="JWT"), NOW)
    with pytest.raises(TrustError, match="does not verify"):
        kind.verify(sign_jwt(other, kind.claims(STAMP), typ=kind.typ), NOW)


def test_non_integer_times_are_refused(kind: Kind) -> None:
    with pytest.raises(TrustError, match="non-integer"):
        kind.verify(sign_jwt(TRUST, {**kind.claims(STAMP), "iat": True}, typ=kind.typ), NOW)
