"""Building and signing card credentials (format: :mod:`verification.format`, docs/card-format.md)."""

from __future__ import annotations

import os

from issuance.keys import Signer
from verification.format import (
    CARD_ID_LENGTH,
    CardClaims,
    assemble,
    encode_claims,
    protected_header,
    sig_structure,
    to_qr_text,
)


def new_card_id() -> bytes:
    """A random card id: never derived from personal data."""
    return os.urandom(CARD_ID_LENGTH)


def sign_credential(claims: CardClaims, signer: Signer) -> bytes:
    """Encode ``claims`` and sign them: the tagged COSE_Sign1 bytes, as written to NFC tags."""
    protected = protected_header(signer.algorithm, signer.kid)
    payload = encode_claims(claims)
    signature = signer.sign(sig_structure(protected, payload))
    if len(signature) != 64:
        raise ValueError("signers must return raw 64-byte signatures")
    return assemble(protected, payload, signature)


def credential_qr_text(credential: bytes) -> str:
    """The digits-only QR text of a credential."""
    return to_qr_text(credential)
