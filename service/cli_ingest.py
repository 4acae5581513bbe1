"""``vigie ingest``: follow every enabled reference feed and index it live, until stopped."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Annotated

import typer

from fingerprinting.capture import NetworkPolicy
from reference_index.ingest import IngestConfig, run_ingest
from reference_index.live import IngestPlan

from .cli_common import fail, open_catalog, open_index, settings_from_env

__all__ = ["ingest_cmd"]


def ingest_cmd(
    workers: Annotated[
        int,
        typer.Option("--workers", "-w", min=0, help="Processes (0: one per core)."),
    ] = 0,
    feed: Annotated[
        list[int] | None,
        typer.Option("--feed", help="Only this feed id (repeatable); default: every enabled feed."),
    ] = None,
    flush_seconds: Annotated[
        float, typer.Option(min=0.5, help="Seconds between writes of live postings.")
    ] = 10.0,
    chunk_seconds: Annotated[
        float, typer.Option(min=0.5, help="Seconds of media per chunk read from a feed.")
    ] = 6.0,
    stall_seconds: Annotated[
        float, typer.Option(min=1.0, help="Seconds without a new segment before reconnecting.")
    ] = 60.0,
    poll_seconds: Annotated[
        float, typer.Option(min=0.5, help="Seconds between re-reads of the catalog's feeds.")
    ] = 30.0,
    wait_for_feeds: Annotated[
        bool,
        typer.Option(
            "--wait-for-feeds",
            help="With no enabled feed yet, keep running and take feeds as they are added "
            "(a container's ingester) instead of refusing.",
        ),
    ] = False,
    duration: Annotated[
        float | None,
        typer.Option("--for", min=0.0, help="Stop after this many seconds (default: never)."),
    ] = None,
) -> None:
    """Follow every enabled reference feed, fingerprint it and index it in UTC.

    Runs until SIGTERM or Ctrl-C (or --for SECONDS), then writes what it holds. Any number
    of `vigie ingest` processes may share one catalog and index: feeds are shared out by
    leases (VIGIE_FEED_LEASE_SECONDS), and a dead one's feeds are taken over.
    Per-feed health: `vigie channels feeds health`.
    """
    settings = settings_from_env()
    try:
        NetworkPolicy.from_setting(settings.allow_networks)
    except ValueError as exc:
        raise fail(f"VIGIE_ALLOW_NETWORKS: {exc}") from None
    catalog = open_catalog(settings)
    known = {f.id for f in catalog.feeds()}
    missing = sorted(set(feed or []) - known)
    if missing:
        raise fail(f"no feed {', '.join(map(str, missing))} (see `vigie channels feeds list`)")
    if not catalog.feeds(enabled_only=True) and not wait_for_feeds:
        raise fail("no enabled reference feed (add one with `vigie channels feeds add`)")
    catalog.close()
    open_index(settings)  # refuses an index built with other parameters, before any work
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request: 30/s at 100 feeds
    config = IngestConfig(
        catalog_url=settings.catalog_url,
        index_root=str(settings.index_dir),
        allow_networks=settings.allow_networks,
        workers=workers or os.cpu_count() or 1,
        feed_ids=tuple(feed) if feed else None,
        plan=IngestPlan(
            chunk_seconds=chunk_seconds,
            flush_seconds=flush_seconds,
            stall_seconds=stall_seconds,
            egress_note=settings.egress_note,
        ),
        catalog_poll_seconds=poll_seconds,
        lease_seconds=settings.feed_lease_seconds,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if duration is not None:
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True
        timer.start()
    run_ingest(config, stop)
