"""The station's HTTP client (provisioning, event bundle, check-in) and its online/offline state machine.

The transport is injected (an ``httpx.Client``, with ``httpx.MockTransport`` in tests, pattern 7) and so is the
clock. Every request has a timeout and reports to :class:`LinkState`:

* **online → offline** after ``max_failures`` consecutive failures (network error, timeout, 5xx, 408, 429) or
  ``max_slow`` consecutive answers slower than ``slow_seconds``: the door must not wait for a struggling server;
* **offline → online** on the first fast, successful request; while offline the uploader probes every
  ``probe_seconds`` (by sending the oldest queued scan, or ``GET /healthz`` when nothing is queued).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import httpx

from station.errors import ServerRefused, ServerUnavailable

DEFAULT_TIMEOUT_SECONDS: Final = 3.0
# Statuses that say "not now" rather than "no": the same request may succeed later.
_RETRY_LATER: Final = frozenset({408, 425, 429})
ServerSource = Literal["qr_scanner", "qr_camera", "nfc", "manual"]
# The API's bound on the uploaded local reason code.
MAX_LOCAL_REASON: Final = 32


class LinkState:
    """Online or offline, from the outcome and latency of every request (thread-safe).

    Args:
        max_failures: Consecutive failures that switch to offline.
        slow_seconds: An answer slower than this counts as slow.
        max_slow: Consecutive slow answers that switch to offline.
        probe_seconds: While offline, how often to try the server again.
        clock: Monotonic seconds.
    """

    def __init__(self, *, max_failures: int = 2, slow_seconds: float = 2.0, max_slow: int = 2,
                 probe_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.slow_seconds = slow_seconds
        self.max_slow = max_slow
        self.probe_seconds = probe_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._online = True
        self._failures = 0
        self._slow = 0
        self._last_attempt = float("-inf")

    @property
    def online(self) -> bool:
        """True while live scans are sent to the server."""
        with self._lock:
            return self._online

    def record_success(self, latency: float) -> None:
        """A request answered (any status the server chose to give) after ``latency`` seconds."""
        with self._lock:
            self._last_attempt = self._clock()
            self._failures = 0
            if latency > self.slow_seconds:
                self._slow += 1
                if self._slow >= self.max_slow:
                    self._online = False
                return
            self._slow = 0
            self._online = True

    def record_failure(self) -> None:
        """A request failed: network error, timeout, 5xx, 408 or 429."""
        with self._lock:
            self._last_attempt = self._clock()
            self._failures += 1
            if self._failures >= self.max_failures:
                self._online = False

    def probe_due(self) -> bool:
        """While offline: whether it is time to try the server again."""
        with self._lock:
            return not self._online and self._clock() - self._last_attempt >= self.probe_seconds


@dataclass(frozen=True)
class ProvisionResult:
    """The answer to ``POST /v1/devices/provision``."""

    device_token: str
    station_id: int
    event_id: int
    server: str


@dataclass(frozen=True)
class CheckinUpload:
    """One scan as sent to ``POST /v1/events/{id}/checkins``.

    ``local_result`` and ``local_reason`` are the station's own verdict on a scan it decided offline; the server
    records the scan as offline and flags a conflict when it refuses a scan the station let in.
    """

    nonce: str
    source: ServerSource
    payload: str | bytes
    scanned_at: datetime
    local_result: Literal["ok", "error"] | None = None
    local_reason: str | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body: text as ``payload``, tag bytes as ``payload_base64``; ``offline`` with the local verdict
        for a scan decided offline."""
        body: dict[str, Any] = {"source": self.source, "client_nonce": self.nonce,
                                "scanned_at": self.scanned_at.isoformat()}
        if isinstance(self.payload, bytes):
            body["payload_base64"] = base64.b64encode(self.payload).decode("ascii")
        else:
            body["payload"] = self.payload
        if self.local_result is not None:
            body.update(offline=True, local_result=self.local_result,
                        local_reason=self.local_reason[:MAX_LOCAL_REASON] if self.local_reason else None)
        return body


@dataclass(frozen=True)
class NfcWriteTask:
    """A card an officer asked this station to write to a blank tag (``GET /v1/devices/nfc-writes``)."""

    id: int
    card_id: str
    lock: bool
    credential: bytes

    @classmethod
    def from_json(cls, body: Any) -> NfcWriteTask:
        """Read one item of the server's list.

        Raises:
            ServerUnavailable: The item is not a write request.
        """
        try:
            return cls(int(body["id"]), str(body["card_id"]), bool(body["lock"]),
                       base64.b64decode(body["credential_base64"], validate=True))
        except (KeyError, TypeError, ValueError) as exc:
            raise ServerUnavailable(f"the server's write request is not understood: {exc}") from exc


@dataclass(frozen=True)
class CheckinAnswer:
    """The server's decision on one scan."""

    result: Literal["ok", "error"]
    reason: str | None
    member_number: str | None
    name: str | None
    chapter: str | None
    direction: str | None
    first_at: datetime | None
    replayed: bool
    live: bool = False
    id_check: bool = False

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> CheckinAnswer:
        """Read a ``CheckinOut`` body.

        Raises:
            ServerUnavailable: The body is not a check-in answer (a proxy's page, a server half-upgraded…).
        """
        try:
            member = body.get("member") or {}
            chapter = member.get("chapter") or {}
            first = body.get("first_checkin") or {}
            result = body["result"]
            if result not in ("ok", "error"):
                raise ValueError(result)
            return cls(
                result="ok" if result == "ok" else "error", reason=body.get("reason"),
                member_number=member.get("member_number"), name=member.get("full_name"),
                chapter=chapter.get("name"), direction=body.get("direction"),
                first_at=datetime.fromisoformat(first["at"]) if first.get("at") else None,
                replayed=bool(body.get("replayed")), live=body.get("live") is True,
                id_check=body.get("id_check") is True,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ServerUnavailable(f"the server's check-in answer is not understood: {exc}") from exc


class StationClient:
    """Calls to the cardsvc server.

    Args:
        server: The base URL (``https://the.server``).
        token: The device token (None before provisioning).
        http: The transport; a new ``httpx.Client`` when None.
        timeout: Seconds for each request (connect, read and write each).
        link: The state machine to inform about each request; None to leave it out (set-up).
        clock: Monotonic seconds, to measure latency.
    """

    def __init__(self, server: str, *, token: str | None = None, http: httpx.Client | None = None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS, link: LinkState | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self._http = http if http is not None else httpx.Client()
        self._timeout = timeout
        self.link = link
        self._clock = clock

    def close(self) -> None:
        """Close the transport."""
        self._http.close()

    def _request(self, method: str, path: str, *, json: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        started = self._clock()
        try:
            response = self._http.request(method, f"{self.server}{path}", json=json, headers=headers,
                                          timeout=self._timeout)
        except httpx.HTTPError as exc:
            if self.link is not None:
                self.link.record_failure()
            raise ServerUnavailable(f"the server at {self.server} is not reachable: {exc!r}") from exc
        latency = self._clock() - started
        if response.status_code >= 500 or response.status_code in _RETRY_LATER:
            if self.link is not None:
                self.link.record_failure()
            raise ServerUnavailable(f"the server answered {response.status_code} to {method} {path}")
        if self.link is not None:
            self.link.record_success(latency)
        if response.status_code >= 400:
            code, message = f"http_{response.status_code}", response.text[:300]
            try:
                body = response.json()
                if isinstance(body, dict):
                    code = str(body.get("code") or code)
                    message = str(body.get("message") or message)
            except ValueError:
                pass
            raise ServerRefused(response.status_code, code, message)
        return response

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise ServerUnavailable(f"the server's answer is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ServerUnavailable("the server's answer is not a JSON object")
        return body

    def provision(self, code: str) -> ProvisionResult:
        """Exchange the one-time set-up code for a device token.

        Raises:
            ServerRefused: The code is unknown, used or expired (``invalid_provisioning_code``).
            ServerUnavailable: The server could not be reached.
        """
        body = self._json(self._request("POST", "/v1/devices/provision", json={"code": code}))
        try:
            return ProvisionResult(str(body["device_token"]), int(body["station_id"]), int(body["event_id"]),
                                   str(body.get("server") or self.server))
        except (KeyError, TypeError, ValueError) as exc:
            raise ServerUnavailable(f"the provisioning answer is not understood: {exc}") from exc

    def trust_anchor(self) -> dict[str, Any]:
        """The trust key's JWK (``/.well-known/cardsvc-trust-anchor.json``), to pin at set-up."""
        return self._json(self._request("GET", "/.well-known/cardsvc-trust-anchor.json"))

    def event_bundle(self, event_id: int) -> str:
        """The signed event bundle (to verify with the pinned anchor before use)."""
        return self._request("GET", f"/v1/events/{event_id}/bundle").text

    def checkin(self, event_id: int, upload: CheckinUpload) -> CheckinAnswer:
        """Send one scan. Idempotent: the same nonce and payload get the stored answer again.

        Raises:
            ServerRefused: A definitive refusal of the request (``nonce_reused``, a revoked device…).
            ServerUnavailable: Retry later.
        """
        response = self._request("POST", f"/v1/events/{event_id}/checkins", json=upload.body())
        return CheckinAnswer.from_json(self._json(response))

    def nfc_writes(self) -> list[NfcWriteTask]:
        """This station's pending NFC write requests, oldest first.

        Raises:
            ServerRefused: The device was refused (401).
            ServerUnavailable: Retry later.
        """
        try:
            items = self._request("GET", "/v1/devices/nfc-writes").json()
        except ValueError as exc:
            raise ServerUnavailable(f"the server's answer is not JSON: {exc}") from exc
        if not isinstance(items, list):
            raise ServerUnavailable("the server's list of write requests is not a list")
        return [NfcWriteTask.from_json(item) for item in items]

    def nfc_write_result(self, request_id: int, *, ok: bool, error: str | None, uid: str | None) -> None:
        """Report the outcome of a write.

        Raises:
            ServerRefused: Unknown request, or one that already has a result.
            ServerUnavailable: Retry later.
        """
        self._request("POST", f"/v1/devices/nfc-writes/{request_id}/result",
                      json={"ok": ok, "error": error[:200] if error else None, "uid": uid})

    def probe(self) -> None:
        """``GET /healthz``: only its effect on :attr:`link` matters.

        Raises:
            ServerUnavailable: Still unreachable.
        """
        self._request("GET", "/healthz")
