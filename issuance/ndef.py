"""The NDEF message written to a member's NFC tag (decoding: :mod:`verification.ndef`).

The message holds one **external type record** (TNF 4, type ``hoilhpn.vn:card1``) whose payload is the raw
credential bytes — the tagged COSE_Sign1 of docs/card-format.md, not its QR digits. When a card page URL is given, a
**URI record** (well-known type ``U``, prefix code ``04`` = ``https://``) comes first: Android dispatches a tag on its
first record, so a phone without the union's app opens the member's card page, while readers look the card record up
by type wherever it is.

Records are short records (SR) when their payload is below 256 bytes, which every credential is (≤ 512 bytes would
need the 4-byte length form, which the encoder handles too).
"""

from __future__ import annotations

from typing import Final

from verification.ndef import CARD_RECORD_TYPE, TNF_EXTERNAL, TNF_WELL_KNOWN, URI_RECORD_TYPE, encode_ndef_tlv

URI_PREFIX_HTTPS: Final = 0x04

_MB, _ME, _SR = 0x80, 0x40, 0x10


def _record(tnf: int, record_type: bytes, payload: bytes, *, first: bool, last: bool) -> bytes:
    header = tnf | (_MB if first else 0) | (_ME if last else 0)
    if len(payload) < 256:
        length = bytes((len(payload),))
        header |= _SR
    else:
        length = len(payload).to_bytes(4, "big")
    return bytes((header, len(record_type))) + length + record_type + payload


def encode_card_ndef(credential: bytes, *, uri: str | None = None) -> bytes:
    """The NDEF message for a card tag.

    Args:
        credential: The raw credential bytes (COSE_Sign1).
        uri: Optional ``https://`` URL of the member's card page, written as a URI record before the card record.

    Returns:
        The NDEF message bytes (wrap them with :func:`ndef_tlv` for the tag's memory).

    Raises:
        ValueError: An empty credential or a URI that is not ``https://``.
    """
    if not credential:
        raise ValueError("empty credential")
    card = _record(TNF_EXTERNAL, CARD_RECORD_TYPE, credential, first=uri is None, last=True)
    if uri is None:
        return card
    if not uri.startswith("https://") or len(uri) == len("https://"):
        raise ValueError("the card page URI must be an https:// URL")
    uri_payload = bytes((URI_PREFIX_HTTPS,)) + uri.removeprefix("https://").encode()
    return _record(TNF_WELL_KNOWN, URI_RECORD_TYPE, uri_payload, first=True, last=False) + card


def ndef_tlv(message: bytes) -> bytes:
    """``03 <length> <message> FE``: the length in one byte, or ``FF`` + two bytes from 255 on."""
    return encode_ndef_tlv(message)
