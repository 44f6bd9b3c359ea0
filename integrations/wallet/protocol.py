"""The two wallet services as the card service sees them, each behind a small Protocol.

:class:`PassPusher` tells a device that a pass changed (Apple's push service); :class:`WalletObjects` replaces a
saved Google Wallet object. Both may raise any :class:`~integrations.wallet.errors.WalletServiceError`. The tests
run the real adapters against fake servers (``tests/wallet/fakes.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol

__all__ = ["PassPusher", "PushResult", "WalletObjects"]


class PushResult(StrEnum):
    """What became of a push: ``delivered`` to Apple, or the device token is ``gone`` (forget the registration)."""

    DELIVERED = "delivered"
    GONE = "gone"


class PassPusher(Protocol):
    """Sends the empty "your pass changed" notification to one device."""

    def push(self, push_token: str) -> PushResult:
        """Notify the device behind ``push_token`` that a pass of our pass type changed.

        Returns:
            ``DELIVERED``, or ``GONE`` when the token is unknown or no longer valid for our pass type.

        Raises:
            WalletUnavailable: Retry later (WalletAuthFailure: our credentials were refused).
            WalletRejected: The request itself is wrong.
        """
        ...


class WalletObjects(Protocol):
    """Google Wallet's objects of our issuer."""

    def update_object(self, object_id: str, body: Mapping[str, Any]) -> bool:
        """Replace the generic object ``object_id`` with ``body``.

        Returns:
            True when it was replaced, False when no such object exists (the member never saved the pass).

        Raises:
            WalletUnavailable: Retry later. WalletRejected: Google refused the object.
        """
        ...

