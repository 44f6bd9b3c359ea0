"""In-memory rate limits: login attempts per client address, scans per check-in station.

Each limit is a token bucket per key (``limit`` tokens, refilled evenly over ``window_seconds``): a client may burst up
to ``limit`` requests and then goes on at ``limit`` per window. Buckets live in the process, so with N workers a
client may get up to N times the limit — acceptable for these limits, whose purpose is to blunt password guessing
and a runaway station, not to meter exactly. The per-account login lockout (``services/officers.py``) is kept in the
database and holds across workers.

The clock is injected (``time.monotonic`` by default) so that tests step time instead of sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cardsvc.errors import TooManyRequests
from cardsvc.settings import Settings

Clock = Callable[[], float]
# Idle buckets are dropped once this many keys are held, so that a flood of distinct addresses cannot grow memory
# without bound.
MAX_KEYS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A thread-safe token bucket per key.

    Args:
        limit: Requests allowed in a burst, and per window in the long run (≥ 1).
        window_seconds: The window over which ``limit`` tokens are refilled.
        clock: Seconds from an arbitrary origin that never go backwards.
        code: The error code of the 429 answer (``login_rate_limited``, ``checkin_rate_limited``).
        what: Words for the error message ("login attempts from this address").
    """

    def __init__(self, limit: int, window_seconds: float, *, clock: Clock = time.monotonic,
                 code: str = "rate_limited", what: str = "requests", max_keys: int = MAX_KEYS) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("a rate limit needs limit >= 1 and a positive window")
        self.limit = limit
        self.window_seconds = window_seconds
        self._rate = limit / window_seconds
        self._clock = clock
        self._code = code
        self._what = what
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        """Spend one token of ``key``'s bucket.

        Raises:
            TooManyRequests: The bucket is empty; ``retry_after`` is the whole seconds until a token is back.
        """
        wait = self.acquire(key)
        if wait > 0:
            raise TooManyRequests(
                f"too many {self._what}: at most {self.limit} per {_window_words(self.window_seconds)}; "
                f"retry in {wait} s",
                retry_after=wait, code=self._code, details={"limit": self.limit, "window_seconds": self.window_seconds},
            )

    def acquire(self, key: str) -> int:
        """Spend one token if there is one and return 0; otherwise spend nothing and return the seconds to wait."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max_keys:
                    self._drop_idle(now)
                bucket = self._buckets[key] = _Bucket(float(self.limit), now)
            else:
                bucket.tokens = min(float(self.limit), bucket.tokens + (now - bucket.updated) * self._rate)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0
            return max(1, math.ceil((1.0 - bucket.tokens) / self._rate))

    def _drop_idle(self, now: float) -> None:
        """Forget buckets that have refilled completely (they hold no information); the oldest half if none has."""
        full = [key for key, b in self._buckets.items() if b.tokens + (now - b.updated) * self._rate >= self.limit]
        if not full:
            by_age = sorted(self._buckets, key=lambda key: self._buckets[key].updated)
            full = by_age[: len(by_age) // 2]
        for key in full:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


def _window_words(seconds: float) -> str:
    if seconds == 60:
        return "minute"
    if seconds == 1:
        return "second"
    return f"{seconds:g} s"


@dataclass
class RateLimits:
    """The limits of one application (``app.state.rate_limits``); a None limit is switched off (setting 0)."""

    login: RateLimiter | None
    checkin: RateLimiter | None

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = time.monotonic) -> RateLimits:
        login = settings.login_rate_per_minute
        checkin = settings.checkin_rate_per_second
        return cls(
            login=RateLimiter(login, 60, clock=clock, code="login_rate_limited",
                              what="login attempts from this address") if login else None,
            checkin=RateLimiter(checkin, 1, clock=clock, code="checkin_rate_limited",
                                what="scans from this station") if checkin else None,
        )
