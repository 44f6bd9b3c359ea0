"""Reader and tag failures, translated at the edge from pyscard's exceptions.

::

    ReaderError                   base: something a person at the reader can act on (``str()`` says what)
    ├── NoReaderError             no PC/SC reader (or pcscd is not running)
    ├── SeveralReadersError       several readers and no ``--reader`` choice (``.names``)
    ├── ReaderNotFoundError       ``--reader`` matches no reader, or several (``.choice``, ``.names``)
    └── TagError                  about the tag on the reader
        ├── NoTagError            no tag on the reader
        ├── TagRemovedError       the tag left the field during an operation
        ├── NotAnNtagError        GET_VERSION names no NTAG213/215/216 (``.version``, None if unanswered)
        ├── TagTooSmallError      the NDEF TLV does not fit the user memory (``.needed``, ``.capacity``)
        ├── TagLockedError        read-only: CC access byte, static or dynamic lock bits
        │   └── TagPasswordError  write-protected by a password that was not given or is wrong
        ├── TagFormatError        the capability container is not an NDEF one
        ├── TagCommandError       the reader or tag refused a command (``.sw`` status word)
        └── TagVerifyError        what was read back differs from what was written

Decoding failures of the tag's content are :class:`verification.ndef.NdefError` (reason ``empty``, ``malformed``,
``no_card_record``); the credential's own checks are :class:`verification.errors.CredentialError`.
"""

from __future__ import annotations

from collections.abc import Sequence


class ReaderError(Exception):
    """Base of every reader and tag failure."""


class NoReaderError(ReaderError):
    """No PC/SC reader is connected (or the PC/SC service is not running)."""


class SeveralReadersError(ReaderError):
    """Several readers are connected and none was chosen."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        listing = ", ".join(f"{i}: {name}" for i, name in enumerate(self.names))
        super().__init__(f"{len(self.names)} readers are connected; choose one with --reader ({listing})")


class ReaderNotFoundError(ReaderError):
    """The chosen reader is not connected, or the choice matches several readers."""

    def __init__(self, choice: str, names: Sequence[str]) -> None:
        self.choice = choice
        self.names = tuple(names)
        listing = ", ".join(self.names) or "none"
        super().__init__(f"no single reader matches {choice!r} (connected: {listing})")


class TagError(ReaderError):
    """Base of the failures about the tag on the reader."""


class NoTagError(TagError):
    """No tag is on the reader."""


class TagRemovedError(TagError):
    """The tag left the reader's field during an operation.

    After an interrupted write the tag is either complete or reads as empty (the NDEF length is written last); write
    it again.
    """


class NotAnNtagError(TagError):
    """The tag is not an NTAG213, NTAG215 or NTAG216."""

    def __init__(self, message: str, version: bytes | None) -> None:
        super().__init__(message)
        self.version = version


class TagTooSmallError(TagError):
    """The NDEF TLV needs more bytes than the tag's user memory holds."""

    def __init__(self, needed: int, capacity: int, variant: str) -> None:
        super().__init__(f"the card needs {needed} bytes but an {variant} holds {capacity}: use an NTAG215 or NTAG216")
        self.needed = needed
        self.capacity = capacity


class TagLockedError(TagError):
    """The tag is read-only (permanently locked)."""


class TagPasswordError(TagLockedError):
    """The tag is write-protected by a password that was not given or did not match."""


class TagFormatError(TagError):
    """The tag's capability container does not describe an NDEF tag."""


class TagCommandError(TagError):
    """The reader or the tag refused a command."""

    def __init__(self, message: str, sw: int | None = None) -> None:
        super().__init__(message)
        self.sw = sw


class TagVerifyError(TagError):
    """The tag's content read back differs from what was written, or did not verify."""
