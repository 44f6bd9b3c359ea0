"""The two wallet services as the card service sees them, each behind a small Protocol.

:class:`PassPusher` tells a device that a pass changed (Apple's push service); :class:`WalletObjects` replaces a
saved Google Wallet object. Both may raise any :class:`~integrations.wallet.errors.WalletServiceError`. In-memory
implementations for tests and development ship here too (:class:`RecordingPusher`, :class:`RecordingObjects`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol

__all__ = ["PassPusher", "PushResult", "RecordingObjects", "RecordingPusher", "WalletObjects"]


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


class RecordingPusher:
    """A :class:`PassPusher` that records the tokens it was given; tokens in ``gone`` answer ``GONE``."""

    def __init__(self, gone: frozenset[str] = frozenset()) -> None:
        self.pushed: list[str] = []
        self.gone = gone

    def push(self, push_token: str) -> PushResult:
        self.pushed.append(push_token)
        return PushResult.GONE if push_token in self.gone else PushResult.DELIVERED


class RecordingObjects:
    """A :class:`WalletObjects` that keeps saved objects in a dict; only objects in it can be updated."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}

    def update_object(self, object_id: str, body: Mapping[str, Any]) -> bool:
        if object_id not in self.objects:
            return False
        self.objects[object_id] = dict(body)
        return True
