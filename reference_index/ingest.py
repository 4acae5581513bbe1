"""``vigie ingest``: every enabled reference feed followed by a small pool of processes.

Decoding and hashing are CPU-bound, so feeds are spread over ``workers`` processes (feed
``id % workers``); inside a process each feed has a thread (capture waits on the network
and PyAV releases the GIL while decoding), and one :class:`~.live.LiveWriter` writes the
process's postings every few seconds. Each process re-reads the catalog every
``catalog_poll_seconds`` to start feeds that were added or enabled and stop those that were
disabled or removed, and reports every feed's health to the catalog every
``status_seconds``. The first process also applies retention and merges settled live
segments. The parent restarts a process that dies; on SIGTERM or Ctrl-C every process
flushes what it holds and marks its feeds ``stopped``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from fingerprinting.capture import GuardedClient, HostLimiter, NetworkPolicy

from .catalog import Catalog
from .catalog_records import Feed
from .index import Index
from .live import FeedHealth, FeedLoop, IngestPlan, LiveWriter, feed_source

__all__ = ["IngestConfig", "IngestWorker", "run_ingest"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestConfig:
    """Everything an ingest process needs (picklable: it is sent to spawned processes).

    Attributes
    ----------
    catalog_url, index_root : str
        Catalog database URL and index folder.
    allow_networks : str
        CIDRs feeds may be on although internal (a rights holder's encoders are often on
        its own network); see :meth:`NetworkPolicy.from_setting`.
    workers : int
        Processes; 1 runs everything in the calling process.
    feed_ids : tuple of int or None
        Only these feeds (``None``: every enabled feed).
    plan : IngestPlan
    catalog_poll_seconds, status_seconds, maintenance_seconds : float
        How often the catalog is re-read, health reported, retention applied (seconds).
    """

    catalog_url: str
    index_root: str
    allow_networks: str = ""
    workers: int = 1
    feed_ids: tuple[int, ...] | None = None
    plan: IngestPlan = field(default_factory=IngestPlan)
    catalog_poll_seconds: float = 30.0
    status_seconds: float = 5.0
    maintenance_seconds: float = 60.0


class _Every:
    """True once per ``seconds`` (and the first time asked)."""

    def __init__(self, seconds: float):
        self.seconds, self.next = seconds, 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now < self.next:
            return False
        self.next = now + self.seconds
        return True


class IngestWorker:
    """One process's share of the feeds (``feed.id % workers == slot``)."""

    def __init__(self, config: IngestConfig, slot: int, stop: threading.Event):
        self.config = config
        self.slot = slot
        self.stop = stop
        self.ingester = f"{socket.gethostname()}:{os.getpid()}"
        self.catalog = Catalog(config.catalog_url)
        self.index = Index(Path(config.index_root))
        self.writer = LiveWriter(self.index)
        self.policy = NetworkPolicy.from_setting(config.allow_networks)
        self._loops: dict[int, tuple[FeedLoop, threading.Thread, threading.Event]] = {}

    def _client(self) -> GuardedClient:
        return GuardedClient(self.policy, limiter=HostLimiter())

    def mine(self, feeds: list[Feed]) -> dict[int, Feed]:
        """The enabled feeds this worker owns."""
        wanted = self.config.feed_ids
        return {
            f.id: f
            for f in feeds
            if f.enabled
            and f.id % self.config.workers == self.slot
            and (wanted is None or f.id in wanted)
        }

    def sync(self) -> None:
        """Start loops for feeds newly enabled, stop those disabled, removed or changed."""
        feeds = self.mine(self.catalog.feeds(enabled_only=True))
        for fid, (loop, thread, stop) in list(self._loops.items()):
            if fid not in feeds or feeds[fid].url != loop.feed.url:
                stop.set()
                thread.join(timeout=30)
                del self._loops[fid]
        for fid, feed in feeds.items():
            if fid not in self._loops:
                stop = threading.Event()
                health = FeedHealth(fid, self.ingester)
                loop = FeedLoop(feed, self.writer, self.config.plan, self._client, health, stop)
                thread = threading.Thread(target=loop.run, name=f"feed-{fid}", daemon=True)
                thread.start()
                self._loops[fid] = (loop, thread, stop)

    def report(self) -> None:
        """Write every owned feed's health to the catalog (one transaction)."""
        self.catalog.report_feed_status(
            [loop.health.snapshot() for loop, _, _ in self._loops.values()]
        )

    def maintain(self) -> None:
        """Retention per feed (its ``retention_hours``) and merges of settled segments."""
        retention = {feed_source(f.id): f.retention_hours * 3600.0 for f in self.catalog.feeds()}
        dropped = self.index.retain(time.time(), retention)
        if dropped:
            log.info("retention dropped %d segment files", dropped)

    def run(self) -> None:
        """Run until ``stop`` is set, then flush and mark the feeds stopped."""
        poll = _Every(self.config.catalog_poll_seconds)
        flush = _Every(self.config.plan.flush_seconds)
        status = _Every(self.config.status_seconds)
        upkeep = _Every(self.config.maintenance_seconds)
        try:
            while not self.stop.is_set():
                if poll.due():
                    self.sync()
                if flush.due():
                    self._flush()
                if status.due():
                    self.report()
                if self.slot == 0 and upkeep.due():
                    self.maintain()
                self.stop.wait(0.2)
        finally:
            for _, _, stop in self._loops.values():
                stop.set()
            for _, thread, _ in self._loops.values():
                thread.join(timeout=30)
            self._flush()
            self.report()
            self.catalog.close()

    def _flush(self) -> None:
        done = self.writer.flush()
        if done["segments"] or done["covered_until"]:
            log.info("flushed %s", json.dumps(done, sort_keys=True))


def _worker_main(config: IngestConfig, slot: int) -> None:
    """Entry point of a spawned ingest process: SIGTERM stops it cleanly."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s ingest[{slot}] %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request: 30/s at 100 feeds
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    IngestWorker(config, slot, stop).run()


def run_ingest(config: IngestConfig, stop: threading.Event) -> None:
    """Ingest until ``stop`` is set; with several workers, keep one process per slot alive."""
    if config.workers <= 1:
        IngestWorker(config, 0, stop).run()
        return
    ctx = mp.get_context("spawn")
    procs: dict[int, mp.process.BaseProcess] = {}
    restarts: dict[int, float] = {}
    try:
        while not stop.is_set():
            for slot in range(config.workers):
                proc = procs.get(slot)
                if proc is not None and proc.is_alive():
                    continue
                if proc is not None:
                    log.warning("ingest worker %d exited with %s; restarting", slot, proc.exitcode)
                if time.monotonic() < restarts.get(slot, 0.0):
                    continue
                proc = ctx.Process(target=_worker_main, args=(config, slot), daemon=False)
                proc.start()
                procs[slot] = proc
                restarts[slot] = time.monotonic() + 5.0  # at most one restart per 5 s
            stop.wait(0.5)
    finally:
        for proc in procs.values():
            if proc.is_alive():
                proc.terminate()  # SIGTERM: flush and report
        for proc in procs.values():
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
