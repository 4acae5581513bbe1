"""What the API and the workers share in one process: settings, database, catalog, index,
queue, metrics, and the guarded HTTP client factory. Built once by ``create_app`` or
``vigie worker`` and passed explicitly: no module-level engine, settings or broker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from fingerprinting.capture import GuardedClient, NetworkPolicy
from reference_index.catalog import Catalog

from .capture_process import Capturer
from .db import Database
from .matcher import IndexHolder, MatchPool
from .metrics import Metrics
from .queue import JobQueue
from .ratelimit import RateLimiter
from .settings import Settings

__all__ = ["IndexHolder", "Runtime"]


@dataclass
class Runtime:
    settings: Settings
    db: Database
    catalog: Catalog
    queue: JobQueue
    index: IndexHolder
    metrics: Metrics
    client_factory: Callable[[], GuardedClient]
    policy: NetworkPolicy
    matcher: MatchPool
    capturer: Capturer
    stopping: threading.Event = field(default_factory=threading.Event)
    limiter: RateLimiter = field(default_factory=RateLimiter)

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        client_factory: Callable[[], GuardedClient] | None = None,
    ) -> Runtime:
        """Open everything ``settings`` names; raises ValueError for a bad setting."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        policy = NetworkPolicy.from_setting(settings.allow_networks)
        catalog = Catalog(settings.catalog_url)
        db = Database(settings.catalog_url)
        queue = JobQueue(settings.broker_url)
        index = IndexHolder(settings.index_dir)
        client_factory = client_factory or (lambda: GuardedClient(policy))
        return cls(
            settings=settings,
            db=db,
            catalog=catalog,
            queue=queue,
            index=index,
            metrics=Metrics(db, catalog),
            client_factory=client_factory,
            policy=policy,
            matcher=MatchPool(
                settings.index_dir, settings.match_processes, index, nice=settings.scan_nice
            ),
            capturer=Capturer(
                settings.allow_networks,
                isolated=settings.capture_in_processes,
                client_factory=client_factory,
                nice=settings.scan_nice,
            ),
        )

    def close(self) -> None:
        self.stopping.set()
        self.queue.stop()
        self.capturer.close()
        self.matcher.close()
        self.db.close()
        self.catalog.close()
