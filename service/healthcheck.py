"""Container health checks of the three roles: ``python -m service.healthcheck ROLE``.

Exit 0 when healthy, 1 with one line on stderr saying what is not. Used by the Dockerfile
(``api``) and ``docker-compose.yml`` (all three), where a role without an HTTP port still
needs a check that means something:

* ``api``: ``/healthz`` answers on ``VIGIE_PORT``;
* ``worker``: the database and the broker answer (a worker without either runs nothing);
* ``ingest``: an ingester process of this host has renewed its heartbeat in the catalog
  within one feed-lease period (:mod:`reference_index.feed_leases`): it is alive and can
  write to the database, so it keeps its feeds.
"""

from __future__ import annotations

import socket
import sys
import urllib.request
from datetime import UTC, datetime

__all__ = ["check"]


def check(role: str) -> str | None:
    """``None`` if ``role`` is healthy here, else what is wrong."""
    from .settings import Settings

    settings = Settings()
    if role == "api":
        url = f"http://127.0.0.1:{settings.port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=4) as r:  # noqa: S310 - loopback
                return None if r.status == 200 else f"{url} answered {r.status}"
        except OSError as exc:
            return f"{url}: {exc}"
    from sqlalchemy import create_engine, select, text

    engine = create_engine(settings.catalog_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            if role == "worker":
                from .queue import JobQueue

                queue = JobQueue(settings.broker_url)
                try:
                    queue.ping()
                finally:
                    queue.broker.close()
                return None
            if role == "ingest":
                from reference_index.catalog_schema import IngesterRow

                host = socket.gethostname()
                fresh = conn.scalar(
                    select(IngesterRow.name).where(
                        IngesterRow.name.like(f"{host}:%"),
                        IngesterRow.until_utc > datetime.now(UTC),
                    )
                )
                return None if fresh else f"no ingester of host {host} renewed its heartbeat"
            return f"unknown role {role!r} (api, worker or ingest)"
    except Exception as exc:  # noqa: BLE001 - a health check reports, it does not crash
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        engine.dispose()


def main() -> None:
    role = sys.argv[1] if len(sys.argv) > 1 else "api"
    problem = check(role)
    if problem:
        print(f"unhealthy {role}: {problem}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
