"""Reading signed status lists (IETF OAuth Token Status List, 2 bits per card)."""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from verification.crypto import PublicKey
from verification.errors import TrustError
from verification.trust import TrustAnchor, decode_anchor_jwt

BITS: Final = 2
STATUS_VALID: Final = 0
STATUS_REVOKED: Final = 1
STATUS_SUSPENDED: Final = 2
STATUS_SUPERSEDED: Final = 3  # the standard's "application specific" value: replaced by a newer card
STATUS_LIST_TYP: Final = "statuslist+jwt"
MAX_TOKEN_CHARS: Final = 8_000_000
MAX_LIST_BYTES: Final = 2**24 * BITS // 8  # the largest list the service creates
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*")


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


def _inflate(lst: str) -> bytes:
    """The list bytes of ``lst``: unpadded base64url of one complete zlib stream, inflated to at most the cap."""
    if _BASE64URL.fullmatch(lst) is None or len(lst) % 4 == 1:
        raise TrustError("status list content is not base64url")
    try:
        inflater = zlib.decompressobj()
        # One byte past the cap tells "too large" from "exactly the cap" without inflating the rest of a zip bomb.
        data = inflater.decompress(base64.urlsafe_b64decode(lst + "=" * (-len(lst) % 4)), MAX_LIST_BYTES + 1)
    except (binascii.Error, zlib.error) as exc:
        raise TrustError("status list content is corrupt") from exc
    if len(data) > MAX_LIST_BYTES:
        raise TrustError("status list is larger than allowed")
    if not inflater.eof or inflater.unused_data:
        raise TrustError("status list content is corrupt: the zlib stream is truncated or followed by other data")
    return data


def verify_status_list(token: str, *, algorithm: int, key: PublicKey, kid: bytes, uri: str, now: datetime
                       ) -> StatusListView:
    """Verify a status-list JWT signed by the trust key and decompress it with a hard size cap.

    The checks of docs/card-format.md §6.4: the anchor's signature (before anything is decompressed, so a forged list
    cannot be a zip bomb), ``sub`` equal to the list's URI, integer ``iat``, ``exp`` and ``ttl`` with ``ttl`` ≥ 1 and
    ``exp = iat + 2·ttl``, the clock, then ``bits`` = 2 and a complete zlib stream of at most
    :data:`MAX_LIST_BYTES`.

    Raises:
        TrustError: bad signature, wrong key id, wrong list, expired, or malformed content.
    """
    claims, issued_at, expires_at = decode_anchor_jwt(
        token, TrustAnchor(kid, algorithm, key), typ=STATUS_LIST_TYP, max_chars=MAX_TOKEN_CHARS,
        require=["sub", "ttl", "status_list"], now=now, what="status list", subject=uri)
    ttl = claims["ttl"]
    if type(ttl) is not int or ttl < 1 or expires_at != issued_at + 2 * ttl:
        raise TrustError("status list ttl must be a positive integer with exp = iat + 2 * ttl")
    body = claims["status_list"]
    if not isinstance(body, dict) or type(body.get("bits")) is not int or body["bits"] != BITS \
            or not isinstance(body.get("lst"), str):
        raise TrustError("status list has an unsupported layout")
    return StatusListView(uri=uri, data=_inflate(body["lst"]), issued_at=issued_at, expires_at=expires_at, ttl=ttl)
