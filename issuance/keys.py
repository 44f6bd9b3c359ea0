"""Signing keys: generation, encryption at rest (PKCS#8 under a key-encryption key) and raw-signature signers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from verification.format import ALG_EDDSA, ALG_ES256, KID_LENGTH

PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey
AlgorithmName = Literal["ed25519", "es256"]
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ALGORITHMS: dict[AlgorithmName, int] = {"ed25519": ALG_EDDSA, "es256": ALG_ES256}


class Signer(Protocol):
    """Signs bytes with one key under one algorithm, returning a raw 64-byte signature (never DER)."""

    @property
    def kid(self) -> bytes: ...

    @property
    def algorithm(self) -> int: ...

    def sign(self, data: bytes) -> bytes: ...


def generate_private_key(algorithm: AlgorithmName) -> PrivateKey:
    if algorithm == "ed25519":
        return Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def new_kid() -> bytes:
    return os.urandom(KID_LENGTH)


def encrypt_private_key(key: PrivateKey, kek: bytes) -> bytes:
    """PKCS#8 PEM encrypted under the key-encryption key (the library's best available scheme)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(kek),
    )


def decrypt_private_key(blob: bytes, kek: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(blob, password=kek)
    if isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        return key
    raise ValueError("unsupported private key type")


def public_spki(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def algorithm_of(key: PrivateKey) -> int:
    return ALG_EDDSA if isinstance(key, Ed25519PrivateKey) else ALG_ES256


@dataclass(frozen=True)
class LocalSigner:
    """A signer over a private key held in memory (decrypted from the database for the process's lifetime)."""

    kid: bytes
    algorithm: int
    private_key: PrivateKey

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private_key, Ed25519PrivateKey):
            return self.private_key.sign(data)
        der = self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        # (r, n - s) verifies too; always emitting the low-s form gives each card exactly one valid byte string.
        if s > _P256_ORDER // 2:
            s = _P256_ORDER - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
