"""Verification failures as stable reason codes.

::

    VerificationError                 base (carries ``reason``)
    └── CredentialError               the credential itself: malformed, unsupported_version, unknown_key,
                                      bad_signature, not_yet_valid, expired, revoked, suspended, superseded,
                                      key_retired; for live codes also holder_proof_invalid, stale_live_code
    TrustError                        a trust bundle or status list that fails its own checks

Reason codes are part of the public contract (stations, the web page and the API show them); messages are for logs.
"""

from __future__ import annotations

from typing import Final, Literal

Reason = Literal[
    "malformed", "unsupported_version", "unknown_key", "bad_signature", "not_yet_valid", "expired", "revoked",
    "suspended", "superseded", "key_retired", "holder_proof_invalid", "stale_live_code",
]
REASONS: Final[tuple[Reason, ...]] = (
    "malformed", "unsupported_version", "unknown_key", "bad_signature", "not_yet_valid", "expired", "revoked",
    "suspended", "superseded", "key_retired", "holder_proof_invalid", "stale_live_code",
)


class VerificationError(Exception):
    """Base of every verification failure."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class CredentialError(VerificationError):
    """The presented credential is not acceptable; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(reason, message)
        self.reason: Reason = reason


class TrustError(VerificationError):
    """A trust bundle or status list failed its signature, freshness or structure checks."""

    def __init__(self, message: str) -> None:
        super().__init__("untrusted", message)
