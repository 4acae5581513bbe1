"""What the API and the workers share in one process: settings, database, catalog, index,
queue, metrics, and the guarded HTTP client factory. Built once by ``create_app`` or
``vigie worker`` and passed explicitly: no module-level engine, settings or broker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from fingerprinting.capture import GuardedClient, NetworkPolicy
from reference_index.catalog import Catalog
from reference_index.index import Index

from .db import Database
from .metrics import Metrics
from .queue import JobQueue
from .ratelimit import RateLimiter
from .settings import Settings

__all__ = ["IndexHolder", "Runtime"]

T = TypeVar("T")


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
        return cls(
            settings=settings,
            db=db,
            catalog=catalog,
            queue=queue,
            index=IndexHolder(settings.index_dir),
            metrics=Metrics(db, catalog),
            client_factory=client_factory or (lambda: GuardedClient(policy)),
            policy=policy,
        )

    def close(self) -> None:
        self.stopping.set()
        self.queue.stop()
        self.db.close()
        self.catalog.close()
