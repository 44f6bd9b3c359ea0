"""Interoperability with an independent COSE implementation (pycose, a test-only dependency).

pycose decodes our credentials and verifies them with nothing but the published JWK, and messages that pycose builds
and signs verify with our verifier. That keeps the format honest RFC 9052 rather than "whatever our code does".
"""

from __future__ import annotations

import base64
from datetime import date
from typing import Any

import cbor2
import pytest
from pycose.algorithms import EdDSA, Es256
from pycose.exceptions import CoseIllegalAlgorithm
from pycose.headers import KID, Algorithm
from pycose.keys.curves import P256, Ed25519
from pycose.keys.ec2 import EC2Key
from pycose.keys.keyparam import KpAlg, KpKid
from pycose.keys.okp import OKPKey
from pycose.messages.sign1message import Sign1Message

from issuance.credential import sign_credential
from issuance.keys import LocalSigner, PrivateKey, public_spki
from tests.vectors import make_vectors
from verification.crypto import (
    P256_HALF_ORDER,
    P256_ORDER,
    PublicKey,
    load_public_key,
    public_jwk,
    verify_signature,
)
from verification.errors import CredentialError
from verification.format import ALG_EDDSA, ALG_ES256, CardClaims, encode_claims, parse_credential

CLAIMS = CardClaims(
    card_id=bytes.fromhex("a1b2c3d4e5f60718"),
    member_number="0000004242",
    display_name="Trần Thị Ngọc Ánh",
    chapter_code="DNG-HAICHAU-03",
    card_version=3,
    issued_on=date(2025, 9, 2),
    expires_on=date(2028, 9, 1),
    status_list=7,
    status_index=131071,
)
KIDS = {ALG_EDDSA: make_vectors.ED25519_KID, ALG_ES256: make_vectors.ES256_KID}
PRIVATE_KEYS: dict[int, PrivateKey] = {
    ALG_EDDSA: make_vectors.ed25519_test_key(),
    ALG_ES256: make_vectors.p256_test_key(),
}
ALGORITHMS = [ALG_EDDSA, ALG_ES256]


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _public_key(algorithm: int) -> PublicKey:
    return PRIVATE_KEYS[algorithm].public_key()


def _published_jwk(algorithm: int) -> dict[str, Any]:
    return public_jwk(KIDS[algorithm], algorithm, _public_key(algorithm))


def cose_key_from_jwk(jwk: dict[str, Any]) -> OKPKey | EC2Key:
    """A pycose verification key built from the published JWK alone, bound to its kid and algorithm."""
    params = {KpKid: bytes.fromhex(jwk["kid"])}
    if jwk["kty"] == "OKP":
        assert jwk["crv"] == "Ed25519"
        return OKPKey(crv=Ed25519, x=_unb64(jwk["x"]), optional_params={**params, KpAlg: EdDSA})
    assert (jwk["kty"], jwk["crv"]) == ("EC", "P-256")
    return EC2Key(crv=P256, x=_unb64(jwk["x"]), y=_unb64(jwk["y"]), optional_params={**params, KpAlg: Es256})


def pycose_decode(raw: bytes) -> Sign1Message:
    """Decode a tagged COSE_Sign1 with pycose.

    ``Sign1Message.decode`` in pycose 1.1.0 rejects every tagged message under cbor2 >= 6, which decodes arrays inside
    tags as tuples (pycose issue #141). So this checks the tag here and hands pycose the untagged array, which cbor2
    still decodes as a list; header parsing, Sig_structure and verification all remain pycose's own.
    """
    assert raw[0] == 0xD2  # tag 18 (COSE_Sign1), one byte
    array = cbor2.loads(raw[1:])
    assert isinstance(array, list)
    return Sign1Message.from_cose_obj(array, allow_unknown_attributes=False)


def _sign_with_pycose(algorithm: int, payload: bytes) -> bytes:
    jwk = _published_jwk(algorithm)
    key: OKPKey | EC2Key
    if algorithm == ALG_EDDSA:
        key = OKPKey(crv=Ed25519, x=_unb64(jwk["x"]), d=make_vectors.ED25519_SEED)
        cose_alg: Any = EdDSA
    else:
        key = EC2Key(crv=P256, x=_unb64(jwk["x"]), y=_unb64(jwk["y"]), d=make_vectors.P256_SCALAR)
        cose_alg = Es256
    message = Sign1Message(phdr={Algorithm: cose_alg, KID: KIDS[algorithm]}, payload=payload, key=key)
    return bytes(message.encode(tag=True))


def _issue(algorithm: int) -> bytes:
    return sign_credential(CLAIMS, LocalSigner(KIDS[algorithm], algorithm, PRIVATE_KEYS[algorithm]))


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=["EdDSA", "ES256"])
def test_pycose_verifies_our_credential(algorithm: int) -> None:
    raw = _issue(algorithm)
    message = pycose_decode(raw)
    cose_alg = message.get_attr(Algorithm)
    assert cose_alg is not None and cose_alg.identifier == algorithm
    assert message.get_attr(KID) == KIDS[algorithm]
    assert message.uhdr == {}
    assert message.payload == encode_claims(CLAIMS)
    message.key = cose_key_from_jwk(_published_jwk(algorithm))
    assert message.verify_signature() is True


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=["EdDSA", "ES256"])
@pytest.mark.parametrize("part", ["signature", "payload", "protected"])
def test_pycose_rejects_a_tampered_credential(algorithm: int, part: str) -> None:
    raw = bytearray(_issue(algorithm))
    # Offsets: the last signature byte; a byte of the display name inside the payload; the kid's last byte.
    at = {"signature": len(raw) - 1, "payload": raw.index("Trần".encode()), "protected": 9}[part]
    raw[at] ^= 0x01
    message = pycose_decode(bytes(raw))
    message.key = cose_key_from_jwk(_published_jwk(algorithm))
    assert message.verify_signature() is False


def test_pycose_refuses_an_algorithm_the_key_is_not_bound_to() -> None:
    raw = _issue(ALG_EDDSA)
    message = pycose_decode(raw)
    message.key = cose_key_from_jwk(_published_jwk(ALG_ES256))
    with pytest.raises(CoseIllegalAlgorithm):
        message.verify_signature()


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=["EdDSA", "ES256"])
def test_our_verifier_accepts_pycose_messages(algorithm: int) -> None:
    raw = _sign_with_pycose(algorithm, encode_claims(CLAIMS))
    public = load_public_key(algorithm, public_spki(PRIVATE_KEYS[algorithm]))
    if algorithm == ALG_ES256:
        # pycose does not normalise ECDSA's s; for these claims its RFC 6979 signature is the high-S twin, which
        # verifiers refuse (docs/card-format.md §6.1 step 3). Flipped to n - s, the same signature verifies.
        s = int.from_bytes(raw[-32:], "big")
        assert s > P256_HALF_ORDER
        with pytest.raises(CredentialError) as refused:
            verify_signature(parse_credential(raw), algorithm, public)
        assert refused.value.reason == "bad_signature"
        raw = raw[:-32] + (P256_ORDER - s).to_bytes(32, "big")
    parsed = parse_credential(raw)
    verify_signature(parsed, algorithm, public)
    assert parsed.claims == CLAIMS
    assert parsed.kid == KIDS[algorithm]


def test_pycose_eddsa_message_is_byte_identical_to_ours() -> None:
    # Same canonical header, same payload, deterministic Ed25519: two implementations, one byte string.
    assert _sign_with_pycose(ALG_EDDSA, encode_claims(CLAIMS)) == _issue(ALG_EDDSA)


@pytest.mark.parametrize("vector", [v for v in make_vectors.build_vectors()["vectors"] if v["alg"] == ALG_ES256],
                         ids=lambda v: v["name"])
def test_pycose_reproduces_the_es256_vectors(vector: dict[str, Any]) -> None:
    """pycose signs with RFC 6979 nonces (python-ecdsa), like the vector generator: identical credentials."""
    assert _sign_with_pycose(ALG_ES256, bytes.fromhex(vector["payload"])).hex() == vector["credential"]
