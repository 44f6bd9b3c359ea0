"""Scan sources: the evdev US key map (synthetic InputEvents through a fake device), a serial scanner through a pty
pair opened by pyserial, stdin lines, and the NFC source through pcscd + vpcd with a virtual NTAG."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import evdev
import httpx
import pytest
import serial
from evdev import InputEvent, ecodes

from issuance.ndef import encode_card_ndef, ndef_tlv
from station.client import LinkState, StationClient
from station.inputs import (
    US_KEYMAP,
    EvdevSource,
    KeyDecoder,
    PcscSource,
    ReadFailure,
    Scan,
    SerialSource,
    StdinSource,
)
from station.loop import Station
from station.store import StationStore
from tests.readers.conftest import vpcd  # noqa: F401 - the session fixture: pcscd with the vpcd driver
from tests.readers.virtual_ntag import VirtualNtag, VpcdSlot
from tests.station.conftest import ISSUER, FakeServer, World
from tests.station.test_station import RecordingDisplay

# What a US keyboard types for each key, by evdev's own names: the table must agree with the kernel's codes.
EXPECTED = {
    **{f"KEY_{c}": (c.lower(), c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
    **{f"KEY_{d}": (d, s) for d, s in zip("1234567890", "!@#$%^&*()", strict=True)},
    "KEY_MINUS": ("-", "_"), "KEY_EQUAL": ("=", "+"), "KEY_LEFTBRACE": ("[", "{"), "KEY_RIGHTBRACE": ("]", "}"),
    "KEY_SEMICOLON": (";", ":"), "KEY_APOSTROPHE": ("'", '"'), "KEY_GRAVE": ("`", "~"),
    "KEY_BACKSLASH": ("\\", "|"), "KEY_COMMA": (",", "<"), "KEY_DOT": (".", ">"), "KEY_SLASH": ("/", "?"),
    "KEY_SPACE": (" ", " "), **{f"KEY_KP{d}": (d, d) for d in "0123456789"},
}


def test_keymap_agrees_with_the_kernel_codes() -> None:
    for name, expected in EXPECTED.items():
        assert US_KEYMAP[getattr(ecodes, name)] == expected, name


def keystrokes(text: str, *, enter: int = ecodes.KEY_ENTER) -> list[InputEvent]:
    """What a keyboard-wedge scanner sends for ``text`` + Enter, with SYN reports like a real device."""
    reverse = {}
    for code, (plain, shifted) in US_KEYMAP.items():
        reverse.setdefault(plain, (code, False))
        reverse.setdefault(shifted, (code, True))
    events: list[InputEvent] = []

    def key(code: int, value: int) -> None:
        events.append(InputEvent(0, 0, ecodes.EV_MSC, ecodes.MSC_SCAN, code))
        events.append(InputEvent(0, 0, ecodes.EV_KEY, code, value))
        events.append(InputEvent(0, 0, ecodes.EV_SYN, ecodes.SYN_REPORT, 0))

    for char in text:
        code, shift = reverse[char]
        if shift:
            key(ecodes.KEY_LEFTSHIFT, 1)
        key(code, 1)
        key(code, 0)
        if shift:
            key(ecodes.KEY_LEFTSHIFT, 0)
    key(enter, 1)
    key(enter, 0)
    return events


class FakeInputDevice:
    """The part of evdev.InputDevice the station uses, replaying synthetic events."""

    path = "/dev/input/event-fake"

    def __init__(self, events: list[InputEvent]) -> None:
        self.events = events
        self.grabbed = False
        self.closed = False

    def grab(self) -> None:
        self.grabbed = True

    def ungrab(self) -> None:
        self.grabbed = False

    def read_loop(self) -> Iterator[InputEvent]:
        assert self.grabbed, "read before the exclusive grab"
        yield from self.events

    def close(self) -> None:
        self.closed = True


def test_evdev_scanner_is_grabbed_and_decoded_with_the_us_map(world: World) -> None:
    qr = world.cards["lan"].qr
    odd = ']Q1\\000026Aa-Zz{|}~:"<>?'
    device = FakeInputDevice(keystrokes(qr) + keystrokes(odd, enter=ecodes.KEY_KPENTER) + keystrokes(""))
    source = EvdevSource(device, clock=lambda: world.now)
    scans = list(source.events())
    assert [(s.source, s.payload) for s in scans if isinstance(s, Scan)] == [("qr_scanner", qr), ("qr_scanner", odd)]
    assert device.closed and not device.grabbed


def test_key_decoder_caps_lock_backspace_and_repeats() -> None:
    decoder = KeyDecoder()
    typed = [(ecodes.KEY_CAPSLOCK, 1), (ecodes.KEY_A, 1), (ecodes.KEY_1, 1), (ecodes.KEY_LEFTSHIFT, 1),
             (ecodes.KEY_B, 1), (ecodes.KEY_LEFTSHIFT, 0), (ecodes.KEY_C, 2), (ecodes.KEY_X, 1),
             (ecodes.KEY_BACKSPACE, 1), (ecodes.KEY_ENTER, 1)]
    results = [decoder.feed(ecodes.EV_KEY, code, value) for code, value in typed]
    assert results[-1] == "A1b" and results[:-1] == [None] * (len(typed) - 1)


def test_evdev_device_path_errors_are_scanner_errors() -> None:
    from station.errors import ScannerError

    with pytest.raises(ScannerError, match="input"):
        next(EvdevSource("/dev/input/does-not-exist").events())
    assert evdev.InputDevice is not None


def test_serial_scanner_through_a_pty(world: World) -> None:
    master, slave = os.openpty()
    qr = world.cards["hoa"].qr
    # pyserial opens the slave (raw mode, and a flush of anything written before: so it opens first).
    port = serial.Serial(os.ttyname(slave), 9600, timeout=0.2)
    source = SerialSource(port, clock=lambda: world.now)
    received: list[Scan | ReadFailure] = []

    def read() -> None:
        for event in source.events():
            received.append(event)
            if len(received) == 3:
                source.close()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        # CR (the usual scanner suffix), CR LF and LF; the first scan arrives in two pieces.
        os.write(master, qr[:100].encode())
        os.write(master, qr[100:].encode() + b"\r")
        os.write(master, b"84010001\r\n\r\n")
        os.write(master, b"]Q184010002\n")
        reader.join(timeout=10)
    finally:
        source.close()
        os.close(master)
        os.close(slave)
    assert not reader.is_alive()
    assert [(e.source, e.payload) for e in received if isinstance(e, Scan)] == [
        ("qr_scanner", qr), ("qr_scanner", "84010001"), ("qr_scanner", "]Q184010002")]


def test_stdin_lines_are_scans() -> None:
    at = datetime(2026, 5, 1, tzinfo=UTC)
    scans = list(StdinSource(io.StringIO("8401\n\n  \r\n8402\r\n"), clock=lambda: at).events())
    assert [(s.source, s.payload, s.at) for s in scans if isinstance(s, Scan)] == [
        ("stdin", "8401", at), ("stdin", "8402", at)]


# -- NFC through pcscd + vpcd ----------------------------------------------------------------------------------------

@pytest.fixture
def nfc_slot(vpcd: list[VpcdSlot]) -> Iterator[VpcdSlot]:  # noqa: F811 - the fixture imported above
    yield vpcd[0]
    for each in vpcd:
        each.unplug()


def test_a_tapped_tag_is_checked_in_through_the_station_loop(world: World, server: FakeServer,
                                                             nfc_slot: VpcdSlot, tmp_path: object) -> None:
    from station.store import Provisioning
    from tests.station.conftest import EVENT_ID, STATION_ID

    store = StationStore(":memory:")
    store.save_provisioning(Provisioning(ISSUER, "cdv_test", EVENT_ID, STATION_ID, world.anchor_jwk))
    store.save_bundle(server.bundle_token, world.now)
    client = StationClient(ISSUER, token="cdv_test", http=httpx.Client(transport=httpx.MockTransport(server.handler)),
                           link=LinkState())
    display = RecordingDisplay(store)
    station = Station(store, client=client, display=display)
    source = PcscSource(nfc_slot.name)
    stop = threading.Event()
    runner = threading.Thread(target=station.run, args=([source],),
                              kwargs={"stop": stop, "upload_interval": 0.1, "final_drain_seconds": 0})
    runner.start()
    try:
        tag = VirtualNtag("ntag215")
        tag.load_ndef(ndef_tlv(encode_card_ndef(world.cards["lan"].credential, uri="https://cards.example.vn/c")))
        nfc_slot.plug(tag)
        blank = VirtualNtag("ntag215")
        deadline = 20.0
        started = time.monotonic()
        while not display.shown and time.monotonic() - started < deadline:
            time.sleep(0.05)
        nfc_slot.plug(blank)  # a blank tag: shown as a failed read, not checked in

        def failed_read_shown() -> bool:
            return any((v.ok, v.reason) == (False, "read_failed") for v in display.shown)

        while not failed_read_shown() and time.monotonic() - started < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(timeout=10)
    assert display.shown, "nothing was shown"
    first = display.shown[0]
    assert first.ok and first.name == "Nguyễn Thị Lan" and not first.offline
    assert failed_read_shown(), display.shown
    # Under load pcscd may report the first tap twice (more than the 1 s de-duplication window apart); the second
    # reading is then refused as already checked in — never a second entry.
    assert all(v.reason in (None, "read_failed", "already_checked_in") for v in display.shown), display.shown
    accepted = [answer for answer in server.records.values() if answer.get("result") == "ok"]
    assert len(accepted) == 1
    row = store.all_scans()[0]
    assert row.source == "nfc" and row.payload == world.cards["lan"].credential and row.uploaded_at is not None
