"""Card readers for door stations and the officer laptop.

A reader is anything that exchanges APDUs with a tag in its field: :class:`TagReader`. The PC/SC implementation
(:class:`verification.readers.pcsc.PcscTagReader`, pyscard) and the NTAG21x logic over any ``TagReader``
(:class:`verification.readers.pcsc.Ntag`) live in :mod:`verification.readers.pcsc`, which is the only module that
imports pyscard; importing this package does not.
"""

from __future__ import annotations

from typing import Protocol


class TagReader(Protocol):
    """One connection to a tag on a reader.

    Implementations translate their transport's failures into :mod:`verification.readers.errors`
    (``TagRemovedError`` when the tag leaves the field).
    """

    @property
    def name(self) -> str:
        """The reader's name, for messages and logs."""
        ...

    def transmit(self, apdu: bytes) -> bytes:
        """Send one command APDU.

        Args:
            apdu: The command APDU.

        Returns:
            The response APDU: response data followed by SW1 SW2.

        Raises:
            TagRemovedError: The tag left the field.
        """
        ...

    def uid(self) -> bytes:
        """The tag's UID (``FF CA 00 00 00``)."""
        ...

    def close(self) -> None:
        """Release the tag (idempotent)."""
        ...
