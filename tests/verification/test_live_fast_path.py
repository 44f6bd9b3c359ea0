"""The fast paths of live-code verification against the general parser: the same verdict on every input.

``verify()`` reads the one shape issued live codes and holder-bound credentials have straight from the bytes (the
fast parser of verification/format.py and what verification/live.py takes from it) and leaves every other input to
the general, cbor2-based parser. With the fast paths switched off, ``verify()`` must reach exactly the same verdict
(ok, reason, claims, kid, payload hash, status_checked, live) on the golden, accepted and negative live vectors, on
the whole tamper corpus of tests/verification/test_live_tamper.py and on Hypothesis's byte mutations; and the parts
the fast path hands over (the holder key) must equal what the general path decodes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.verification import test_live_tamper as tamper
from tests.verification import test_live_vectors as vectors
from tests.verification.test_verify import NOW, WORLD
from verification import format as card_format
from verification.errors import CredentialError
from verification.format import parse_bound_credential, parse_bound_parts
from verification.live import HolderKey, holder_key, live_code_from_text, parse_live_code, to_live_qr_text
from verification.verify import Verdict, verify

MUTATIONS = 6_000
SEED = 20261205


@contextmanager
def general_only() -> Iterator[None]:
    """Every fast path off: the general parser decides every input."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(card_format, "_parse_issued_shape", lambda raw, bound=None: None)
        yield


def both(scanned: str | bytes, run: Any) -> tuple[Verdict, Verdict]:
    fast = run(scanned)
    with general_only():
        general = run(scanned)
    return fast, general


def _verify(scanned: str | bytes) -> Verdict:
    return verify(scanned, WORLD.trust, WORLD.status, NOW)


def _outcome(raw: bytes) -> tuple[Any, ...]:
    try:
        live = parse_live_code(raw)
    except CredentialError as error:
        return ("refused", error.reason, str(error))
    return ("parsed", live, live.credential.signed_bytes())


def test_the_switch_reaches_the_general_parser() -> None:
    """Guard for this file: with the fast paths off, the general parser is what runs."""
    credential = tamper.BASES[0].credential
    parsed, cnf, key = parse_bound_parts(credential)
    assert cnf is None and key is not None
    with general_only():
        general, general_cnf, general_key = parse_bound_parts(credential)
    assert general_key is None and general_cnf is not None
    assert general == parsed


@pytest.mark.parametrize("base", tamper.BASES, ids=lambda base: base.credential[-2:].hex())
def test_the_holder_key_handed_over_is_the_decoded_one(base: tamper.Base) -> None:
    parsed, cnf, key = parse_bound_parts(base.credential)
    assert cnf is None
    assert key is not None
    with general_only():
        general, general_cnf, _ = parse_bound_parts(base.credential)
    assert parsed == general
    assert HolderKey(*key) == holder_key(general_cnf)
    assert parse_bound_credential(base.credential) == (general, general_cnf)
    fast_live, general_live = both(base.raw, _outcome)
    assert fast_live == general_live and fast_live[0] == "parsed"


@pytest.mark.parametrize("vector", vectors.FILE["golden"] + vectors.FILE["accepted"] + vectors.FILE["vectors"],
                         ids=lambda vector: vector["name"])
def test_vectors_reach_the_same_verdict(vector: dict[str, Any]) -> None:
    if "input" not in vector:  # a golden vector: its live code, in its own time step
        lists = {str(vector["claims"]["status_list"]): {"size": 65536, "entries": {}}}
        vector = {"trust": {vector["card_kid"]: "active"}, "status_lists": lists, "now": vector["now"],
                  "input": {"qr_text": vector["qr_text"]}}
    fast, general = both(vector, lambda vector: vectors.run(vector))
    assert fast == general


def test_the_tamper_corpus_reaches_the_same_verdict() -> None:
    """A seeded share of test_live_tamper's mutations (every kind), each verified both ways."""
    rng = random.Random(SEED)
    for case in range(MUTATIONS):
        base = rng.choice(tamper.BASES)
        if rng.random() < tamper.TEXT_SHARE:
            scanned: str | bytes = tamper.text_mutation(rng, base)
        else:
            mutate = rng.choice(tamper.BYTE_MUTATIONS)
            mutated = mutate(rng, base)
            scanned = mutated if mutate.__name__ == "printed_copy" else to_live_qr_text(mutated)
        fast, general = both(scanned, _verify)
        assert fast == general, f"case {case}: {scanned!r}"


@settings(max_examples=300, deadline=None)
@given(base=st.sampled_from(tamper.BASES), data=st.data())
def test_byte_mutations_reach_the_same_verdict(base: tamper.Base, data: st.DataObject) -> None:
    raw = bytearray(base.raw)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    fast, general = both(bytes(raw), _outcome)
    assert fast == general
    fast_verdict, general_verdict = both(to_live_qr_text(bytes(raw)), _verify)
    assert fast_verdict == general_verdict


def test_scanner_framing_and_digits_reach_the_same_verdict() -> None:
    base = tamper.BASES[0]
    for scanned in (base.text, f"]Q1{base.text}\r\n", f"\ufeff {base.text}\t", base.text + "0", base.text[:-1],
                    base.text.replace("8402", "8401", 1), base.text[:40] + "x" + base.text[41:]):
        fast, general = both(scanned, _verify)
        assert fast == general, scanned
        try:
            raw = live_code_from_text(scanned)
        except CredentialError:
            continue
        assert both(raw, _outcome)[0] == both(raw, _outcome)[1]
