"""Live codes: a card credential bound to the holder's phone, with a fresh proof (docs/card-format.md §8).

A live code is what the member's phone shows after she activated her card on it: the holder-bound credential (the
card's claims plus ``cnf``, the phone's public key as a COSE_Key, RFC 8747, signed by the card key) and a proof,
signed by the phone's non-extractable key, over the card id and the current time step::

    [ time_step: uint, proof: bstr(64), credential: 18([...]) ]      deterministic CBOR, QR text "8402" digits(...)

A screenshot of a live code stops passing once its time step is out of the window; a copy of the credential alone
has no proof. Verifying needs nothing but the card keys of the trust bundle: the phone's key travels inside the
signed credential, so no door holds a secret. This module parses and checks the live-code layer; :func:`verify`
in :mod:`verification.verify` runs the whole decision. Every failure is a :class:`CredentialError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from verification.crypto import P256_HALF_ORDER
from verification.errors import CredentialError
from verification.format import (
    ALG_EDDSA,
    ALG_ES256,
    MAX_QR_TEXT,
    SIGNATURE_LENGTH,
    ParsedCredential,
    bytes_to_digits,
    clean_scanned_text,
    digits_after,
    parse_bound_parts,
)

LIVE_QR_PREFIX: Final = "8402"
# A live code changes every LIVE_STEP_SECONDS; a verifier accepts the steps from LIVE_STEPS_BEHIND before its own
# to LIVE_STEPS_AHEAD after it (docs/card-format.md §8.4): a capture is refused at most 90 seconds after it was shown.
LIVE_STEP_SECONDS: Final = 30
LIVE_STEPS_BEHIND: Final = 2
LIVE_STEPS_AHEAD: Final = 1
# A bound credential is at most MAX_CREDENTIAL_BYTES; the time step and the proof add at most 5 + 66.
MAX_LIVE_CODE_BYTES: Final = 583
TIME_STEP_LIMIT: Final = 2**32
PROOF_CONTEXT: Final = b"LiveProof1"
# The reasons only live codes give (a bound credential outside a live code is holder_proof_invalid too).
LIVE_REASONS: Final = ("holder_proof_invalid", "stale_live_code")
# COSE_Key (RFC 9052 §7, RFC 9053 §7): labels and the two key types a holder key may have.
CNF_COSE_KEY: Final = 1
KTY, CRV, X, Y = 1, -1, -2, -3
KTY_OKP, KTY_EC2 = 1, 2
CRV_ED25519, CRV_P256 = 6, 1
HolderPublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class HolderKey:
    """The phone's public key from a bound credential's ``cnf``, and the one algorithm its key type allows.

    Attributes:
        algorithm: ``ALG_EDDSA`` for OKP/Ed25519, ``ALG_ES256`` for EC2/P-256.
        public: The raw public key: Ed25519's 32 bytes, or P-256's x ‖ y (64 bytes).
    """

    algorithm: int
    public: bytes


@dataclass(frozen=True)
class ParsedLiveCode:
    """A structurally valid live code; neither signature has been checked yet."""

    raw: bytes
    time_step: int
    proof: bytes
    credential: ParsedCredential
    holder: HolderKey


def cose_key(algorithm: int, public: bytes) -> dict[int, Any]:
    """The COSE_Key of a holder's public key, as ``cnf`` carries it.

    Args:
        algorithm: ``ALG_EDDSA`` (Ed25519, 32 raw bytes) or ``ALG_ES256`` (P-256, x ‖ y, 64 bytes).
        public: The raw public key.

    Returns:
        ``{1: 1, -1: 6, -2: x}`` or ``{1: 2, -1: 1, -2: x, -3: y}``.

    Raises:
        ValueError: Another algorithm or a key of the wrong length.
    """
    if algorithm == ALG_EDDSA and len(public) == 32:
        return {KTY: KTY_OKP, CRV: CRV_ED25519, X: public}
    if algorithm == ALG_ES256 and len(public) == 64:
        return {KTY: KTY_EC2, CRV: CRV_P256, X: public[:32], Y: public[32:]}
    raise ValueError("a holder key is an Ed25519 key (32 bytes) or a P-256 key (x and y, 64 bytes)")


def holder_key(cnf: Any) -> HolderKey:
    """Check a ``cnf`` claim (docs/card-format.md §8.1) and return the key it confirms.

    Raises:
        CredentialError: ``malformed`` unless it is ``{1: COSE_Key}`` with exactly the parameters of §8.1.
    """
    # type() first: the maps a decoder gives are dicts, and an ABC isinstance costs a microsecond on every scan.
    key = cnf.get(CNF_COSE_KEY) if (type(cnf) is dict or isinstance(cnf, Mapping)) and len(cnf) == 1 else None
    if not (type(key) is dict or isinstance(key, Mapping)) or not all(type(label) is int for label in key):
        raise CredentialError("malformed", "cnf must hold exactly one COSE_Key")
    kty, crv, x, y = key.get(KTY), key.get(CRV), key.get(X), key.get(Y)
    okp = type(kty) is int and kty == KTY_OKP and type(crv) is int and crv == CRV_ED25519 and len(key) == 3
    ec2 = type(kty) is int and kty == KTY_EC2 and type(crv) is int and crv == CRV_P256 and len(key) == 4
    if okp and type(x) is bytes and len(x) == 32:
        return HolderKey(ALG_EDDSA, x)
    if ec2 and type(x) is bytes and type(y) is bytes and len(x) == len(y) == 32:
        return HolderKey(ALG_ES256, x + y)
    raise CredentialError("malformed", "the holder key must be an OKP/Ed25519 or EC2/P-256 COSE_Key")


def is_live_text(text: str) -> bool:
    """Whether scanned text names a live code (its digits start with ``8402``), framing or not."""
    if text.startswith(LIVE_QR_PREFIX):
        return True
    if text[:1].isdigit() or len(text) > MAX_QR_TEXT:
        return False
    try:
        return clean_scanned_text(text).startswith(LIVE_QR_PREFIX)
    except CredentialError:
        return False


def live_code_from_text(text: str) -> bytes:
    """The live-code bytes of a scanned text whose digits start with ``8402`` (docs/card-format.md §2, §8.2).

    Raises:
        CredentialError: ``malformed`` for text outside the grammar of §2 or digits that are no bytes.
    """
    if len(text) > MAX_QR_TEXT:
        raise CredentialError("malformed", "scanned text too long")
    encoded = text.encode() if text.isascii() else b""
    if not encoded.isdigit():
        encoded = clean_scanned_text(text).encode()
    if not encoded.startswith(b"8402"):
        raise CredentialError("malformed", "not a live code")
    return digits_after(encoded, len(LIVE_QR_PREFIX))


def to_live_qr_text(live_code: bytes) -> str:
    """The digits-only QR text of live-code bytes."""
    return LIVE_QR_PREFIX + bytes_to_digits(live_code)


def _uint(value: int) -> bytes:
    """A CBOR unsigned integer below 2**32 in its shortest form."""
    if value < 24:
        return bytes((value,))
    if value < 0x100:
        return bytes((0x18, value))
    if value < 0x10000:
        return b"\x19" + value.to_bytes(2, "big")
    return b"\x1a" + value.to_bytes(4, "big")


def assemble_live_code(time_step: int, proof: bytes, credential: bytes) -> bytes:
    """``[time_step, proof, credential]`` in deterministic CBOR (the credential is a tagged COSE_Sign1 item)."""
    if not 0 <= time_step < TIME_STEP_LIMIT or len(proof) != SIGNATURE_LENGTH:
        raise ValueError("a time step is a 32-bit unsigned integer and a proof 64 bytes")
    return b"\x83" + _uint(time_step) + b"\x58\x40" + proof + credential


def proof_input(card_id: bytes, time_step: int, challenge: bytes = b"") -> bytes:
    """What the phone signs: ``["LiveProof1", card_id, time_step, challenge]`` in deterministic CBOR (§8.3).

    ``challenge`` is empty unless a station shows one (this version's stations do not).
    """
    if len(challenge) > 23:
        raise ValueError("a challenge is at most 23 bytes")
    return (b"\x84\x4a" + PROOF_CONTEXT + bytes((0x40 | len(card_id),)) + card_id + _uint(time_step)
            + bytes((0x40 | len(challenge),)) + challenge)


# The head of the time step and the bytes it takes: shortest forms only (a longer head for a small value, or a value
# of 2**32 or more, is malformed).
_STEP_HEADS: Final = {0x18: (1, 24), 0x19: (2, 0x100), 0x1A: (4, 0x10000)}


def parse_live_code(raw: bytes) -> ParsedLiveCode:
    """Check the structure of live-code bytes (docs/card-format.md §8.2); no signature is checked here.

    Raises:
        CredentialError: ``malformed`` (or ``unsupported_version`` for a credential's unknown claims version).
    """
    if type(raw) is not bytes or not 0 < len(raw) <= MAX_LIVE_CODE_BYTES or raw[0] != 0x83 or len(raw) < 2:
        raise CredentialError("malformed", "a live code is a CBOR array of three items")
    head = raw[1]
    if head < 0x18:
        time_step, at = head, 2
    elif head in _STEP_HEADS:
        size, least = _STEP_HEADS[head]
        time_step, at = int.from_bytes(raw[2:2 + size], "big"), 2 + size
        if time_step < least or len(raw) < at:
            raise CredentialError("malformed", "time step not in its shortest form")
    else:
        raise CredentialError("malformed", "time step must be an unsigned integer below 2**32")
    if raw[at:at + 2] != b"\x58\x40" or len(raw) < at + 2 + SIGNATURE_LENGTH:
        raise CredentialError("malformed", "proof must be 64 raw bytes")
    proof = raw[at + 2:at + 2 + SIGNATURE_LENGTH]
    credential, cnf, key = parse_bound_parts(raw[at + 2 + SIGNATURE_LENGTH:])
    if key is None:
        holder = holder_key(cnf)
    else:
        holder = object.__new__(HolderKey)
        holder.__dict__.update(algorithm=key[0], public=key[1])
    live = object.__new__(ParsedLiveCode)
    # What ParsedLiveCode(...) and HolderKey(...) build, filled in directly: a frozen dataclass's __init__ pays a
    # call per field.
    live.__dict__.update(raw=raw, time_step=time_step, proof=proof, credential=credential, holder=holder)
    return live


def _load_holder_key(holder: HolderKey) -> HolderPublicKey:
    if holder.algorithm == ALG_EDDSA:
        return Ed25519PublicKey.from_public_bytes(holder.public)
    return ec.EllipticCurvePublicNumbers(int.from_bytes(holder.public[:32], "big"),
                                         int.from_bytes(holder.public[32:], "big"), ec.SECP256R1()).public_key()


def verify_holder_proof(live: ParsedLiveCode, challenge: bytes = b"") -> None:
    """Check the phone's proof with the key of the (already verified) bound credential (§8.4, step 4).

    Raises:
        CredentialError: ``holder_proof_invalid``: the key is no point of its curve, an ES256 proof is not low-S, or
            the signature does not verify over :func:`proof_input`.
    """
    data = proof_input(live.credential.claims.card_id, live.time_step, challenge)
    holder = live.holder
    try:
        if holder.algorithm == ALG_EDDSA:
            # _load_holder_key's Ed25519 branch, written out: this is every scan of an Ed25519 phone.
            Ed25519PublicKey.from_public_bytes(holder.public).verify(live.proof, data)
            return
        key = _load_holder_key(holder)
        if isinstance(key, Ed25519PublicKey):  # not reached: _load_holder_key gives P-256 keys here
            key.verify(live.proof, data)
            return
        r, s = int.from_bytes(live.proof[:32], "big"), int.from_bytes(live.proof[32:], "big")
        if s > P256_HALF_ORDER:
            raise CredentialError("holder_proof_invalid", "ES256 proof is not in low-S form")
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError) as exc:
        raise CredentialError("holder_proof_invalid", "the holder's proof does not verify") from exc


def time_step_at(instant: float) -> int:
    """The time step of a moment (seconds since the epoch): ``floor(instant / 30)``."""
    return int(instant // LIVE_STEP_SECONDS)


def is_fresh(time_step: int, instant: float) -> bool:
    """Whether a live code's time step lies in the window a verifier at ``instant`` accepts (§8.4, step 5)."""
    now = time_step_at(instant)
    return now - LIVE_STEPS_BEHIND <= time_step <= now + LIVE_STEPS_AHEAD
