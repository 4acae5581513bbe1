"""Scale-out under faults: a Redis restart during a load run loses no accepted scan (the
database re-queues what the broker forgot), and a burst of scans submitted at once is
spread over four ``vigie worker`` processes and finishes, once each.

These run the processes of the production recipe (bench/cluster.py: ``vigie serve`` + N
``vigie worker`` on PostgreSQL and a private ``redis-server`` this test may kill); the
full-size figures (2,000 scans, 1 vs 4 workers) are ``python -m bench.reliability``'s.
"""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

from bench.cluster import Cluster, RedisServer

AUDIO_2S = {"seconds": 2, "modalities": ["audio"]}  # cheap scans: the queue is under test


@pytest.fixture
def redis_server(tmp_path):
    """A private redis-server (nothing on disk), killed after the test."""
    if shutil.which("redis-server") is None:
        reason = "redis-server is not installed (Debian package redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"required under CI: {reason}")
        pytest.skip(reason)
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.mark.slow
def test_redis_restart_during_load_loses_no_accepted_scan(tmp_path, pg_database, redis_server):
    env = {"VIGIE_REQUEUE_SECONDS": "5", "VIGIE_SWEEP_SECONDS": "2"}
    scans = 60
    with Cluster(tmp_path, pg_database, redis_server.url + "?namespace=r", scans, env) as c:
        c.start_api()
        c.start_workers(2)
        got = {}
        load = threading.Thread(
            target=lambda: got.update(
                sub=c.submit(list(range(scans)), clients=10, spread_seconds=9, extra=AUDIO_2S)
            )
        )
        load.start()
        time.sleep(3.0)
        redis_server.kill()  # every queued message is gone with it
        time.sleep(3.0)
        redis_server.start()
        load.join()
        sub = got["sub"]
        # While Redis was down the API still accepted scans: the row is the record.
        assert len(sub.ids) == scans, (dict(sub.refused), dict(sub.errors))
        assert c.wait_finished(list(sub.ids.values()), timeout=240), c.tally(sub)
        tally = c.tally(sub)
        for name in c.procs:
            assert c.procs[name].poll() is None, f"{name} died: {c.log(name).read_text()[-2000:]}"
    assert (tally.lost, tally.duplicated) == (0, 0), tally
    assert tally.verdicts.get("suspected", 0) == scans // 4, tally.verdicts
    api_log = c.log("api").read_text()
    assert "left to the sweeper" in api_log  # some sends did meet a dead broker


@pytest.mark.slow
def test_a_burst_of_scans_spreads_over_four_workers_and_finishes_once(
    tmp_path, pg_database, redis_server
):
    scans = 100
    with Cluster(tmp_path, pg_database, redis_server.url + "?namespace=b", scans) as c:
        c.start_api()
        c.start_workers(4)
        sub = c.submit(list(range(scans)), clients=20, extra=AUDIO_2S)
        assert len(sub.ids) == scans, (dict(sub.refused), dict(sub.errors))
        assert c.wait_finished(list(sub.ids.values()), timeout=600), c.tally(sub)
        tally = c.tally(sub)
        claimed = {
            name: c.log(name).read_text().count('"scan claimed"')
            for name in c.procs
            if name != "api"
        }
    assert (tally.lost, tally.duplicated) == (0, 0), tally
    assert tally.verdicts == {"suspected": scans // 4, "no_match": scans - scans // 4}
    assert all(n > 0 for n in claimed.values()), claimed  # every worker took a share
    print(f"\n{scans} scans on 4 workers: {tally.scans_per_hour} scans/h, claims {claimed}")
