"""The job queue behind three calls: declare a job, send it, run workers.

Dramatiq underneath: an in-process broker and worker threads by default (one
``vigie serve`` does everything), the Redis broker when ``VIGIE_BROKER_URL`` says
``redis://`` (many ``vigie worker`` processes share it). Messages carry only an id; the
database row says what to do and whether it was done, so a lost message costs a delay
(the sweeper re-sends work that waits too long), and a duplicate costs nothing.
Dramatiq's own retries are off for that reason: the rows hold the attempt counts.

What the Redis broker redelivers, and when: a worker moves each message it fetches into an
"ack" set of its own and heartbeats on every poll. Once a worker has not heartbeated for
``heartbeat_timeout`` (60 s by default), a live worker's poll may run the broker's queue
maintenance, which puts the dead worker's unacked messages back on the queue. That
maintenance runs on a random 0.1 % of polls (``maintenance_chance``), so redelivery comes
eventually but at no bounded time: the bound comes from the database instead (a scan's
lease, renewed while its worker lives, and the sweeper, see :mod:`service.jobs`). The
redelivered message then finds its scan done and does nothing.

Several deployments (or test runs) can share one Redis server: ``?namespace=NAME`` on the
URL prefixes every key the broker uses (default ``dramatiq``), and is not passed on to the
Redis client.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dramatiq
from dramatiq.brokers.stub import StubBroker

from reference_index.sqlite_writes import mark_background

__all__ = ["QUEUE_NAME", "JobQueue", "Niceness", "lower_priority", "split_namespace"]

QUEUE_NAME = "vigie"
log = logging.getLogger("vigie.queue")
#: Prefix of the broker's Redis keys when the URL names none (Dramatiq's own default).
DEFAULT_NAMESPACE = "dramatiq"


def split_namespace(broker_url: str) -> tuple[str, str]:
    """``(url without ?namespace=, namespace)`` of a Redis broker URL.

    Other query parameters (``?socket_timeout=5`` ...) stay on the URL for the Redis
    client. Raises ValueError for an empty or repeated namespace.
    """
    parts = urlsplit(broker_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    names = [v for k, v in query if k == "namespace"]
    if len(names) > 1 or (names and not names[0].strip()):
        raise ValueError(f"VIGIE_BROKER_URL: give one non-empty namespace, not {names!r}")
    rest = urlencode([(k, v) for k, v in query if k != "namespace"])
    return urlunsplit(parts._replace(query=rest)), (names[0] if names else DEFAULT_NAMESPACE)


class JobQueue:
    """Jobs of one broker.

    Parameters
    ----------
    broker_url : str or None
        ``redis://host:port/db[?namespace=NAME]``, or ``None`` for the in-process broker.
    """

    def __init__(self, broker_url: str | None = None) -> None:
        self._unreachable: tuple[type[Exception], ...] = (dramatiq.errors.BrokerConnectionError,)
        if broker_url:
            if not broker_url.startswith(("redis://", "rediss://", "unix://")):
                raise ValueError(f"VIGIE_BROKER_URL must be a redis:// URL, not {broker_url!r}")
            from dramatiq.brokers.redis import RedisBroker  # optional extra: vigie[redis]
            from redis.exceptions import ConnectionError as RedisConnectionError
            from redis.exceptions import TimeoutError as RedisTimeoutError

            url, self.namespace = split_namespace(broker_url)
            self.broker: dramatiq.Broker = RedisBroker(url=url, namespace=self.namespace)
            self._unreachable += (RedisConnectionError, RedisTimeoutError)
        else:
            self.broker = StubBroker()
            self.namespace = None
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

    def send(self, name: str, *args: object, delay_seconds: float = 0.0) -> bool:
        """Queue job ``name`` with ``args``, to start no sooner than ``delay_seconds``;
        ``False`` if the broker could not be reached.

        The database row the job works on is the record of the work and the message only
        names it, so a broker that is down (Redis restarting) costs a delay, not the work:
        the row stays queued and the sweeper re-sends it (``requeue_seconds``). Raising
        here would turn an accepted scan into an HTTP 500 for the bot that posted it."""
        delay = int(delay_seconds * 1000) if delay_seconds > 0 else None
        try:
            self._actors[name].send_with_options(args=args, delay=delay)
        except self._unreachable as exc:
            log.warning("broker unreachable, %s %s left to the sweeper: %s", name, args, exc)
            return False
        return True

    def start(self, threads: int, *, nice: int = 0) -> None:
        """Run jobs on ``threads`` worker threads of this process until :meth:`stop`,
        ``nice`` steps below the priority of the process's other threads (see
        :class:`Niceness`)."""
        if self._worker is None:
            if nice:
                self.broker.add_middleware(Niceness(nice))
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


def lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by ``nice`` steps (Linux: per thread; other
    systems would renice the whole process, so nothing is done there)."""
    if nice and sys.platform == "linux":
        tid = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
        except OSError as exc:  # a container without the right to it: run at normal priority
            log.warning("could not lower the priority of a worker thread: %s", exc)


class Niceness(dramatiq.Middleware):
    """Worker threads run at a lower CPU priority than the process's web server.

    Why: on a small machine, captures decoding at network speed keep every core busy, and
    the API's threads, runnable among eight decoding ones, got a fifth of a core each: a
    4 ms request took 60 ms. A few nice steps lower (10 gives them ~1/10 of the weight of
    a normal thread under Linux's scheduler), scans still use every idle cycle, but an
    HTTP request runs as soon as it arrives.
    """

    def __init__(self, nice: int) -> None:
        self.nice = nice

    def after_worker_thread_boot(self, broker: dramatiq.Broker, thread: object) -> None:
        lower_priority(self.nice)
        mark_background()
