"""Writing and reading member cards on NFC tags (``cardsvc nfc write`` / ``cardsvc nfc read``).

The tag work is :class:`verification.readers.pcsc.Ntag`; this module opens the reader, encodes the NDEF message,
runs the caller's ``verify`` on what the tag holds, and reports. Reader and tag failures propagate as
:mod:`verification.readers.errors` (each message says what the person at the reader should do), decoding failures
as :class:`verification.ndef.NdefError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from issuance.ndef import encode_card_ndef
from verification.ndef import card_credential_from_ndef
from verification.readers.errors import TagVerifyError
from verification.readers.pcsc import Ntag, PcscTagReader

Verify = Callable[[bytes], object]


@dataclass(frozen=True)
class WriteReport:
    """A card written, read back byte for byte and verified."""

    reader: str
    uid: str
    variant: str
    credential_bytes: int
    ndef_bytes: int
    capacity: int
    locked: bool
    password_protected: bool
    apdu_count: int
    verdict: object


@dataclass(frozen=True)
class ReadReport:
    """A card read from a tag: the credential, the APDUs the read took and the verdict on it."""

    credential: bytes
    apdu_count: int
    verdict: object
    reader: str = ""


def _verdict_ok(verdict: object) -> bool:
    return bool(getattr(verdict, "ok", True))


def write_card(credential: bytes, *, reader_name: str | None, uri: str | None, lock: bool, password: bytes | None,
               verify: Verify, wait: float = 0.0) -> WriteReport:
    """Write a credential to the NTAG on the reader, read it back, verify it, then lock it if asked.

    The lock bits are set only after the credential read back from the tag verified: a tag is never made read-only
    with a card that does not verify.

    Args:
        credential: The raw credential bytes.
        reader_name: ``--reader`` (index, name or part of a name); None when one reader is connected.
        uri: Optional ``https://`` card page, written as a URI record before the card record.
        lock: Make the tag permanently read-only.
        password: Protect the tag's memory against writes with this password (sniffable: PWD_AUTH is in clear);
            also needed to rewrite a tag protected before.
        verify: Called with the credential read back; returns a verdict (with an ``ok`` attribute) or raises.
        wait: Seconds to wait for a tag.

    Raises:
        ReaderError: see :mod:`verification.readers.errors` (no reader, several readers, no tag, tag removed,
            not an NTAG, too small, locked, wrong password).
        TagVerifyError: The read-back credential did not verify and ``lock`` was asked (the tag stays unlocked).
    """
    message = encode_card_ndef(credential, uri=uri)
    with PcscTagReader.open(reader_name, wait=wait) as reader:
        uid = reader.uid()
        ntag = Ntag(reader)
        written = ntag.write_ndef(message, lock=False, password=password)
        # write_ndef read the message back and compared it byte for byte: verify what the tag holds.
        verdict = verify(card_credential_from_ndef(written.read_back))
        if lock:
            if not _verdict_ok(verdict):
                raise TagVerifyError("the card written does not verify; the tag was left unlocked")
            ntag.lock(written.variant)
        return WriteReport(reader.name, uid.hex(), written.variant.name, len(credential), written.ndef_bytes,
                           written.capacity, lock, written.password_protected, ntag.apdu_count + 1, verdict)


def read_card(reader_name: str | None, verify: Verify, *, wait: float = 0.0) -> ReadReport:
    """Read the card on the reader, reading only the pages the NDEF TLV needs, and verify it.

    Raises:
        ReaderError: see :mod:`verification.readers.errors`.
        NdefError: ``empty`` (blank tag, or a write that never completed), ``malformed``, ``no_card_record``.
    """
    with PcscTagReader.open(reader_name, wait=wait) as reader:
        ntag = Ntag(reader)
        credential = card_credential_from_ndef(ntag.read_ndef())
        return ReadReport(credential, ntag.apdu_count, verify(credential), reader.name)
