"""The trust bundle: the issuer's card keys and status-list locations, signed by the issuer's trust key.

A door station pins the trust key (received at provisioning, or from ``/.well-known/cardsvc-trust-anchor.json``)
and accepts a downloaded bundle only after verifying it with that key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import jwt

from verification.crypto import PublicKey, key_from_jwk
from verification.errors import TrustError
from verification.format import ALGORITHM_NAMES, CLOCK_SKEW_SECONDS

TRUST_BUNDLE_TYP: Final = "cardsvc-trust+jwt"
MAX_TRUST_BUNDLE_CHARS: Final = 1_000_000
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


def decode_anchor_jwt(token: str, anchor: TrustAnchor, *, typ: str, max_chars: int, require: Sequence[str],
                      now: datetime, what: str, subject: str | None = None) -> tuple[dict[str, Any], int, int]:
    """The claims of a compact JWT signed by the pinned trust key (docs/card-format.md §6.4): the one check of the
    trust bundle, the status lists and the event bundle, which pass only what differs.

    Checks, in this order: the size; the header's ``kid`` and ``typ``; the signature with the anchor's own algorithm
    (never the token's choice); the required claims; ``sub`` when ``subject`` is given; ``iat`` and ``exp`` integers
    with ``iat`` no later than ``now`` plus the clock skew and ``exp`` not before ``now``.

    Args:
        token: The compact JWS.
        anchor: The pinned trust key.
        typ: The ``typ`` the header must carry.
        max_chars: The largest token accepted.
        require: Claims that must be present (besides ``iat`` and ``exp``).
        now: The verifier's clock.
        what: What the token is, for messages.
        subject: The ``sub`` the token must carry, if any.

    Returns:
        The claims, ``iat`` and ``exp``.

    Raises:
        TrustError: Any failed check.
    """
    if len(token) > max_chars:
        raise TrustError(f"{what} too large")
    try:
        header = jwt.get_unverified_header(token)
        if header.get("kid") != anchor.kid.hex() or header.get("typ") != typ:
            raise TrustError(f"{what} is not signed by the pinned trust key or is of the wrong type")
        claims: dict[str, Any] = jwt.decode(
            token, anchor.key, algorithms=[ALGORITHM_NAMES[anchor.algorithm]], subject=subject,
            options={"require": ["iat", "exp", *require], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise TrustError(f"{what} does not verify: {exc}") from exc
    issued_at, expires_at = claims["iat"], claims["exp"]
    # type() rather than isinstance: bool is an int in Python, and JSON true must not pass as 1.
    if type(issued_at) is not int or type(expires_at) is not int:
        raise TrustError(f"{what} has a non-integer iat or exp")
    # Times are checked against the injected clock (the station's), with room for a clock a little behind.
    if issued_at > now.timestamp() + CLOCK_SKEW_SECONDS:
        raise TrustError(f"{what} is issued in the future; check this station's clock")
    if expires_at < now.timestamp():
        raise TrustError(f"{what} has expired; download a fresh one")
    return claims, issued_at, expires_at


def verify_trust_bundle(token: str, anchor: TrustAnchor, *, now: datetime) -> TrustBundle:
    """Verify a trust-bundle JWT with the pinned anchor and return its contents.

    Raises:
        TrustError: wrong signer, bad signature, expired, or malformed content.
    """
    claims, issued_at, expires_at = decode_anchor_jwt(
        token, anchor, typ=TRUST_BUNDLE_TYP, max_chars=MAX_TRUST_BUNDLE_CHARS, require=["iss", "keys", "status_lists"],
        now=now, what="trust bundle")
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
        issuer=str(claims["iss"]), issuer_name=str(claims.get("issuer_name", "")), issued_at=issued_at,
        expires_at=expires_at, keys=keys, status_lists=lists, anchor=anchor, token=token,
    )
