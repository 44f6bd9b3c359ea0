"""A virtual NTAG213/215/216 on an ACR122U-class reader, plugged into pcscd through the vsmartcard ``vpcd`` driver.

The ``vpcd`` driver (Debian ``vsmartcard-vpcd``) exposes "Virtual PCD" readers to pcscd and listens on TCP
127.0.0.1:35963 (reader slot 0) and 35964 (slot 1). A virtual card connects and speaks frames of a 2-byte big-endian
length + payload: a 1-byte payload is a control message (0 power off, 1 power on, 2 reset, 4 = send your ATR), any
other payload is a command APDU, answered with response data + SW1 SW2. Through it, pyscard sees a reader and a
contactless card exactly as with an ACR122U: the tests exercise pcscd, libpcsclite and pyscard, not a mock.

The tag model follows the NXP NTAG213/215/216 datasheet (and nfcpy ``tt2_nxp.py``):

* memory of 4-byte pages; UID pages 0–2 (with BCC0, BCC1, the internal byte and the static lock bytes in page 2
  bytes 2–3), the capability container on page 3 (one-time programmable: writes OR into it), user memory from page
  4, the dynamic lock bytes on the page before the configuration pages (CFG0 with AUTH0, CFG1 with ACCESS, PWD,
  PACK);
* static and dynamic lock bits are one-time bits that writes OR in, and that refuse later writes to the pages they
  cover (NTAG213: one dynamic bit per 2 pages from page 16; NTAG215/216: one per 16 pages);
* ``PWD_AUTH`` (``1B`` + 4 bytes) answers PACK and allows writes to pages ≥ AUTH0 until the tag is powered off;
  PWD and PACK read back as zeros;
* ``GET_VERSION`` (``60``) answers ``00 04 04 02 01 00 <size> 03`` with size 0F/11/13;
* READ rolls over from the last page to page 0, as the datasheet describes.

The ACR122U pseudo-APDUs (ACS API v2.04): ``FF CA 00 00 00`` (UID), ``FF B0 00 <page> 10`` (READ, 16 bytes),
``FF D6 00 <page> 04 <4 bytes>`` (WRITE), ``FF 00 00 00 <Lc> D4 42 <cmd…>`` (native command via the PN533's
InCommunicateThru, answered ``D5 43 <status> …``), ``FF 00 52 00 00`` (buzzer). A refused READ/WRITE answers
``63 00``; a NAK to a native command answers status ``01``.

Extra kinds for refusal tests: ``ultralight`` (a MIFARE Ultralight EV1 MF0UL11, 48 bytes of user memory, whose
GET_VERSION names product type 03) and ``no_version`` (a Type 2 tag that does not implement GET_VERSION, such as an
original Ultralight or a clone).

Removal: :meth:`VirtualNtag.remove` closes the connection (pcscd sees the card leave the field);
:meth:`VirtualNtag.remove_after_writes` lets N more page writes through and pulls the tag on the next one, which is
neither applied nor answered — a tag torn off the reader mid-write (:meth:`VirtualNtag.remove_after_apdus`: the
same counting every APDU).

The module also holds the rest of the harness: :func:`running_vpcd` (pcscd with the vpcd driver, and its reader
slots as :class:`VpcdSlot`) and :class:`CardIssuer` (test credentials signed with a fresh key).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final

from smartcard.scard import (
    SCARD_E_TIMEOUT,
    SCARD_S_SUCCESS,
    SCARD_SCOPE_USER,
    SCARD_STATE_EMPTY,
    SCARD_STATE_PRESENT,
    SCARD_STATE_UNAWARE,
    SCardEstablishContext,
    SCardGetStatusChange,
    SCardReleaseContext,
)

from issuance.credential import new_card_id, sign_credential
from issuance.keys import LocalSigner, algorithm_of, generate_private_key, new_kid
from verification.crypto import verify_signature
from verification.format import CardClaims, parse_credential
from verification.readers.errors import NoReaderError
from verification.readers.pcsc import reader_names

VPCD_HOST: Final = "127.0.0.1"
VPCD_PORT: Final = 35963
ATR: Final = bytes.fromhex("3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 03 00 00 00 00 68")
SW_OK: Final = b"\x90\x00"
SW_FAILED: Final = b"\x63\x00"
SW_INS_NOT_SUPPORTED: Final = b"\x6d\x00"


@dataclass(frozen=True)
class TagKind:
    """One tag product: memory layout and identification."""

    name: str
    total_pages: int
    version: bytes | None
    cc: bytes
    user_pages: tuple[int, int]
    factory_user: bytes
    dynamic_lock_page: int | None
    config_page: int | None
    pages_per_dynamic_lock_bit: int

    @property
    def user_bytes(self) -> int:
        """The user memory in bytes."""
        return (self.user_pages[1] - self.user_pages[0] + 1) * 4


KINDS: Final[dict[str, TagKind]] = {
    "ntag213": TagKind("ntag213", 45, bytes.fromhex("0004040201000F03"), bytes.fromhex("E1101200"), (4, 39),
                       bytes.fromhex("0103A00C340300FE"), 40, 41, 2),
    "ntag215": TagKind("ntag215", 135, bytes.fromhex("0004040201001103"), bytes.fromhex("E1103E00"), (4, 129),
                       bytes.fromhex("0300FE"), 130, 131, 16),
    "ntag216": TagKind("ntag216", 231, bytes.fromhex("0004040201001303"), bytes.fromhex("E1106D00"), (4, 225),
                       bytes.fromhex("0300FE"), 226, 227, 16),
    "ultralight": TagKind("ultralight", 20, bytes.fromhex("0004030101000B03"), bytes.fromhex("E1100600"), (4, 15),
                          bytes.fromhex("0300FE"), None, 16, 0),
    "no_version": TagKind("no_version", 16, None, bytes.fromhex("E1100600"), (4, 15),
                          bytes.fromhex("0300FE"), None, None, 0),
}


class TagGone(Exception):
    """Raised inside the card thread when the tag has been pulled: the connection is closed without an answer."""


class VirtualNtag:
    """A virtual tag: its memory persists across :meth:`insert` and :meth:`remove`.

    Args:
        kind: One of :data:`KINDS`.
        uid: 7-byte UID (random by default).
    """

    def __init__(self, kind: str = "ntag215", *, uid: bytes | None = None) -> None:
        self.kind = KINDS[kind]
        self.uid = uid or b"\x04" + os.urandom(6)
        self.memory = bytearray(self.kind.total_pages * 4)
        self.authenticated = False
        self.apdus: list[bytes] = []
        self._writes_before_removal: int | None = None
        self._apdus_before_removal: int | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._factory_reset()

    # -- memory ----------------------------------------------------------------------------------------------------

    def _factory_reset(self) -> None:
        uid = self.uid
        bcc0 = 0x88 ^ uid[0] ^ uid[1] ^ uid[2]
        bcc1 = uid[3] ^ uid[4] ^ uid[5] ^ uid[6]
        self.memory[0:12] = bytes([uid[0], uid[1], uid[2], bcc0, *uid[3:7], bcc1, 0x48, 0x00, 0x00])
        self.memory[12:16] = self.kind.cc
        start = self.kind.user_pages[0] * 4
        self.memory[start:start + len(self.kind.factory_user)] = self.kind.factory_user
        if self.kind.dynamic_lock_page is not None:
            self.memory[self.kind.dynamic_lock_page * 4 + 3] = 0xBD
        if self.kind.config_page is not None:
            cfg = self.kind.config_page * 4
            self.memory[cfg:cfg + 16] = bytes.fromhex("040000FF" "00050000" "FFFFFFFF" "00000000")

    def page(self, number: int) -> bytes:
        """The raw 4 bytes of one page (test inspection; no access rules)."""
        return bytes(self.memory[number * 4:number * 4 + 4])

    @property
    def auth0(self) -> int:
        """The first password-protected page (0xFF and beyond: none)."""
        if self.kind.config_page is None:
            return 0x100
        return self.memory[self.kind.config_page * 4 + 3]

    def _access(self) -> int:
        return 0 if self.kind.config_page is None else self.memory[self.kind.config_page * 4 + 4]

    def _locked(self, page: int) -> bool:
        static = int.from_bytes(self.memory[10:12], "little")
        if page == 3:
            return bool(static & 0x08)
        if 4 <= page <= 15:
            return bool(static >> page & 1)
        dyn_page = self.kind.dynamic_lock_page
        if dyn_page is not None and 16 <= page < dyn_page:
            bits = int.from_bytes(self.memory[dyn_page * 4:dyn_page * 4 + 2], "little")
            return bool(bits >> ((page - 16) // self.kind.pages_per_dynamic_lock_bit) & 1)
        if self.kind.config_page is not None and page >= self.kind.config_page:
            return bool(self._access() & 0x40)  # CFGLCK
        return False

    def _read(self, page: int) -> bytes | None:
        if page >= self.kind.total_pages:
            return None
        protected_reads = bool(self._access() & 0x80)
        out = bytearray()
        for offset in range(4):
            number = (page + offset) % self.kind.total_pages
            if protected_reads and number >= self.auth0 and not self.authenticated:
                return None
            if self.kind.config_page is not None and number in (self.kind.config_page + 2, self.kind.config_page + 3):
                out += b"\x00\x00\x00\x00"  # PWD and PACK are never readable
            else:
                out += self.page(number)
        return bytes(out)

    def _write(self, page: int, data: bytes) -> bool:
        if len(data) != 4 or page < 2 or page >= self.kind.total_pages:
            return False
        if page >= self.auth0 and not self.authenticated:
            return False
        if self._writes_before_removal is not None:
            if self._writes_before_removal == 0:
                raise TagGone
            self._writes_before_removal -= 1
        at = page * 4
        if page == 2:
            # Bytes 0–1 (BCC1, internal) are read-only; the lock bytes are one-time bits.
            self.memory[at + 2] |= data[2]
            self.memory[at + 3] |= data[3]
            return True
        if self._locked(page):
            return False
        if page == 3 or page == self.kind.dynamic_lock_page:
            for i in range(4):
                self.memory[at + i] |= data[i]
            return True
        self.memory[at:at + 4] = data
        return True

    # -- commands --------------------------------------------------------------------------------------------------

    def _native(self, command: bytes) -> bytes | None:
        """A tag command as sent through InCommunicateThru; None is a NAK."""
        if not command:
            return None
        code = command[0]
        if code == 0x60 and len(command) == 1:
            return self.kind.version
        if code == 0x30 and len(command) == 2:
            return self._read(command[1])
        if code == 0xA2 and len(command) == 6:
            return b"" if self._write(command[1], command[2:6]) else None
        if code == 0x1B and len(command) == 5 and self.kind.config_page is not None:
            cfg = self.kind.config_page * 4
            if bytes(self.memory[cfg + 8:cfg + 12]) == command[1:5]:
                self.authenticated = True
                return bytes(self.memory[cfg + 12:cfg + 14])
            self.authenticated = False
            return None
        if code == 0x3C and len(command) == 2 and self.kind.version is not None:
            return bytes(32)
        return None

    def process_apdu(self, apdu: bytes) -> bytes:
        """Answer one command APDU (response data + SW1 SW2)."""
        if self._apdus_before_removal is not None:
            if self._apdus_before_removal == 0:
                raise TagGone
            self._apdus_before_removal -= 1
        self.apdus.append(apdu)
        if apdu == bytes.fromhex("FFCA000000"):
            return self.uid + SW_OK
        if len(apdu) == 5 and apdu[:3] == b"\xff\xb0\x00" and apdu[4] == 0x10:
            data = self._read(apdu[3])
            return data + SW_OK if data is not None else SW_FAILED
        if len(apdu) == 9 and apdu[:3] == b"\xff\xd6\x00" and apdu[4] == 0x04:
            return SW_OK if self._write(apdu[3], apdu[5:9]) else SW_FAILED
        if apdu == bytes.fromhex("FF00520000"):
            return SW_OK
        if len(apdu) >= 7 and apdu[:4] == b"\xff\x00\x00\x00" and apdu[4] == len(apdu) - 5:
            if apdu[5:7] != b"\xd4\x42":
                return SW_INS_NOT_SUPPORTED
            answer = self._native(apdu[7:])
            if answer is None:
                return b"\xd5\x43\x01" + SW_OK
            return b"\xd5\x43\x00" + answer + SW_OK
        return SW_INS_NOT_SUPPORTED

    # -- vpcd connection -------------------------------------------------------------------------------------------

    def insert(self, port: int = VPCD_PORT) -> None:
        """Put the tag on the reader: connect to vpcd and answer it in a background thread."""
        if self._sock is not None:
            raise RuntimeError("tag already inserted")
        self.authenticated = False
        sock = socket.create_connection((VPCD_HOST, port), timeout=5)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,), name=f"virtual-{self.kind.name}",
                                        daemon=True)
        self._thread.start()

    def remove(self) -> None:
        """Take the tag off the reader (the field drops: authentication is lost)."""
        sock, self._sock = self._sock, None
        self._writes_before_removal = self._apdus_before_removal = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def inserted(self) -> bool:
        """Whether the tag is on the reader."""
        return self._sock is not None

    def remove_after_writes(self, count: int) -> None:
        """Let ``count`` more page writes through; the next write pulls the tag without being applied."""
        self._writes_before_removal = count

    def remove_after_apdus(self, count: int) -> None:
        """Answer ``count`` more APDUs of any kind; the next one pulls the tag unanswered."""
        self._apdus_before_removal = count

    def load_ndef(self, tlv: bytes, *, at: int = 0) -> None:
        """Put TLV bytes into the user memory directly (test set-up, bypassing the reader)."""
        start = self.kind.user_pages[0] * 4 + at
        self.memory[start:start + len(tlv)] = tlv

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                header = _recv_exact(sock, 2)
                (length,) = struct.unpack("!H", header)
                payload = _recv_exact(sock, length)
                with self._lock:
                    answer = self._handle(payload)
                if answer is not None:
                    sock.sendall(struct.pack("!H", len(answer)) + answer)
        except TagGone:
            self._sock = None
            sock.close()
        except OSError:
            pass

    def _handle(self, payload: bytes) -> bytes | None:
        if len(payload) == 1:
            if payload[0] in (0, 2):  # power off, reset: the tag loses its authentication
                self.authenticated = False
            if payload[0] == 4:
                return ATR
            return None
        return self.process_apdu(payload)


def _recv_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        # vpcd sends a frame's length and its payload in two writes: without an immediate ACK of the first, Nagle's
        # algorithm holds the second back for the peer's delayed-ACK timeout (40 ms per APDU). Linux clears
        # TCP_QUICKACK after use, hence before every read.
        if hasattr(socket, "TCP_QUICKACK"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise OSError("vpcd closed the connection")
        data += chunk
    return data


# -- pcscd and its vpcd reader slots ----------------------------------------------------------------------------------

VPCD_DRIVER_PATHS: Final = ("/usr/lib/pcsc/drivers/serial/libifdvpcd.so",
                            "/usr/local/lib/pcsc/drivers/serial/libifdvpcd.so")
VIRTUAL_READER: Final = "Virtual PCD"


class VpcdUnavailable(Exception):
    """pcscd or the vpcd driver is missing or does not come up."""


def _virtual_readers() -> list[str]:
    try:
        return [name for name in reader_names() if name.startswith(VIRTUAL_READER)]
    except NoReaderError:
        return []


def _service_answers() -> bool:
    result, context = SCardEstablishContext(SCARD_SCOPE_USER)
    if result != SCARD_S_SUCCESS:
        return False
    SCardReleaseContext(context)
    return True


class VpcdSlot:
    """One vpcd reader slot: plug a virtual tag in, take it out, with pcscd's view kept in step.

    pcscd notices a card arriving or leaving by polling the driver (every 0.4 s). A tag put back before pcscd saw
    it leave would not be powered again, so :meth:`plug` first waits until pcscd's event counter for the reader
    shows the previous tag's removal, and then until the new tag is present.
    """

    def __init__(self, name: str, port: int, context: int) -> None:
        self.name = name
        self.port = port
        self._context = context
        self.tag: VirtualNtag | None = None
        self._counter_when_plugged: int | None = None

    def _state(self) -> tuple[int, int]:
        """(event counter, state flags) as pcscd reports them now."""
        result, states = SCardGetStatusChange(self._context, 0, [(self.name, SCARD_STATE_UNAWARE)])
        if result not in (SCARD_S_SUCCESS, SCARD_E_TIMEOUT):
            raise RuntimeError(f"SCardGetStatusChange failed: {result:#x}")
        flags = states[0][1]
        return flags >> 16, flags & 0xFFFF

    def _wait(self, done: Callable[[int, int], bool], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not done(*self._state()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"pcscd did not see the {what} on {self.name}")
            time.sleep(0.02)

    def _settle_removal(self) -> None:
        if self._counter_when_plugged is None:
            return
        before = self._counter_when_plugged
        self._wait(lambda counter, flags: counter != before and bool(flags & SCARD_STATE_EMPTY), "removal")
        self._counter_when_plugged = None

    def plug(self, tag: VirtualNtag) -> VirtualNtag:
        """Put ``tag`` on this reader and wait until pcscd has powered it."""
        self.unplug()
        self._settle_removal()
        for attempt in (1, 2):
            before, _ = self._state()
            tag.insert(self.port)
            self.tag = tag
            try:
                self._wait(
                    lambda counter, flags, before=before: counter != before and bool(flags & SCARD_STATE_PRESENT),
                    "tag",
                )
                break
            except TimeoutError:
                # Under heavy load pcscd's poll can miss a power-up; take the tag off, let pcscd see the empty
                # reader, and put it on once more before giving up.
                if attempt == 2:
                    raise
                tag.remove()
                self.tag = None
                self._wait(lambda _counter, flags: bool(flags & SCARD_STATE_EMPTY), "empty reader")
        self._counter_when_plugged, _ = self._state()
        return tag

    def unplug(self) -> None:
        """Take the tag off (it may already have gone by itself); pcscd catches up before the next :meth:`plug`."""
        if self.tag is not None:
            self.tag.remove()
            self.tag = None


@contextlib.contextmanager
def running_vpcd(log_dir: Path) -> Iterator[list[VpcdSlot]]:
    """pcscd with the vpcd driver, and its reader slots (sorted by name: slot i listens on 35963 + i).

    If no pcscd answers, ``pcscd --foreground`` is started (log in ``log_dir``) and that process, and only that one,
    is stopped on exit.

    Raises:
        VpcdUnavailable: pcscd or the vpcd driver is missing, or no "Virtual PCD" reader appears.
    """
    pcscd = shutil.which("pcscd") or next((p for p in ("/usr/sbin/pcscd", "/sbin/pcscd") if Path(p).exists()), None)
    if pcscd is None:
        raise VpcdUnavailable("pcscd is not installed")
    if not any(Path(p).exists() for p in VPCD_DRIVER_PATHS):
        raise VpcdUnavailable("the vpcd driver (libifdvpcd.so) is not installed")
    started: subprocess.Popen[bytes] | None = None
    # Whether pcscd answers matters, not whether a process is named so (`pgrep pcscd` also matches a zombie).
    if not _service_answers():
        with (log_dir / "pcscd.log").open("wb") as log:
            started = subprocess.Popen([pcscd, "--foreground"], stdout=log, stderr=subprocess.STDOUT)
    context: int | None = None
    try:
        deadline = time.monotonic() + 15
        while not (names := _virtual_readers()):
            if started is not None and started.poll() is not None:
                raise VpcdUnavailable(f"pcscd exited with status {started.returncode}")
            if time.monotonic() > deadline:
                raise VpcdUnavailable("pcscd runs but lists no 'Virtual PCD' reader (restart it after installing vpcd)")
            time.sleep(0.1)
        result, context = SCardEstablishContext(SCARD_SCOPE_USER)
        if result != SCARD_S_SUCCESS:
            raise VpcdUnavailable(f"SCardEstablishContext failed: {result:#x}")
        slots = [VpcdSlot(name, VPCD_PORT + index, context) for index, name in enumerate(sorted(names))]
        try:
            yield slots
        finally:
            for slot in slots:
                slot.unplug()
    finally:
        if context is not None:
            SCardReleaseContext(context)
        if started is not None:
            started.terminate()
            started.wait(timeout=10)


# -- test credentials -------------------------------------------------------------------------------------------------


class CardIssuer:
    """A test signing key: issues credentials and verifies them (format parse + signature)."""

    def __init__(self) -> None:
        key = generate_private_key("ed25519")
        self.signer = LocalSigner(new_kid(), algorithm_of(key), key)
        self.public_key = key.public_key()

    def issue(self, *, name: str = "Nguyễn Thị Phương Thảo Vy", chapter: str = "HNI-BADINH-01",
              member_number: str = "0000001867", status_index: int = 3_000_000) -> bytes:
        """A signed credential; the defaults are docs/card-format.md's budget example (168 bytes)."""
        claims = CardClaims(card_id=new_card_id(), member_number=member_number, display_name=name,
                            chapter_code=chapter, card_version=1, issued_on=date(2026, 1, 5),
                            expires_on=date(2028, 12, 31), status_list=1, status_index=status_index)
        return sign_credential(claims, self.signer)

    def tiny(self) -> bytes:
        """The smallest credential the format allows (117 bytes): it just fits an NTAG213."""
        return self.issue(name="A", chapter="H", member_number="0000000018", status_index=5)

    def verify(self, credential: bytes) -> CardClaims:
        """Parse and check the signature; raises :class:`verification.errors.CredentialError` otherwise."""
        parsed = parse_credential(credential)
        verify_signature(parsed, self.signer.algorithm, self.public_key)
        return parsed.claims
