"""Errors raised by every population registry adapter (the stub, the HTTP adapter and any future one).

Callers catch these types only; third-party exceptions (httpx, sockets, JSON) are translated at the edge with
``raise ... from exc`` so the cause stays in the traceback. Messages never contain an ID number.

::

    RegistryError                 base class; .retryable says whether the same call may succeed later
    ├── RegistryTimeout           retryable: no answer in time (connect, read or write timeout);
    │                             .unanswered: the request was sent and no answer came (read timeout)
    ├── Throttled                 retryable: the registry asked us to slow down; .retry_after seconds
    ├── Unavailable               retryable: 5xx, connection refused or reset, maintenance
    │   └── CircuitOpen           retryable later: the adapter stopped calling after repeated failures;
    │                             .retry_after seconds until the circuit half-opens
    ├── RejectedRequest           NOT retryable: the registry refused this request; stable .code
    │                             (``invalid_id_number``, ``purpose_not_allowed``, ``unknown_batch`` …)
    ├── AuthFailure               NOT retryable: bad keys, expired or refused token, bad officer hash
    └── BadResponse               NOT retryable: the registry answered something we cannot read
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AuthFailure",
    "BadResponse",
    "CircuitOpen",
    "RegistryError",
    "RegistryTimeout",
    "RejectedRequest",
    "Throttled",
    "Unavailable",
]


class RegistryError(Exception):
    """Base class of every registry error. ``retryable`` is True when repeating the same call may succeed."""

    retryable: ClassVar[bool] = False


class RegistryTimeout(RegistryError):
    """The registry did not answer in time.

    Args:
        unanswered: the request reached the registry and no answer came within the read timeout (False: the
            connection could not be made, or the gateway gave up). Adapters do not repeat such a call at once:
            a registry that holds requests would only hold the repeat as long again.
    """

    retryable: ClassVar[bool] = True

    def __init__(self, message: str, *, unanswered: bool = False) -> None:
        super().__init__(message)
        self.unanswered = unanswered


class Throttled(RegistryError):
    """The registry (or its gateway) refused the call because of its rate limit.

    Args:
        retry_after: seconds to wait before the next call, as the registry said (HTTP ``Retry-After``).
    """

    retryable: ClassVar[bool] = True

    def __init__(self, retry_after: float, message: str = "the population registry throttled the request") -> None:
        super().__init__(message)
        self.retry_after = max(0.0, float(retry_after))


class Unavailable(RegistryError):
    """The registry is down, overloaded or unreachable."""

    retryable: ClassVar[bool] = True


class CircuitOpen(Unavailable):
    """The adapter's circuit breaker is open: no call was made. Try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("the population registry circuit breaker is open after repeated failures")
        self.retry_after = max(0.0, float(retry_after))


class RejectedRequest(RegistryError):
    """The registry refused the request itself; repeating it unchanged gives the same answer.

    Args:
        code: a stable machine-readable reason, e.g. ``invalid_id_number`` or ``purpose_not_allowed``.
        message: for people; never contains an ID number.
    """

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


class AuthFailure(RegistryError):
    """The registry refused our credentials, our access token or the officer hash."""


class BadResponse(RegistryError):
    """The registry's answer could not be understood (not JSON, missing fields, unknown values)."""
