"""NTAG213/215/216 card tags on PC/SC readers of the ACR122U class (pyscard).

:class:`PcscTagReader` is the pyscard edge: it lists readers, applies the ``--reader`` choice, connects, and
translates pyscard's exceptions into :mod:`verification.readers.errors`. :class:`Ntag` speaks to an NTAG21x through
any :class:`~verification.readers.TagReader` with the ACR122U pseudo-APDUs (ACS API v2.04)::

    FF CA 00 00 00                  UID
    FF B0 00 <page> 10              READ: 16 bytes = 4 pages
    FF D6 00 <page> 04 <4 bytes>    WRITE one page
    FF 00 00 00 <Lc> D4 42 <cmd…>   a native tag command (InCommunicateThru) → D5 43 <status> <answer…>

Reading (:meth:`Ntag.read_ndef`) fetches pages 4–7, walks the TLVs and reads only the further pages the NDEF TLV
needs: a card with the 168-byte budget credential takes 12 READs on any variant, and no GET_VERSION. Writing
(:meth:`Ntag.write_ndef`) identifies the tag with GET_VERSION, checks capacity and locks, then writes so that an
interrupted write is detectable: first an empty NDEF TLV (length 0), then the message pages, and last the page
holding the TLV's first length byte. Until that last page is written the tag reads as empty; a tag pulled off the
reader is therefore either complete or empty, never a partial credential (which would fail its signature anyway).

Password protection (``PWD_AUTH``, ``1B`` + 4 bytes) guards against casual overwriting only: the password crosses the
air in clear and can be sniffed, and NTAG21x clones may ignore it. The cards' integrity rests on their signature.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from smartcard.Exceptions import CardConnectionException, NoCardException, SmartcardException
from smartcard.pcsc.PCSCExceptions import BaseSCardException
from smartcard.System import readers as list_pcsc_readers

from verification.ndef import (
    NdefError,
    NeedMore,
    encode_ndef_tlv,
    leading_control_tlvs_end,
    locate_ndef_tlv,
)
from verification.readers import TagReader
from verification.readers.errors import (
    NoReaderError,
    NoTagError,
    NotAnNtagError,
    ReaderNotFoundError,
    SeveralReadersError,
    TagCommandError,
    TagFormatError,
    TagLockedError,
    TagPasswordError,
    TagRemovedError,
    TagTooSmallError,
    TagVerifyError,
)

SW_OK: Final = 0x9000
FIRST_USER_PAGE: Final = 4
PAGE_SIZE: Final = 4
READ_PAGES: Final = 4
# Password protection starts at the capability container, so that it cannot be set read-only without the password.
PROTECT_FROM_PAGE: Final = 3
_PWD_DOMAIN: Final = b"cardsvc NTAG21x PWD_AUTH v1\x00"


@dataclass(frozen=True)
class NtagVariant:
    """One NTAG21x product, identified by byte 6 (storage size) of its GET_VERSION answer."""

    name: str
    storage_size: int
    last_user_page: int
    dynamic_lock_page: int
    config_page: int
    capability_size: int

    @property
    def user_bytes(self) -> int:
        """User memory in bytes (pages 4 to :attr:`last_user_page`)."""
        return (self.last_user_page - FIRST_USER_PAGE + 1) * PAGE_SIZE

    @property
    def last_page(self) -> int:
        """The PACK page, the last one of the tag."""
        return self.config_page + 3


NTAG213: Final = NtagVariant("NTAG213", 0x0F, 39, 40, 41, 0x12)
NTAG215: Final = NtagVariant("NTAG215", 0x11, 129, 130, 131, 0x3E)
NTAG216: Final = NtagVariant("NTAG216", 0x13, 225, 226, 227, 0x6D)
VARIANTS: Final = {v.storage_size: v for v in (NTAG213, NTAG215, NTAG216)}


@dataclass(frozen=True)
class NdefWrite:
    """What :meth:`Ntag.write_ndef` did (``write_apdus``: APDUs from the first page write to the end)."""

    variant: NtagVariant
    ndef_bytes: int
    capacity: int
    write_apdus: int
    locked: bool
    password_protected: bool
    read_back: bytes


def password_bytes(password: bytes) -> tuple[bytes, bytes]:
    """The tag's PWD (4 bytes) and PACK (2 bytes) for a pass phrase of any length.

    Both come from one SHA-256 so that a tag answering PWD_AUTH with another PACK is recognised as not being the tag
    that was protected. This is no secrecy: PWD_AUTH sends PWD in clear over the air.
    """
    if not password:
        raise ValueError("empty password")
    digest = hashlib.sha256(_PWD_DOMAIN + password).digest()
    return digest[:4], digest[4:6]


def _describe_version(version: bytes) -> str:
    if len(version) == 8 and version[2] == 0x03:
        return "a MIFARE Ultralight EV1"
    if len(version) == 8 and version[2] == 0x04:
        return f"an NTAG21x of storage size {version[6]:02X} (not 213/215/216)"
    return f"a tag answering GET_VERSION with {version.hex(' ')}"


class Ntag:
    """An NTAG213/215/216 on an ACR122U-class reader.

    Args:
        reader: An open connection to the tag.
    """

    def __init__(self, reader: TagReader) -> None:
        self.reader = reader
        self.apdu_count = 0

    def transmit(self, apdu: bytes) -> bytes:
        """Send one APDU, count it and return its response data.

        Raises:
            TagCommandError: The status word is not 90 00.
        """
        self.apdu_count += 1
        response = self.reader.transmit(apdu)
        if len(response) < 2:
            raise TagCommandError(f"short response to {apdu[:2].hex()}")
        sw = int.from_bytes(response[-2:], "big")
        if sw != SW_OK:
            raise TagCommandError(f"the reader answered {sw:04X} to {apdu[:5].hex(' ')}", sw)
        return response[:-2]

    def native(self, command: bytes) -> bytes | None:
        """A tag command through the reader's PN533 (InCommunicateThru); None when the tag NAKs or stays silent."""
        data = self.transmit(bytes((0xFF, 0x00, 0x00, 0x00, len(command) + 2, 0xD4, 0x42)) + command)
        if len(data) < 3 or data[:2] != b"\xd5\x43":
            raise TagCommandError(f"unexpected InCommunicateThru answer {data.hex(' ')}")
        if data[2] != 0x00:
            return None
        return data[3:]

    def get_version(self) -> NtagVariant:
        """Identify the tag with GET_VERSION (``60``).

        Raises:
            NotAnNtagError: The tag is not an NTAG213/215/216.
        """
        version = self.native(b"\x60")
        if version is None:
            raise NotAnNtagError("the tag does not answer GET_VERSION: it is not an NTAG213/215/216 "
                                 "(MIFARE Ultralight, Classic or another tag?)", None)
        variant = VARIANTS.get(version[6]) if len(version) == 8 and version[2] == 0x04 else None
        if variant is None:
            raise NotAnNtagError(f"the tag is {_describe_version(version)}, not an NTAG213/215/216", version)
        return variant

    def read_pages(self, start: int) -> bytes:
        """READ: 16 bytes, pages ``start`` to ``start + 3``."""
        data = self.transmit(bytes((0xFF, 0xB0, 0x00, start, 0x10)))
        if len(data) != 16:
            raise TagCommandError(f"READ of page {start} returned {len(data)} bytes")
        return data

    def write_page(self, page: int, data: bytes) -> None:
        """WRITE one 4-byte page.

        Raises:
            TagLockedError: The tag refused the write (lock bits or password protection).
        """
        if len(data) != PAGE_SIZE:
            raise ValueError("a page is 4 bytes")
        try:
            self.transmit(bytes((0xFF, 0xD6, 0x00, page, PAGE_SIZE)) + data)
        except TagCommandError as exc:
            raise TagLockedError(f"the tag refused a write to page {page}: it is locked or password-protected") \
                from exc

    def authenticate(self, password: bytes) -> None:
        """PWD_AUTH with the PWD derived from ``password``; checks the PACK.

        Raises:
            TagPasswordError: Wrong password, or a PACK that is not the one set with this password.
        """
        pwd, pack = password_bytes(password)
        answer = self.native(b"\x1b" + pwd)
        if answer is None:
            raise TagPasswordError("the tag's password does not match")
        if answer != pack:
            raise TagPasswordError("the tag accepted the password with an unexpected PACK: not the protected tag")

    def read_ndef(self) -> bytes:
        """Read the NDEF message, reading only the pages its TLV needs.

        Returns:
            The NDEF message bytes.

        Raises:
            NdefError: ``empty`` (blank tag, or a write that never completed) or ``malformed``.
        """
        data = self.read_pages(FIRST_USER_PAGE)
        while True:
            found = locate_ndef_tlv(data)
            if isinstance(found, NeedMore):
                needed = found.size
            elif found.length == 0:
                raise NdefError("empty", "the tag holds no NDEF message")
            elif found.end <= len(data):
                return data[found.value_offset:found.end]
            else:
                needed = found.end
            while len(data) < needed:
                data += self.read_pages(FIRST_USER_PAGE + len(data) // PAGE_SIZE)

    def write_ndef(self, message: bytes, *, lock: bool = False, password: bytes | None = None) -> NdefWrite:
        """Write an NDEF message, read it back and compare; then optionally protect or lock the tag.

        Args:
            message: The NDEF message (:func:`issuance.ndef.encode_card_ndef`).
            lock: Make the tag permanently read-only (CC access ``0F``, static and dynamic lock bits, CFGLCK).
            password: Protect writes from page 3 with PWD_AUTH (see :func:`password_bytes`); also the password
                to present when the tag is already protected.

        Returns:
            What was written, with the message as read back from the tag (equal to ``message``).

        Raises:
            NotAnNtagError: Not an NTAG213/215/216.
            TagTooSmallError: The TLV does not fit (nothing was written).
            TagLockedError: The tag is read-only; TagPasswordError: protected and no or a wrong password.
            TagFormatError: The capability container is not an NDEF one.
            TagRemovedError: The tag left the field (it then reads as empty or complete).
            TagVerifyError: The read-back differs.
        """
        variant = self.get_version()
        head = self.read_pages(2)  # pages 2–5: static lock bytes, CC, first user bytes
        static_lock, cc = head[2:4], head[4:8]
        user = head[8:]
        while isinstance(end := leading_control_tlvs_end(user), NeedMore) and len(user) < variant.user_bytes:
            user += self.read_pages(FIRST_USER_PAGE + len(user) // PAGE_SIZE)
        start = 0 if isinstance(end, NeedMore) else end
        tlv = encode_ndef_tlv(message)
        if start + len(tlv) - 1 == variant.user_bytes:
            tlv = tlv[:-1]  # no room for the terminator: the NDEF TLV ends the memory exactly
        if start + len(tlv) > variant.user_bytes:
            raise TagTooSmallError(start + len(tlv), variant.user_bytes, variant.name)
        self._check_writable(static_lock, cc)
        protected = self._unlock_config(variant, password)
        writes_before = self.apdu_count
        self._write_tlv(user, start, tlv)
        read_back = self.read_ndef()
        if read_back != message:
            raise TagVerifyError("the tag's content read back differs from what was written")
        if password is not None and not protected:
            self._set_password(variant, password)
        if lock:
            self.lock(variant)
        return NdefWrite(variant, start + len(tlv), variant.user_bytes, self.apdu_count - writes_before, lock,
                         password is not None or protected, read_back)

    def _check_writable(self, static_lock: bytes, cc: bytes) -> None:
        if cc[0] != 0xE1 or cc[1] >> 4 != 1:
            raise TagFormatError(f"the tag's capability container {cc.hex(' ')} is not an NDEF one")
        if cc[3] & 0x0F:
            raise TagLockedError("the tag is read-only (its capability container says so)")
        if static_lock[0] & 0xF0 or static_lock[1]:
            raise TagLockedError("the tag is read-only (static lock bits are set)")

    def _unlock_config(self, variant: NtagVariant, password: bytes | None) -> bool:
        """Check the dynamic lock bits and AUTH0; authenticate when the tag is protected. True if it was."""
        try:
            config = self.read_pages(variant.dynamic_lock_page)  # dynamic lock bytes, CFG0, CFG1, PWD (reads 0)
        except TagCommandError:
            # Read protection (PROT) covers the configuration: only the password opens it.
            if password is None:
                raise TagPasswordError("the tag is password-protected: give its password") from None
            self.authenticate(password)
            config = self.read_pages(variant.dynamic_lock_page)
        if config[0] or config[1]:
            raise TagLockedError("the tag is read-only (dynamic lock bits are set)")
        protected = config[7] <= variant.last_page
        if protected:
            if password is None:
                raise TagPasswordError("the tag is password-protected: give its password")
            self.authenticate(password)
        return protected

    def _write_tlv(self, user: bytes, start: int, tlv: bytes) -> None:
        """Write ``tlv`` at user offset ``start`` so that any prefix of the writes reads as empty or complete."""
        length_page = (start + 1) // PAGE_SIZE
        prefix = user[:start]
        if user[start:start + 2] != b"\x03\x00":
            empty = _pad(prefix + b"\x03\x00\xfe")
            pages = range(start // PAGE_SIZE, len(empty) // PAGE_SIZE)
            # The length byte first: from this write on, any old message reads as empty.
            for index in sorted(pages, key=lambda p: p != length_page):
                self.write_page(FIRST_USER_PAGE + index, empty[index * PAGE_SIZE:(index + 1) * PAGE_SIZE])
        image = _pad(prefix + tlv)
        for index in range(start // PAGE_SIZE, len(image) // PAGE_SIZE):
            if index != length_page:
                self.write_page(FIRST_USER_PAGE + index, image[index * PAGE_SIZE:(index + 1) * PAGE_SIZE])
        self.write_page(FIRST_USER_PAGE + length_page, image[length_page * PAGE_SIZE:(length_page + 1) * PAGE_SIZE])

    def _set_password(self, variant: NtagVariant, password: bytes) -> None:
        pwd, pack = password_bytes(password)
        cfg0 = self.read_pages(variant.config_page)[:4]
        self.write_page(variant.config_page + 2, pwd)
        self.write_page(variant.config_page + 3, pack + b"\x00\x00")
        # AUTH0 last: protection starts only once PWD and PACK are in place.
        self.write_page(variant.config_page, cfg0[:3] + bytes((PROTECT_FROM_PAGE,)))
        # Checks that the password took, and opens this session's further writes (locking).
        self.authenticate(password)

    def lock(self, variant: NtagVariant) -> None:
        """Make the tag permanently read-only. Lock bits are one-time bits: this cannot be undone."""
        cfg1 = self.read_pages(variant.config_page)[4:8]
        self.write_page(variant.config_page + 1, bytes((cfg1[0] | 0x40,)) + cfg1[1:])  # CFGLCK
        self.write_page(variant.dynamic_lock_page, b"\xff\xff\xff\x00")
        cc = self.read_pages(3)[:4]
        self.write_page(3, cc[:3] + b"\x0f")
        self.write_page(2, b"\x00\x00\xff\xff")
        if self.read_pages(2)[2:8] != b"\xff\xff" + cc[:3] + b"\x0f":
            raise TagVerifyError("the lock bits did not take")


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % PAGE_SIZE)


def choose_reader(names: Sequence[str], choice: str | int | None) -> str:
    """Apply the ``--reader`` choice: an index, an exact name, or a case-insensitive part of one name.

    Raises:
        NoReaderError: No reader at all.
        SeveralReadersError: Several readers and no choice.
        ReaderNotFoundError: The choice matches no reader, or several.
    """
    if not names:
        raise NoReaderError("no NFC reader is connected: plug in the reader (and check that pcscd is running)")
    if choice is None or choice == "":
        if len(names) > 1:
            raise SeveralReadersError(names)
        return names[0]
    text = str(choice)
    if text.isdigit():
        if int(text) < len(names):
            return names[int(text)]
        raise ReaderNotFoundError(text, names)
    if text in names:
        return text
    matches = [name for name in names if text.lower() in name.lower()]
    if len(matches) != 1:
        raise ReaderNotFoundError(text, names)
    return matches[0]


def reader_names() -> list[str]:
    """The PC/SC readers' names, in pcscd's order.

    Raises:
        NoReaderError: The PC/SC service is not reachable.
    """
    try:
        return [str(reader) for reader in list_pcsc_readers()]
    except (SmartcardException, BaseSCardException) as exc:
        raise NoReaderError(f"the PC/SC service is not available (is pcscd running?): {exc}") from exc


class PcscTagReader:
    """A connection to the tag on one PC/SC reader.

    Open it with :meth:`open`; use it as a context manager or call :meth:`close`.
    """

    def __init__(self, name: str, connection: Any) -> None:
        self._name = name
        self._connection: Any = connection

    @property
    def name(self) -> str:
        """The reader's name."""
        return self._name

    @classmethod
    def open(cls, choice: str | int | None = None, *, wait: float = 0.0) -> PcscTagReader:
        """Choose a reader (:func:`choose_reader`) and connect to the tag on it.

        Args:
            choice: ``--reader``: index, name or part of a name; None when only one reader is connected.
            wait: Seconds to wait for a tag to be presented (0: it must already be there).

        Raises:
            NoReaderError, SeveralReadersError, ReaderNotFoundError: See :func:`choose_reader`.
            NoTagError: No tag on the reader (within ``wait``).
        """
        names = reader_names()
        name = choose_reader(names, choice)
        reader = next(r for r in list_pcsc_readers() if str(r) == name)
        deadline = time.monotonic() + wait
        while True:
            connection = reader.createConnection()
            try:
                connection.connect()
                return cls(name, connection)
            except (NoCardException, CardConnectionException) as exc:
                _release(connection)
                if time.monotonic() >= deadline:
                    raise NoTagError(f"no tag on the reader {name}: hold the card on the reader") from exc
                time.sleep(0.1)

    def transmit(self, apdu: bytes) -> bytes:
        """Send one APDU; the response data followed by SW1 SW2.

        Raises:
            TagRemovedError: The tag left the field (or the reader was unplugged).
        """
        try:
            data, sw1, sw2 = self._connection.transmit(list(apdu))
        except (CardConnectionException, NoCardException) as exc:
            raise TagRemovedError(f"the tag left the reader {self._name}: hold it still and try again") from exc
        return bytes(data) + bytes((sw1, sw2))

    def uid(self) -> bytes:
        """The tag's UID.

        Raises:
            TagCommandError: The reader refused ``FF CA``.
        """
        response = self.transmit(b"\xff\xca\x00\x00\x00")
        if response[-2:] != b"\x90\x00":
            raise TagCommandError("the reader did not return the tag's UID", int.from_bytes(response[-2:], "big"))
        return response[:-2]

    def close(self) -> None:
        """Disconnect from the tag (idempotent; a tag already gone is no error)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(SmartcardException):
                connection.disconnect()
            _release(connection)

    def __enter__(self) -> PcscTagReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _release(connection: Any) -> None:
    """Release a connection's PC/SC context (pyscard ≥ 2.1 has ``release``)."""
    release = getattr(connection, "release", None)
    if release is not None:
        with contextlib.suppress(SmartcardException):
            release()
