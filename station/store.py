"""The station's local SQLite database: provisioning, the last verified event bundle, and the scan queue.

Durability: the database runs in WAL mode with ``synchronous=FULL``, so a committed row survives a killed process
and a power cut (the WAL is fsynced on every commit). Every scan is committed here *before* its result is shown
and before it is sent, with the client nonce it will be sent under; a scan the steward saw is therefore never lost,
and a retry after a crash reuses the nonce, which the server answers from its idempotency record instead of
counting the member twice. Rows are never deleted: ``uploaded_at`` marks the ones the server answered definitively.

The queue holds the scanned payload because it must be uploaded; it is the card's public credential (name, member
number, chapter — what is printed on the card), never an ID number, birth date or phone.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

from verification.entry import PriorEntry

LocalResult = Literal["ok", "error"]
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS config (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    nonce TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    payload_text TEXT,
    payload_bytes BLOB,
    payload_hash TEXT NOT NULL,
    scanned_at TEXT NOT NULL,
    member_number TEXT,
    direction TEXT,
    local_result TEXT CHECK (local_result IN ('ok', 'error')),
    local_reason TEXT,
    server_result TEXT CHECK (server_result IN ('ok', 'error')),
    server_reason TEXT,
    uploaded_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    CHECK ((payload_text IS NULL) <> (payload_bytes IS NULL))
);
CREATE INDEX IF NOT EXISTS ix_scans_pending ON scans (id) WHERE uploaded_at IS NULL;
CREATE INDEX IF NOT EXISTS ix_scans_member ON scans (member_number);
"""


@dataclass(frozen=True)
class Provisioning:
    """What ``--setup`` stored: where the server is, the device token, the event, and the pinned trust key."""

    server: str
    device_token: str
    event_id: int
    station_id: int
    anchor_jwk: dict[str, Any]


@dataclass(frozen=True)
class QueuedScan:
    """One row of the scan queue.

    Attributes:
        nonce: The client nonce the scan is (and will again be) sent under.
        source: The server's source name (``qr_scanner`` or ``nfc``).
        payload: Text from a scanner or bytes from a tag.
        payload_hash: SHA-256 hex of the payload (:func:`verification.verify.payload_hash_of`).
        scanned_at: When it was scanned (station clock).
        member_number: Whose card, once known (locally from the verified claims, or from the server's answer).
        direction: ``in`` or ``out`` for an accepted scan.
        local_result: The offline decision, when one was made (None: answered online, or not decided yet).
        local_reason: Its reason code.
        server_result: The server's answer once uploaded.
        server_reason: Its reason code.
        uploaded_at: When the server answered definitively; None while queued.
        attempts: Upload attempts so far.
    """

    nonce: str
    source: str
    payload: str | bytes
    payload_hash: str
    scanned_at: datetime
    member_number: str | None = None
    direction: str | None = None
    local_result: LocalResult | None = None
    local_reason: str | None = None
    server_result: LocalResult | None = None
    server_reason: str | None = None
    uploaded_at: datetime | None = None
    attempts: int = 0


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _row(row: sqlite3.Row) -> QueuedScan:
    payload: str | bytes = row["payload_text"] if row["payload_text"] is not None else bytes(row["payload_bytes"])
    uploaded = row["uploaded_at"]
    return QueuedScan(
        nonce=row["nonce"], source=row["source"], payload=payload, payload_hash=row["payload_hash"],
        scanned_at=datetime.fromisoformat(row["scanned_at"]), member_number=row["member_number"],
        direction=row["direction"], local_result=row["local_result"], local_reason=row["local_reason"],
        server_result=row["server_result"], server_reason=row["server_reason"],
        uploaded_at=None if uploaded is None else datetime.fromisoformat(uploaded), attempts=row["attempts"],
    )


class StationStore:
    """The station database. Safe to share between the scan loop and the uploader thread (one lock, one
    connection: SQLite serialises writers anyway, and the station writes a handful of rows a second at most).

    Args:
        path: The SQLite file (created with its directory). ``":memory:"`` for tests that need no durability.
    """

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        # Autocommit mode: every write below is one statement or an explicit transaction, committed (and, with
        # synchronous=FULL, fsynced) before the call returns.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def pragma(self, name: str) -> object:
        """A PRAGMA's current value (``journal_mode``, ``synchronous``), for checks and tests."""
        if name not in ("journal_mode", "synchronous"):
            raise ValueError(f"unsupported pragma {name!r}")
        with self._lock:
            row = self._db.execute(f"PRAGMA {name}").fetchone()
        return None if row is None else row[0]

    # -- configuration ------------------------------------------------------------------------------------------

    def _get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM config WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_many(self, values: dict[str, str]) -> None:
        with self._transaction() as db:
            db.executemany("INSERT INTO config (key, value) VALUES (?, ?) "
                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value", list(values.items()))

    def save_provisioning(self, provisioning: Provisioning) -> None:
        """Store the device token, server, event and pinned anchor (replacing an earlier set-up)."""
        self._set_many({
            "server": provisioning.server, "device_token": provisioning.device_token,
            "event_id": str(provisioning.event_id), "station_id": str(provisioning.station_id),
            "anchor_jwk": json.dumps(provisioning.anchor_jwk, sort_keys=True),
        })

    def provisioning(self) -> Provisioning | None:
        """The stored set-up, or None before ``--setup``."""
        token = self._get("device_token")
        server, event, station, anchor = (self._get(k) for k in ("server", "event_id", "station_id", "anchor_jwk"))
        if token is None or server is None or event is None or station is None or anchor is None:
            return None
        jwk = json.loads(anchor)
        if not isinstance(jwk, dict):
            return None
        return Provisioning(server, token, int(event), int(station), jwk)

    def save_bundle(self, token: str, fetched_at: datetime) -> None:
        """Keep the event bundle token (already verified by the caller) for offline use after a restart."""
        self._set_many({"bundle_token": token, "bundle_fetched_at": fetched_at.isoformat()})

    def bundle_token(self) -> str | None:
        """The last verified event bundle token, or None."""
        return self._get("bundle_token")

    # -- the scan queue -----------------------------------------------------------------------------------------

    def enqueue(self, scan: QueuedScan) -> None:
        """Commit a scan to the queue (durable when this returns).

        Raises:
            sqlite3.IntegrityError: The nonce is already queued (a programming error: nonces are random).
        """
        text = scan.payload if isinstance(scan.payload, str) else None
        blob = scan.payload if isinstance(scan.payload, bytes) else None
        with self._transaction() as db:
            db.execute(
                "INSERT INTO scans (nonce, source, payload_text, payload_bytes, payload_hash, scanned_at,"
                " member_number, direction, local_result, local_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (scan.nonce, scan.source, text, blob, scan.payload_hash, scan.scanned_at.isoformat(),
                 scan.member_number, scan.direction, scan.local_result, scan.local_reason),
            )

    def record_local(self, nonce: str, result: LocalResult, reason: str | None, *, member_number: str | None,
                     direction: str | None) -> None:
        """Store the offline decision of a queued scan."""
        with self._transaction() as db:
            db.execute("UPDATE scans SET local_result = ?, local_reason = ?, member_number = ?, direction = ? "
                       "WHERE nonce = ?", (result, reason, member_number, direction, nonce))

    def record_server(self, nonce: str, result: LocalResult, reason: str | None, *, member_number: str | None,
                      direction: str | None, at: datetime) -> None:
        """Store the server's definitive answer: the row leaves the queue (it is kept, marked uploaded)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE scans SET server_result = ?, server_reason = ?, member_number = COALESCE(?, member_number),"
                " direction = COALESCE(?, direction), uploaded_at = ?, attempts = attempts + 1, last_error = NULL "
                "WHERE nonce = ?", (result, reason, member_number, direction, at.isoformat(), nonce))

    def record_attempt(self, nonce: str, error: str) -> None:
        """Count a failed upload (the row stays queued)."""
        with self._transaction() as db:
            db.execute("UPDATE scans SET attempts = attempts + 1, last_error = ? WHERE nonce = ?", (error[:500], nonce))

    def pending(self, *, limit: int = 100, exclude: Sequence[str] = ()) -> list[QueuedScan]:
        """Queued scans, oldest first.

        Args:
            limit: At most this many.
            exclude: Nonces being sent right now by the scan loop (they must not be sent twice at once).
        """
        with self._lock:
            rows = self._db.execute("SELECT * FROM scans WHERE uploaded_at IS NULL ORDER BY id LIMIT ?",
                                    (limit + len(exclude),)).fetchall()
        skip = set(exclude)
        return [_row(r) for r in rows if r["nonce"] not in skip][:limit]

    def pending_count(self) -> int:
        """How many scans wait for the server."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM scans WHERE uploaded_at IS NULL").fetchone()[0])

    def scan(self, nonce: str) -> QueuedScan | None:
        """One row by nonce."""
        with self._lock:
            row = self._db.execute("SELECT * FROM scans WHERE nonce = ?", (nonce,)).fetchone()
        return None if row is None else _row(row)

    def all_scans(self) -> list[QueuedScan]:
        """Every row, oldest first (reports and tests)."""
        with self._lock:
            return [_row(r) for r in self._db.execute("SELECT * FROM scans ORDER BY id").fetchall()]

    def accepted_entries(self, member_number: str) -> list[PriorEntry]:
        """This station's accepted scans of a member (by the server's answer when there is one, else by the offline
        decision), oldest first: the local check-in state for ``already_checked_in`` while offline."""
        with self._lock:
            rows = self._db.execute(
                "SELECT scanned_at, direction FROM scans WHERE member_number = ? "
                "AND COALESCE(server_result, local_result) = 'ok' ORDER BY scanned_at, id", (member_number,),
            ).fetchall()
        return [PriorEntry(datetime.fromisoformat(r[0]), "out" if r[1] == "out" else "in") for r in rows]

    def conflicts(self) -> int:
        """Scans accepted offline that the server refused afterwards (another door let the member in first, a card
        revoked after the bundle was taken…): the steward's list to look at."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM scans WHERE local_result = 'ok' "
                                        "AND server_result = 'error'").fetchone()[0])
