"""A token bucket with an injected clock, shared by the stub (server-side throttling) and the HTTP adapter."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` saved up; starts full.

    Thread-safe. ``clock`` returns seconds (monotonic).
    """

    def __init__(self, rate: float, capacity: float | None = None, *, clock: Callable[[], float]) -> None:
        if rate <= 0:
            raise ValueError("TokenBucket rate must be positive")
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        if self.capacity < 1:
            raise ValueError("TokenBucket capacity must be at least 1")
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_take(self) -> float:
        """Take a token if one is available and return 0; otherwise take nothing and return the seconds to wait."""
        with self._lock:
            self._refill()
            # The tolerance absorbs float rounding when a caller slept exactly the time it was told to.
            if self._tokens >= 1 - 1e-9:
                self._tokens = max(0.0, self._tokens - 1)
                return 0.0
            return (1 - self._tokens) / self.rate

    def take(self, sleep: Callable[[float], None]) -> float:
        """Take a token, sleeping (with ``sleep``) until one is available. Returns the total seconds slept."""
        waited = 0.0
        while True:
            wait = self.try_take()
            if wait <= 0:
                return waited
            sleep(wait)
            waited += wait
