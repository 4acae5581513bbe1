"""Run each scan's capture in a process of its own.

Why: a capture is network waits and, between them, demuxing and decoding in PyAV, whose
Python side (reading the stream through a file object, converting frames) holds the
interpreter lock for long stretches. On the scan threads of ``vigie serve`` that lock is
the API's too: with eight captures decoding, a 5 ms ``POST /v1/scans`` waited its turn and
the p99 latency reached 0.45 s on two cores. In a process, a capture has its own
interpreter, runs at the scan priority (``scan_nice``), and the API answers at once.

It also contains hostile input: a stream that crashes FFmpeg's decoder, or makes it loop
where the capture's deadline cannot be checked, takes down its own process only. The
process is killed once the capture deadline (plus :data:`GRACE_SECONDS`) has passed.

Processes are forked by a *forkserver* that has the capture code loaded: a new one costs a
fork (milliseconds), not an interpreter start, and is forked from a single-threaded server
rather than from a process running web-server and worker threads (whose locks a fork
would copy in whatever state they are). Captures of one worker still share their per-host
limits (:class:`~fingerprinting.capture.SharedHostLimiter`), as threads of one process did.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection

from fingerprinting.capture import (
    CaptureError,
    CapturePlan,
    GuardedClient,
    NetworkPolicy,
    Sample,
    SharedHostLimiter,
    redact_url,
    sample,
)

__all__ = ["GRACE_SECONDS", "CaptureProcessDied", "Capturer"]

log = logging.getLogger(__name__)

#: Seconds past the capture deadline before its process is killed: the capture itself
#: stops at the deadline and only needs to hand its sample back.
GRACE_SECONDS = 15.0
#: What the forkserver imports once, so that forked captures start with it loaded.
PRELOAD = ["service.capture_forkserver"]


class CaptureProcessDied(RuntimeError):
    """A capture's process ended without handing back a sample or an error (killed by a
    signal, out of memory, a crash in a decoder); the scan fails with this message."""


def _run(
    conn: Connection,
    url: str,
    plan: CapturePlan,
    allow_networks: str,
    limiter: SharedHostLimiter,
    priority: int,
    hard_limit_seconds: float,
) -> None:
    """The capture process: sample ``url`` and send back the sample or the error."""
    # The kernel's default action for SIGALRM ends the process even when a decoder is
    # stuck in C code that never returns to the interpreter.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_REAL, hard_limit_seconds)
    # Already lower than asked (inherited), or not allowed: keep it.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, priority)
    try:
        with GuardedClient(NetworkPolicy.from_setting(allow_networks), limiter=limiter) as client:
            outcome: Sample | BaseException = sample(url, plan, client=client)
    except CaptureError as exc:
        outcome = exc
    except Exception as exc:  # a bug: reported by the scan as its failure message
        outcome = RuntimeError(f"{type(exc).__name__} in the capture process: {exc}")
    conn.send(outcome)
    conn.close()


def _state_main_for_forkserver() -> None:
    """Tell the forkserver which main module its children would re-import (see
    :mod:`service.capture_forkserver`); read by it when it starts."""
    from multiprocessing import spawn

    from .capture_forkserver import MAIN_ENV

    data = spawn.get_preparation_data("vigie-capture")
    main = {"name": data.get("init_main_from_name"), "path": data.get("init_main_from_path")}
    os.environ[MAIN_ENV] = json.dumps(main)


class Capturer:
    """Takes the samples of this process's scans.

    Parameters
    ----------
    allow_networks : str
        ``VIGIE_ALLOW_NETWORKS`` (the network policy is rebuilt in each capture process).
    isolated : bool
        Each capture in a process of its own (the default of the service); ``False`` runs
        it on the calling thread with ``client_factory`` (tools, tests that inject a
        transport).
    client_factory : callable
        The guarded HTTP client of captures on the calling thread.
    nice : int
        Priority steps below this process's main thread for capture processes.
    """

    def __init__(
        self,
        allow_networks: str,
        *,
        isolated: bool,
        client_factory: Callable[[], GuardedClient],
        nice: int = 0,
    ) -> None:
        self.allow_networks = allow_networks
        self.isolated = isolated
        self.client_factory = client_factory
        self.nice = nice
        self._ctx = multiprocessing.get_context("forkserver")
        self._limiter: SharedHostLimiter | None = None
        self._lock = threading.Lock()
        self._running: set[multiprocessing.process.BaseProcess] = set()

    def sample(self, url: str, plan: CapturePlan) -> Sample:
        """:func:`fingerprinting.capture.sample` of ``url``; raises :class:`CaptureError`
        as it does, or :class:`CaptureProcessDied`."""
        if not self.isolated:
            with self.client_factory() as client:
                return sample(url, plan, client=client)
        limit = plan.deadline_seconds + GRACE_SECONDS
        receive, send = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(
            target=_run,
            args=(
                send,
                url,
                plan,
                self.allow_networks,
                self._shared_limiter(),
                self._priority(),
                limit,
            ),
            name="vigie-capture",
            daemon=True,
        )
        with self._lock:
            proc.start()
            self._running.add(proc)
        send.close()  # ours: the pipe reports EOF once the child's end is closed too
        try:
            timed_out = not receive.poll(limit)
            try:
                outcome = None if timed_out else receive.recv()
            except EOFError:  # died before sending
                outcome = None
            if outcome is None:
                proc.kill()
            proc.join(GRACE_SECONDS)
            if proc.is_alive():  # sent its result, then hung on the way out
                proc.kill()
                proc.join()
            if outcome is None:
                raise CaptureProcessDied(self._death(proc, url, timed_out))
        finally:
            receive.close()
            with self._lock:
                self._running.discard(proc)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def close(self) -> None:
        """Kill the captures still running (their scans are taken over after restart)."""
        with self._lock:
            running, self._running = list(self._running), set()
        for proc in running:
            proc.kill()

    def _shared_limiter(self) -> SharedHostLimiter:
        with self._lock:
            if self._limiter is None:
                _state_main_for_forkserver()
                self._ctx.set_forkserver_preload(PRELOAD)
                self._limiter = SharedHostLimiter(context=self._ctx)
            return self._limiter

    def _priority(self) -> int:
        """Absolute nice value of capture processes: this process's main thread's plus
        ``nice`` (a forked child would otherwise inherit whatever thread started the
        forkserver)."""
        return min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + self.nice)

    @staticmethod
    def _death(proc: multiprocessing.process.BaseProcess, url: str, timed_out: bool) -> str:
        code = proc.exitcode
        if timed_out or code == -signal.SIGALRM:
            how = f"was killed: it outlasted the capture deadline by {GRACE_SECONDS:g} s"
        elif code is not None and code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        message = f"the capture process of {redact_url(url)} {how} without a result"
        log.error(message)
        return message
