"""The station as a process against a real server (uvicorn subprocess on its own database):

* end to end: ``--setup`` with the provisioning URL, online check-ins from stdin lines, the server stopped (offline
  verdicts queued), the server restarted (the queue drains), one server row per nonce;
* the crash test: a station fed scans while the server is down is killed with SIGKILL mid-queue; a new station
  process that only drains (also killed once mid-upload) gets every queued scan onto the server exactly once.
"""

from __future__ import annotations

import queue
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from cardsvc.db.models import Checkin
from cardsvc.security import PiiCipher
from cardsvc.services import cards, chapters, events, keys, members, stations
from cardsvc.services.keys import KeyRing
from cardsvc.services.printing import credential_of
from cardsvc.settings import Settings
from tests.conftest import SYSTEM, id_number_for
from tests.web.harness import SERVER_KEK, SERVER_SECRET, LiveServer, live_server

NAMES = ["Lan", "Hoa", "Mai", "Thu", "Hương", "Thảo", "Linh", "Ngọc"]
REPO = Path(__file__).resolve().parents[2]
RESULT = re.compile(r"^RESULT (?P<verdict>OK|DENIED) reason=(?P<reason>\S+) mode=(?P<mode>\w+) nonce=(?P<nonce>\S+)")


@dataclass
class Seeded:
    event_id: int
    qr: list[str]


def seed(server: LiveServer, *, members_count: int) -> Seeded:
    settings = Settings(environment="test", database_url=server.database_url, secret_key=SERVER_SECRET,
                        key_encryption_key=SERVER_KEK, status_list_size=4096, public_base_url=server.url,
                        _env_file=None)  # type: ignore[call-arg]
    cipher = PiiCipher.from_settings(settings)
    keyring = KeyRing(settings.kek)
    with server.session() as db:
        if keys.active_key(db, "trust") is None:
            for purpose in ("trust", "card"):
                keys.create_key(db, SYSTEM, settings.kek, purpose=purpose)
        suffix = f"{time.monotonic_ns() % 10**8}"
        root = chapters.create_chapter(db, SYSTEM, code=f"S{suffix}", name="Trung ương", level="central",
                                       parent_id=None)
        province = chapters.create_chapter(db, SYSTEM, code=f"S{suffix}-HN", name="Hà Nội", level="province",
                                           parent_id=root.id)
        qr = []
        for i in range(members_count):
            birth = datetime(1980 + i % 20, 3, 8).date()
            member, _ = members.create_member(db, SYSTEM, cipher, chapter_id=province.id, fields={
                "full_name": f"Nguyễn Thị {NAMES[i]}", "birth_date": birth, "gender": "female",
                "id_number": id_number_for(birth), "phone": "0912345678", "join_date": datetime(2010, 1, 1).date()})
            card = cards.issue_card(db, SYSTEM, keyring, member.id, validity_years=5, list_size=4096)
            qr.append(credential_of(card).qr_text)
        now = datetime.now(UTC)
        event = events.create_event(db, SYSTEM, events.EventSpec(
            chapter_id=province.id, title="Hội nghị", venue="Hội trường", starts_at=now - timedelta(minutes=5),
            ends_at=now + timedelta(hours=3), checkin_opens_at=now - timedelta(hours=1),
            checkin_closes_at=now + timedelta(hours=3)))
        return Seeded(event.id, qr)


def provisioning_url(server: LiveServer, event_id: int) -> str:
    with server.session() as db:
        registration = stations.register_station(db, SYSTEM, event_id, "Cửa chính")
        return f"{server.url}/checkin#setup={registration.provisioning_code}"


def station_command(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "station", "--db", str(db), "--plain", *args]


def run_station(db: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(station_command(db, *args), capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, check=False)


class StationProcess:
    """``cardsvc-station --stdin --plain`` as a subprocess: write scans, read its result lines."""

    def __init__(self, db: Path, *args: str) -> None:
        self.process = subprocess.Popen(station_command(db, "--stdin", *args), stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                                        bufsize=1)
        self.lines: queue.Queue[str] = queue.Queue()
        self.results: list[re.Match[str]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def scan(self, payload: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(payload + "\n")
        self.process.stdin.flush()

    def wait_for(self, pattern: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            match = RESULT.match(line)
            if match:
                self.results.append(match)
            if re.search(pattern, line):
                return line
        stderr = self.process.stderr.read() if self.process.poll() is not None and self.process.stderr else ""
        raise AssertionError(f"no line matching {pattern!r} (results so far {self.results}) {stderr}")

    def result(self) -> re.Match[str]:
        self.wait_for(r"^RESULT ")
        return self.results[-1]


def server_nonces(server: LiveServer, event_id: int) -> Counter[str]:
    with server.session() as db:
        return Counter(db.scalars(select(Checkin.client_nonce).where(Checkin.event_id == event_id)).all())


def local_rows(db: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(db) as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT nonce, uploaded_at FROM scans ORDER BY id")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("station-live")) as running:
        yield running


def test_setup_online_offline_and_back(server: LiveServer, tmp_path: Path) -> None:
    seeded = seed(server, members_count=3)
    db = tmp_path / "station.sqlite3"
    setup = run_station(db, "--setup", provisioning_url(server, seeded.event_id))
    assert setup.returncode == 0, setup.stderr
    assert "3 members on the roster" in setup.stdout

    station = StationProcess(db, "--probe-seconds", "0.3", "--timeout", "2")
    try:
        station.wait_for(r"^STATUS online")
        station.scan(f"]Q1{seeded.qr[0]}")
        first = station.result()
        assert (first["verdict"], first["mode"]) == ("OK", "online")
        # A second process on the same database (started twice, or --drain while it runs) is refused.
        second = run_station(db, "--drain")
        assert second.returncode == 2
        assert f"another station process (pid {station.process.pid}) is using {db}" in second.stderr

        server.stop()
        station.scan(seeded.qr[1])
        station.scan(seeded.qr[0])
        station.scan("84010000000000000001")
        offline = [station.result() for _ in range(3)]
        assert [(m["verdict"], m["reason"], m["mode"]) for m in offline] == [
            ("OK", "-", "offline"), ("DENIED", "already_checked_in", "offline"), ("DENIED", "malformed", "offline")]
        assert sum(1 for _, uploaded in local_rows(db) if uploaded is None) == 3

        server.start()
        station.wait_for(r"^STATUS online queued=0")
        station.scan(seeded.qr[2])
        last = station.result()
        assert (last["verdict"], last["mode"]) == ("OK", "online")
    finally:
        assert station.process.stdin is not None
        station.process.stdin.close()
        station.process.wait(timeout=30)
    assert station.process.returncode == 0

    shown = [m["nonce"] for m in station.results]
    on_server = server_nonces(server, seeded.event_id)
    assert len(shown) == 5 and set(on_server) == set(shown) and set(on_server.values()) == {1}
    with server.session() as session:
        rows = {r.client_nonce: r for r in session.scalars(select(Checkin).where(
            Checkin.event_id == seeded.event_id))}
    offline_ok = rows[offline[0]["nonce"]]
    assert offline_ok.result == "ok" and offline_ok.scanned_at is not None and offline_ok.source == "qr_scanner"
    assert rows[offline[1]["nonce"]].reason == "already_checked_in"
    assert all(uploaded is not None for _, uploaded in local_rows(db))


def test_killed_station_loses_nothing_and_sends_nothing_twice(server: LiveServer, tmp_path: Path) -> None:
    seeded = seed(server, members_count=6)
    db = tmp_path / "station.sqlite3"
    assert run_station(db, "--setup", provisioning_url(server, seeded.event_id)).returncode == 0
    payloads = seeded.qr + [f"8401{i:017d}" for i in range(34)]  # 6 cards, 34 unreadable codes: 40 scans

    server.stop()
    try:
        station = StationProcess(db, "--probe-seconds", "60")
        station.wait_for(r"^STATUS")
        for payload in payloads[:25]:
            station.scan(payload)
            time.sleep(0.01)
        station.wait_for(r"^RESULT ")
        while len(station.results) < 12:
            station.wait_for(r"^RESULT ")
        for payload in payloads[25:]:  # still feeding when the power goes
            station.scan(payload)
        station.process.kill()
        station.process.wait(timeout=10)
        assert station.process.returncode == -9
    finally:
        server.start()

    shown = [m["nonce"] for m in station.results]
    queued = [nonce for nonce, uploaded in local_rows(db)]
    assert set(shown) <= set(queued), "a result was shown for a scan that was not kept"
    assert len(queued) == len(set(queued)) and all(uploaded is None for _, uploaded in local_rows(db))

    # A drain killed mid-upload, then one that finishes.
    drain = subprocess.Popen(station_command(db, "--drain"), cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and drain.poll() is None:
        if any(uploaded for _, uploaded in local_rows(db)):
            break
        time.sleep(0.005)
    drain.kill()
    drain.wait(timeout=10)
    finished = run_station(db, "--drain")
    assert finished.returncode == 0, finished.stdout + finished.stderr

    on_server = server_nonces(server, seeded.event_id)
    assert set(on_server) == set(queued)
    assert all(count == 1 for count in on_server.values())
    assert all(uploaded is not None for _, uploaded in local_rows(db))
