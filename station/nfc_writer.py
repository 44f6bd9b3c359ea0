"""Writing cards to blank NFC tags at a door station, when an officer hands the write to the station.

The tag work is the same as ``cardsvc nfc write``: :func:`verification.ndef.encode_card_ndef` for the message,
:meth:`verification.readers.pcsc.Ntag.write_ndef` to write it (an interrupted write leaves the tag empty, never half
written) and compare the read-back byte for byte, then the caller's ``verify`` on the credential the tag holds; the
lock bits are set only after that verified. The reader is opened per write through an injectable opener, so tests
run against a virtual tag without pcscd.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Final

from verification.ndef import card_credential_from_ndef, encode_card_ndef
from verification.readers import TagReader
from verification.readers.errors import TagVerifyError

DEFAULT_TAG_WAIT_SECONDS: Final = 30.0
OpenReader = Callable[[], AbstractContextManager[TagReader]]


@dataclass(frozen=True)
class WrittenTag:
    """A tag written, read back identical, and locked when asked.

    Attributes:
        uid: The tag's UID in hex.
        variant: ``NTAG213`` / ``NTAG215`` / ``NTAG216``.
        verified: The credential read back verified with the station's trust data.
        locked: The tag was made permanently read-only.
    """

    uid: str
    variant: str
    verified: bool
    locked: bool


class TagWriter:
    """Writes card credentials to the tag on one PC/SC reader.

    Args:
        reader: The reader (index, name or part of a name); None when one reader is connected.
        wait: Seconds to wait for a tag to be put on the reader.
        open_reader: Opens the connection to the tag (default: :meth:`PcscTagReader.open` with ``reader`` and
            ``wait``); tests pass a virtual tag.
    """

    def __init__(self, reader: str | None = None, *, wait: float = DEFAULT_TAG_WAIT_SECONDS,
                 open_reader: OpenReader | None = None) -> None:
        self.reader = reader or None
        self.wait = wait
        self._open = open_reader if open_reader is not None else self._open_pcsc

    def _open_pcsc(self) -> AbstractContextManager[TagReader]:
        from verification.readers.pcsc import PcscTagReader

        return PcscTagReader.open(self.reader, wait=self.wait)

    def write(self, credential: bytes, *, lock: bool, verify: Callable[[bytes], bool]) -> WrittenTag:
        """Write one card to the tag on the reader.

        Args:
            credential: The raw credential bytes.
            lock: Make the tag read-only once what it holds verified.
            verify: Whether a credential verifies (with the station's event bundle).

        Returns:
            What was written.

        Raises:
            ReaderError: No reader or tag, not an NTAG21x, too small, locked, protected, removed (each message says
                what to do); TagVerifyError when the read-back differs, or does not verify and ``lock`` was asked
                (the tag stays unlocked).
            NdefError: The tag's content cannot be decoded after the write.
        """
        from verification.readers.pcsc import Ntag

        with self._open() as reader:
            uid = reader.uid().hex()
            ntag = Ntag(reader)
            written = ntag.write_ndef(encode_card_ndef(credential), lock=False)
            # write_ndef already compared the read-back with what it wrote (TagVerifyError otherwise).
            verified = verify(card_credential_from_ndef(written.read_back))
            if lock:
                if not verified:
                    raise TagVerifyError("the card written does not verify here; the tag was left unlocked")
                ntag.lock(written.variant)
            return WrittenTag(uid, written.variant.name, verified, lock)
