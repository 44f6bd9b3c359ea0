"""``cardsvc station``: the door station command (glue around :mod:`verification.station`).

::

    cardsvc station --setup 'https://the.server/checkin#setup=CODE'       # once: device token, trust key, bundle
    cardsvc station --evdev /dev/input/by-id/usb-…-event-kbd --nfc       # run: scanner + every NFC reader
    cardsvc station --serial /dev/ttyACM0 --stdin
    cardsvc station --drain                                              # upload queued scans, then exit
    cardsvc station --stdin --nfc-writer                                 # also write the cards officers hand over

Also runnable as ``python -m cardsvc.station_cli station …``. The station needs nothing of the server's settings or
database: everything it keeps is in ``--db`` (default ``var/station.sqlite3``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no lock; one station process per database is then the operator's job
    fcntl = None  # type: ignore[assignment]

from verification.readers.errors import ReaderError
from verification.station.client import DEFAULT_TIMEOUT_SECONDS, LinkState, StationClient
from verification.station.display import TerminalDisplay
from verification.station.errors import StationError
from verification.station.inputs import EvdevSource, PcscSource, ScanSource, SerialSource, StdinSource, utc_now
from verification.station.loop import DEFAULT_REFRESH_SECONDS, Station
from verification.station.nfc_writer import TagWriter
from verification.station.setup import parse_setup_text, provision_station
from verification.station.store import StationStore

DEFAULT_DB = "var/station.sqlite3"


def add_station_commands(subparsers: Any) -> None:
    """Register ``station`` on the ``cardsvc`` sub-command parser.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    station = subparsers.add_parser(
        "station", help="run a door station: scanners and NFC readers, online or offline check-in",
        description="Run a door station. Inputs can be combined; every scan goes through the same decision path.")
    station.add_argument("--setup", metavar="URL|CODE", help="the set-up QR's text (…/checkin#setup=CODE) or code")
    station.add_argument("--server", help="the server's base URL (needed with a bare set-up code)")
    station.add_argument("--db", default=DEFAULT_DB, help=f"the station's database (default {DEFAULT_DB})")
    station.add_argument("--stdin", action="store_true", help="read one scan per line from standard input")
    station.add_argument("--serial", action="append", default=[], metavar="DEV",
                         help="a scanner in serial (USB-CDC) mode, e.g. /dev/ttyACM0 (repeatable)")
    station.add_argument("--baudrate", type=int, default=9600, help="serial speed (RS-232 scanners only)")
    station.add_argument("--evdev", action="append", default=[], metavar="DEV",
                         help="a keyboard-wedge scanner, e.g. /dev/input/by-id/usb-…-event-kbd (repeatable)")
    station.add_argument("--nfc", nargs="?", const="", default=None, metavar="READER",
                         help="NFC taps on PC/SC readers (all of them, or the one named)")
    station.add_argument("--nfc-writer", nargs="?", const="", default=None, metavar="READER",
                         help="write the cards officers hand to this station to blank NFC tags on this PC/SC reader "
                              "(the only one, or the one named); polled every few seconds while online")
    station.add_argument("--refresh-seconds", type=float, default=DEFAULT_REFRESH_SECONDS,
                         help="how often to download a fresh event bundle")
    station.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS,
                         help="seconds a check-in may take before the station decides offline")
    station.add_argument("--probe-seconds", type=float, default=5.0, help="while offline, how often to retry")
    station.add_argument("--drain", action="store_true", help="upload the queued scans, then exit")
    station.add_argument("--drain-seconds", type=float, default=60.0, help="how long --drain keeps trying")
    station.add_argument("--plain", action="store_true", help="one line per result instead of the full screen")
    station.set_defaults(func=cmd_station)


def _sources(args: argparse.Namespace) -> list[ScanSource]:
    sources: list[ScanSource] = []
    if args.stdin:
        sources.append(StdinSource(sys.stdin))
    sources.extend(SerialSource(dev, baudrate=args.baudrate) for dev in args.serial)
    sources.extend(EvdevSource(dev) for dev in args.evdev)
    if args.nfc is not None:
        sources.append(PcscSource(args.nfc or None))
    return sources


def _hold_database(path: str) -> Callable[[], None] | None:
    """Lock ``<db>.lock`` for this process and return what releases it; None when another station process holds it.

    Two processes on one station database would both read the scanners and upload the same queue: a second
    ``cardsvc station`` (started twice by mistake, or ``--drain`` while the station runs) is refused instead. The
    operating system drops the lock when the process ends, however it ends.
    """
    if path == ":memory:" or fcntl is None:
        return lambda: None
    lock_path = Path(path + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = lock_path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        print(f"error: another station process{f' (pid {holder})' if holder else ''} is using {path}; stop it "
              "first", file=sys.stderr)
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle.close


def run_station(args: argparse.Namespace) -> int:
    """Run ``cardsvc station`` with parsed arguments; the exit status."""
    release = _hold_database(args.db)
    if release is None:
        return 2
    try:
        return _run_station(args)
    finally:
        release()


def _run_station(args: argparse.Namespace) -> int:
    store = StationStore(args.db)
    try:
        if args.setup:
            base, code = parse_setup_text(args.setup, args.server)
            setup_client = StationClient(base, timeout=max(args.timeout, 10.0))
            try:
                report = provision_station(store, setup_client, code, utc_now())
            finally:
                setup_client.close()
            print(f"station {report.station_id} of event {report.event_id} set up with {report.server}; "
                  f"trust key {report.anchor_kid} pinned")
            if report.bundle is not None:
                print(f"event bundle: {report.bundle.event.title}, {len(report.bundle.roster)} members on the roster")
            else:
                print(f"event bundle not downloaded yet ({report.bundle_problem}); the station retries when it runs")
        sources = _sources(args)
        if args.setup and not sources and not args.drain and args.nfc_writer is None:
            return 0
        provisioning = store.provisioning()
        if provisioning is None:
            print("error: this station is not set up: run `cardsvc station --setup <set-up QR text>`",
                  file=sys.stderr)
            return 2
        link = LinkState(probe_seconds=args.probe_seconds, slow_seconds=max(args.timeout / 2, 0.5))
        client = StationClient(provisioning.server, token=provisioning.device_token, timeout=args.timeout, link=link)
        display = TerminalDisplay(sys.stdout, full_screen=False if args.plain else None)
        try:
            writer = TagWriter(args.nfc_writer or None) if args.nfc_writer is not None else None
            station = Station(store, client=client, display=display, nfc_writer=writer)
            if args.drain:
                left = station.drain(timeout=args.drain_seconds)
                print(f"{left} scans still queued" if left else "queue empty: every scan is on the server")
                return 1 if left else 0
            if not sources and writer is None:
                print("error: no input: give --stdin, --serial DEV, --evdev DEV, --nfc and/or --nfc-writer",
                      file=sys.stderr)
                return 2
            if station.bundle is None:
                station.refresh_bundle()
            try:
                station.run(sources, refresh_seconds=args.refresh_seconds)
            except KeyboardInterrupt:
                pass
            finally:
                if display.full_screen:
                    sys.stdout.write("\x1b[0m\x1b[?25h\n")
            return 0
        finally:
            client.close()
    except (StationError, ReaderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()


def cmd_station(_settings: object, args: argparse.Namespace) -> int:
    """The ``cardsvc`` sub-command (the server's settings are not used)."""
    return run_station(args)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cardsvc.station_cli station …``."""
    parser = argparse.ArgumentParser(prog="cardsvc")
    add_station_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return run_station(args)


if __name__ == "__main__":
    sys.exit(main())
