"""Status lists (IETF OAuth Token Status List): 2 bits per card, zlib-compressed, signed as a JWT."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable
from datetime import datetime

from issuance.jws import sign_jwt
from issuance.keys import Signer
from verification.status import BITS, STATUS_LIST_TYP


def build_status_bytes(size: int, entries: Iterable[tuple[int, int]]) -> bytes:
    """The uncompressed list: entry ``i`` sits in byte ``i // 4`` at bit offset ``2 * (i % 4)`` (LSB first)."""
    data = bytearray((size * BITS + 7) // 8)
    for index, status in entries:
        if not 0 <= index < size or not 0 <= status < 4:
            raise ValueError("status entry out of range")
        data[index // 4] |= status << (2 * (index % 4))
    return bytes(data)


def compress_status_bytes(data: bytes) -> bytes:
    return zlib.compress(data, 9)


def status_list_jwt(signer: Signer, *, uri: str, compressed: bytes, issued_at: datetime, ttl_seconds: int) -> str:
    """The signed status-list token (``typ: statuslist+jwt``) that stations cache for ``ttl`` seconds."""
    iat = int(issued_at.timestamp())
    payload = {
        "sub": uri,
        "iat": iat,
        "exp": iat + 2 * ttl_seconds,
        "ttl": ttl_seconds,
        "status_list": {"bits": BITS, "lst": base64.urlsafe_b64encode(compressed).rstrip(b"=").decode()},
    }
    return sign_jwt(signer, payload, typ=STATUS_LIST_TYP)
