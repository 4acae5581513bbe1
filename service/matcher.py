"""Fingerprint a captured sample and query the index in separate processes.

Why processes: a scan worker spends most of its time waiting on the network (captures run
on threads, PyAV releases the GIL), then a burst of CPU-bound Python and numpy work
(landmark peaks, frame hashes, posting lookups and voting). Run in the API process, that
burst holds the GIL and every HTTP request behind it waits: on two cores with eight scan
threads the API's p99 latency reached half a second. In a pool of processes the API keeps
its interpreter to itself, and the operating system shares the cores fairly.

Each pool process opens the index itself (segments are memory-mapped, so their pages are
shared through the page cache, not copied) and reopens it when batch re-indexing swapped
in a new generation. ``processes=0`` matches on the calling thread instead (tools, tests
that count on one process).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TypeVar

import numpy as np

from fingerprinting.decode import FrameBatch
from reference_index.index import Index

from .detect import ScanResult, scan_media

__all__ = ["IndexHolder", "MatchPool"]

T = TypeVar("T")

log = logging.getLogger(__name__)


class IndexHolder:
    """One open :class:`Index` per process, reopened when batch re-indexing swapped in a
    new generation. Queries run one at a time: matching is CPU-bound (numpy releases the
    GIL in places, but two concurrent queries on two cores only contend with the captures
    that other scan threads run meanwhile)."""

    def __init__(self, root: object) -> None:
        self.root = root
        self._index: Index | None = None
        self._lock = threading.Lock()

    def use(self, fn: Callable[[Index], T]) -> T:
        with self._lock:
            if self._index is None or self._index.swapped():
                self._index = Index(self.root)
            return fn(self._index)

    def check(self) -> None:
        """Raise if the index cannot be opened (readiness)."""
        self.use(lambda index: index.generation)


#: The index of one pool process, opened by :func:`_open` when the process starts.
_holder: IndexHolder | None = None


def _open(root: str, nice: int) -> None:
    global _holder
    if nice:
        os.nice(nice)
    _die_with_parent()
    _holder = IndexHolder(Path(root))


#: How often a pool process checks that the worker that started it is alive (seconds).
PARENT_CHECK_SECONDS = 1.0


def _die_with_parent() -> None:
    """Exit when the parent process is gone. A worker killed with SIGKILL cannot shut its
    pool down, and a pool process blocked on its call queue would live on, orphaned,
    holding its share of memory and the index's files, for ever (seen after the
    reliability benchmark's ``kill -9``)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="vigie-parent-watch", daemon=True).start()


def _match(
    pcm: np.ndarray,
    frames: FrameBatch,
    min_confidence: float,
    source: str,
    started: float,
    aired: float | None,
    basis: str | None,
    holder: IndexHolder | None = None,
) -> ScanResult:
    """:func:`scan_media` against ``holder`` (default: this pool process's index)."""
    holder = holder or _holder
    assert holder is not None, "pool process started without its index"
    return holder.use(
        lambda ix: scan_media(
            pcm, frames, ix, min_confidence, source, started, aired=aired, basis=basis
        )
    )


class MatchPool:
    """Processes that run :func:`service.detect.scan_media` against the index at ``root``.

    Parameters
    ----------
    root : Path
        The index folder (``settings.index_dir``).
    processes : int
        Pool size; ``0`` runs matches on the calling thread with ``local`` (the index
        already open in this process).
    local : IndexHolder
        This process's index, for ``processes=0``.
    nice : int
        CPU priority steps below the caller's for the pool processes (see
        :class:`service.queue.Niceness`).

    The pool starts on first use (processes are *spawned*: forking a process that runs
    web-server and worker threads copies their locks in whatever state they are). A pool
    process that dies (killed, out of memory) breaks the pool: the match is retried once
    on a fresh pool, then the error reaches the scan, which fails with it.
    """

    def __init__(self, root: Path, processes: int, local: IndexHolder, *, nice: int = 0) -> None:
        self.root = root
        self.nice = nice
        self.processes = processes
        self.local = local
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def match(
        self,
        pcm: np.ndarray,
        frames: FrameBatch,
        min_confidence: float,
        source: str,
        started: float,
        *,
        aired: float | None = None,
        basis: str | None = None,
    ) -> ScanResult:
        """:func:`service.detect.scan_media` of one sample (arguments as there)."""
        args = (pcm, frames, min_confidence, source, started, aired, basis)
        if self.processes == 0:
            return _match(*args, holder=self.local)
        for attempt in (1, 2):
            pool = self._get()
            try:
                return pool.submit(_match, *args).result()
            except BrokenProcessPool:
                self._discard(pool)
                if attempt == 2:
                    raise
                log.warning("a match process died; retrying on a fresh pool")
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Stop the pool processes (running matches finish first)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _get(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_open,
                    initargs=(str(self.root), self.nice),
                )
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)
