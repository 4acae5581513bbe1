"""The job queue behind three calls: declare a job, send it, run workers.

Dramatiq underneath: an in-process broker and worker threads by default (one
``vigie serve`` does everything), the Redis broker when ``VIGIE_BROKER_URL`` says
``redis://`` (many ``vigie worker`` processes share it). Messages carry only an id; the
database row says what to do and whether it was done, so a lost message costs a delay
(the sweeper re-sends work that waits too long), and a duplicate costs nothing.
Dramatiq's own retries are off for that reason: the rows hold the attempt counts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import dramatiq
from dramatiq.brokers.stub import StubBroker

__all__ = ["QUEUE_NAME", "JobQueue"]

QUEUE_NAME = "vigie"
log = logging.getLogger("vigie.queue")


class JobQueue:
    """Jobs of one broker.

    Parameters
    ----------
    broker_url : str or None
        ``redis://host:port/db``, or ``None`` for the in-process broker.
    """

    def __init__(self, broker_url: str | None = None) -> None:
        if broker_url:
            if not broker_url.startswith(("redis://", "rediss://", "unix://")):
                raise ValueError(f"VIGIE_BROKER_URL must be a redis:// URL, not {broker_url!r}")
            from dramatiq.brokers.redis import RedisBroker  # optional extra: vigie[redis]

            self.broker: dramatiq.Broker = RedisBroker(url=broker_url)
        else:
            self.broker = StubBroker()
        self.in_process = broker_url is None
        self._actors: dict[str, dramatiq.Actor] = {}
        self._worker: dramatiq.Worker | None = None

    def declare(
        self, name: str, fn: Callable[..., None], *, time_limit_seconds: float = 900.0
    ) -> None:
        """Make ``fn`` runnable as job ``name`` (its arguments must be JSON values)."""
        self._actors[name] = dramatiq.Actor(
            fn,
            broker=self.broker,
            actor_name=name,
            queue_name=QUEUE_NAME,
            priority=0,
            options={"max_retries": 0, "time_limit": int(time_limit_seconds * 1000)},
        )

    def send(self, name: str, *args: object, delay_seconds: float = 0.0) -> None:
        """Queue job ``name`` with ``args``, to start no sooner than ``delay_seconds``."""
        delay = int(delay_seconds * 1000) if delay_seconds > 0 else None
        self._actors[name].send_with_options(args=args, delay=delay)

    def start(self, threads: int) -> None:
        """Run jobs on ``threads`` worker threads of this process until :meth:`stop`."""
        if self._worker is None:
            self._worker = dramatiq.Worker(self.broker, worker_threads=threads, worker_timeout=200)
            self._worker.start()

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop(timeout=5000)
            self._worker = None
        self.broker.close()

    def ping(self) -> None:
        """Raise if the broker does not answer (the in-process one always does)."""
        if not self.in_process:
            self.broker.client.ping()
