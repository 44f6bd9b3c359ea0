"""Holder binding: the card credential bound to a phone's key, and the live code the phone shows (docs/card-format.md
§8; verification: :mod:`verification.live`).

The server signs :func:`sign_bound_credential` once per activation; the phone (``cardsvc/web/member/static/live.js``)
then makes a live code every time step without the server. :func:`live_code` is the same computation in Python: the
reference the test vectors, the browser tests and the bench are built with.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from issuance.keys import LocalSigner, PrivateKey, Signer, algorithm_of
from verification.format import CardClaims, assemble, encode_claims, protected_header, sig_structure
from verification.live import (
    CNF_COSE_KEY,
    HolderKey,
    assemble_live_code,
    cose_key,
    proof_input,
    to_live_qr_text,
)


def sign_bound_credential(claims: CardClaims, holder: HolderKey, signer: Signer) -> bytes:
    """The holder-bound credential: ``claims`` (with the binding's own status slot) plus ``cnf``, signed by the
    card key.

    Args:
        claims: The card's claims, with ``status_list``/``status_index`` of the binding's slot.
        holder: The phone's public key.
        signer: The active card key.

    Returns:
        The tagged COSE_Sign1 bytes.
    """
    protected = protected_header(signer.algorithm, signer.kid)
    payload = encode_claims(claims, {CNF_COSE_KEY: cose_key(holder.algorithm, holder.public)})
    signature = signer.sign(sig_structure(protected, payload))
    if len(signature) != 64:
        raise ValueError("signers must return raw 64-byte signatures")
    return assemble(protected, payload, signature)


def holder_key_of(private_key: PrivateKey) -> HolderKey:
    """The :class:`HolderKey` of a private key (Ed25519, or P-256 as x ‖ y)."""
    public = private_key.public_key()
    if isinstance(public, Ed25519PublicKey):
        return HolderKey(algorithm_of(private_key), public.public_bytes(serialization.Encoding.Raw,
                                                                          serialization.PublicFormat.Raw))
    numbers = public.public_numbers()
    return HolderKey(algorithm_of(private_key), numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big"))


def live_code(credential: bytes, card_id: bytes, time_step: int, device_key: PrivateKey) -> bytes:
    """What the phone shows in one time step: ``[time_step, proof, credential]`` (docs/card-format.md §8.2).

    Args:
        credential: The bound credential the phone holds.
        card_id: Its card id (the claims' ``cti``).
        time_step: ``floor(now / 30)`` on the server's clock.
        device_key: The phone's private key (an ES256 proof is normalised to low S, as the phone does).

    Returns:
        The live-code bytes.
    """
    # The kid of a holder key is never used: only its algorithm and the raw signature matter here.
    device = LocalSigner(b"\x00\x00", algorithm_of(device_key), device_key)
    proof = device.sign(proof_input(card_id, time_step))
    return assemble_live_code(time_step, proof, credential)


def live_qr_text(credential: bytes, card_id: bytes, time_step: int, device_key: PrivateKey) -> str:
    """:func:`live_code` as the digits of its QR text (``8402…``)."""
    return to_live_qr_text(live_code(credential, card_id, time_step, device_key))

