"""The NDEF message written to a member's NFC tag (decoding: :mod:`verification.ndef`).

The message holds one **external type record** (TNF 4, type ``hoilhpn.vn:card1``) whose payload is the raw
credential bytes — the tagged COSE_Sign1 of docs/card-format.md, not its QR digits. When a card page URL is given, a
**URI record** (well-known type ``U``, prefix code ``04`` = ``https://``) comes first: Android dispatches a tag on its
first record, so a phone without the union's app opens the member's card page, while readers look the card record up
by type wherever it is.

Records are short records (SR) when their payload is below 256 bytes, which every credential is (≤ 512 bytes would
need the 4-byte length form, which the encoder handles too).

The encoder itself lives in :mod:`verification.ndef` (:func:`~verification.ndef.encode_card_ndef`), so that a door
station, which never imports issuance, writes tags with the same code; this module keeps issuance's names.
"""

from __future__ import annotations

from verification.ndef import URI_PREFIX_HTTPS, encode_card_ndef, encode_ndef_tlv

__all__ = ["URI_PREFIX_HTTPS", "encode_card_ndef", "ndef_tlv"]


def ndef_tlv(message: bytes) -> bytes:
    """``03 <length> <message> FE``: the length in one byte, or ``FF`` + two bytes from 255 on."""
    return encode_ndef_tlv(message)
