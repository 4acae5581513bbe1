"""`python -m service.healthcheck ROLE`: the container checks of docker-compose.yml say
healthy only when the role can do its work."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.cluster import free_port
from reference_index.catalog import Catalog
from reference_index.feed_leases import FeedLeases, holder_name


def healthcheck(role: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "service.healthcheck", role],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_api_check_fails_when_nothing_answers():
    done = healthcheck("api", VIGIE_PORT=str(free_port()))
    assert done.returncode == 1 and "unhealthy api" in done.stderr
    assert "Traceback" not in done.stderr


def test_worker_check_needs_database_and_broker(pg_database, redis_broker_url):
    assert (
        healthcheck(
            "worker", VIGIE_DATABASE_URL=pg_database, VIGIE_BROKER_URL=redis_broker_url
        ).returncode
        == 0
    )
    dead = f"redis://127.0.0.1:{free_port()}/0"
    done = healthcheck("worker", VIGIE_DATABASE_URL=pg_database, VIGIE_BROKER_URL=dead)
    assert done.returncode == 1 and "unhealthy worker" in done.stderr
    assert "Traceback" not in done.stderr


def test_ingest_check_wants_a_fresh_heartbeat_of_this_host(tmp_path):
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = Catalog(url)
    done = healthcheck("ingest", VIGIE_DATABASE_URL=url)
    assert done.returncode == 1 and "renewed its heartbeat" in done.stderr
    FeedLeases(catalog.engine, holder_name(), lease_seconds=60).round([])
    assert healthcheck("ingest", VIGIE_DATABASE_URL=url).returncode == 0
    catalog.close()


def test_unknown_role_is_named(tmp_path):
    done = healthcheck("cook", VIGIE_DATABASE_URL=f"sqlite:///{tmp_path / 'c.db'}")
    assert done.returncode == 1 and "unknown role 'cook'" in done.stderr
