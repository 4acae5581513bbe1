"""Per-key request rate limits: a token bucket per API key, in this process's memory.

A bucket holds up to ``rate_per_minute`` tokens (the burst a bot may send at once) and
refills at ``rate_per_minute / 60`` tokens per second; a request takes one. Buckets live
in each API process: with N processes behind a balancer a key gets up to N times its rate,
which is acceptable for a limit meant to stop a runaway bot, not to bill it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token buckets keyed by API key id (thread-safe).

    Parameters
    ----------
    clock : callable
        Monotonic seconds (injectable for tests).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str, rate_per_minute: int) -> float:
        """Take one token from ``key``'s bucket: 0.0 when granted, else the seconds to
        wait before the next token (for ``Retry-After``)."""
        now = self._clock()
        per_second = rate_per_minute / 60.0
        with self._lock:
            tokens, at = self._buckets.get(key, (float(rate_per_minute), now))
            tokens = min(float(rate_per_minute), tokens + (now - at) * per_second)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / per_second

    @staticmethod
    def retry_after(wait_seconds: float) -> str:
        """``Retry-After`` header value: whole seconds, at least 1."""
        return str(max(1, math.ceil(wait_seconds)))
