"""Reading signed status lists (IETF OAuth Token Status List, 2 bits per card)."""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import jwt

from verification.crypto import PublicKey
from verification.errors import TrustError
from verification.format import ALGORITHM_NAMES

BITS: Final = 2
STATUS_VALID: Final = 0
STATUS_REVOKED: Final = 1
STATUS_SUSPENDED: Final = 2
STATUS_SUPERSEDED: Final = 3  # the standard's "application specific" value: replaced by a newer card
STATUS_LIST_TYP: Final = "statuslist+jwt"
MAX_TOKEN_CHARS: Final = 8_000_000
CLOCK_LEEWAY_SECONDS: Final = 600
MAX_LIST_BYTES: Final = 2**24 * BITS // 8  # the largest list the service creates


@dataclass(frozen=True)
class StatusListView:
    """A verified, decompressed status list."""

    uri: str
    data: bytes
    issued_at: int
    expires_at: int
    ttl: int

    @property
    def size(self) -> int:
        return len(self.data) * 8 // BITS

    def status(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise IndexError("status index outside the list")
        return (self.data[index // 4] >> (2 * (index % 4))) & 0b11


def verify_status_list(token: str, *, algorithm: int, key: PublicKey, kid: bytes, uri: str, now: datetime
                       ) -> StatusListView:
    """Verify a status-list JWT signed by the trust key and decompress it with a hard size cap.

    The signature is checked before anything is decompressed, so a forged list cannot be a zip bomb.

    Raises:
        TrustError: bad signature, wrong key id, wrong list, expired, or malformed content.
    """
    if len(token) > MAX_TOKEN_CHARS:
        raise TrustError("status list token too large")
    try:
        header = jwt.get_unverified_header(token)
        if header.get("kid") != kid.hex() or header.get("typ") != STATUS_LIST_TYP:
            raise TrustError("status list signed by an unexpected key or of the wrong type")
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[ALGORITHM_NAMES[algorithm]], subject=uri,
            options={"require": ["sub", "iat", "exp", "status_list"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise TrustError(f"status list does not verify: {exc}") from exc
    if int(claims["iat"]) > now.timestamp() + CLOCK_LEEWAY_SECONDS:
        raise TrustError("status list is issued in the future; check this station's clock")
    if int(claims["exp"]) < now.timestamp():
        raise TrustError("status list has expired")
    body = claims["status_list"]
    if not isinstance(body, dict) or body.get("bits") != BITS or not isinstance(body.get("lst"), str):
        raise TrustError("status list has an unsupported layout")
    try:
        compressed = base64.urlsafe_b64decode(body["lst"] + "=" * (-len(body["lst"]) % 4))
        inflater = zlib.decompressobj()
        data = inflater.decompress(compressed, MAX_LIST_BYTES)
        if inflater.unconsumed_tail:
            raise TrustError("status list is larger than allowed")
    except (ValueError, zlib.error) as exc:
        raise TrustError("status list content is corrupt") from exc
    return StatusListView(uri=uri, data=data, issued_at=int(claims["iat"]), expires_at=int(claims["exp"]),
                          ttl=int(claims.get("ttl", 0)))
