"""NDEF on NFC Forum Type 2 tags: the TLV layout of the tag's user memory and the card's NDEF record.

A card tag holds, from the first byte of user memory (NTAG21x page 4), a sequence of TLVs (NFC Forum Type 2 Tag
Technical Specification §2.3): ``00`` NULL (no length), ``01`` Lock Control and ``02`` Memory Control (3-byte values
describing lock bits and reserved memory), ``03`` the NDEF message, ``FD`` proprietary, ``FE`` terminator (no length).
A length is one byte, or ``FF`` followed by two bytes big-endian for lengths of 255 and more. A factory NTAG213 starts
with a Lock Control TLV (``01 03 A0 0C 34``) before its NDEF TLV; NTAG215/216 start with the NDEF TLV.

The NDEF message (NFC Forum NDEF 1.0) carries this union's credential in an **external type record** (TNF 4) of type
``hoilhpn.vn:card1`` whose payload is the raw credential bytes (docs/card-format.md); a URI record pointing at the
member's card page may come first, so that a phone without the union's app opens the page.

Readers read only what the NDEF TLV needs: :func:`locate_ndef_tlv` walks the TLVs of a prefix of the user memory and
says either where the NDEF message is or how many bytes it must see to go on.

Nothing here touches a reader; every failure is an :class:`NdefError` with a stable ``reason``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

TLV_NULL: Final = 0x00
TLV_LOCK_CONTROL: Final = 0x01
TLV_MEMORY_CONTROL: Final = 0x02
TLV_NDEF: Final = 0x03
TLV_TERMINATOR: Final = 0xFE
TNF_WELL_KNOWN: Final = 0x01
TNF_EXTERNAL: Final = 0x04
CARD_RECORD_TYPE: Final = b"hoilhpn.vn:card1"
URI_RECORD_TYPE: Final = b"U"
URI_PREFIX_HTTPS: Final = 0x04
# No NTAG21x has more than 888 bytes of user memory; a longer TLV is corrupt, whatever its bytes say.
MAX_USER_MEMORY: Final = 1024

_MB, _ME, _CF, _SR, _IL = 0x80, 0x40, 0x20, 0x10, 0x08

NdefReason = Literal["empty", "malformed", "no_card_record"]


class NdefError(ValueError):
    """The tag's memory holds no usable NDEF card message.

    ``reason`` is ``empty`` (no NDEF TLV, or one of length 0: a blank tag, or one whose write never completed),
    ``malformed`` (TLV or record structure broken) or ``no_card_record`` (a valid NDEF message without the card
    record, e.g. a tag written by another application).
    """

    def __init__(self, reason: NdefReason, message: str) -> None:
        super().__init__(message)
        self.reason: NdefReason = reason


@dataclass(frozen=True)
class NdefTlv:
    """Where the NDEF TLV sits in the user memory (offsets from its first byte)."""

    tag_offset: int
    value_offset: int
    length: int

    @property
    def length_offset(self) -> int:
        """The offset of the first length byte: writers set it last (``00`` until the message is complete)."""
        return self.tag_offset + 1

    @property
    def end(self) -> int:
        """The offset just past the NDEF message."""
        return self.value_offset + self.length


@dataclass(frozen=True)
class NeedMore:
    """The TLV walk needs at least ``size`` bytes of user memory to go on."""

    size: int


@dataclass(frozen=True)
class NdefRecord:
    """One NDEF record (chunked records are refused, so the payload is complete)."""

    tnf: int
    type: bytes
    payload: bytes
    id: bytes = b""


def _tlv_length(data: bytes, at: int) -> tuple[int, int] | NeedMore:
    """The (length, value offset) of the TLV whose length field starts at ``at``."""
    if at >= len(data):
        return NeedMore(at + 1)
    if data[at] != 0xFF:
        return data[at], at + 1
    if at + 3 > len(data):
        return NeedMore(at + 3)
    length = int.from_bytes(data[at + 1:at + 3], "big")
    if length < 0xFF:
        raise NdefError("malformed", "3-byte TLV length below 255")
    return length, at + 3


def locate_ndef_tlv(data: bytes) -> NdefTlv | NeedMore:
    """Walk the TLVs of a prefix of the user memory up to the first NDEF TLV.

    Args:
        data: The first bytes of the user memory (NTAG21x: from page 4).

    Returns:
        The NDEF TLV's position (its value may extend beyond ``data``), or :class:`NeedMore` with the number of bytes
        the walk needs.

    Raises:
        NdefError: ``empty`` when a terminator comes before any NDEF TLV, ``malformed`` for a broken length or a TLV
            running past any NTAG21x memory.
    """
    at = 0
    while True:
        if at >= MAX_USER_MEMORY:
            raise NdefError("malformed", "no NDEF TLV within the user memory")
        if at >= len(data):
            return NeedMore(at + 1)
        tag = data[at]
        if tag == TLV_NULL:
            at += 1
            continue
        if tag == TLV_TERMINATOR:
            raise NdefError("empty", "terminator TLV before any NDEF TLV")
        field = _tlv_length(data, at + 1)
        if isinstance(field, NeedMore):
            return field
        length, value_offset = field
        if value_offset + length > MAX_USER_MEMORY:
            raise NdefError("malformed", "TLV longer than any NTAG21x user memory")
        if tag == TLV_NDEF:
            return NdefTlv(at, value_offset, length)
        # Lock Control, Memory Control, proprietary and unknown TLVs are skipped (NFC Forum T2T §2.3).
        at = value_offset + length


def leading_control_tlvs_end(data: bytes) -> int | NeedMore:
    """The offset just past the Lock/Memory Control TLVs that open the user memory (0 if there are none).

    A writer keeps these (they describe the tag's dynamic lock bits) and puts its NDEF TLV right after them.
    Anything that is not a well-formed control TLV ends the walk.
    """
    at = 0
    while at < len(data) and data[at] in (TLV_LOCK_CONTROL, TLV_MEMORY_CONTROL):
        try:
            field = _tlv_length(data, at + 1)
        except NdefError:
            return at
        if isinstance(field, NeedMore):
            return field
        length, value_offset = field
        if length != 3:
            return at
        if value_offset + length > len(data):
            return NeedMore(value_offset + length)
        at = value_offset + length
    if at >= len(data):
        return NeedMore(at + 1)
    return at


def parse_tlvs(data: bytes) -> bytes:
    """The NDEF message in a dump of the user memory.

    Args:
        data: The user memory from its first byte, at least up to the end of the NDEF TLV.

    Returns:
        The NDEF message bytes (never empty).

    Raises:
        NdefError: ``empty`` for no NDEF TLV or one of length 0; ``malformed`` for a broken or truncated TLV.
    """
    found = locate_ndef_tlv(data)
    if isinstance(found, NeedMore):
        raise NdefError("malformed" if data else "empty", "user memory ends inside the TLVs")
    if found.length == 0:
        raise NdefError("empty", "empty NDEF TLV")
    if found.end > len(data):
        raise NdefError("malformed", "NDEF TLV runs past the data")
    return data[found.value_offset:found.end]


def encode_ndef_tlv(message: bytes, *, terminator: bool = True) -> bytes:
    """``03 <length> <message>`` followed by the ``FE`` terminator (omitted only when the memory is exactly full)."""
    size = len(message)
    if size < 0xFF:
        header = bytes((TLV_NDEF, size))
    elif size <= 0xFFFE:
        header = bytes((TLV_NDEF, 0xFF)) + size.to_bytes(2, "big")
    else:
        raise ValueError("NDEF message too long for a TLV")
    return header + message + (bytes((TLV_TERMINATOR,)) if terminator else b"")


def _record(tnf: int, record_type: bytes, payload: bytes, *, first: bool, last: bool) -> bytes:
    header = tnf | (_MB if first else 0) | (_ME if last else 0)
    if len(payload) < 256:
        length = bytes((len(payload),))
        header |= _SR
    else:
        length = len(payload).to_bytes(4, "big")
    return bytes((header, len(record_type))) + length + record_type + payload


def encode_card_ndef(credential: bytes, *, uri: str | None = None) -> bytes:
    """The NDEF message for a card tag (the one encoder: issuance and the door station's NFC writer use it).

    Args:
        credential: The raw credential bytes (COSE_Sign1).
        uri: Optional ``https://`` URL of the member's card page, written as a URI record before the card record.

    Returns:
        The NDEF message bytes (wrap them with :func:`encode_ndef_tlv` for the tag's memory).

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


def parse_records(message: bytes) -> list[NdefRecord]:
    """Decode an NDEF message into its records.

    Raises:
        NdefError: ``empty`` for no bytes; ``malformed`` for a bad MB/ME sequence, chunked records, truncation or
            trailing bytes.
    """
    if not message:
        raise NdefError("empty", "empty NDEF message")
    records: list[NdefRecord] = []
    at, size, header = 0, len(message), 0
    while at < size and not header & _ME:
        header = message[at]
        if bool(header & _MB) != (at == 0):
            raise NdefError("malformed", "message-begin flag misplaced")
        if header & _CF:
            raise NdefError("malformed", "chunked NDEF records are not supported")
        fixed = 2 + (1 if header & _SR else 4) + (1 if header & _IL else 0)
        if at + fixed > size:
            raise NdefError("malformed", "NDEF record header truncated")
        type_length = message[at + 1]
        if header & _SR:
            payload_length, cursor = message[at + 2], at + 3
        else:
            payload_length, cursor = int.from_bytes(message[at + 2:at + 6], "big"), at + 6
        id_length = 0
        if header & _IL:
            id_length, cursor = message[cursor], cursor + 1
        end = cursor + type_length + id_length + payload_length
        if end > size:
            raise NdefError("malformed", "NDEF record runs past the message")
        record_type = message[cursor:cursor + type_length]
        record_id = message[cursor + type_length:cursor + type_length + id_length]
        records.append(NdefRecord(header & 0x07, record_type, message[cursor + type_length + id_length:end], record_id))
        at = end
    if at != size or not header & _ME:
        raise NdefError("malformed", "bytes after the message-end record, or no message-end record")
    return records


def card_credential_from_ndef(message: bytes) -> bytes:
    """The raw credential bytes carried by the card record of an NDEF message.

    External type names compare case-insensitively (NFC Forum RTD 1.0 §2.3); exactly one card record must be
    present.

    Raises:
        NdefError: ``malformed`` for a broken message or several card records, ``no_card_record`` when there is none,
            ``empty`` for an empty card record.
    """
    cards = [r for r in parse_records(message) if r.tnf == TNF_EXTERNAL and r.type.lower() == CARD_RECORD_TYPE]
    if not cards:
        raise NdefError("no_card_record", f"no {CARD_RECORD_TYPE.decode()} record in the NDEF message")
    if len(cards) > 1:
        raise NdefError("malformed", "several card records in one NDEF message")
    if not cards[0].payload:
        raise NdefError("empty", "empty card record")
    return cards[0].payload
