"""``cardsvc-station``: the door station command (also ``python -m station``, and ``cardsvc station`` where the server
is installed).

::

    cardsvc-station --setup 'https://the.server/checkin#setup=CODE'       # once: device token, trust key, bundle
    cardsvc-station --evdev /dev/input/by-id/usb-…-event-kbd --nfc       # run: scanner + every NFC reader
    cardsvc-station --serial /dev/ttyACM0 --stdin
    cardsvc-station --drain                                              # upload queued scans, then exit
    cardsvc-station --stdin --nfc-writer                                 # also write the cards officers hand over

The station needs nothing of the server's settings or database (:mod:`station.settings`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no lock; one station process per database is then the operator's job
    fcntl = None  # type: ignore[assignment]

from station.client import LinkState, StationClient
from station.display import TerminalDisplay
from station.errors import StationError
from station.inputs import EvdevSource, PcscSource, ScanSource, SerialSource, StdinSource, utc_now
from station.loop import Station
from station.nfc_writer import TagWriter
from station.settings import StationSettings, parse_settings
from station.setup import parse_setup_text, provision_station
from station.store import StationStore
from verification.readers.errors import ReaderError


def _sources(args: StationSettings) -> list[ScanSource]:
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
    ``cardsvc-station`` (started twice by mistake, or ``--drain`` while the station runs) is refused instead. The
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


def run_station(args: StationSettings) -> int:
    """Run the station with its settings; the exit status."""
    release = _hold_database(args.db)
    if release is None:
        return 2
    try:
        return _run_station(args)
    finally:
        release()


def _run_station(args: StationSettings) -> int:
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
            print("error: this station is not set up: run `cardsvc-station --setup <set-up QR text>`",
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


def main(argv: Sequence[str] | None = None, *, prog: str = "cardsvc-station") -> int:
    """``cardsvc-station …``: parse the settings, set up logging, run.

    Args:
        argv: The arguments (default: the process's).
        prog: The command's name in messages (``cardsvc station`` when the server's command forwards here).

    Returns:
        The exit status.
    """
    settings = parse_settings(sys.argv[1:] if argv is None else argv, os.environ, prog=prog)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return run_station(settings)
