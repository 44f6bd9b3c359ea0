"""100,000 seeded mutations of valid credentials through :func:`verify`: zero accepted, zero crashes.

A plain ``random.Random`` with a fixed seed drives the mutation engine (Hypothesis shrinks well but is far too slow for
this volume). Every mutation either changes the credential, and must then be refused, or leaves the credential bytes
as they were (a mutated text that cleans up to the same digits), which may pass and is counted apart.

Structural mutations that only a signer could produce (duplicate map keys, non-shortest integers, indefinite lengths,
tags, dates beyond year 9999) are re-signed with the trusted key of the credential's kid, so only the
deterministic-CBOR and shape checks stand between them and acceptance, and also with a key whose kid the trust bundle
does not hold.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import cbor2
import pytest

from issuance.credential import credential_qr_text, sign_credential
from issuance.keys import LocalSigner
from tests.verification.test_verify import (
    ED_KID,
    ES_KID,
    LIST_ID,
    NOW,
    RETIRED_KID,
    UNTRUSTED_KID,
    VALID_INDEX,
    WORLD,
)
from verification.errors import CredentialError
from verification.format import (
    PRIVATE_CLAIM,
    CardClaims,
    assemble,
    credential_from_text,
    encode_claims,
    parse_credential,
    protected_header,
    sig_structure,
)
from verification.verify import Verdict, verify

SEED = 20261125
TOTAL = 100_000
# Reasons reached before (or instead of) a successful signature check: these verdicts must never carry claims.
UNVERIFIED_REASONS = {"unsupported_version", "unknown_key", "bad_signature", "key_retired"}


@dataclass(frozen=True)
class Base:
    """A valid credential and its parts."""

    raw: bytes
    text: str
    signer: LocalSigner
    protected: bytes
    payload: bytes
    signature: bytes


def _claims(name: str, chapter: str, index: int, card_id: bytes) -> CardClaims:
    return CardClaims(card_id, "0000001867", name, chapter, 2, date(2026, 1, 1), date(2030, 12, 31), LIST_ID, index)


def _bases() -> list[Base]:
    specs = [
        (ED_KID, "Nguyễn Thị Phương Thảo Vy", "HNI-BADINH-01", VALID_INDEX),
        (ED_KID, "Lê Ánh", "HCM-Q1-02", 4095),
        (ED_KID, "Trần " + "Ngọc" * 14, "X" * 32, 0),
        (ES_KID, "Phạm Thị Hồng Nhung", "DNG-HAICHAU-03", VALID_INDEX),
        (ES_KID, "A", "B", 1),
        (RETIRED_KID, "Võ Thị Sáu", "BRVT-01", 2),
    ]
    bases = []
    for number, (kid, name, chapter, index) in enumerate(specs):
        signer = WORLD.signers[kid]
        raw = sign_credential(_claims(name, chapter, index, bytes([number]) * 8), signer)
        parsed = parse_credential(raw)
        bases.append(Base(raw, credential_qr_text(raw), signer, parsed.protected, parsed.payload, parsed.signature))
    return bases


BASES = _bases()
Rng = random.Random


def _resign(base: Base, rng: Rng, protected_for: Callable[[LocalSigner], bytes] | None, payload: bytes) -> bytes:
    """Sign ``payload`` under the base's trusted key, or (one time in four) under a key the bundle does not know."""
    signer = WORLD.untrusted if rng.random() < 0.25 else base.signer
    protected = protected_for(signer) if protected_for else protected_header(signer.algorithm, signer.kid)
    return assemble(protected, payload, signer.sign(sig_structure(protected, payload)))


# --- byte mutations (anyone can make these) -------------------------------------------------------------------------

def flip_bits(rng: Rng, raw: bytes) -> bytes:
    """One bit flipped, or 2 to 16 (also used by the live-code corpus)."""
    data = bytearray(raw)
    for _ in range(1 if rng.random() < 0.6 else rng.randint(2, 16)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def substitute_bytes(rng: Rng, raw: bytes) -> bytes:
    """1 to 8 bytes replaced by random ones (also used by the live-code corpus)."""
    data = bytearray(raw)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def bit_flip(rng: Rng, base: Base) -> bytes:
    return flip_bits(rng, base.raw)


def substitute(rng: Rng, base: Base) -> bytes:
    return substitute_bytes(rng, base.raw)


def truncate(rng: Rng, base: Base) -> bytes:
    return base.raw[:rng.randrange(len(base.raw))]


def extend(rng: Rng, base: Base) -> bytes:
    return base.raw + rng.randbytes(rng.randint(1, 400))


def insert(rng: Rng, base: Base) -> bytes:
    at = rng.randrange(len(base.raw) + 1)
    return base.raw[:at] + rng.randbytes(rng.randint(1, 16)) + base.raw[at:]


def delete(rng: Rng, base: Base) -> bytes:
    at = rng.randrange(len(base.raw))
    return base.raw[:at] + base.raw[at + rng.randint(1, 16):]


def swap_part(rng: Rng, base: Base) -> bytes:
    other = rng.choice(BASES)
    parts = [base.protected, base.payload, base.signature]
    which = rng.randrange(3)
    parts[which] = [other.protected, other.payload, other.signature][which]
    return assemble(*parts)


def _head_offsets(base: Base) -> list[int]:
    """Offsets of the CBOR item heads that carry a length: array, protected, unprotected, payload, signature."""
    protected_at = 2
    unprotected_at = protected_at + 1 + len(base.protected)
    payload_at = unprotected_at + 1
    signature_at = payload_at + (2 if len(base.payload) >= 24 else 1) + len(base.payload)
    return [1, protected_at, unprotected_at, payload_at, signature_at, payload_at + 2]


def huge_length(rng: Rng, base: Base) -> bytes:
    major = rng.choice([0x40, 0x60, 0x80, 0xA0, 0x00, 0x20, 0xC0])
    size = rng.choice([27, 26, 25])
    huge = (rng.choice([2**64 - 1, 2**63, 2**32 + 1, 2**31, 70_000, rng.getrandbits(64)])).to_bytes(8, "big")
    head = bytes([major | size]) + huge[8 - (1 << (size - 24)):]
    at = rng.choice(_head_offsets(base)) if rng.random() < 0.7 else rng.randrange(len(base.raw))
    return base.raw[:at] + head + base.raw[at + rng.randint(1, 3):]


def deep_nesting(rng: Rng, base: Base) -> bytes:
    depth = rng.randint(2, 2000)
    opener = rng.choice([b"\x81", b"\xa1\x00", b"\xd2", b"\x9f", b"\xc6"])
    kind = rng.randrange(3)
    if kind == 0:
        return opener * depth + base.raw
    if kind == 1:
        # Deep nesting in the unprotected header, inside an otherwise intact envelope.
        at = 2 + 1 + len(base.protected)
        return base.raw[:at] + opener * depth + base.raw[at:]
    return opener * depth + b"\x00"


def random_bytes(rng: Rng, base: Base) -> bytes:
    return rng.choice([b"\xd2\x84", b"", b"\xd2"]) + rng.randbytes(rng.randint(0, 600))


# --- structural mutations a signer would have to make (re-signed) ---------------------------------------------------

def _payload_variants(rng: Rng, base: Base) -> bytes:
    body = cbor2.loads(base.payload)
    card = list(body[PRIVATE_CLAIM])
    kind = rng.randrange(12)
    if kind == 0:
        # Duplicate claim key: the map header counts one entry more, the duplicate is appended.
        key = rng.choice([4, 6, 7, PRIVATE_CLAIM])
        value = rng.choice([body[key], 1, b"\x00" * 8, "x"])
        return bytes([base.payload[0] + 1]) + base.payload[1:] + cbor2.dumps(key) + cbor2.dumps(value)
    if kind == 1:
        # Non-shortest integer for iat, exp or a card-claim number.
        key = rng.choice([4, 6])
        encoded = b"\x1b" + body[key].to_bytes(8, "big")
        return base.payload.replace(cbor2.dumps(body[key]), encoded, 1)
    if kind == 2:
        # Indefinite-length card claim array.
        tail = b"".join(cbor2.dumps(item) for item in card)
        head = cbor2.dumps({4: body[4], 6: body[6], 7: body[7]})
        return bytes([head[0] + 1]) + head[1:] + cbor2.dumps(PRIVATE_CLAIM) + b"\x9f" + tail + b"\xff"
    if kind == 3:
        # Float or boolean keys that compare equal to integer keys.
        variant = rng.randrange(3)
        if variant == 0:
            return bytes(cbor2.dumps({4.0: body[4], 6: body[6], 7: body[7], PRIVATE_CLAIM: card}, canonical=True))
        if variant == 1:
            return base.payload.replace(b"\x07\x48", b"\xf5\x48", 1)  # True as the cti key
        return base.payload.replace(b"\x04\x1a", b"\xf9\x44\x00\x1a", 1)  # 4.0 as the exp key, in place
    if kind == 4:
        body[rng.choice([8, 1, -1, "x"])] = 0
        return bytes(cbor2.dumps(body, canonical=True))
    if kind == 5:
        # Dates that no calendar can hold (and a card claim that overflows the date type once shifted a day).
        body[4] = rng.choice([2**40 - 1, 253_402_300_800, 253_402_279_199, 253_402_214_400, 2**39])
        body[6] = rng.choice([0, body[4] - 1, 253_402_214_399])
        return bytes(cbor2.dumps(body, canonical=True))
    if kind == 6:
        tag = rng.choice([0, 1, 2, 4, 5, 25, 28, 29, 30, 35, 36, 37, 256, 258, 260, 1004, 55799])
        index = rng.randrange(1, 7)
        card[index] = cbor2.CBORTag(tag, card[index])
        body[PRIVATE_CLAIM] = card
        return bytes(cbor2.dumps(body, canonical=True))
    if kind == 7:
        card = card[:rng.randrange(7)] if rng.random() < 0.5 else [*card, 0]
        body[PRIVATE_CLAIM] = card
        return bytes(cbor2.dumps(body, canonical=True))
    if kind == 8:
        index = rng.randrange(1, 7)
        # Wrong in every position: numbers where text belongs and the reverse, out of range, or of another type.
        card[index] = rng.choice([-1, 2**40, 1.5, None, True, b"x", [], {}])
        body[PRIVATE_CLAIM] = card
        return bytes(cbor2.dumps(body, canonical=True))
    if kind == 9:
        # Trailing bytes after the claims map inside the payload.
        return base.payload + rng.randbytes(rng.randint(1, 8))
    if kind == 10:
        body[7] = rng.choice([b"", b"\x00" * 7, b"\x00" * 9, "cardid00", 7])
        return bytes(cbor2.dumps(body, canonical=True))
    # Text name encoded with an indefinite-length string.
    name = card[2].encode()
    return base.payload.replace(cbor2.dumps(card[2]), b"\x7f" + cbor2.dumps(card[2][:1]) +
                                cbor2.dumps(name[len(card[2][:1].encode()):].decode()) + b"\xff", 1)


def resigned_claims(rng: Rng, base: Base) -> bytes:
    return _resign(base, rng, None, _payload_variants(rng, base))


def _header_variant(rng: Rng) -> Callable[[LocalSigner], bytes]:
    kind = rng.randrange(6)

    def build(signer: LocalSigner) -> bytes:
        alg = cbor2.dumps(signer.algorithm)
        kid = cbor2.dumps(signer.kid)
        if kind == 0:
            return b"\xa3\x01" + alg + b"\x04" + kid + b"\x01" + alg  # duplicate alg
        if kind == 1:
            return b"\xa3\x01" + alg + b"\x04" + kid + b"\x04" + cbor2.dumps(b"\x00\x00")  # duplicate kid
        if kind == 2:
            return b"\xa2\x04" + kid + b"\x01" + alg  # unsorted keys
        if kind == 3:
            return b"\xa2\xf9\x3c\x00" + alg + b"\x04" + kid  # key 1.0
        if kind == 4:
            return b"\xa2\x01\x38" + bytes([-1 - signer.algorithm]) + b"\x04" + kid  # non-shortest alg
        return b"\xbf\x01" + alg + b"\x04" + kid + b"\xff"  # indefinite-length map

    return build


def resigned_header(rng: Rng, base: Base) -> bytes:
    return _resign(base, rng, _header_variant(rng), base.payload)


def resigned_envelope(rng: Rng, base: Base) -> bytes:
    """The signature is fine; the envelope around it is not deterministic CBOR."""
    raw = base.raw
    at = 2 + 1 + len(base.protected)
    kind = rng.randrange(5)
    if kind == 0:
        return raw[:at] + b"\xa2\x04\x00\x04\x01" + raw[at + 1:]  # duplicate keys in the unprotected header
    if kind == 1:
        return raw[:1] + b"\x9f" + raw[2:] + b"\xff"  # indefinite-length array
    if kind == 2:
        return b"\xd9\xd9\xf7" + raw  # self-described CBOR tag around it
    if kind == 3:
        return raw[:2] + b"\x58" + bytes([len(base.protected)]) + raw[3:]  # non-shortest protected length
    return raw[:at] + b"\xa1\x04\x42" + base.signer.kid + raw[at + 1:]  # kid moved to the unprotected header


# --- text mutations -------------------------------------------------------------------------------------------------

NOISE = [" ", "\r", "\n", "\t", "\r\n", "a", "A", "-", "+", ".", "\x00", "٣", "５", "²", "đ", "\udcff", "\\000026",
         "]Q1", "\ufeff", "é"]


def text_mutation(rng: Rng, base: Base) -> str:
    text = base.text
    kind = rng.randrange(11)
    at = rng.randrange(4, len(text))
    if kind == 0:
        return text[:at] + str(rng.randrange(10)) + text[at + 1:]
    if kind == 1:
        return text[:at] + str(rng.randrange(10)) + text[at:]
    if kind == 2:
        return text[:at] + text[at + rng.randint(1, 40):]
    if kind == 3:
        return text[:at - 1] + text[at] + text[at - 1] + text[at + 1:]
    if kind == 4:
        prefix = f"{rng.randrange(10_000):04d}" if rng.random() < 0.5 else f"84{rng.randrange(100):02d}"
        return prefix + text[4:]
    if kind == 5:
        return text[:rng.randrange(len(text))]
    if kind == 6:
        return text + "".join(str(rng.randrange(10)) for _ in range(rng.randint(1, 60)))
    if kind == 7:
        noise = "".join(rng.choice(NOISE) for _ in range(rng.randint(1, 4)))
        return text[:at] + noise + text[at:]
    if kind == 8:
        group = rng.randrange((len(text) - 4) // 17)
        start = 4 + group * 17
        return text[:start] + rng.choice(["99999999999999999", "72057594037927936"]) + text[start + 17:]
    if kind == 9:
        return text * rng.randint(2, 8)
    mutated = rng.choice(BYTE_MUTATIONS)(rng, base)
    return credential_qr_text(mutated)


BYTE_MUTATIONS: list[Callable[[Rng, Base], bytes]] = [
    bit_flip, bit_flip, substitute, truncate, extend, insert, delete, swap_part, huge_length, deep_nesting,
    random_bytes, resigned_claims, resigned_claims, resigned_header, resigned_envelope,
]
TEXT_SHARE = 0.35


def _carries(scanned: str | bytes, base: Base) -> bool:
    """Whether the mutated input still carries exactly the original credential bytes."""
    if isinstance(scanned, bytes):
        return scanned == base.raw
    try:
        return credential_from_text(scanned) == base.raw
    except CredentialError:
        return False


def test_valid_bases_pass() -> None:
    for base in BASES:
        assert verify(base.raw, WORLD.trust, WORLD.status, NOW).ok
        assert verify(base.text, WORLD.trust, WORLD.status, NOW).ok


def test_100k_mutations_zero_accepted_zero_crashes() -> None:
    rng = random.Random(SEED)
    reasons: Counter[str] = Counter()
    operations: Counter[str] = Counter()
    unchanged_accepted = 0
    for case in range(TOTAL):
        base = rng.choice(BASES)
        if rng.random() < TEXT_SHARE:
            operation = "text"
            scanned: str | bytes = text_mutation(rng, base)
        else:
            mutate = rng.choice(BYTE_MUTATIONS)
            operation = mutate.__name__
            scanned = mutate(rng, base)
        operations[operation] += 1
        try:
            verdict = verify(scanned, WORLD.trust, WORLD.status, NOW)
        except Exception as exc:  # the point of this test: report the input that escaped
            pytest.fail(f"case {case} ({operation}) raised {exc!r} on {scanned!r}")
        assert type(verdict) is Verdict
        if verdict.ok:
            assert _carries(scanned, base), f"case {case} ({operation}) accepted a changed credential: {scanned!r}"
            unchanged_accepted += 1
            reasons["ok"] += 1
            continue
        assert verdict.reason is not None
        reasons[verdict.reason] += 1
        if verdict.reason in UNVERIFIED_REASONS:
            assert verdict.claims is None, f"case {case} ({operation}): claims on {verdict.reason}"
    assert sum(operations.values()) == TOTAL
    assert reasons["ok"] == unchanged_accepted
    # The engine must actually reach the deep checks, not only the digit decoder.
    for reason in ("malformed", "unsupported_version", "unknown_key", "bad_signature"):
        assert reasons[reason] > 100, reasons
    assert len(operations) == len({m.__name__ for m in BYTE_MUTATIONS}) + 1


@pytest.mark.parametrize("kind", range(12))
def test_structural_variants_signed_by_the_trusted_key_are_malformed(kind: int) -> None:
    base = BASES[0]

    class Fixed(random.Random):
        def randrange(self, *args: int) -> int:  # type: ignore[override]
            return kind if args == (12,) else super().randrange(*args)

    payload = _payload_variants(Fixed(kind), base)
    raw = assemble(base.protected, payload, base.signer.sign(sig_structure(base.protected, payload)))
    verdict = verify(raw, WORLD.trust, WORLD.status, NOW)
    assert not verdict.ok
    assert verdict.reason in {"malformed", "unsupported_version"}, verdict


def test_unknown_kid_with_duplicate_keys_is_malformed_before_key_lookup() -> None:
    base = BASES[0]
    untrusted = WORLD.untrusted
    assert untrusted.kid == UNTRUSTED_KID
    protected = protected_header(untrusted.algorithm, untrusted.kid)
    payload = bytes([base.payload[0] + 1]) + base.payload[1:] + cbor2.dumps(4) + cbor2.dumps(0)
    raw = assemble(protected, payload, untrusted.sign(sig_structure(protected, payload)))
    assert verify(raw, WORLD.trust, WORLD.status, NOW).reason == "malformed"


def test_claims_encoding_is_what_the_mutation_engine_assumes() -> None:
    assert encode_claims(_claims("A", "B", 1, bytes(8)))[0] == 0xA4
