"""The door station's one decision path, for every input.

scan → de-duplicate → queue (committed, with a fresh client nonce) → decide → show:

* **online**: the scan is sent to ``POST /v1/events/{id}/checkins`` and the server's answer is shown and stored;
* **offline** (the link is down, or this very request failed or timed out): :func:`decide_offline` decides with the
  verified event bundle — :func:`verification.verify.verify` with the bundle's keys and status lists, then
  :func:`verification.entry.decide_entry` with the event's rules, the roster, and the check-ins known so far (the
  bundle's and this station's own) — and the verdict is stored on the queued row.

A background thread (:meth:`Station.background`) uploads queued rows oldest first, probes the server while offline,
and refreshes the event bundle. A row is marked uploaded only after a definitive answer (2xx, or a 4xx other than
401/403/408/429) and is never deleted; a retry after a crash sends the same nonce, which the server answers from its
record, so nothing is counted twice.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from station.client import CheckinAnswer, CheckinUpload, NfcWriteTask, ServerSource, StationClient
from station.dedupe import Deduplicator
from station.display import Display, Outcome, StationStatus
from station.errors import NotProvisionedError, ServerError, ServerRefused, StationError
from station.inputs import Clock, ReadFailure, ScanEvent, ScanKind, ScanSource, utc_now
from station.nfc_writer import TagWriter
from station.store import QueuedScan, StationStore
from verification.entry import PriorEntry, decide_entry
from verification.errors import TrustError
from verification.event_bundle import EventBundle, verify_event_bundle
from verification.ndef import NdefError
from verification.readers.errors import ReaderError
from verification.trust import TrustAnchor
from verification.verify import StatusLists, payload_hash_of, verify

logger = logging.getLogger(__name__)

SERVER_SOURCES: Final[dict[ScanKind, ServerSource]] = {"qr_scanner": "qr_scanner", "stdin": "qr_scanner",
                                                       "nfc": "nfc"}
# The server refused the device itself: keep the scans (they upload after the station is set up again).
DEVICE_REFUSALS: Final = frozenset({401, 403})
DEFAULT_REFRESH_SECONDS: Final = 300.0
DEFAULT_IDLE_SECONDS: Final = 5.0
DEFAULT_NFC_POLL_SECONDS: Final = 3.0
BLANK_TAG_PROMPT: Final = ["Đặt thẻ trắng lên đầu đọc", "Put a blank tag on the reader"]


@dataclass(frozen=True)
class LocalDecision:
    """An offline verdict with what the steward needs to see."""

    result: Literal["ok", "error"]
    reason: str | None
    member_number: str | None = None
    name: str | None = None
    chapter: str | None = None
    direction: str | None = None
    first_at: datetime | None = None
    live: bool = False
    id_check: bool = False


def decide_offline(payload: str | bytes, bundle: EventBundle | None, entries: Callable[[str], Iterable[PriorEntry]],
                   now: datetime) -> LocalDecision:
    """Decide a scan without the server: :func:`verification.verify.verify` with the bundle's keys and status lists,
    then :func:`verification.entry.decide_entry` with the bundle's rules and roster — the rules the server applies
    online.

    Args:
        payload: QR text or tag bytes.
        bundle: The verified event bundle, or None when the station has none; an expired bundle counts as none.
            Without a bundle nothing is accepted (``no_bundle``): the station cannot check keys or revocations.
        entries: The accepted scans known to the station of a member, by her member number; called once the card
            is known and the rules need them (:meth:`Station.decide_locally` reads the bundle and the station's own
            queue).
        now: The scan's time (station clock, timezone-aware).

    Returns:
        The decision, with the server's reason codes (``malformed`` … ``key_retired``, ``holder_proof_invalid``,
        ``stale_live_code``, ``live_code_required``, ``event_closed``, ``outside_window``, ``not_eligible``,
        ``already_checked_in``) plus ``no_bundle`` and ``no_status_list``; whether the card was a live code and
        whether the steward must check an identity document.
    """
    if bundle is None or bundle.expires_at < now:
        return LocalDecision("error", "no_bundle")
    verdict = verify(payload, bundle.trust, StatusLists(bundle.status_lists), now)
    claims = verdict.claims
    if claims is None:
        return LocalDecision("error", verdict.reason, live=verdict.live)
    member = bundle.member_for_card(claims.card_id)
    number = claims.member_number
    name = member.name if member else claims.display_name
    chapter = member.chapter_name if member else claims.chapter_code
    if not verdict.ok:
        # No status list for this card in the bundle: the roster's cards all have theirs, so it is not eligible.
        missing_list = verdict.reason == "revoked" and not verdict.status_checked
        reason = ("no_status_list" if member else "not_eligible") if missing_list else verdict.reason
        return LocalDecision("error", reason, number, name, chapter, live=verdict.live)
    # The roster is the event's eligible members, as the server selected them when it signed the bundle; the rules
    # include the event's choice of cards (docs/card-format.md §8.6).
    decision = decide_entry(bundle.event.rules, lambda: tuple(entries(number)), now, live=verdict.live,
                            eligible=lambda: member is not None)
    return LocalDecision("ok" if decision.ok else "error", decision.reason, number, name, chapter,
                         decision.direction, decision.first.at if decision.first else None, verdict.live,
                         decision.id_check)


def new_nonce(station_id: int) -> str:
    """A client nonce: the station id (for tracing) and 128 random bits, within the API's alphabet."""
    return f"st{station_id}-{secrets.token_urlsafe(16)}"


@dataclass(frozen=True)
class _SourceEnded:
    name: str
    error: str | None


class Station:
    """A provisioned door station.

    Args:
        store: The station database (provisioned: see ``cardsvc-station --setup``).
        client: The server client, with its :class:`~station.client.LinkState`; None for a station
            that never goes online (tests of the offline path).
        display: Where results go.
        clock: The station clock.
        dedupe: Duplicate filter (1 s window by default).
        nonce_factory: Client nonces (injectable for tests).
        nfc_writer: Writes the cards officers hand to this station (``--nfc-writer``); None: no NFC writes.

    Raises:
        NotProvisionedError: The database holds no set-up.
    """

    def __init__(self, store: StationStore, *, client: StationClient | None, display: Display,
                 clock: Clock = utc_now, dedupe: Deduplicator | None = None,
                 nonce_factory: Callable[[int], str] = new_nonce, nfc_writer: TagWriter | None = None) -> None:
        provisioning = store.provisioning()
        if provisioning is None:
            raise NotProvisionedError("this station is not set up: run `cardsvc-station --setup <set-up QR text>`")
        self.store = store
        self.client = client
        self.display = display
        self.event_id = provisioning.event_id
        self.station_id = provisioning.station_id
        self.anchor = TrustAnchor.from_jwk(provisioning.anchor_jwk)
        self._clock = clock
        self._dedupe = dedupe if dedupe is not None else Deduplicator()
        self._nonce = nonce_factory
        self._inflight: set[str] = set()
        self._lock = threading.Lock()
        self.nfc_writer = nfc_writer
        # Set while a tag is being written: taps on the readers are the blank tag, not scans.
        self._writing = threading.Event()
        # Writes done whose result the server has not acknowledged yet: request id -> (ok, error, uid).
        self._unreported: dict[int, tuple[bool, str | None, str | None]] = {}
        self.bundle: EventBundle | None = None
        self.problem: str | None = None
        self.load_bundle()

    # -- the event bundle ---------------------------------------------------------------------------------------

    def load_bundle(self) -> None:
        """Verify the stored bundle again (after a restart the pinned anchor is the only trust)."""
        token = self.store.bundle_token()
        if token is None:
            self.problem = "chưa tải dữ liệu sự kiện"
            return
        try:
            self.bundle = verify_event_bundle(token, self.anchor, self._clock())
            self.problem = None
        except TrustError as exc:
            self.bundle = None
            self.problem = "dữ liệu sự kiện không dùng được"
            logger.warning("stored event bundle refused: %s", exc)

    def refresh_bundle(self) -> bool:
        """Download, verify and store a fresh bundle.

        Returns:
            True when a new bundle is in use; False when the server could not be reached or the bundle did not
            verify (the previous one stays).
        """
        if self.client is None:
            return False
        try:
            token = self.client.event_bundle(self.event_id)
            bundle = verify_event_bundle(token, self.anchor, self._clock())
        except (ServerError, TrustError) as exc:
            logger.warning("event bundle refresh failed: %s", exc)
            if self.bundle is None:
                self.problem = "chưa tải được dữ liệu sự kiện"
            return False
        self.store.save_bundle(token, self._clock())
        self.bundle, self.problem = bundle, None
        return True

    # -- decisions ----------------------------------------------------------------------------------------------

    @property
    def online(self) -> bool:
        """Whether live scans go to the server."""
        return self.client is not None and (self.client.link is None or self.client.link.online)

    def status(self) -> StationStatus:
        """The state line for the display."""
        bundle = self.bundle
        return StationStatus(online=self.online, queued=self.store.pending_count(), conflicts=self.store.conflicts(),
                             event_title=bundle.event.title if bundle else None,
                             bundle_issued_at=bundle.issued_at if bundle else None, problem=self.problem)

    def decide_locally(self, payload: str | bytes, now: datetime) -> LocalDecision:
        """:func:`decide_offline` with this station's bundle and check-in state."""
        bundle = self.bundle

        def entries_of(member_number: str) -> list[PriorEntry]:
            known = [PriorEntry(c.at, c.direction, c.station_id) for c in bundle.checkins
                     if c.member_number == member_number] if bundle else []
            return known + self.store.accepted_entries(member_number)

        return decide_offline(payload, bundle, entries_of, now)

    def handle(self, event: ScanEvent) -> Outcome | None:
        """Run one scan through the decision path.

        Args:
            event: A scan, or a read failure to show.

        Returns:
            What to show, or None for a duplicate (dropped before anything is stored).
        """
        if event.source == "nfc" and self._writing.is_set():
            return None
        if isinstance(event, ReadFailure):
            return Outcome(ok=False, reason="read_failed", message=event.message)
        if self._dedupe.is_duplicate(event.payload):
            return None
        row = QueuedScan(nonce=self._nonce(self.station_id), source=SERVER_SOURCES[event.source],
                         payload=event.payload, payload_hash=payload_hash_of(event.payload), scanned_at=event.at)
        if self.client is not None and self.online:
            return self._online(row)
        return self._offline(row, queued=False)

    def _online(self, row: QueuedScan) -> Outcome:
        assert self.client is not None
        with self._lock:
            self._inflight.add(row.nonce)
        try:
            self.store.enqueue(row)
            try:
                answer = self.client.checkin(self.event_id, _upload(row))
            except ServerRefused as exc:
                if exc.status in DEVICE_REFUSALS:
                    self.store.record_attempt(row.nonce, f"{exc.status} {exc.code}")
                    return Outcome(ok=False, reason="device_rejected", nonce=row.nonce, message=str(exc))
                self.store.record_server(row.nonce, "error", exc.code, member_number=None, direction=None,
                                         at=self._clock())
                return Outcome(ok=False, reason=exc.code, nonce=row.nonce, message=str(exc))
            except ServerError as exc:
                logger.info("check-in sent offline after a server failure: %s", exc)
                return self._offline(row, queued=True)
            self._store_answer(row.nonce, answer)
            return _answer_outcome(row.nonce, answer)
        finally:
            with self._lock:
                self._inflight.discard(row.nonce)

    def _offline(self, row: QueuedScan, *, queued: bool) -> Outcome:
        decision = self.decide_locally(row.payload, row.scanned_at)
        if queued:
            self.store.record_local(row.nonce, decision.result, decision.reason,
                                    member_number=decision.member_number, direction=decision.direction)
        else:
            self.store.enqueue(QueuedScan(
                nonce=row.nonce, source=row.source, payload=row.payload, payload_hash=row.payload_hash,
                scanned_at=row.scanned_at, member_number=decision.member_number, direction=decision.direction,
                local_result=decision.result, local_reason=decision.reason))
        return Outcome(ok=decision.result == "ok", reason=decision.reason, name=decision.name,
                       member_number=decision.member_number, chapter=decision.chapter, direction=decision.direction,
                       offline=True, nonce=row.nonce, first_at=decision.first_at, live=decision.live,
                       id_check=decision.id_check)

    def _store_answer(self, nonce: str, answer: CheckinAnswer) -> None:
        self.store.record_server(nonce, answer.result, answer.reason, member_number=answer.member_number,
                                 direction=answer.direction if answer.result == "ok" else None, at=self._clock())

    # -- the queue ----------------------------------------------------------------------------------------------

    def upload_pending(self, *, limit: int = 100) -> int:
        """Send queued scans, oldest first, stopping at the first one the server cannot answer now.

        Args:
            limit: At most this many in this call.

        Returns:
            How many were answered definitively (and marked uploaded).
        """
        if self.client is None:
            return 0
        with self._lock:
            busy = tuple(self._inflight)
        done = 0
        for row in self.store.pending(limit=limit, exclude=busy):
            try:
                answer = self.client.checkin(self.event_id, _upload(row))
            except ServerRefused as exc:
                if exc.status in DEVICE_REFUSALS:
                    self.store.record_attempt(row.nonce, f"{exc.status} {exc.code}")
                    self.problem = "thiết bị bị từ chối — cần cài đặt lại"
                    return done
                self.store.record_server(row.nonce, "error", exc.code, member_number=None, direction=None,
                                         at=self._clock())
            except ServerError as exc:
                self.store.record_attempt(row.nonce, str(exc))
                return done
            else:
                self._store_answer(row.nonce, answer)
            done += 1
        return done

    def drain(self, *, timeout: float, pause: float = 0.5) -> int:
        """Upload until the queue is empty or ``timeout`` seconds passed, whatever the link state says.

        Returns:
            How many scans are still queued.
        """
        deadline = time.monotonic() + timeout
        while self.store.pending_count() and time.monotonic() < deadline:
            if not self.upload_pending():
                time.sleep(pause)
        return self.store.pending_count()

    def background(self, stop: threading.Event, *, interval: float = 1.0,
                   refresh_seconds: float = DEFAULT_REFRESH_SECONDS) -> None:
        """The uploader, prober and bundle refresher; runs until ``stop`` is set."""
        if self.client is None:
            return
        link = self.client.link
        next_refresh = time.monotonic() + refresh_seconds if self.bundle is not None else 0.0
        while not stop.is_set():
            if link is None or link.online or link.probe_due():
                try:
                    if self.store.pending_count():
                        self.upload_pending()
                    elif link is not None and not link.online:
                        self.client.probe()
                except ServerError as exc:
                    logger.info("server still unavailable: %s", exc)
            if time.monotonic() >= next_refresh and self.online:
                self.refresh_bundle()
                next_refresh = time.monotonic() + refresh_seconds
            stop.wait(interval)

    # -- NFC writes handed to the station ----------------------------------------------------------------------

    def tag_verifies(self, credential: bytes) -> bool:
        """Whether a credential verifies with this station's event bundle (keys and status lists)."""
        bundle = self.bundle
        if bundle is None:
            return False
        return verify(credential, bundle.trust, StatusLists(bundle.status_lists), self._clock()).ok

    def write_requested_tags(self) -> int:
        """Ask the server for the NFC writes officers handed to this station, write each to a blank tag and report.

        A result the server could not take is kept and reported first on the next call (the tag is not written
        again).

        Returns:
            How many results the server took.

        Raises:
            ServerError: The server could not be asked or told (the remaining work waits for the next call).
        """
        if self.client is None or self.nfc_writer is None:
            return 0
        reported = 0
        for request_id, (ok, error, uid) in list(self._unreported.items()):
            self._report(request_id, ok, error, uid)
            reported += 1
        for task in self.client.nfc_writes():
            if task.id in self._unreported:
                continue
            self._unreported[task.id] = self._write_tag(task)
            self._report(task.id, *self._unreported[task.id])
            reported += 1
        return reported

    def _report(self, request_id: int, ok: bool, error: str | None, uid: str | None) -> None:
        assert self.client is not None
        try:
            self.client.nfc_write_result(request_id, ok=ok, error=error, uid=uid)
        except ServerRefused as exc:
            if exc.status in DEVICE_REFUSALS:
                raise
            logger.warning("NFC write result %s refused: %s %s", request_id, exc.code, exc)
        self._unreported.pop(request_id, None)

    def _write_tag(self, task: NfcWriteTask) -> tuple[bool, str | None, str | None]:
        assert self.nfc_writer is not None
        self._writing.set()
        try:
            detail = f"thẻ {task.card_id}" + (" · khóa sau khi ghi" if task.lock else "")
            self.display.notice(BLANK_TAG_PROMPT, [detail], self.status())
            written = self.nfc_writer.write(task.credential, lock=task.lock, verify=self.tag_verifies)
        except (ReaderError, NdefError, ValueError) as exc:
            logger.warning("NFC write %s failed: %s", task.id, exc)
            self.display.show(Outcome(ok=False, reason="nfc_write_failed", message=str(exc)), self.status())
            return False, str(exc), None
        finally:
            self._writing.clear()
        self.display.notice(["✓ Đã ghi thẻ", "Tag written"],
                            [f"thẻ {task.card_id} · UID {written.uid}" + (" · đã khóa" if written.locked else "")],
                            self.status())
        return True, None, written.uid

    def nfc_write_loop(self, stop: threading.Event, *, interval: float = DEFAULT_NFC_POLL_SECONDS) -> None:
        """Poll for NFC writes every ``interval`` seconds while online; runs until ``stop`` is set."""
        while not stop.is_set():
            if self.online:
                try:
                    self.write_requested_tags()
                except ServerError as exc:
                    logger.info("NFC write requests unavailable: %s", exc)
            stop.wait(interval)

    # -- running ------------------------------------------------------------------------------------------------

    def run(self, sources: Sequence[ScanSource], *, stop: threading.Event | None = None,
            refresh_seconds: float = DEFAULT_REFRESH_SECONDS, idle_seconds: float = DEFAULT_IDLE_SECONDS,
            upload_interval: float = 1.0, final_drain_seconds: float = 5.0) -> None:
        """Read every source, decide, show; until every source ended or ``stop`` is set.

        Each source runs in its own thread and feeds one queue, so inputs never wait for each other. After the
        sources end, queued scans get ``final_drain_seconds`` to upload.
        """
        stop = stop if stop is not None else threading.Event()
        events: queue.Queue[ScanEvent | _SourceEnded] = queue.Queue()
        for source in sources:
            threading.Thread(target=_pump, args=(source, events), name=f"scan-{source.name}", daemon=True).start()
        worker = threading.Thread(target=self.background, args=(stop,),
                                  kwargs={"interval": upload_interval, "refresh_seconds": refresh_seconds},
                                  name="station-uploader", daemon=True)
        worker.start()
        if self.nfc_writer is not None:
            threading.Thread(target=self.nfc_write_loop, args=(stop,), name="station-nfc-writer", daemon=True).start()
        running = len(sources)
        shown_at = time.monotonic()
        idle_shown = False
        last_status = self.status()
        self.display.ready(last_status)
        try:
            # A station that only writes tags (no scan input) runs until stopped.
            while (running or self.nfc_writer is not None) and not stop.is_set():
                try:
                    item = events.get(timeout=0.25)
                except queue.Empty:
                    status = self.status()
                    idle = time.monotonic() - shown_at >= idle_seconds
                    if status != last_status or (idle and not idle_shown):
                        self.display.ready(status)
                        last_status, idle_shown = status, idle_shown or idle
                    continue
                if isinstance(item, _SourceEnded):
                    running -= 1
                    if item.error:
                        self.display.show(Outcome(ok=False, reason="read_failed", message=item.error), self.status())
                    continue
                outcome = self.handle(item)
                if outcome is not None:
                    last_status = self.status()
                    self.display.show(outcome, last_status)
                    shown_at, idle_shown = time.monotonic(), False
        finally:
            stop.set()
            for source in sources:
                source.close()
            worker.join(timeout=10)
        if self.client is not None and final_drain_seconds > 0:
            self.drain(timeout=final_drain_seconds)
            self.display.ready(self.status())


def _pump(source: ScanSource, events: queue.Queue[ScanEvent | _SourceEnded]) -> None:
    error: str | None = None
    try:
        for event in source.events():
            events.put(event)
    except (StationError, ReaderError) as exc:
        error = f"{source.name}: {exc}"
    finally:
        events.put(_SourceEnded(source.name, error))


def _upload(row: QueuedScan) -> CheckinUpload:
    """The upload of a queued row; a row decided offline carries the station's verdict (``offline`` on the server)."""
    source: ServerSource = "nfc" if row.source == "nfc" else "qr_scanner"
    return CheckinUpload(row.nonce, source, row.payload, row.scanned_at, local_result=row.local_result,
                         local_reason=row.local_reason)


def _answer_outcome(nonce: str, answer: CheckinAnswer) -> Outcome:
    return Outcome(ok=answer.result == "ok", reason=answer.reason, name=answer.name, member_number=answer.member_number,
                   chapter=answer.chapter, direction=answer.direction, offline=False, nonce=nonce,
                   first_at=answer.first_at, live=answer.live, id_check=answer.id_check)

