"""The fast parser of issued credentials against the general parser: an equal result, or it declines.

:func:`parse_credential` reads the one shape every issued credential has straight from the bytes
(``_parse_issued_shape``) and leaves everything else to the general, cbor2-based parser (``_parse_credential_general``).
On valid credentials at every CBOR width boundary the fast parser must build what the general one builds; on mutated
ones it must decline or agree, so that ``parse_credential`` always reaches the general parser's verdict. The digit
decoding's fast form is held to the plain loop it replaced.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from issuance.credential import sign_credential
from issuance.keys import Signer
from tests.vectors import make_vectors
from tests.verification.test_format_properties import TRUST, card_claims
from verification.crypto import verify_signature
from verification.errors import CredentialError
from verification.format import (
    ALG_EDDSA,
    ALG_ES256,
    LAST_NUMERIC_DATE,
    PRIVATE_CLAIM,
    CardClaims,
    ParsedCredential,
    _parse_credential_general,
    _parse_issued_shape,
    assemble,
    credential_from_text,
    day_start,
    digits_to_bytes,
    parse_credential,
    protected_header,
    sig_structure,
    to_qr_text,
)
from verification.verify import Verdict

SIGNERS = make_vectors.fixed_signers()  # Ed25519 and ES256 (deterministic nonces), by algorithm
SEED = 20261126
MUTATIONS = 30_000
# Where CBOR heads change width (RFC 8949 §3): 23|24 (one more byte), 255|256, 65535|65536, 2**32-1|2**32.
WIDTH_EDGES = [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32]
UINT32_EDGES = WIDTH_EDGES[:-1]  # card_version, status_list and status_index stay below 2**32
ISSUED = day_start(date(2026, 1, 1))
EXPIRES = day_start(date(2031, 1, 1))
DAY = 86400
# Dates are Vietnam midnights, so they reach only the 2-, 4- and 8-byte widths: the first two midnights (one below
# 65536, one above), the last one below 2**32 and the first one above it.
DATE_EDGES = [day_start(date(1970, 1, 2)), day_start(date(1970, 1, 3)), day_start(date(2106, 2, 7)),
              day_start(date(2106, 2, 8))]
LONG_NAME = "Tôn Nữ Hoàng Thị Phương Thảo Nguyễn Huỳnh Bảo Ngọc Quỳnh Như Đỗ Ánh Tuyết"  # 100 bytes of UTF-8
NAMES = ["A", "Lê Ánh", "N" * 23, "N" * 24, "Nguyễn Thị Phương Thảo Vy", LONG_NAME, "Đ" * 50]
CHAPTERS = ["B", "HNI", "C" * 23, "C" * 24, "HCM-Q1.BEN_NGHE-0000000000000001"]
BASE = {"exp": EXPIRES, "iat": ISSUED, "card_id": bytes(range(1, 9)), "member_number": 1867,
        "name": "Nguyễn Thị Phương Thảo Vy", "chapter": "HNI-BADINH-01", "version": 2, "status_list": 3,
        "status_index": 17}
UINT_FIELDS = ["exp", "iat", "member_number", "version", "status_list", "status_index"]
TEXT_FIELDS = ["name", "chapter"]


# --- a small CBOR writer that can also write what a deterministic encoder never would -------------------------------

def _shortest_width(value: int) -> int:
    return 0 if value < 24 else 1 if value < 256 else 2 if value < 65536 else 4 if value < 2**32 else 8


def head(major: int, value: int, width: int | None = None) -> bytes:
    """A CBOR head; ``width`` forces 0 (argument in the initial byte), 1, 2, 4 or 8 argument bytes."""
    width = _shortest_width(value) if width is None else width
    if width == 0:
        return bytes([major << 5 | value])
    return bytes([major << 5 | {1: 24, 2: 25, 4: 26, 8: 27}[width]]) + value.to_bytes(width, "big")


def text_item(value: str, width: int | None = None, chunks: int = 0) -> bytes:
    """A text string; ``chunks`` > 0 writes it indefinite-length, in that many pieces."""
    data = value.encode()
    if not chunks:
        return head(3, len(data), width) + data
    cut = max(1, len(value) // chunks)
    pieces = [value[at:at + cut] for at in range(0, len(value), cut)]
    return b"\x7f" + b"".join(text_item(piece) for piece in pieces) + b"\xff"


def claims_payload(fields: dict[str, Any], widths: dict[str, int] | None = None, chunks: dict[str, int] | None = None,
                   extra_entries: bytes = b"", map_count: int = 4, array_count: int = 7) -> bytes:
    """The claims map, written field by field so that any head can be given a chosen width."""
    widths, chunks = widths or {}, chunks or {}

    def uint(name: str) -> bytes:
        return head(0, fields[name], widths.get(name))

    def text(name: str) -> bytes:
        return text_item(fields[name], widths.get(name), chunks.get(name, 0))

    return b"".join([
        head(5, map_count), b"\x04", uint("exp"), b"\x06", uint("iat"), b"\x07", head(2, len(fields["card_id"])),
        fields["card_id"], b"\x3a\x00\x01\x00\x00", head(4, array_count), b"\x01", uint("member_number"),
        text("name"), text("chapter"), uint("version"), uint("status_list"), uint("status_index"), extra_entries,
    ])


def signed(payload: bytes, signer: Signer) -> bytes:
    protected = protected_header(signer.algorithm, signer.kid)
    return assemble(protected, payload, signer.sign(sig_structure(protected, payload)))


# --- the property -------------------------------------------------------------------------------------------------

def _outcome(parse: Callable[[bytes], ParsedCredential], raw: bytes) -> tuple[object, ...]:
    try:
        parsed = parse(raw)
    except CredentialError as error:
        return ("refused", error.reason, str(error))
    return ("parsed", parsed, parsed.signed_bytes())


def _field_types(parsed: ParsedCredential) -> list[type]:
    return ([type(getattr(parsed, field.name)) for field in dataclasses.fields(parsed)]
            + [type(getattr(parsed.claims, field.name)) for field in dataclasses.fields(parsed.claims)])


def check_consistent(raw: bytes) -> tuple[ParsedCredential | None, tuple[object, ...]]:
    """The fast parser declines or agrees with the general one, and parse_credential reaches the general verdict."""
    general = _outcome(_parse_credential_general, raw)
    assert _outcome(parse_credential, raw) == general
    fast = _parse_issued_shape(raw)
    if fast is not None:
        assert general[0] == "parsed", f"fast path accepted what the general parser refuses: {raw.hex()}"
        reference = general[1]
        assert isinstance(reference, ParsedCredential)
        assert fast == reference and hash(fast) == hash(reference)
        assert fast.signed_bytes() == general[2] == sig_structure(reference.protected, reference.payload)
        assert _field_types(fast) == _field_types(reference)
    return fast, general


# --- (a) valid credentials: the fast path is taken and builds the same result -------------------------------------

def _valid_cases() -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = []
    cases += [(f"member_number={value}", {"member_number": value}) for value in WIDTH_EDGES]
    for field in ("version", "status_list", "status_index"):
        cases += [(f"{field}={value}", {field: value}) for value in UINT32_EDGES]
    cases += [("member_number=10**10-1", {"member_number": 10**10 - 1})]
    cases += [(f"iat={value}", {"iat": value, "exp": LAST_NUMERIC_DATE}) for value in DATE_EDGES]
    cases += [(f"exp={value}", {"iat": DATE_EDGES[0], "exp": value}) for value in DATE_EDGES[1:]]
    cases += [("exp=last", {"exp": LAST_NUMERIC_DATE}), ("exp=iat+day", {"exp": ISSUED + DAY})]
    cases += [(f"name={len(name.encode())}B", {"name": name}) for name in NAMES]
    cases += [(f"chapter={len(chapter)}", {"chapter": chapter}) for chapter in CHAPTERS]
    cases += [("longest", {"name": LONG_NAME, "chapter": CHAPTERS[-1], "member_number": 10**10 - 1,
                           "version": 2**32 - 1, "status_list": 2**32 - 1, "status_index": 2**32 - 1})]
    return cases


@pytest.mark.parametrize("algorithm", [ALG_EDDSA, ALG_ES256])
@pytest.mark.parametrize(("label", "changes"), _valid_cases(), ids=[label for label, _ in _valid_cases()])
def test_valid_credentials_take_the_fast_path_with_the_general_result(algorithm: int, label: str,
                                                                      changes: dict[str, Any]) -> None:
    fields = {**BASE, **changes}
    payload = claims_payload(fields)
    # The hand-written encoding is the deterministic one the issuer writes.
    card = [1, fields["member_number"], fields["name"], fields["chapter"], fields["version"], fields["status_list"],
            fields["status_index"]]
    assert payload == cbor2.dumps({4: fields["exp"], 6: fields["iat"], 7: fields["card_id"], PRIVATE_CLAIM: card})
    raw = signed(payload, SIGNERS[algorithm])
    fast, general = check_consistent(raw)
    assert general[0] == "parsed", general
    assert fast is not None
    assert fast.algorithm == algorithm
    verify_signature(fast, *TRUST[fast.kid])
    assert parse_credential(credential_from_text(to_qr_text(raw))) == fast


@pytest.mark.parametrize(("label", "changes"), [
    ("member_number=10**10", {"member_number": 10**10}), ("version=2**32", {"version": 2**32}),
    ("status_list=2**32", {"status_list": 2**32}), ("status_index=2**32", {"status_index": 2**32}),
    ("status_index=2**64-1", {"status_index": 2**64 - 1}),
    ("exp=iat", {"exp": ISSUED}), ("exp<iat", {"exp": ISSUED - DAY}),
    ("exp=last+day", {"exp": LAST_NUMERIC_DATE + DAY}), ("exp=2**40", {"exp": 2**40}),
    ("iat=0", {"iat": 0}), ("iat=midnight+1", {"iat": ISSUED + 1}), ("exp=midnight-1", {"exp": EXPIRES - 1}),
    ("card_id=7", {"card_id": bytes(7)}), ("card_id=9", {"card_id": bytes(9)}),
    ("name=RLO", {"name": "Lan \u202eanL"}), ("name=ZWJ", {"name": "La\u200dn"}), ("name=NFD", {"name": "Le\u0302"}),
    ("name=empty", {"name": ""}), ("name=101B", {"name": "Đ" * 50 + "x"}),
    ("chapter=lowercase", {"chapter": "hni"}), ("chapter=33", {"chapter": "C" * 33}), ("chapter=-A", {"chapter": "-A"}),
])
def test_claims_the_general_parser_refuses_are_declined(label: str, changes: dict[str, Any]) -> None:
    raw = signed(claims_payload({**BASE, **changes}), SIGNERS[ALG_EDDSA])
    fast, general = check_consistent(raw)
    assert fast is None
    assert general[0] == "refused", general


def test_every_valid_credential_has_the_issued_shape() -> None:
    # With every limit of docs/card-format.md §6.2 at its maximum the payload still fits a one-byte length, so the
    # fast path reads every valid credential; a 255-byte name, which once made a valid longer shape, is refused.
    largest = {**BASE, "name": LONG_NAME, "chapter": CHAPTERS[-1], "member_number": 10**10 - 1,
               "version": 2**32 - 1, "status_list": 2**32 - 1, "status_index": 2**32 - 1,
               "iat": LAST_NUMERIC_DATE - DAY, "exp": LAST_NUMERIC_DATE}
    fast, general = check_consistent(signed(claims_payload(largest), SIGNERS[ALG_EDDSA]))
    assert fast is not None and general[0] == "parsed"
    assert len(fast.payload) < 256
    fast, general = check_consistent(signed(claims_payload({**BASE, "name": "x" * 255}), SIGNERS[ALG_EDDSA]))
    assert fast is None and general[:2] == ("refused", "malformed")


EXAMPLES = settings(max_examples=300, deadline=None)


@EXAMPLES
@given(claims=card_claims(), algorithm=st.sampled_from([ALG_EDDSA, ALG_ES256]))
def test_issued_credentials_take_the_fast_path(claims: CardClaims, algorithm: int) -> None:
    raw = sign_credential(claims, SIGNERS[algorithm])
    fast, _ = check_consistent(raw)
    assert fast is not None and fast.claims == claims


@EXAMPLES
@given(claims=card_claims(), data=st.data())
def test_byte_mutations_are_declined_or_agree(claims: CardClaims, data: st.DataObject) -> None:
    raw = bytearray(sign_credential(claims, SIGNERS[ALG_EDDSA]))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    check_consistent(bytes(raw))


# --- (b) seeded mutations: the fast path declines or agrees, parse_credential keeps the general verdict -----------

Rng = random.Random


def _bases() -> list[tuple[dict[str, Any], Signer]]:
    specs: list[dict[str, Any]] = [
        {}, {"name": "A", "chapter": "B", "member_number": 0, "version": 0, "status_list": 0, "status_index": 0},
        {"name": LONG_NAME, "chapter": CHAPTERS[-1], "member_number": 2**32, "status_index": 65536},
        {"member_number": 24, "version": 255, "status_list": 256, "status_index": 2**32 - 1},
        {"name": "N" * 24, "chapter": "C" * 23, "iat": DATE_EDGES[0], "exp": DATE_EDGES[-1]},
    ]
    return [({**BASE, **spec}, SIGNERS[algorithm]) for spec in specs for algorithm in (ALG_EDDSA, ALG_ES256)]


BASES = _bases()


def _raw(fields: dict[str, Any], signer: Signer) -> bytes:
    # The signature does not matter to the parsers; a fixed one keeps 30,000 cases fast.
    return assemble(protected_header(signer.algorithm, signer.kid), claims_payload(fields), bytes(range(64)))


def bit_flips(rng: Rng, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.choice([1, 1, 1, 2, 3, 8])):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def substitution(rng: Rng, raw: bytes) -> bytes:
    data = bytearray(raw)
    data[rng.randrange(len(data))] = rng.choice([0x00, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x58, 0x59, 0x5f, 0x60, 0x77,
                                                 0x78, 0x79, 0x7f, 0x9f, 0xbf, 0xff, rng.randrange(256)])
    return bytes(data)


def truncation(rng: Rng, raw: bytes) -> bytes:
    return raw[:rng.randrange(len(raw))]


def extension(rng: Rng, raw: bytes) -> bytes:
    return raw + rng.randbytes(rng.choice([1, 1, 2, 64, 400]))


def insertion(rng: Rng, raw: bytes) -> bytes:
    at = rng.randrange(len(raw) + 1)
    return raw[:at] + rng.randbytes(rng.randint(1, 4)) + raw[at:]


def deletion(rng: Rng, raw: bytes) -> bytes:
    at = rng.randrange(len(raw))
    return raw[:at] + raw[at + rng.randint(1, 4):]


def claims_mutation(rng: Rng, fields: dict[str, Any], signer: Signer) -> bytes:
    """Claims a signer could sign that no deterministic encoder writes, or with values out of range."""
    protected = protected_header(signer.algorithm, signer.kid)
    kind = rng.randrange(8)
    if kind == 0:
        # Non-shortest integer: any wider head that can still hold the value.
        name = rng.choice([name for name in UINT_FIELDS if fields[name] < 2**32])
        width = rng.choice([width for width in (1, 2, 4, 8) if width > _shortest_width(fields[name])])
        payload = claims_payload(fields, widths={name: width})
    elif kind == 1:
        # Non-shortest text length, or an indefinite-length text.
        name = rng.choice(TEXT_FIELDS)
        size = len(fields[name].encode())
        if rng.random() < 0.5:
            wider = [width for width in (1, 2, 4, 8) if width > _shortest_width(size)]
            payload = claims_payload(fields, widths={name: rng.choice(wider)})
        else:
            payload = claims_payload(fields, chunks={name: rng.randint(1, 3)})
    elif kind == 2:
        # A duplicate key, announced by the map count or not.
        key = rng.choice([4, 6, 7, PRIVATE_CLAIM])
        extra = cbor2.dumps(key) + cbor2.dumps(rng.choice([fields["exp"], 1, bytes(8), "x"]))
        payload = claims_payload(fields, extra_entries=extra, map_count=rng.choice([4, 5]))
    elif kind == 3:
        payload = claims_payload(fields, array_count=rng.choice([6, 8]))
    elif kind == 4:
        # Text that is not strict UTF-8: a lone surrogate, an overlong form, a stray continuation byte.
        name = rng.choice(TEXT_FIELDS)
        value = fields[name]
        data = bytearray(value.encode())
        bad = rng.choice([b"\xed\xa0\x80", b"\xc0\x80", b"\x80", b"\xff"])
        at = len(value[:rng.randrange(len(value))].encode())  # at a character boundary, so it stays invalid
        data[at:at + len(bad)] = bad
        payload = claims_payload(fields).replace(text_item(fields[name]), head(3, len(data)) + bytes(data), 1)
    elif kind == 5:
        # Values just past what the claims may hold.
        changes = rng.choice([{"member_number": 10**10}, {"version": 2**32}, {"status_list": 2**32},
                              {"status_index": 2**63}, {"exp": fields["iat"]}, {"exp": LAST_NUMERIC_DATE + DAY},
                              {"iat": fields["exp"] + DAY}, {"iat": fields["iat"] + 1}, {"name": "A\u2066B"},
                              {"chapter": "hni"}])
        payload = claims_payload({**fields, **changes})
    elif kind == 6:
        # Trailing bytes in the payload, some of them looking like the signature's head.
        payload = claims_payload(fields) + rng.choice([rng.randbytes(rng.randint(1, 3)), b"\x58\x40", b"\x58\x40\x00"])
    else:
        payload = claims_payload(fields)
        payload = payload[:-1] if rng.random() < 0.5 else payload[:1] + payload[2:]
    return assemble(protected, payload, bytes(range(64)))


def envelope_mutation(rng: Rng, fields: dict[str, Any], signer: Signer) -> bytes:
    """The same parts in an envelope no deterministic encoder writes, or with another known algorithm."""
    protected = protected_header(signer.algorithm, signer.kid)
    payload = claims_payload(fields)
    signature = bytes(range(64))
    kind = rng.randrange(8)
    if kind == 0:
        return b"\xd2\x84" + head(2, 7, 1) + protected + b"\xa0" + head(2, len(payload)) + payload + b"\x58\x40" + \
            signature
    if kind == 1:
        return b"\xd2\x84\x47" + protected + b"\xa0" + head(2, len(payload), 2) + payload + b"\x58\x40" + signature
    if kind == 2:
        return assemble(protected, payload, signature)[:-66] + b"\x59\x00\x40" + signature
    if kind == 3:
        return b"\xd2\x9f" + assemble(protected, payload, signature)[2:] + b"\xff"
    if kind == 4:
        chunks = b"\x5f" + head(2, len(payload)) + payload + b"\xff"
        return b"\xd2\x84\x47" + protected + b"\xa0" + chunks + b"\x58\x40" + signature
    if kind == 5:
        # The other known algorithm: still the issued shape, so both parsers must report the swapped algorithm.
        other = protected_header(ALG_ES256 if signer.algorithm == ALG_EDDSA else ALG_EDDSA, signer.kid)
        return assemble(other, payload, signature)
    if kind == 6:
        return assemble(protected, payload, signature[:rng.choice([0, 32, 63])] + b"\x00" * rng.choice([0, 2]))
    return b"\xd9\xd9\xf7" + assemble(protected, payload, signature)  # self-described CBOR tag around it


BYTE_MUTATIONS: list[Callable[[Rng, bytes], bytes]] = [
    bit_flips, substitution, truncation, extension, insertion, deletion,
]
STRUCTURAL: list[Callable[[Rng, dict[str, Any], Signer], bytes]] = [claims_mutation, envelope_mutation]


def test_seeded_mutations_are_declined_or_agree() -> None:
    rng = random.Random(SEED)
    taken = refused = 0
    for _ in range(MUTATIONS):
        fields, signer = rng.choice(BASES)
        if rng.random() < 0.5:
            raw = rng.choice(STRUCTURAL)(rng, fields, signer)
        else:
            raw = rng.choice(BYTE_MUTATIONS)(rng, _raw(fields, signer))
        fast, general = check_consistent(raw)
        taken += fast is not None
        refused += general[0] == "refused"
    # Both sides must really be exercised: mutations the fast path reads, and ones only the general parser refuses.
    assert taken > MUTATIONS // 20 and refused > MUTATIONS // 2, (taken, refused)


@pytest.mark.parametrize("kind", range(8))
@pytest.mark.parametrize("mutate", STRUCTURAL, ids=[mutate.__name__ for mutate in STRUCTURAL])
def test_each_structural_mutation_is_declined(mutate: Callable[[Rng, dict[str, Any], Signer], bytes],
                                              kind: int) -> None:
    fields, signer = BASES[0]

    class Fixed(random.Random):
        def randrange(self, *args: int) -> int:  # type: ignore[override]
            return kind if args == (8,) else super().randrange(*args)

    fast, general = check_consistent(mutate(Fixed(kind), fields, signer))
    if mutate is envelope_mutation and kind == 5:
        # Another known algorithm is still the issued shape; the key's bound algorithm decides later.
        assert fast is not None and fast.algorithm != signer.algorithm
    else:
        assert fast is None
        assert general[0] == "refused", general


def test_other_byte_types_and_oversized_input_go_to_the_general_parser() -> None:
    raw = _raw(*BASES[0])
    assert parse_credential(bytearray(raw)) == parse_credential(raw)  # type: ignore[arg-type]
    for bad in (b"", raw + bytes(600), memoryview(raw)):
        assert _outcome(parse_credential, bad) == _outcome(_parse_credential_general, bad)  # type: ignore[arg-type]


# --- the fast-built instances are ordinary frozen dataclasses -----------------------------------------------------

def test_fast_built_instances_are_frozen_and_rebuild_their_signed_bytes_when_replaced() -> None:
    raw = signed(claims_payload(BASE), SIGNERS[ALG_EDDSA])
    fast = _parse_issued_shape(raw)
    assert fast is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.kid = b"\x00\x00"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.claims.status_index = 0  # type: ignore[misc]
    other_payload = claims_payload({**BASE, "status_index": 18})
    replaced = dataclasses.replace(fast, payload=other_payload)
    assert replaced.signed_bytes() == sig_structure(fast.protected, other_payload) != fast.signed_bytes()
    verdict = Verdict.valid(fast.claims, fast.kid, "00")
    assert verdict == Verdict(True, None, fast.claims, fast.kid, "00", True)
    assert hash(verdict) == hash(Verdict(True, None, fast.claims, fast.kid, "00", True))
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.ok = False  # type: ignore[misc]


# --- digits: the packed form against the plain loop it replaced ---------------------------------------------------

_BYTES_FOR_DIGITS = {3: 1, 5: 2, 8: 3, 10: 4, 13: 5, 15: 6}


def reference_digits_to_bytes(digits: str) -> bytes:
    if digits and re.fullmatch(r"[0-9]+", digits) is None:
        raise CredentialError("malformed", "credential digits must be 0-9 only")
    full, rest = divmod(len(digits), 17)
    if rest and rest not in _BYTES_FOR_DIGITS:
        raise CredentialError("malformed", "digit count does not match the encoding")
    try:
        out = b"".join(int(digits[at:at + 17]).to_bytes(7, "big") for at in range(0, 17 * full, 17))
        if rest:
            out += int(digits[17 * full:]).to_bytes(_BYTES_FOR_DIGITS[rest], "big")
    except OverflowError as exc:
        raise CredentialError("malformed", "digit group out of range") from exc
    return out


def _digits_outcome(decode: Callable[[str], bytes], digits: str) -> tuple[object, ...]:
    try:
        return ("decoded", decode(digits))
    except CredentialError as error:
        return ("refused", error.reason, str(error))


def _digit_group(rng: Rng) -> str:
    value = rng.choice([0, 2**56 - 1, 2**56, 10**17 - 1, rng.randrange(2**56), rng.randrange(10**17)])
    return f"{value:017d}"


def test_digit_decoding_matches_the_plain_loop() -> None:
    rng = random.Random(SEED)
    # Whitespace is left out: credential_from_text strips it (see test_format_properties), digits_to_bytes does not.
    odd = ["٣", "５", "²", "+", "-", "_", "a", "\udcff", "\x00"]
    for _ in range(5000):
        digits = "".join(_digit_group(rng) for _ in range(rng.choice([0, 1, 1, 2, 3, 24, 40])))
        if rng.random() < 0.5:
            width = rng.choice([1, 2, 3, 4, 5, 8, 10, 13, 15, 16])
            digits += str(rng.randrange(10**width)).zfill(width)
        if rng.random() < 0.2 and digits:
            at = rng.randrange(len(digits))
            digits = digits[:at] + rng.choice(odd) + digits[at + 1:]
        expected = _digits_outcome(reference_digits_to_bytes, digits)
        assert _digits_outcome(digits_to_bytes, digits) == expected, digits
        text = "8401" + digits
        if expected[0] == "decoded":
            assert credential_from_text(text) == expected[1]
        else:
            with pytest.raises(CredentialError) as error:
                credential_from_text(text)
            assert error.value.reason == "malformed"
