"""Errors of the wallet adapters (Apple's push service, Google's Wallet API).

::

    WalletServiceError
     ├── WalletUnavailable      retry later: timeout, connection error, 429, 5xx (``retry_after`` when told)
     │    └── WalletAuthFailure our credentials were refused (expired token, wrong key): retry once they are fixed
     └── WalletRejected         this request will never succeed as it is (a malformed request, a wrong topic)
"""

from __future__ import annotations

__all__ = ["WalletAuthFailure", "WalletRejected", "WalletServiceError", "WalletUnavailable"]


class WalletServiceError(Exception):
    """A wallet service did not do what was asked. ``reason`` is a short stable text, never personal data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WalletUnavailable(WalletServiceError):
    """The service could not be reached or asked us to slow down; the same request may succeed later."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class WalletAuthFailure(WalletUnavailable):
    """The service refused our credentials (an operator has to renew or fix them)."""


class WalletRejected(WalletServiceError):
    """The service refused this request for good."""
