"""Per-host politeness shared by the capture processes of one worker.

:class:`~fingerprinting.capture.limits.HostLimiter` counts in one process's memory. A
worker that runs each capture in a process of its own (so that decoding does not hold the
API's interpreter lock, see :mod:`service.capture_process`) must still treat a pirate panel
as one client would: every process draws from the same token bucket and the same count of
open requests per host. Those live here in shared memory, under one inter-process lock.

Hosts are hashed onto a fixed table of :data:`SLOTS` buckets (BLAKE2b of the name). Two
hosts that land on one bucket share its limits: stricter than asked, never looser, and
rare (a worker scans a few hundred hosts at a time against 4,096 buckets).

Give the limiter to the processes when they start (an argument of ``Process``): the
shared memory and the lock can only be handed over then.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .limits import Deadline

__all__ = ["SLOTS", "SharedHostLimiter"]

#: Buckets in the shared table (each: tokens, refill stamp, open requests).
SLOTS = 4096
#: How often a request waiting for a free connection looks again (seconds): connections
#: are released by other processes, which cannot wake this one.
POLL_SECONDS = 0.02


class SharedHostLimiter:
    """Per-host concurrency and request-rate limits, shared by processes.

    Same parameters and :meth:`slot` as :class:`~fingerprinting.capture.limits.HostLimiter`:
    ``rate`` requests per second per host (bursts of ``burst``), at most ``concurrent``
    open at once.

    Parameters
    ----------
    context : multiprocessing context or None
        The start method's context of the processes that will share it (default: spawn).
    """

    def __init__(
        self,
        rate: float = 10.0,
        burst: int = 20,
        concurrent: int = 6,
        *,
        context: multiprocessing.context.BaseContext | None = None,
    ) -> None:
        if rate <= 0 or burst < 1 or concurrent < 1:
            raise ValueError("rate must be > 0, burst and concurrent >= 1")
        ctx = context or multiprocessing.get_context("spawn")
        self.rate, self.burst, self.concurrent = rate, burst, concurrent
        self._lock = ctx.Lock()
        # Per bucket: tokens (full when never used), the monotonic time they were counted
        # at, open requests. CLOCK_MONOTONIC is one clock for every process of the machine.
        self._tokens = ctx.RawArray("d", [float(burst)] * SLOTS)
        self._stamp = ctx.RawArray("d", SLOTS)
        self._open = ctx.RawArray("i", SLOTS)

    @staticmethod
    def bucket_of(host: str) -> int:
        """The table index of ``host`` (stable across processes, unlike ``hash``)."""
        digest = hashlib.blake2b(host.lower().encode(), digest_size=4).digest()
        return int.from_bytes(digest, "little") % SLOTS

    def _take(self, i: int) -> tuple[float, str]:
        """Take a token and a connection of bucket ``i``: ``(0, "")``, or the seconds to
        wait and what for (a template of ``host``). Caller holds the lock."""
        now = time.monotonic()
        tokens = min(self.burst, self._tokens[i] + (now - self._stamp[i]) * self.rate)
        self._tokens[i], self._stamp[i] = tokens, now
        if self._open[i] >= self.concurrent:
            return POLL_SECONDS, "a free connection to {host}"
        if tokens < 1.0:
            return (1.0 - tokens) / self.rate, "{host}'s rate limit"
        self._tokens[i] = tokens - 1.0
        self._open[i] += 1
        return 0.0, ""

    def open_requests(self, host: str) -> int:
        """Requests to ``host``'s bucket open now, in every process."""
        with self._lock:
            return self._open[self.bucket_of(host)]

    @contextmanager
    def slot(self, host: str, deadline: Deadline, what: str) -> Iterator[None]:
        """Hold one of ``host``'s request slots for the body of the ``with`` block, waiting
        for the rate limit and a free connection no longer than ``deadline`` allows."""
        i = self.bucket_of(host)
        while True:
            with self._lock:
                wait, why = self._take(i)
            if wait == 0.0:
                break
            deadline.sleep(wait, f"{what} (waiting for {why.format(host=host)})")
        try:
            yield
        finally:
            with self._lock:
                self._open[i] -= 1
