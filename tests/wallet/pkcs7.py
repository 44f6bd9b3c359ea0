"""Check a detached PKCS#7 (CMS SignedData, DER) signature with ``cryptography`` and a few lines of DER reading.

``cryptography`` builds PKCS#7 signatures but does not verify them, so the test reads the SignerInfo itself
(RFC 5652 §5.3): the signed attributes, re-tagged as a SET, are what the signer's key signed, and their
``messageDigest`` attribute is the SHA-256 of the detached content.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

MESSAGE_DIGEST_OID = bytes.fromhex("06092a864886f70d010904")  # 1.2.840.113549.1.9.4, DER-encoded


def _tlv(data: bytes, pos: int) -> tuple[int, int, int, int]:
    """(tag, start, value start, end) of the TLV at ``pos``."""
    tag = data[pos]
    length = data[pos + 1]
    head = 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos + 2:pos + 2 + count], "big")
        head += count
    return tag, pos, pos + head, pos + head + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    items, pos = [], start
    while pos < end:
        item = _tlv(data, pos)
        items.append(item)
        pos = item[3]
    return items


def verify_detached(signature: bytes, content: bytes) -> list[x509.Certificate]:
    """Verify ``signature`` over ``content``; returns the certificates it carries, signer first.

    Raises:
        AssertionError or cryptography.exceptions.InvalidSignature when it does not verify.
    """
    certificates = pkcs7.load_der_pkcs7_certificates(signature)
    _tag, _start, value, end = _tlv(signature, 0)            # ContentInfo
    _oid, explicit = _children(signature, value, end)         # contentType, [0] EXPLICIT
    signed_data = _tlv(signature, explicit[2])                 # SignedData SEQUENCE
    parts = _children(signature, signed_data[2], signed_data[3])
    encapsulated = parts[2]
    assert len(_children(signature, encapsulated[2], encapsulated[3])) == 1, "the content must be detached"
    signer_infos = parts[-1]
    (signer_info,) = _children(signature, signer_infos[2], signer_infos[3])
    fields = _children(signature, signer_info[2], signer_info[3])
    signed_attrs = next(f for f in fields if f[0] == 0xA0)
    signature_value = fields[-1]
    attrs = bytearray(signature[signed_attrs[1]:signed_attrs[3]])
    attrs[0] = 0x31  # [0] IMPLICIT → SET OF, as signed
    digest_at = bytes(attrs).index(MESSAGE_DIGEST_OID) + len(MESSAGE_DIGEST_OID)
    _set, _s, set_value, _e = _tlv(bytes(attrs), digest_at)
    _octets, _o, digest_value, digest_end = _tlv(bytes(attrs), set_value)
    assert bytes(attrs)[digest_value:digest_end] == hashlib.sha256(content).digest(), "messageDigest differs"
    signer = next(c for c in certificates if not c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    public_key = signer.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(signature[signature_value[2]:signature_value[3]], bytes(attrs), padding.PKCS1v15(),
                      hashes.SHA256())
    return [signer, *(c for c in certificates if c is not signer)]
