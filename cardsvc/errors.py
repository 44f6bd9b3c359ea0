"""The service's exception tree. Every error a client can see carries a stable ``code``.

::

    CardsvcError                     500  (never raised directly)
    ├── BadRequest                   400  bad_request, malformed_json, …
    │   └── ValidationFailed         422  validation_failed (details name each field or row)
    ├── AuthenticationFailed         401  invalid_credentials, invalid_token
    ├── PermissionDenied             403  forbidden (authenticated but lacking a permission)
    ├── NotFound                     404  not_found (also for anything outside the officer's chapter scope)
    ├── Conflict                     409  conflict, duplicate_member, chapter_cycle, …
    ├── PayloadTooLarge              413  payload_too_large
    └── TooManyRequests              429  login_rate_limited, checkin_rate_limited (with ``retry_after`` seconds)

Routes never build HTTP errors themselves: services raise these, and one handler in ``cardsvc.app`` renders
``{"code", "message", "details"}``.
"""

from __future__ import annotations

from typing import Any


class CardsvcError(Exception):
    """Base of all errors the service reports to clients."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class BadRequest(CardsvcError):
    status_code = 400
    code = "bad_request"


class ValidationFailed(BadRequest):
    status_code = 422
    code = "validation_failed"


class AuthenticationFailed(CardsvcError):
    status_code = 401
    code = "invalid_credentials"


class PermissionDenied(CardsvcError):
    status_code = 403
    code = "forbidden"


class NotFound(CardsvcError):
    status_code = 404
    code = "not_found"


class Conflict(CardsvcError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(CardsvcError):
    status_code = 413
    code = "payload_too_large"


class TooManyRequests(CardsvcError):
    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None, details: Any = None) -> None:
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after
