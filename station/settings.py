"""The station's settings: its command line, and the log level from the environment.

The station reads nothing of the server's settings: everything it keeps is in ``--db`` (default
``var/station.sqlite3``).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from station.client import DEFAULT_TIMEOUT_SECONDS
from station.loop import DEFAULT_REFRESH_SECONDS

DEFAULT_DB: Final = "var/station.sqlite3"
# The server's variable: `cardsvc station` logged at this level when it ran inside the server's command.
LOG_LEVEL_VARIABLE: Final = "CARDSVC_LOG_LEVEL"


@dataclass(frozen=True)
class StationSettings:
    """One station run: an attribute per option of :func:`build_parser`, named like it (``serial`` and ``evdev``
    as tuples; ``nfc`` and ``nfc_writer`` are None when not given and "" for any reader), and the log level.
    """

    db: str
    setup: str | None
    server: str | None
    stdin: bool
    serial: tuple[str, ...]
    baudrate: int
    evdev: tuple[str, ...]
    nfc: str | None
    nfc_writer: str | None
    refresh_seconds: float
    timeout: float
    probe_seconds: float
    drain: bool
    drain_seconds: float
    plain: bool
    log_level: str


def build_parser(prog: str = "cardsvc-station") -> argparse.ArgumentParser:
    """The station's command line."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Run a door station. Inputs can be combined; every scan goes through the same "
                               "decision path.")
    parser.add_argument("--setup", metavar="URL|CODE", help="the set-up QR's text (…/checkin#setup=CODE) or code")
    parser.add_argument("--server", help="the server's base URL (needed with a bare set-up code)")
    parser.add_argument("--db", default=DEFAULT_DB, help=f"the station's database (default {DEFAULT_DB})")
    parser.add_argument("--stdin", action="store_true", help="read one scan per line from standard input")
    parser.add_argument("--serial", action="append", default=[], metavar="DEV",
                        help="a scanner in serial (USB-CDC) mode, e.g. /dev/ttyACM0 (repeatable)")
    parser.add_argument("--baudrate", type=int, default=9600, help="serial speed (RS-232 scanners only)")
    parser.add_argument("--evdev", action="append", default=[], metavar="DEV",
                        help="a keyboard-wedge scanner, e.g. /dev/input/by-id/usb-…-event-kbd (repeatable)")
    parser.add_argument("--nfc", nargs="?", const="", default=None, metavar="READER",
                        help="NFC taps on PC/SC readers (all of them, or the one named)")
    parser.add_argument("--nfc-writer", nargs="?", const="", default=None, metavar="READER",
                        help="write the cards officers hand to this station to blank NFC tags on this PC/SC reader "
                             "(the only one, or the one named); polled every few seconds while online")
    parser.add_argument("--refresh-seconds", type=float, default=DEFAULT_REFRESH_SECONDS,
                        help="how often to download a fresh event bundle")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS,
                        help="seconds a check-in may take before the station decides offline")
    parser.add_argument("--probe-seconds", type=float, default=5.0, help="while offline, how often to retry")
    parser.add_argument("--drain", action="store_true", help="upload the queued scans, then exit")
    parser.add_argument("--drain-seconds", type=float, default=60.0, help="how long --drain keeps trying")
    parser.add_argument("--plain", action="store_true", help="one line per result instead of the full screen")
    return parser


def parse_settings(argv: Sequence[str], environ: Mapping[str, str], *, prog: str = "cardsvc-station"
                   ) -> StationSettings:
    """The settings of a run.

    Args:
        argv: The command-line arguments (without the program name).
        environ: The environment (``CARDSVC_LOG_LEVEL``).
        prog: The command's name in usage and error messages.

    Returns:
        The settings.

    Raises:
        SystemExit: Bad arguments or ``--help`` (argparse prints the message).
    """
    options = vars(build_parser(prog).parse_args(argv))
    return StationSettings(**{**options, "serial": tuple(options["serial"]), "evdev": tuple(options["evdev"])},
                           log_level=environ.get(LOG_LEVEL_VARIABLE, "INFO"))
