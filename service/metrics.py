"""``/metrics`` (Prometheus text format), one registry per process.

Counts that must hold across processes and restarts (scans by verdict and reason, the
queue's depth, feed lag) are read from the database when scraped, so every API process
reports the same truth; latencies are histograms observed by the process that did the
work (in the embedded mode, the one process that does everything).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select

from reference_index.catalog import Catalog

from .db import Database
from .models import ScanRow

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
log = logging.getLogger("vigie.metrics")
#: Seconds: captures take their sample length plus connection set-up (10 s samples).
SAMPLE_BUCKETS = (1, 2.5, 5, 7.5, 10, 12.5, 15, 20, 30, 45, 60, 120)
#: Seconds: fingerprinting a 10 s sample and querying the index.
MATCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _FromDatabase:
    """Scans by status, verdict and reason, and feed health, read at scrape time."""

    def __init__(self, db: Database, catalog: Catalog) -> None:
        self.db, self.catalog = db, catalog

    def collect(self) -> Iterator[Metric]:
        scans = GaugeMetricFamily(
            "vigie_scans",
            "Scans in the database by status, verdict and capture failure reason",
            labels=["status", "verdict", "reason"],
        )
        depth = GaugeMetricFamily("vigie_queue_depth", "Scans waiting for a worker")
        lag = GaugeMetricFamily(
            "vigie_feed_lag_seconds",
            "How far a reference feed's index runs behind its live edge",
            labels=["feed_id", "channel_id", "state"],
        )
        age = GaugeMetricFamily(
            "vigie_feed_last_posting_age_seconds",
            "Seconds since a feed's last indexed media",
            labels=["feed_id", "channel_id"],
        )
        try:
            with self.db.session() as s:
                rows = s.execute(
                    select(ScanRow.status, ScanRow.verdict, ScanRow.reason, func.count()).group_by(
                        ScanRow.status, ScanRow.verdict, ScanRow.reason
                    )
                ).all()
            waiting = 0
            for status, verdict, reason, n in rows:
                scans.add_metric([status, verdict or "", reason or ""], n)
                waiting += n if status == "queued" else 0
            depth.add_metric([], waiting)
            channel_of = {f.id: f.channel_id for f in self.catalog.feeds()}
            now = datetime.now(UTC)
            for feed_id, st in self.catalog.feed_statuses().items():
                channel = channel_of.get(feed_id, "")
                if st.lag_seconds is not None:
                    lag.add_metric([str(feed_id), channel, st.state], st.lag_seconds)
                if st.last_posting_utc is not None:
                    seconds = (now - st.last_posting_utc).total_seconds()
                    age.add_metric([str(feed_id), channel], seconds)
        except Exception:  # a scrape must not fail because the database is busy
            log.exception("metrics from the database failed")
        yield from (scans, depth, lag, age)


class Metrics:
    def __init__(self, db: Database, catalog: Catalog) -> None:
        self.registry = CollectorRegistry()
        self.http = Histogram(
            "vigie_http_request_seconds",
            "API requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.sample = Histogram(
            "vigie_scan_sample_seconds",
            "Wall time of one scan's capture",
            buckets=SAMPLE_BUCKETS,
            registry=self.registry,
        )
        self.match = Histogram(
            "vigie_scan_match_seconds",
            "Fingerprinting and index query of one sample",
            buckets=MATCH_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_FromDatabase(db, catalog))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http.labels(method, route, str(status)).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
