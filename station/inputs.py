"""Where scans come from: every input of a door station yields :class:`Scan` events through one small Protocol.

* :class:`StdinSource` — one scan per line (testing, or a scanner typing into the terminal);
* :class:`SerialSource` — a scanner in USB-CDC (serial) mode, read with pyserial; CR, LF or CR LF end a scan;
* :class:`EvdevSource` — a keyboard-wedge scanner read from ``/dev/input/event*`` with an exclusive ``grab()``,
  decoded with a fixed US key map (:class:`KeyDecoder`), so the window focus and the input method (Unikey, VNI…)
  do not matter; Enter ends a scan;
* :class:`PcscSource` — NFC taps on PC/SC readers (pyscard ``CardMonitor``), read with
  :meth:`verification.readers.pcsc.Ntag.read_ndef`; yields the raw credential bytes;
* :class:`ListSource` — the test implementation: a fixed list of scans.

The station runs each source's :meth:`ScanSource.events` in its own thread and funnels everything into one queue,
so a slow NFC read never holds up the barcode scanner and the decision path is the same for all inputs.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, TextIO

from station.errors import ScannerError

ScanKind = Literal["qr_scanner", "nfc", "stdin"]
Clock = Callable[[], datetime]
# No card's QR text comes near this; a scanner that never sends its Enter suffix must not grow a line forever.
MAX_LINE_CHARS: Final = 8192


def utc_now() -> datetime:
    """The station's default clock (timezone-aware UTC)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Scan:
    """One thing scanned or tapped.

    Attributes:
        source: The kind of input: ``qr_scanner`` (keyboard-wedge or serial scanner), ``nfc`` or ``stdin``.
        payload: QR text as the scanner typed it, or the credential bytes from an NFC tag.
        at: When the scan completed (station clock, timezone-aware).
        device: The device it came from (a path or reader name), for the screen and logs.
    """

    source: ScanKind
    payload: str | bytes
    at: datetime
    device: str = ""


@dataclass(frozen=True)
class ReadFailure:
    """A tap or scan that could not be read (tag pulled off, blank tag…): shown, never checked in."""

    source: ScanKind
    message: str
    at: datetime
    device: str = ""


ScanEvent = Scan | ReadFailure


class ScanSource(Protocol):
    """An input of the station."""

    @property
    def name(self) -> str:
        """A short description of the input, for the screen (``stdin``, ``/dev/ttyACM0``…)."""
        ...

    def events(self) -> Iterator[ScanEvent]:
        """Scans as they happen; blocks between them.

        Returns:
            An iterator that ends when the input ends (end of file) or after :meth:`close`.

        Raises:
            ScannerError: The scanner could not be opened or failed (serial and evdev).
            ReaderError: The NFC reader choice matches no reader (see :mod:`verification.readers.errors`).
        """
        ...

    def close(self) -> None:
        """Ask :meth:`events` to end and release the device (idempotent, callable from another thread)."""
        ...


class ListSource:
    """A :class:`ScanSource` over a fixed list: the test implementation.

    Args:
        items: Scans, read failures, or bare payloads (text or bytes), which become ``stdin`` / ``nfc`` scans at
            the clock's time.
        clock: Time stamps for bare payloads.
        name: The source's name.
    """

    def __init__(self, items: Iterable[ScanEvent | str | bytes], *, clock: Clock = utc_now,
                 name: str = "list") -> None:
        self._items = list(items)
        self._clock = clock
        self._name = name
        self._closed = threading.Event()

    @property
    def name(self) -> str:
        """See :meth:`ScanSource.name`."""
        return self._name

    def events(self) -> Iterator[ScanEvent]:
        """See :meth:`ScanSource.events`."""
        for item in self._items:
            if self._closed.is_set():
                return
            if isinstance(item, str):
                yield Scan("stdin", item, self._clock(), self._name)
            elif isinstance(item, bytes):
                yield Scan("nfc", item, self._clock(), self._name)
            else:
                yield item

    def close(self) -> None:
        """See :meth:`ScanSource.close`."""
        self._closed.set()


class StdinSource:
    """One scan per line of a text stream (standard input by default); blank lines are skipped.

    Args:
        stream: The stream to read.
        clock: The station clock.
    """

    def __init__(self, stream: TextIO | None = None, *, clock: Clock = utc_now) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._clock = clock
        self._closed = threading.Event()

    @property
    def name(self) -> str:
        """See :meth:`ScanSource.name`."""
        return "stdin"

    def events(self) -> Iterator[ScanEvent]:
        """See :meth:`ScanSource.events`. A blocking read cannot be interrupted: :meth:`close` takes effect at
        the next line."""
        for line in self._stream:
            if self._closed.is_set():
                return
            text = line.strip("\r\n")
            if text.strip():
                yield Scan("stdin", text[:MAX_LINE_CHARS], self._clock(), "stdin")

    def close(self) -> None:
        """See :meth:`ScanSource.close`."""
        self._closed.set()


class LineSplitter:
    """Bytes in, complete lines out: CR, LF and CR LF all end a line (scanners are configured either way)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._overflow = False

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add received bytes.

        Args:
            chunk: Bytes as they arrived.

        Returns:
            The lines completed by ``chunk``, without their terminators; empty lines are dropped (the LF of a
            CR LF pair). A line longer than :data:`MAX_LINE_CHARS` is dropped whole.
        """
        lines: list[bytes] = []
        for byte in chunk:
            if byte in (0x0D, 0x0A):
                if self._buffer and not self._overflow:
                    lines.append(bytes(self._buffer))
                self._buffer.clear()
                self._overflow = False
            elif len(self._buffer) < MAX_LINE_CHARS:
                self._buffer.append(byte)
            else:
                self._overflow = True
        return lines


class SerialSource:
    """A scanner in serial (USB-CDC / virtual COM port) mode, read with pyserial.

    Args:
        port: The device (``/dev/ttyACM0``); or an already open pyserial-like object with ``read``,
            ``in_waiting`` and ``close`` (tests).
        baudrate: Ignored by USB-CDC devices; matters for real RS-232 scanners.
        clock: The station clock.
    """

    def __init__(self, port: str | Any, *, baudrate: int = 9600, clock: Clock = utc_now) -> None:
        self._port = port
        self._baudrate = baudrate
        self._clock = clock
        self._closed = threading.Event()
        self._serial: Any = None

    @property
    def name(self) -> str:
        """See :meth:`ScanSource.name`."""
        return self._port if isinstance(self._port, str) else str(getattr(self._port, "port", "serial"))

    def _open(self) -> Any:
        if not isinstance(self._port, str):
            return self._port
        import serial

        try:
            # A short timeout lets close() end the read loop within a fraction of a second.
            return serial.Serial(self._port, self._baudrate, timeout=0.2)
        except (serial.SerialException, OSError) as exc:
            raise ScannerError(f"cannot open the serial scanner {self._port}: {exc} "
                               "(is it plugged in, in serial mode, and are you in the dialout group?)") from exc

    def events(self) -> Iterator[ScanEvent]:
        """See :meth:`ScanSource.events`."""
        import serial

        self._serial = self._open()
        splitter = LineSplitter()
        try:
            while not self._closed.is_set():
                try:
                    chunk = self._serial.read(self._serial.in_waiting or 1)
                except (serial.SerialException, OSError, TypeError) as exc:
                    if self._closed.is_set():
                        return
                    raise ScannerError(f"the serial scanner {self.name} stopped answering: {exc}") from exc
                for line in splitter.feed(chunk):
                    text = line.decode("utf-8", "replace")
                    if text.strip():
                        yield Scan("qr_scanner", text, self._clock(), self.name)
        finally:
            self.close()

    def close(self) -> None:
        """See :meth:`ScanSource.close`."""
        self._closed.set()
        port, self._serial = self._serial, None
        if port is not None:
            with contextlib.suppress(Exception):  # Closing a port that vanished must not mask the real failure.
                port.close()


# Linux input event codes (include/uapi/linux/input-event-codes.h, a stable kernel ABI), US layout:
# code → (unshifted, shifted). Letters follow Caps Lock; everything else only Shift.
EV_KEY: Final = 0x01
KEY_BACKSPACE: Final = 14
KEY_ENTER: Final = 28
KEY_LEFTSHIFT: Final = 42
KEY_RIGHTSHIFT: Final = 54
KEY_CAPSLOCK: Final = 58
KEY_KPENTER: Final = 96
_ROWS: Final = (
    (2, "1234567890-=", "!@#$%^&*()_+"),
    (16, "qwertyuiop[]", "QWERTYUIOP{}"),
    (30, "asdfghjkl;'`", 'ASDFGHJKL:"~'),
    (43, "\\zxcvbnm,./", "|ZXCVBNM<>?"),
)
US_KEYMAP: Final[dict[int, tuple[str, str]]] = {
    **{start + i: (plain[i], shifted[i]) for start, plain, shifted in _ROWS for i in range(len(plain))},
    15: ("\t", "\t"), 57: (" ", " "), 55: ("*", "*"), 74: ("-", "-"), 78: ("+", "+"), 83: (".", "."),
    98: ("/", "/"), 71: ("7", "7"), 72: ("8", "8"), 73: ("9", "9"), 75: ("4", "4"), 76: ("5", "5"),
    77: ("6", "6"), 79: ("1", "1"), 80: ("2", "2"), 81: ("3", "3"), 82: ("0", "0"),
}


class KeyDecoder:
    """Key events of a keyboard-wedge scanner → text, with a fixed US map whatever the system's layout is."""

    def __init__(self) -> None:
        self._shift: set[int] = set()
        self._caps = False
        self._text: list[str] = []

    def feed(self, event_type: int, code: int, value: int) -> str | None:
        """Decode one input event.

        Args:
            event_type: The event type (only ``EV_KEY`` matters; SYN and MSC events are ignored).
            code: The key code.
            value: 1 key down, 0 key up, 2 auto-repeat (ignored: a scanner never holds a key).

        Returns:
            The completed scan when the event is Enter (None for an Enter on an empty line), else None.
        """
        if event_type != EV_KEY:
            return None
        if code in (KEY_LEFTSHIFT, KEY_RIGHTSHIFT):
            if value == 1:
                self._shift.add(code)
            elif value == 0:
                self._shift.discard(code)
            return None
        if value != 1:
            return None
        if code == KEY_CAPSLOCK:
            self._caps = not self._caps
        elif code in (KEY_ENTER, KEY_KPENTER):
            text, self._text = "".join(self._text), []
            return text or None
        elif code == KEY_BACKSPACE:
            if self._text:
                self._text.pop()
        elif code in US_KEYMAP and len(self._text) < MAX_LINE_CHARS:
            plain, shifted = US_KEYMAP[code]
            upper = bool(self._shift) != (self._caps and plain.isalpha())
            self._text.append(shifted if upper else plain)
        return None


class InputDevice(Protocol):
    """The part of ``evdev.InputDevice`` the station uses (a fake in tests)."""

    def grab(self) -> None:
        """Take the device exclusively: its keys reach no other program (no window, no input method)."""
        ...

    def ungrab(self) -> None:
        """Release the exclusive grab."""
        ...

    def read_loop(self) -> Iterator[Any]:
        """Input events (``.type``, ``.code``, ``.value``) as they arrive."""
        ...

    def close(self) -> None:
        """Close the device."""
        ...


class EvdevSource:
    """A keyboard-wedge scanner read through evdev with an exclusive grab.

    Args:
        device: The event device path (``/dev/input/by-id/usb-…-event-kbd``) or an open :class:`InputDevice`.
        grab: Take the device exclusively (default). Without the grab the scans would also be typed into whatever
            window has the focus.
        clock: The station clock.
    """

    def __init__(self, device: str | InputDevice, *, grab: bool = True, clock: Clock = utc_now) -> None:
        self._device_spec = device
        self._grab = grab
        self._clock = clock
        self._closed = threading.Event()
        self._device: InputDevice | None = None

    @property
    def name(self) -> str:
        """See :meth:`ScanSource.name`."""
        spec = self._device_spec
        return spec if isinstance(spec, str) else str(getattr(spec, "path", "evdev"))

    def _open(self) -> InputDevice:
        if not isinstance(self._device_spec, str):
            return self._device_spec
        import evdev

        try:
            device: InputDevice = evdev.InputDevice(self._device_spec)
        except OSError as exc:
            raise ScannerError(f"cannot open {self._device_spec}: {exc} (add the station's user to the 'input' "
                               "group or install the udev rule from the README)") from exc
        return device

    def events(self) -> Iterator[ScanEvent]:
        """See :meth:`ScanSource.events`."""
        device = self._device = self._open()
        decoder = KeyDecoder()
        try:
            if self._grab:
                try:
                    device.grab()
                except OSError as exc:
                    raise ScannerError(f"cannot grab {self.name}: another program holds it ({exc})") from exc
            try:
                for event in device.read_loop():
                    if self._closed.is_set():
                        return
                    text = decoder.feed(int(event.type), int(event.code), int(event.value))
                    if text is not None:
                        yield Scan("qr_scanner", text, self._clock(), self.name)
            except OSError as exc:
                if self._closed.is_set():
                    return
                raise ScannerError(f"the scanner {self.name} was unplugged or failed: {exc}") from exc
        finally:
            self.close()

    def close(self) -> None:
        """See :meth:`ScanSource.close`."""
        self._closed.set()
        device, self._device = self._device, None
        if device is not None:
            with contextlib.suppress(OSError):
                if self._grab:
                    device.ungrab()
            with contextlib.suppress(OSError):
                device.close()


@dataclass
class _TapObserver:
    """A pyscard card observer (duck-typed: pyscard only calls ``update``) that queues the readers tapped."""

    taps: queue.Queue[str] = field(default_factory=queue.Queue)

    def update(self, _observable: object, handlers: tuple[list[Any], list[Any]]) -> None:
        added, _removed = handlers
        for card in added:
            self.taps.put(str(card.reader))


class PcscSource:
    """NFC taps on PC/SC readers: each tag put on a reader is read once and yields its credential bytes.

    Args:
        reader: ``--nfc READER`` (index, name or part of a name, as :func:`verification.readers.pcsc.choose_reader`
            takes it); None accepts taps on every connected reader.
        clock: The station clock.
        wait: Seconds to wait for the tag to answer after pcscd reported it.
    """

    def __init__(self, reader: str | None = None, *, clock: Clock = utc_now, wait: float = 1.0) -> None:
        self._choice = reader or None
        self._clock = clock
        self._wait = wait
        self._closed = threading.Event()

    @property
    def name(self) -> str:
        """See :meth:`ScanSource.name`."""
        return f"nfc:{self._choice}" if self._choice else "nfc"

    def read_tap(self, reader_name: str) -> ScanEvent:
        """Read the card on one reader.

        Args:
            reader_name: The exact PC/SC reader name.

        Returns:
            A ``nfc`` scan with the credential bytes, or a :class:`ReadFailure` saying what to do.
        """
        from verification.ndef import NdefError, card_credential_from_ndef
        from verification.readers.errors import ReaderError
        from verification.readers.pcsc import Ntag, PcscTagReader

        try:
            with PcscTagReader.open(reader_name, wait=self._wait) as tag_reader:
                credential = card_credential_from_ndef(Ntag(tag_reader).read_ndef())
        except (ReaderError, NdefError) as exc:
            return ReadFailure("nfc", str(exc), self._clock(), reader_name)
        return Scan("nfc", credential, self._clock(), reader_name)

    def events(self) -> Iterator[ScanEvent]:
        """See :meth:`ScanSource.events`."""
        from smartcard.CardMonitoring import CardMonitor

        from verification.readers.pcsc import choose_reader, reader_names

        wanted = choose_reader(reader_names(), self._choice) if self._choice else None
        observer = _TapObserver()
        monitor = CardMonitor()
        monitor.addObserver(observer)
        try:
            while not self._closed.is_set():
                try:
                    name = observer.taps.get(timeout=0.2)
                except queue.Empty:
                    continue
                if wanted is None or name == wanted:
                    yield self.read_tap(name)
        finally:
            monitor.deleteObserver(observer)

    def close(self) -> None:
        """See :meth:`ScanSource.close`."""
        self._closed.set()
