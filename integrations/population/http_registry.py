"""The HTTP adapter to the registry's exchange: :class:`HttpRegistry`, its settings and its HTTP client.

Policy lives here, transport in the injected ``httpx.Client`` (build it with :func:`make_http_client`):

* retries with exponential backoff and full jitter (delay = random() × min(cap, base × 2^attempt)) on retryable
  errors only — connect timeouts, 429 (honouring ``Retry-After``), 502/503/504 and connection errors — never on
  400, 401, 403 or a refused request, and never on a read timeout: a registry that took the request and did not
  answer within ``timeout`` would hold each repeat as long again, and a caller must learn that it is down in seconds,
  not after (1 + max_retries) × timeout. Every retry reuses the same ``MaYeuCau``, so the registry can de-duplicate.
* separate timeouts: ``connect_timeout`` (short: a registry that does not accept a connection in a few seconds is
  down) and ``timeout`` for reading the answer, writing the request and waiting for a pooled connection.
* a circuit breaker: closed → open after ``breaker_threshold`` consecutive failures → half-open after
  ``breaker_reset_seconds`` (one trial call) → closed on success, open again on failure. Throttling (429) and
  refused requests are not failures of the registry and do not count.
* a client-side token bucket, so the union stays under its agreed rate.

ID numbers travel only in POST bodies; they are never put in a URL or a log message.
"""

from __future__ import annotations

import email.utils
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

import httpx

from integrations.population.errors import (
    AuthFailure,
    BadResponse,
    CircuitOpen,
    RegistryError,
    RegistryTimeout,
    RejectedRequest,
    Throttled,
    Unavailable,
)
from integrations.population.models import (
    BatchState,
    BatchStatus,
    CallContext,
    LookupRequest,
    MembershipFact,
    Notification,
    Operation,
    PersonRecord,
    Purpose,
    VerifyRequest,
    VerifyResult,
)
from integrations.population.ratelimit import TokenBucket
from integrations.population.wire import (
    OFFICER_HASH_HEADER,
    WireError,
    decode_batch_state,
    decode_notification,
    decode_person,
    decode_verify_result,
    encode_context,
    encode_fact,
    encode_id_number,
    encode_verify_request,
    officer_hash,
)

__all__ = ["CircuitBreaker", "CircuitState", "HttpRegistry", "RegistrySettings", "make_http_client", "make_ssl_context"]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

# Refresh the access token this long before the registry says it expires.
_TOKEN_MARGIN_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    """How to reach the registry exchange and how politely.

    Attributes:
        base_url: e.g. ``https://lgsp.example.gov.vn``.
        access_key, secret_key, app_name, partner_code: the LGSP credentials (secret_key also keys the officer hash).
        agency_code, service_code: ``MaDonVi`` and ``MaTichHop`` used by :meth:`context`.
        timeout: seconds for read, write and pool each; connect_timeout: seconds to open a connection.
        max_retries: retries after the first attempt (0: no retry).
        backoff_base, backoff_cap: seconds; the n-th retry waits random() × min(cap, base × 2^n).
        max_retry_after: a ``Retry-After`` longer than this is not waited for: ``Throttled`` is raised at once.
        breaker_threshold, breaker_reset_seconds: the circuit breaker.
        rate_limit_per_second, rate_limit_burst: client-side token bucket (None: no limit; burst default: max(1, rate)).
        client_cert_file, client_key_file: mTLS client certificate and key (PEM); ca_file: CA bundle to trust.
        api_prefix, token_path: paths on the exchange.
    """

    base_url: str
    access_key: str
    secret_key: str = field(repr=False)
    app_name: str
    partner_code: str
    agency_code: str
    service_code: str
    timeout: float = 10.0
    connect_timeout: float = 3.0
    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_retry_after: float = 60.0
    breaker_threshold: int = 5
    breaker_reset_seconds: float = 30.0
    rate_limit_per_second: float | None = 10.0
    rate_limit_burst: float | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    ca_file: str | None = None
    api_prefix: str = "/api/dancu"
    token_path: str = "/token"

    def context(
        self, *, officer_code: str, purpose: Purpose, procedure_code: str, request_id: str | None = None
    ) -> CallContext:
        """A :class:`CallContext` for this union's agency and service code (a fresh request id by default)."""
        return CallContext(
            request_id=request_id or CallContext.new_request_id(),
            procedure_code=procedure_code,
            service_code=self.service_code,
            agency_code=self.agency_code,
            officer_code=officer_code,
            purpose=purpose,
        )


def make_ssl_context(settings: RegistrySettings) -> ssl.SSLContext:
    """Certificate verification against ``ca_file`` (or the system CAs) and the mTLS client certificate, if set.

    Raises:
        ValueError: a client certificate without its key or the reverse.
        OSError, ssl.SSLError: unreadable files.
    """
    if (settings.client_cert_file is None) != (settings.client_key_file is None):
        raise ValueError("client_cert_file and client_key_file go together")
    context = ssl.create_default_context(cafile=settings.ca_file)
    if settings.client_cert_file and settings.client_key_file:
        context.load_cert_chain(settings.client_cert_file, settings.client_key_file)
    return context


def make_http_client(settings: RegistrySettings, **options: Any) -> httpx.Client:
    """The ``httpx.Client`` for :class:`HttpRegistry`: base URL, timeouts, TLS (mTLS when configured).

    ``options`` are passed to ``httpx.Client`` (e.g. ``event_hooks``, ``transport``).
    """
    return httpx.Client(
        base_url=settings.base_url,
        timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
        verify=make_ssl_context(settings),
        follow_redirects=False,
        headers={"User-Agent": "cardsvc-population-registry/1"},
        **options,
    )


class CircuitState(StrEnum):
    """State of a :class:`CircuitBreaker`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Stops calling a failing registry for a while. Thread-safe; ``clock`` is injected."""

    def __init__(self, threshold: int, reset_seconds: float, clock: Callable[[], float]) -> None:
        if threshold < 1:
            raise ValueError("breaker threshold must be at least 1")
        self._threshold = threshold
        self._reset_seconds = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False
        self._lock = threading.Lock()

    @property
    def state(self) -> CircuitState:
        """Closed, open, or half-open (open for ``reset_seconds`` already)."""
        with self._lock:
            return self._state()

    def _state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._clock() - self._opened_at >= self._reset_seconds:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def before_call(self) -> None:
        """Raise :class:`CircuitOpen` unless a call may go out now (in half-open state: one trial at a time)."""
        with self._lock:
            state = self._state()
            if state is CircuitState.CLOSED:
                return
            if state is CircuitState.HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return
            assert self._opened_at is not None
            raise CircuitOpen(max(0.0, self._opened_at + self._reset_seconds - self._clock()))

    def record_success(self) -> None:
        """The registry answered: close the circuit."""
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_running = False

    def record_failure(self) -> None:
        """The registry failed (timeout, 5xx, connection): count it; open on the threshold or a failed trial."""
        with self._lock:
            self._failures += 1
            if self._trial_running or self._failures >= self._threshold:
                self._opened_at = self._clock()
                self._trial_running = False

    def release_trial(self) -> None:
        """A half-open trial ended without telling anything about the registry's health (e.g. throttled)."""
        with self._lock:
            self._trial_running = False


def _retry_after(response: httpx.Response, now: Callable[[], datetime]) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now()).total_seconds())


def _error_code(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return f"http_{response.status_code}", ""
    if not isinstance(body, dict):
        return f"http_{response.status_code}", ""
    return str(body.get("MaLoi") or f"http_{response.status_code}"), str(body.get("MoTa") or "")


class HttpRegistry:
    """:class:`~integrations.population.protocol.PopulationRegistry` over the registry's HTTP exchange.

    Args:
        client: the transport (see :func:`make_http_client`); its ``base_url`` is the exchange.
        settings: credentials and policy.
        sleep, clock, random: injected so tests do not wait (``random`` returns a float in [0, 1)).
    """

    def __init__(
        self,
        client: httpx.Client,
        settings: RegistrySettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = random.random,
    ) -> None:
        self._client = client
        self._settings = settings
        self._sleep = sleep
        self._clock = clock
        self._random = random
        self._breaker = CircuitBreaker(settings.breaker_threshold, settings.breaker_reset_seconds, clock)
        self._limiter = (
            TokenBucket(settings.rate_limit_per_second, settings.rate_limit_burst, clock=clock)
            if settings.rate_limit_per_second
            else None
        )
        self._token: tuple[str, float] | None = None
        self._token_lock = threading.Lock()

    @property
    def circuit_state(self) -> CircuitState:
        """The circuit breaker's state."""
        return self._breaker.state

    # -- the Protocol ------------------------------------------------------------------------------------------

    def verify_identity(self, context: CallContext, request: VerifyRequest) -> VerifyResult:
        """See :meth:`PopulationRegistry.verify_identity`."""
        body = self._call(Operation.VERIFY, context, encode_verify_request(request))
        return self._decode(decode_verify_result, body)

    def lookup(self, context: CallContext, request: LookupRequest) -> PersonRecord | None:
        """See :meth:`PopulationRegistry.lookup`."""
        body = self._call(Operation.LOOKUP, context, encode_id_number(request.id_number))
        person = body.get("CongDan")
        if person is None:
            return None
        if not isinstance(person, dict):
            raise BadResponse("CongDan must be an object or null")
        return self._decode(decode_person, person)

    def submit_batch(self, context: CallContext, requests: Sequence[VerifyRequest]) -> str:
        """See :meth:`PopulationRegistry.submit_batch`."""
        body = self._call(Operation.SUBMIT_BATCH, context, {"DanhSach": [encode_verify_request(r) for r in requests]})
        batch_id = body.get("MaLo")
        if not isinstance(batch_id, str) or not batch_id:
            raise BadResponse("MaLo missing from the answer")
        return batch_id

    def poll_batch(self, context: CallContext, batch_id: str) -> BatchStatus:
        """See :meth:`PopulationRegistry.poll_batch`: ``GetRequestStatus``, then ``GetRequestResult`` when done."""
        status = self._call(Operation.BATCH_STATUS, context, {"MaLo": batch_id})
        if self._decode(decode_batch_state, status) is BatchState.PENDING:
            return BatchStatus(batch_id, BatchState.PENDING)
        answer = self._call(Operation.BATCH_RESULT, context, {"MaLo": batch_id})
        items = answer.get("KetQua")
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise BadResponse("KetQua must be a list of results")
        return BatchStatus(batch_id, BatchState.DONE, tuple(self._decode(decode_verify_result, i) for i in items))

    def publish_membership(self, context: CallContext, fact: MembershipFact) -> None:
        """See :meth:`PopulationRegistry.publish_membership`."""
        self._call(Operation.PUBLISH_MEMBERSHIP, context, encode_fact(fact))

    def withdraw_membership(self, context: CallContext, id_number: str, organisation_code: str) -> None:
        """See :meth:`PopulationRegistry.withdraw_membership`."""
        self._call(
            Operation.WITHDRAW_MEMBERSHIP, context, {**encode_id_number(id_number), "MaToChuc": organisation_code}
        )

    def notifications(
        self, context: CallContext, since_cursor: str | None, limit: int = 100
    ) -> tuple[list[Notification], str]:
        """See :meth:`PopulationRegistry.notifications`."""
        body = self._call(Operation.NOTIFICATIONS, context, {"ViTri": since_cursor, "SoLuong": limit})
        items, next_cursor = body.get("DanhSachThongBao"), body.get("ViTriTiepTheo")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items) or not isinstance(
            next_cursor, str
        ):
            raise BadResponse("DanhSachThongBao / ViTriTiepTheo malformed")
        return [self._decode(decode_notification, item) for item in items], next_cursor

    # -- policy ------------------------------------------------------------------------------------------------

    def _call(self, operation: Operation, context: CallContext, payload: Mapping[str, Any]) -> dict[str, Any]:
        """One registry call with rate limiting, circuit breaking and retries. Returns the JSON answer."""
        body = {**encode_context(context), **payload}
        attempt = 0
        while True:
            self._breaker.before_call()
            if self._limiter is not None:
                self._limiter.take(self._sleep)
            try:
                answer = self._send(operation, context, body)
            except RegistryError as exc:
                if isinstance(exc, (RegistryTimeout, Unavailable)):
                    self._breaker.record_failure()
                elif isinstance(exc, Throttled):
                    self._breaker.release_trial()
                else:
                    # The registry answered (400, 401, 403 …): it is up.
                    self._breaker.record_success()
                delay = self._retry_delay(exc, attempt)
                if delay is None:
                    raise
                logger.warning(
                    "population registry %s (request %s) failed with %s; retry %d of %d in %.2f s",
                    operation.value, context.request_id, type(exc).__name__, attempt + 1,
                    self._settings.max_retries, delay,
                )
                self._sleep(delay)
                attempt += 1
                continue
            self._breaker.record_success()
            return answer

    def _retry_delay(self, exc: RegistryError, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None to give up."""
        if not exc.retryable or attempt >= self._settings.max_retries:
            return None
        if isinstance(exc, RegistryTimeout) and exc.unanswered:
            return None
        if isinstance(exc, Throttled) and exc.retry_after > 0:
            return exc.retry_after if exc.retry_after <= self._settings.max_retry_after else None
        ceiling = min(self._settings.backoff_cap, self._settings.backoff_base * 2.0**attempt)
        return self._random() * ceiling

    # -- transport ---------------------------------------------------------------------------------------------

    def _send(self, operation: Operation, context: CallContext, body: dict[str, Any]) -> dict[str, Any]:
        headers = {
            "Authorization": f"Bearer {self._access_token()}",
            OFFICER_HASH_HEADER: officer_hash(self._settings.secret_key, context.officer_code, context.request_id),
        }
        response = self._post(f"{self._settings.api_prefix}/{operation.value}", body, headers)
        if response.status_code == 401:
            # The token may have expired early on the registry's side: the next call fetches a new one.
            with self._token_lock:
                self._token = None
        return self._answer(response)

    def _access_token(self) -> str:
        with self._token_lock:
            if self._token is not None and self._clock() < self._token[1]:
                return self._token[0]
        s = self._settings
        credentials = {
            "AccessKey": s.access_key, "SecretKey": s.secret_key, "AppName": s.app_name, "PartnerCode": s.partner_code
        }
        response = self._post(s.token_path, credentials, {})
        answer = self._answer(response)
        token, lifetime = answer.get("access_token"), answer.get("expires_in", 0)
        if not isinstance(token, str) or not token or not isinstance(lifetime, (int, float)):
            raise BadResponse("the token endpoint answered no access_token")
        with self._token_lock:
            self._token = (token, self._clock() + max(0.0, float(lifetime) - _TOKEN_MARGIN_SECONDS))
        return token

    def _post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        """POST JSON, translating httpx exceptions into registry errors."""
        try:
            return self._client.post(path, json=body, headers=headers)
        except httpx.ReadTimeout as exc:
            raise RegistryTimeout(f"the population registry took the request and did not answer within "
                                  f"{self._settings.timeout:g} s", unanswered=True) from exc
        except httpx.TimeoutException as exc:
            raise RegistryTimeout(f"the population registry did not answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach the population registry ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise BadResponse(f"unusable answer from the population registry ({type(exc).__name__})") from exc

    def _answer(self, response: httpx.Response) -> dict[str, Any]:
        """The JSON body of a 200 answer, or the registry error the status stands for."""
        status = response.status_code
        if status == 200:
            try:
                body = response.json()
            except ValueError as exc:
                raise BadResponse("the population registry answered something that is not JSON") from exc
            if not isinstance(body, dict):
                raise BadResponse("the population registry answered JSON that is not an object")
            return body
        code, message = _error_code(response)
        if status == 429:
            retry_after = _retry_after(response, lambda: datetime.now(UTC))
            raise Throttled(retry_after if retry_after is not None else 0.0)
        if status == 401:
            raise AuthFailure(f"the population registry refused our credentials ({code})")
        if status in (400, 403, 404, 409, 422):
            raise RejectedRequest(code, message)
        if status == 504:
            raise RegistryTimeout(f"the registry gateway timed out ({code})")
        if status >= 500:
            raise Unavailable(f"the population registry is unavailable (HTTP {status}, {code})")
        raise BadResponse(f"unexpected HTTP status {status} from the population registry")

    @staticmethod
    def _decode(decoder: Callable[[Mapping[str, Any]], _T], body: Mapping[str, Any]) -> _T:
        try:
            return decoder(body)
        except WireError as exc:
            raise BadResponse(f"malformed answer from the population registry ({exc.code})") from exc
