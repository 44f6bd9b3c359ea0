"""Compact JWS signing through a :class:`issuance.keys.Signer` (raw signatures are exactly what JWS wants)."""

from __future__ import annotations

import base64
import json
from typing import Any

from issuance.keys import Signer
from verification.format import ALGORITHM_NAMES


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(signer: Signer, payload: dict[str, Any], *, typ: str) -> str:
    """A compact JWS with ``alg`` and ``kid`` set from the signer (EdDSA or ES256, raw 64-byte signature)."""
    header = {"alg": ALGORITHM_NAMES[signer.algorithm], "kid": signer.kid.hex(), "typ": typ}
    signing_input = (
        _b64(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    )
    return signing_input + "." + _b64(signer.sign(signing_input.encode()))
