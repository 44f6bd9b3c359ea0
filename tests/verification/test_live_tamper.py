"""25,000 seeded mutations of valid live codes through :func:`verify`: zero accepted, zero crashes.

The bases are live codes of Ed25519 and P-256 phones under Ed25519, ES256 and retired card keys, all in their time
step. Mutations are those anyone can make to the bytes or the digits (flips, cuts, insertions, other time steps,
parts swapped between codes), those a thief with the bound credential but not the phone can make (her own proof, her
own key in a credential she cannot sign, the credential alone as a printed card) and structural ones re-signed with
the trusted card key or with an unknown one. Only a mutation that still carries exactly the original live code (a
text that cleans up to the same digits) may pass.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from issuance.binding import holder_key_of, live_code, sign_bound_credential
from issuance.keys import LocalSigner, PrivateKey
from tests.verification.test_verify import ED_KID, ES_KID, LIST_ID, NOW, RETIRED_KID, WORLD
from tests.verification.test_verify_fuzz import flip_bits, substitute_bytes
from verification.errors import CredentialError
from verification.format import (
    CardClaims,
    assemble,
    parse_bound_credential,
    protected_header,
    sig_structure,
    to_qr_text,
)
from verification.live import (
    assemble_live_code,
    live_code_from_text,
    parse_live_code,
    proof_input,
    time_step_at,
    to_live_qr_text,
)
from verification.verify import Verdict, verify

SEED = 20261216
TOTAL = 25_000
STEP = time_step_at(NOW.timestamp())
UNVERIFIED_REASONS = {"unsupported_version", "unknown_key", "bad_signature", "key_retired"}


@dataclass(frozen=True)
class Base:
    """A valid live code, its parts, and the keys that made it."""

    raw: bytes
    text: str
    credential: bytes
    card_id: bytes
    device: PrivateKey
    signer: LocalSigner


def _bases() -> list[Base]:
    specs = [(ED_KID, Ed25519PrivateKey.generate(), "Nguyễn Thị Phương Thảo Vy", 5),
             (ED_KID, ec.generate_private_key(ec.SECP256R1()), "Lê Ánh", 6),
             (ES_KID, Ed25519PrivateKey.generate(), "Phạm Thị Hồng Nhung", 7),
             (ES_KID, ec.generate_private_key(ec.SECP256R1()), "A", 8),
             (RETIRED_KID, Ed25519PrivateKey.generate(), "Võ Thị Sáu", 9)]
    bases = []
    for number, (kid, device, name, index) in enumerate(specs):
        card_id = bytes([0x40 + number]) * 8
        claims = CardClaims(card_id, "0000001867", name, "HNI-BADINH-01", 1, date(2026, 1, 1), date(2030, 12, 31),
                            LIST_ID, index)
        signer = WORLD.signers[kid]
        credential = sign_bound_credential(claims, holder_key_of(device), signer)
        raw = live_code(credential, card_id, STEP, device)
        bases.append(Base(raw, to_live_qr_text(raw), credential, card_id, device, signer))
    return bases


BASES = _bases()
THIEF = Ed25519PrivateKey.generate()
Rng = random.Random


def _parts(base: Base) -> tuple[int, bytes, bytes]:
    live = parse_live_code(base.raw)
    return live.time_step, live.proof, base.credential


# --- anyone, on the bytes ------------------------------------------------------------------------------------------

def bit_flip(rng: Rng, base: Base) -> bytes:
    return flip_bits(rng, base.raw)


def substitute(rng: Rng, base: Base) -> bytes:
    return substitute_bytes(rng, base.raw)


def cut(rng: Rng, base: Base) -> bytes:
    at = rng.randrange(len(base.raw))
    kind = rng.randrange(4)
    if kind == 0:
        return base.raw[:at]
    if kind == 1:
        return base.raw + rng.randbytes(rng.randint(1, 64))
    if kind == 2:
        return base.raw[:at] + rng.randbytes(rng.randint(1, 16)) + base.raw[at:]
    return base.raw[:at] + base.raw[at + rng.randint(1, 16):]


def other_step(rng: Rng, base: Base) -> bytes:
    """The proof kept, the time step moved (into the window or far out of it, in any encoding width)."""
    step, proof, credential = _parts(base)
    moved = rng.choice([step + rng.choice([-2, -1, 1]), step + rng.randint(3, 10**6), step - rng.randint(3, 10**6),
                        rng.randrange(24), rng.randrange(2**16), 2**32 - 1])
    return assemble_live_code(moved, proof, credential)


def old_capture(rng: Rng, base: Base) -> bytes:
    """A genuine code of another time step, as a screenshot taken earlier (or a code made ahead) is."""
    offset = rng.choice([rng.randint(3, 10**6), -rng.randint(2, 10**6)])
    return live_code(base.credential, base.card_id, STEP + offset, base.device)


def swap_parts(rng: Rng, base: Base) -> bytes:
    """A part of another phone's code: its proof, its credential, or its time step and proof."""
    other = rng.choice([b for b in BASES if b is not base])
    step, proof, credential = _parts(base)
    other_step_, other_proof, other_credential = _parts(other)
    kind = rng.randrange(3)
    if kind == 0:
        return assemble_live_code(step, other_proof, credential)
    if kind == 1:
        return assemble_live_code(step, proof, other_credential)
    return assemble_live_code(other_step_, other_proof, credential)


# --- a thief with the credential (from a screenshot or the phone's storage) but not the phone's key ---------------

def thief_proof(rng: Rng, base: Base) -> bytes:
    """Her own key signs a fresh proof for the stolen credential (any step, another card id, another context)."""
    step = STEP + rng.choice([0, 0, 1, -1])
    card_id = base.card_id if rng.random() < 0.8 else bytes(8)
    data = proof_input(card_id, step) if rng.random() < 0.8 else rng.randbytes(rng.randint(0, 64))
    proof = LocalSigner(b"\x00\x00", -8, THIEF).sign(data)
    return assemble_live_code(step, proof, base.credential)


def thief_key(rng: Rng, base: Base) -> bytes:
    """Her own key put in the stolen credential's cnf, with a valid proof by it: the card key's signature breaks, or
    she re-signs with a key of her own, unknown to the trust bundle."""
    thief_public = holder_key_of(THIEF).public
    parsed, cnf = parse_bound_credential(base.credential)
    key = cnf[1]
    swapped = parsed.payload.replace(bytes(key[-2]) + (bytes(key[-3]) if -3 in key else b""), thief_public, 1)
    if len(swapped) != len(parsed.payload):
        swapped = parsed.payload[:-10] + rng.randbytes(10)
    if rng.random() < 0.5:
        credential = assemble(parsed.protected, swapped, parsed.signature)
    else:
        protected = protected_header(WORLD.untrusted.algorithm, WORLD.untrusted.kid)
        credential = assemble(protected, swapped, WORLD.untrusted.sign(sig_structure(protected, swapped)))
    return live_code(credential, base.card_id, STEP, THIEF)


def printed_copy(rng: Rng, base: Base) -> bytes:
    """The bound credential alone, as the bytes of a printed card or an NFC tag."""
    return base.credential if rng.random() < 0.5 else base.credential[:rng.randrange(len(base.credential))]


# --- a signer's structural variants (the credential re-signed) -----------------------------------------------------

def resigned_cnf(rng: Rng, base: Base) -> bytes:
    """The bound claims with another ``cnf`` (or none), signed by the trusted card key or an unknown one; the proof
    by the phone's key."""
    parsed, cnf = parse_bound_credential(base.credential)
    body = dict(cbor2.loads(parsed.payload))
    key = dict(cnf[1])
    kind = rng.randrange(8)
    if kind == 0:
        del body[8]
    elif kind == 1:
        key[3] = rng.choice([-8, -7, -35])
    elif kind == 2:
        # Another curve than the key's own (the same one would be what the issuer signed anyway).
        key[-1] = rng.choice([crv for crv in (1, 2, 4, 5, 6, 7, "Ed25519") if crv != key[-1]])
    elif kind == 3:
        key[-2] = key[-2][:-1]
    elif kind == 4:
        key[1] = rng.choice([3, 4, "OKP", 1.0])
    elif kind == 5:
        body[8] = {1: key, 2: b"extra"}
    elif kind == 6:
        body[8] = {3: holder_key_of(base.device).public}
    else:
        body[8] = [1, key]
    if kind not in (0, 5, 6, 7):
        body[8] = {1: key}
    payload = bytes(cbor2.dumps(body, canonical=True))
    signer = WORLD.untrusted if rng.random() < 0.25 else base.signer
    protected = protected_header(signer.algorithm, signer.kid)
    credential = assemble(protected, payload, signer.sign(sig_structure(protected, payload)))
    return live_code(credential, base.card_id, STEP, base.device)


def resigned_envelope(rng: Rng, base: Base) -> bytes:
    """The live code's own array made non-deterministic or reshaped around intact parts."""
    step, proof, credential = _parts(base)
    kind = rng.randrange(5)
    if kind == 0:
        return b"\x9f" + base.raw[1:] + b"\xff"
    if kind == 1:
        return b"\x83\x1b" + step.to_bytes(8, "big") + base.raw[6:]
    if kind == 2:
        return b"\x84" + base.raw[1:] + b"\x00"
    if kind == 3:
        return b"\x83" + b"\x59\x00\x40" + proof + cbor2.dumps(step) + credential
    return b"\xd9\xd9\xf7" + base.raw


# --- the digits ----------------------------------------------------------------------------------------------------

NOISE = [" ", "\r\n", "\t", "a", "-", "\x00", "٣", "５", "đ", "\\000026", "]Q1", "\ufeff"]


def text_mutation(rng: Rng, base: Base) -> str:
    text = base.text
    at = rng.randrange(4, len(text))
    kind = rng.randrange(8)
    if kind == 0:
        return text[:at] + str(rng.randrange(10)) + text[at + 1:]
    if kind == 1:
        return text[:at] + text[at + rng.randint(1, 40):]
    if kind == 2:
        return text[:at - 1] + text[at] + text[at - 1] + text[at + 1:]
    if kind == 3:
        return rng.choice(["8401", "8403", "8400", "8420", "0402"]) + text[4:]
    if kind == 4:
        return text[:rng.randrange(len(text))]
    if kind == 5:
        return text[:at] + "".join(rng.choice(NOISE) for _ in range(rng.randint(1, 3))) + text[at:]
    if kind == 6:
        return to_qr_text(base.credential)
    return to_live_qr_text(rng.choice(BYTE_MUTATIONS)(rng, base))


BYTE_MUTATIONS: list[Callable[[Rng, Base], bytes]] = [
    bit_flip, bit_flip, substitute, cut, other_step, old_capture, swap_parts, thief_proof, thief_key, printed_copy,
    resigned_cnf, resigned_envelope,
]
TEXT_SHARE = 0.35


def _carries(scanned: str | bytes, base: Base) -> bool:
    if isinstance(scanned, bytes):
        return scanned == base.raw
    try:
        return live_code_from_text(scanned) == base.raw
    except CredentialError:
        return False


def test_valid_bases_pass() -> None:
    for base in BASES:
        verdict = verify(base.text, WORLD.trust, WORLD.status, NOW)
        assert verdict.ok and verdict.live, verdict


def test_25k_live_code_mutations_zero_accepted_zero_crashes() -> None:
    rng = random.Random(SEED)
    reasons: Counter[str] = Counter()
    operations: Counter[str] = Counter()
    for case in range(TOTAL):
        base = rng.choice(BASES)
        if rng.random() < TEXT_SHARE:
            operation, scanned = "text", text_mutation(rng, base)
        else:
            mutate = rng.choice(BYTE_MUTATIONS)
            operation = mutate.__name__
            mutated = mutate(rng, base)
            # Live codes are QR text; the bound credential alone may also come as a tag's raw bytes.
            scanned = mutated if operation == "printed_copy" else to_live_qr_text(mutated)
        operations[operation] += 1
        try:
            verdict = verify(scanned, WORLD.trust, WORLD.status, NOW)
        except Exception as exc:  # the point of this test: report the input that escaped
            pytest.fail(f"case {case} ({operation}) raised {exc!r} on {scanned!r}")
        assert type(verdict) is Verdict
        if verdict.ok:
            assert _carries(scanned, base), f"case {case} ({operation}) accepted a changed live code: {scanned!r}"
            reasons["unchanged"] += 1
            continue
        assert verdict.reason is not None
        reasons[verdict.reason] += 1
        if verdict.reason in UNVERIFIED_REASONS:
            assert verdict.claims is None, f"case {case} ({operation}): claims on {verdict.reason}"
    assert sum(operations.values()) == TOTAL
    # The engine reaches every layer: the digits, the structure, the card key, the proof and the time step.
    for reason in ("malformed", "unknown_key", "bad_signature", "holder_proof_invalid", "stale_live_code"):
        assert reasons[reason] > 100, reasons
    assert len(operations) == len(set(BYTE_MUTATIONS)) + 1
