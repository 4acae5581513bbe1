"""Budgets of one capture — wall-clock deadline, byte caps — and per-host politeness.

A hostile server can drip one byte a second forever: read timeouts reset on every byte, so
only a total deadline ends it. Everything a capture waits on (connections, reads, playlist
reloads, a host's rate limit) is bounded by the same :class:`Deadline`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .errors import CaptureError

__all__ = ["ByteBudget", "Deadline", "HostLimiter"]


class Deadline:
    """A point in monotonic time by which a capture must be over.

    Parameters
    ----------
    seconds : float
        Wall-clock budget from now, in seconds.
    """

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"deadline must be positive, got {seconds} s")
        self.seconds = seconds
        self.started = time.monotonic()
        self.ends = self.started + seconds

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.ends - time.monotonic())

    def elapsed(self) -> float:
        """Seconds since the deadline was set."""
        return time.monotonic() - self.started

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.ends

    def check(self, what: str) -> float:
        """Seconds left; raises ``CaptureError("timeout")`` naming ``what`` when none are."""
        left = self.remaining()
        if left <= 0:
            raise CaptureError("timeout", f"{what}: the {self.seconds:g} s capture deadline passed")
        return left

    def sleep(self, seconds: float, what: str) -> None:
        """Sleep ``seconds`` (playlist reload interval), or raise timeout if the deadline
        comes first: waiting past it would only delay the same failure."""
        if seconds >= self.remaining():
            time.sleep(self.remaining())
            self.check(what)
        time.sleep(max(0.0, seconds))


@dataclass
class ByteBudget:
    """Bytes one sample may download in total, across every response (bytes)."""

    limit: int
    used: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self, n: int, what: str) -> None:
        """Count ``n`` more bytes; raises ``CaptureError("too_large")`` past the limit."""
        with self._lock:
            self.used += n
            if self.used > self.limit:
                raise CaptureError(
                    "too_large", f"{what}: over the capture's {self.limit:,} byte cap"
                )


class _Bucket:
    """Token bucket: ``rate`` requests per second on average, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int, concurrent: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.slots = threading.BoundedSemaphore(concurrent)

    def wait_time(self) -> float:
        """Seconds until a token is free (0: one was taken now). Caller holds the lock."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class HostLimiter:
    """Per-host concurrency and request-rate limits, shared by every capture of a process.

    Pirate panels ban clients that hammer them, and one scan's playlist of thousands of
    entries often points at one host: each host gets at most ``concurrent`` open requests
    and ``rate`` new requests per second (bursts of ``burst``).

    Parameters
    ----------
    rate : float
        Sustained requests per second per host.
    burst : int
        Requests that may start at once after a quiet spell.
    concurrent : int
        Requests open at the same time per host.
    """

    def __init__(self, rate: float = 10.0, burst: int = 20, concurrent: int = 6) -> None:
        if rate <= 0 or burst < 1 or concurrent < 1:
            raise ValueError("rate must be > 0, burst and concurrent >= 1")
        self.rate, self.burst, self.concurrent = rate, burst, concurrent
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    #: Hosts remembered before idle ones are forgotten (a long-running worker sees many).
    MAX_HOSTS = 4096

    def _bucket(self, host: str) -> _Bucket:
        with self._lock:
            bucket = self._buckets.get(host)
            if bucket is None:
                if len(self._buckets) >= self.MAX_HOSTS:
                    self._forget_idle()
                bucket = self._buckets[host] = _Bucket(self.rate, self.burst, self.concurrent)
            return bucket

    def _forget_idle(self) -> None:
        """Drop hosts whose bucket has refilled (quiet for burst / rate seconds): they
        would start from a full bucket anyway. Caller holds the lock."""
        quiet = self.burst / self.rate
        now = time.monotonic()
        for host in [h for h, b in self._buckets.items() if now - b.stamp >= quiet]:
            del self._buckets[host]

    @contextmanager
    def slot(self, host: str, deadline: Deadline, what: str) -> Iterator[None]:
        """Hold one of ``host``'s request slots for the body of the ``with`` block, waiting
        for the rate limit and a free slot no longer than ``deadline`` allows."""
        bucket = self._bucket(host)
        while True:
            with self._lock:
                wait = bucket.wait_time()
            if wait == 0.0:
                break
            deadline.sleep(wait, f"{what} (waiting for {host}'s rate limit)")
        if not bucket.slots.acquire(timeout=deadline.check(what)):
            deadline.check(f"{what} (waiting for a free connection to {host})")
            raise CaptureError("timeout", f"{what}: no free connection to {host} in time")
        try:
            yield
        finally:
            bucket.slots.release()
