"""The trust bundle: the issuer's card keys and status-list locations, signed by the issuer's trust key.

A door station pins the trust key (received at provisioning, or from ``/.well-known/cardsvc-trust-anchor.json``)
and accepts a downloaded bundle only after verifying it with that key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import jwt

from verification.crypto import PublicKey, key_from_jwk
from verification.errors import TrustError
from verification.format import ALGORITHM_NAMES

TRUST_BUNDLE_TYP: Final = "cardsvc-trust+jwt"
CLOCK_LEEWAY_SECONDS: Final = 600
KeyStatus = Literal["active", "retired", "compromised"]


@dataclass(frozen=True)
class TrustedKey:
    kid: bytes
    algorithm: int
    key: PublicKey
    status: KeyStatus


@dataclass(frozen=True)
class TrustAnchor:
    """The pinned key that signs trust bundles and status lists."""

    kid: bytes
    algorithm: int
    key: PublicKey

    @classmethod
    def from_jwk(cls, jwk: dict[str, Any]) -> TrustAnchor:
        kid, algorithm, key = key_from_jwk(jwk)
        return cls(kid, algorithm, key)


@dataclass(frozen=True)
class TrustBundle:
    issuer: str
    issuer_name: str
    issued_at: int
    expires_at: int
    keys: dict[bytes, TrustedKey]
    status_lists: dict[int, str]
    anchor: TrustAnchor
    token: str


def verify_trust_bundle(token: str, anchor: TrustAnchor, *, now: datetime) -> TrustBundle:
    """Verify a trust-bundle JWT with the pinned anchor and return its contents.

    Raises:
        TrustError: wrong signer, bad signature, expired, or malformed content.
    """
    if len(token) > 1_000_000:
        raise TrustError("trust bundle too large")
    try:
        header = jwt.get_unverified_header(token)
        if header.get("kid") != anchor.kid.hex() or header.get("typ") != TRUST_BUNDLE_TYP:
            raise TrustError("trust bundle is not signed by the pinned trust key")
        claims: dict[str, Any] = jwt.decode(
            token, anchor.key, algorithms=[ALGORITHM_NAMES[anchor.algorithm]],
            options={"require": ["iss", "iat", "exp", "keys", "status_lists"], "verify_exp": False,
                     "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise TrustError(f"trust bundle does not verify: {exc}") from exc
    # Times are checked against the injected clock (the station's), with room for a clock a little behind.
    if int(claims["iat"]) > now.timestamp() + CLOCK_LEEWAY_SECONDS:
        raise TrustError("trust bundle is issued in the future; check this station's clock")
    if int(claims["exp"]) < now.timestamp():
        raise TrustError("trust bundle has expired; download a fresh one")
    keys: dict[bytes, TrustedKey] = {}
    try:
        for entry in claims["keys"]:
            kid, algorithm, key = key_from_jwk(entry)
            status = entry.get("status")
            if status not in ("active", "retired", "compromised") or kid in keys:
                raise TrustError("trust bundle key entry is invalid or duplicated")
            keys[kid] = TrustedKey(kid, algorithm, key, status)
        lists = {int(entry["id"]): str(entry["uri"]) for entry in claims["status_lists"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise TrustError("trust bundle content is malformed") from exc
    return TrustBundle(
        issuer=str(claims["iss"]), issuer_name=str(claims.get("issuer_name", "")), issued_at=int(claims["iat"]),
        expires_at=int(claims["exp"]), keys=keys, status_lists=lists, anchor=anchor, token=token,
    )
