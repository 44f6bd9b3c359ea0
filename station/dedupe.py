"""Dropping a scan that arrives twice: some scanners send every scan twice (keystrokes and an Android intent), and a
card held over a reader is seen again at once. The second copy within the window is dropped before any decision,
so it is neither queued nor shown as "already checked in".
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Final

DEFAULT_WINDOW_SECONDS: Final = 1.0


def payload_key(payload: str | bytes) -> bytes:
    """What makes two scans "the same": the bytes, or the text without the scanner's surrounding whitespace."""
    raw = payload.strip().encode("utf-8", "surrogatepass") if isinstance(payload, str) else b"\x00" + payload
    return hashlib.sha256(raw).digest()


class Deduplicator:
    """Remembers recent payloads for ``window`` seconds.

    Args:
        window: Seconds within which the same payload is a duplicate.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(self, window: float = DEFAULT_WINDOW_SECONDS, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._seen: dict[bytes, float] = {}

    def is_duplicate(self, payload: str | bytes) -> bool:
        """Record a payload and tell whether it repeats one seen less than ``window`` seconds ago.

        The window counts from the copy that was let through, so a card held over the reader produces one scan per
        window, not none at all.

        Args:
            payload: The scanned payload.

        Returns:
            True when the scan must be dropped.
        """
        now = self._clock()
        # Forget old entries so the table stays as small as the number of scans in one window.
        self._seen = {key: at for key, at in self._seen.items() if now - at < self._window}
        key = payload_key(payload)
        if key in self._seen:
            return True
        self._seen[key] = now
        return False
