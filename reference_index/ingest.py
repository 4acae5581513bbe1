"""``vigie ingest``: every enabled reference feed followed by a small pool of processes.

Decoding and hashing are CPU-bound, so feeds are spread over ``workers`` processes; inside
a process each feed has a thread (capture waits on the network and PyAV releases the GIL
while decoding), and one :class:`~.live.LiveWriter` writes the process's postings every few
seconds. Which process follows which feed is decided by leases in the catalog database
(:mod:`.feed_leases`): each process is a holder, takes its fair share of the enabled feeds,
renews it every third of the lease period and hands back what it no longer should follow,
so any number of ``vigie ingest`` processes, on any number of hosts sharing the catalog and
the index, follow every feed exactly once, and the feeds of one that dies are taken over
within two lease periods. Every round also re-reads the catalog, so feeds added, enabled,
disabled or removed are picked up. Each process reports its feeds' health to the catalog
every ``status_seconds``; the leader (first live holder by name) applies retention and
merges settled live segments. The parent restarts a process that dies; on SIGTERM or
Ctrl-C every process flushes what it holds, marks its feeds ``stopped`` and releases them.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fingerprinting.capture import GuardedClient, HostLimiter, NetworkPolicy

from .catalog import Catalog
from .catalog_records import Feed, FeedStatus
from .feed_leases import DEFAULT_LEASE_SECONDS, FeedLeases, LeaseRound, holder_name
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
        Longest wait before a feed change in the catalog is picked up, how often health
        is reported and retention applied (seconds).
    lease_seconds : float
        Feed lease period (seconds); leases are renewed every third of it.
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
    lease_seconds: float = DEFAULT_LEASE_SECONDS


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
    """One ingest process: follows the feeds it holds a lease on."""

    def __init__(self, config: IngestConfig, slot: int, stop: threading.Event):
        self.config = config
        self.slot = slot
        self.stop = stop
        self.ingester = holder_name()
        self.catalog = Catalog(config.catalog_url)
        self.leases = FeedLeases(self.catalog.engine, self.ingester, config.lease_seconds)
        self.leader = False
        self.index = Index(Path(config.index_root))
        self.writer = LiveWriter(self.index)
        self.policy = NetworkPolicy.from_setting(config.allow_networks)
        self._loops: dict[int, tuple[FeedLoop, threading.Thread, threading.Event]] = {}

    def _client(self) -> GuardedClient:
        return GuardedClient(self.policy, limiter=HostLimiter())

    def wanted(self, feeds: list[Feed]) -> dict[int, Feed]:
        """The enabled feeds this process may follow (all, or those ``feed_ids`` names)."""
        only = self.config.feed_ids
        return {f.id: f for f in feeds if f.enabled and (only is None or f.id in only)}

    def sync(self) -> LeaseRound:
        """One lease round, then follow exactly the feeds held: stop those lost at once,
        stop and write those handed back before releasing them, start those taken (and
        restart those whose URL changed)."""
        feeds = self.wanted(self.catalog.feeds(enabled_only=True))
        got = self.leases.round(feeds)
        self.leader = got.leader
        self._halt(got.lost)
        if got.lost:
            log.warning("feeds %s: lease lost to another ingester", sorted(got.lost))
        changed = {
            f
            for f, (loop, _, _) in self._loops.items()
            if f in feeds and feeds[f].url != loop.feed.url
        }
        let_go = self._halt(got.surplus | changed | (self._loops.keys() - got.held))
        if got.surplus:
            self._flush()  # their postings are written before anyone else may take them
            self.report(let_go)
            self.leases.release(got.surplus)
            log.info(
                "feeds %s handed back (fair share of %d ingesters)",
                sorted(got.surplus),
                got.ingesters,
            )
        for fid in sorted(got.held - self._loops.keys()):
            if fid in feeds:
                self._start(feeds[fid])
        return got

    def _start(self, feed: Feed) -> None:
        stop = threading.Event()
        health = FeedHealth(feed.id, self.ingester)
        loop = FeedLoop(feed, self.writer, self.config.plan, self._client, health, stop)
        thread = threading.Thread(target=loop.run, name=f"feed-{feed.id}", daemon=True)
        thread.start()
        self._loops[feed.id] = (loop, thread, stop)

    def _halt(self, feed_ids: Iterable[int]) -> list[FeedStatus]:
        """Stop the loops of ``feed_ids`` (all at once, then wait for each); their last
        health (``stopped``)."""
        halted = [self._loops.pop(f) for f in sorted(feed_ids) if f in self._loops]
        for _, _, stop in halted:
            stop.set()
        for _, thread, _ in halted:
            thread.join(timeout=30)
        return [loop.health.snapshot() for loop, _, _ in halted]

    def report(self, stopped: Iterable[FeedStatus] = ()) -> None:
        """Write the health of every feed followed, and ``stopped`` (of feeds just let go),
        to the catalog (one transaction)."""
        self.catalog.report_feed_status(
            [*stopped, *(loop.health.snapshot() for loop, _, _ in self._loops.values())]
        )

    def maintain(self) -> None:
        """Retention per feed (its ``retention_hours``) and merges of settled segments."""
        retention = {feed_source(f.id): f.retention_hours * 3600.0 for f in self.catalog.feeds()}
        dropped = self.index.retain(time.time(), retention)
        if dropped:
            log.info("retention dropped %d segment files", dropped)

    def run(self) -> None:
        """Run until ``stop`` is set, then flush, mark the feeds stopped and release them."""
        rounds = _Every(min(self.config.catalog_poll_seconds, self.config.lease_seconds / 3))
        flush = _Every(self.config.plan.flush_seconds)
        status = _Every(self.config.status_seconds)
        upkeep = _Every(self.config.maintenance_seconds)
        try:
            while not self.stop.is_set():
                if rounds.due():
                    self._round()
                expired = self.leases.expired() & self._loops.keys()
                if expired:  # could not renew in time: someone else may hold them now
                    log.warning("feeds %s: lease ran out unrenewed; stopping", sorted(expired))
                    self._halt(expired)
                if flush.due():
                    self._flush()
                if status.due():
                    self.report()
                if self.leader and upkeep.due():
                    self.maintain()
                self.stop.wait(0.2)
        finally:
            let_go = self._halt(list(self._loops))
            self._flush()
            self.report(let_go)
            try:
                self.leases.leave()
            except Exception:  # noqa: BLE001 - the leases then run out by themselves
                log.exception("could not release the feed leases")
            self.catalog.close()

    def _round(self) -> None:
        """A lease round that survives a database outage (the leases then run out and
        :meth:`FeedLeases.expired` stops the feeds)."""
        try:
            self.sync()
        except Exception:  # noqa: BLE001 - e.g. the database restarting
            log.exception("lease round failed; retrying at the next one")

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
