"""Signature verification and public-key handling for credentials (no private keys here)."""

from __future__ import annotations

import base64
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from verification.errors import CredentialError
from verification.format import ALG_EDDSA, ALG_ES256, ALGORITHM_NAMES, ParsedCredential

PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey
# The order n of P-256. An ECDSA signature (r, s) also verifies as (r, n - s); verifiers accept only the low-S form
# s ≤ (n - 1) / 2, which the issuer always emits, so that a card has exactly one valid byte string.
P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_HALF_ORDER: Final = P256_ORDER // 2


def load_public_key(algorithm: int, spki_der: bytes) -> PublicKey:
    """Load a SubjectPublicKeyInfo and check that it is a key of the bound algorithm."""
    key = serialization.load_der_public_key(spki_der)
    if algorithm == ALG_EDDSA and isinstance(key, Ed25519PublicKey):
        return key
    if algorithm == ALG_ES256 and isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise ValueError(f"key does not match algorithm {ALGORITHM_NAMES.get(algorithm, algorithm)}")


def verify_signature(parsed: ParsedCredential, bound_algorithm: int, key: PublicKey) -> None:
    """Verify the COSE signature with the key bound to the credential's key id.

    The credential's own ``alg`` header must equal the algorithm bound to that key id; it never selects one. An ES256
    signature must be in low-S form (docs/card-format.md §6.1, step 3).

    Raises:
        CredentialError: ``bad_signature`` for any mismatch, a high-S ES256 signature or an invalid signature.
    """
    if parsed.algorithm != bound_algorithm:
        raise CredentialError("bad_signature", "algorithm differs from the one bound to the key id")
    data = parsed.signed_bytes()
    try:
        if bound_algorithm == ALG_EDDSA and isinstance(key, Ed25519PublicKey):
            key.verify(parsed.signature, data)
            return
        if bound_algorithm == ALG_ES256 and isinstance(key, ec.EllipticCurvePublicKey):
            r = int.from_bytes(parsed.signature[:32], "big")
            s = int.from_bytes(parsed.signature[32:], "big")
            if s > P256_HALF_ORDER:
                raise CredentialError("bad_signature", "ES256 signature is not in low-S form")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
            return
    except InvalidSignature as exc:
        raise CredentialError("bad_signature", "signature does not verify") from exc
    raise CredentialError("bad_signature", "key type does not match the algorithm")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_jwk(kid: bytes, algorithm: int, key: PublicKey) -> dict[str, Any]:
    """The JWK (RFC 8037 OKP / RFC 7518 EC) of a card-verification key, with ``kid`` as hex."""
    common = {"kid": kid.hex(), "alg": ALGORITHM_NAMES[algorithm], "use": "sig"}
    if isinstance(key, Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw), **common}
    numbers = key.public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big")), **common}


def key_from_jwk(jwk: dict[str, Any]) -> tuple[bytes, int, PublicKey]:
    """Parse a JWK produced by :func:`public_jwk` into (kid, algorithm, key); refuses anything else."""
    algorithms = {name: number for number, name in ALGORITHM_NAMES.items()}
    algorithm = algorithms.get(str(jwk.get("alg")))
    kid = bytes.fromhex(str(jwk.get("kid", "")))
    if algorithm is None or len(kid) != 2:
        raise ValueError("unsupported JWK")
    if algorithm == ALG_EDDSA and jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
        return kid, algorithm, Ed25519PublicKey.from_public_bytes(_unb64(str(jwk["x"])))
    if algorithm == ALG_ES256 and jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
        numbers = ec.EllipticCurvePublicNumbers(int.from_bytes(_unb64(str(jwk["x"])), "big"),
                                                int.from_bytes(_unb64(str(jwk["y"])), "big"), ec.SECP256R1())
        return kid, algorithm, numbers.public_key()
    raise ValueError("JWK key type does not match its algorithm")
