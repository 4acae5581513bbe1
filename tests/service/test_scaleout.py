"""Scale-out by settings alone: ``vigie serve`` (API only) and two ``vigie worker`` processes
on PostgreSQL and Redis. A worker killed with ``kill -9`` mid-capture loses its scan within
its lease; the other worker's sweeper hands the scan over and it finishes once (attempt 2),
with one match. The dead worker's message, which Redis redelivers later, then does nothing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from service.db import Database
from service.keys import create_key
from service.models import MatchRow, ScanRow, utc
from service.queue import split_namespace
from tests.fingerprinting.capture.hls_media import LiveHls, make_source, segment
from tests.fingerprinting.capture.servers import LoopbackServer

#: How long a worker's lease lasts unless renewed, and the sweeper's period (seconds): a
#: dead worker's scan is re-sent within their sum.
LEASE_SECONDS = 6.0
SWEEP_SECONDS = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(data: Path, database_url: str, broker_url: str, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "VIGIE_DATA_DIR": str(data),
        "VIGIE_DATABASE_URL": database_url,
        "VIGIE_BROKER_URL": broker_url,
        "VIGIE_ALLOW_NETWORKS": "127.0.0.0/8",
        "VIGIE_CONFIRM_AFTER_SECONDS": "3600",  # the second sample stays scheduled
        "VIGIE_SCAN_SECONDS": "8",
        "VIGIE_CAPTURE_DEADLINE_SECONDS": "30",
        "VIGIE_LEASE_SECONDS": str(LEASE_SECONDS),
        "VIGIE_SWEEP_SECONDS": str(SWEEP_SECONDS),
        **more,
    }


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


def _log_lines(path: Path) -> list[dict]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a traceback from a dying process: not a log record
    return lines


def _wait(what: str, check, timeout: float, interval: float = 0.1):  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s")


def _claims(log: Path, scan_id: int) -> list[int]:
    """Attempts of the scan this process claimed, from its JSON log."""
    return [
        r["attempt"]
        for r in _log_lines(log)
        if r.get("msg") == "scan claimed" and r.get("scan_id") == scan_id
    ]


def _size(client, key) -> int:  # noqa: ANN001
    """Members of a Redis set or fields of a hash."""
    return client.hlen(key) if client.type(key) in (b"hash", "hash") else client.scard(key)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.slow
def test_kill_9_of_the_worker_mid_capture_the_other_finishes_it_once(
    vigie, tmp_path, pg_database, redis_broker_url
):
    data = tmp_path / "data"
    db_env = {"VIGIE_DATABASE_URL": pg_database}
    recording = make_source(tmp_path / "tv1.ts", 40.0, seed=77)
    vigie(data, "channels", "add", "tv1", "--name", "TV One", env=db_env)
    vigie(data, "reindex", "tv1", str(recording), env=db_env)
    assert not (data / "vigie.db").exists()  # the catalog is in PostgreSQL, not SQLite
    media = segment(recording, tmp_path / "hls", 2.0)
    db = Database(pg_database)
    _, token = create_key(db, "bot", ["scans:write"])
    headers = {"Authorization": f"Bearer {token}"}
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(data, pg_database, redis_broker_url)
    procs: dict[str, subprocess.Popen] = {}
    logs = {name: tmp_path / f"{name}.log" for name in ("serve", "a", "b")}
    try:
        procs["serve"] = _start(["serve"], {**env, "VIGIE_PORT": str(port)}, logs["serve"])
        for name in ("a", "b"):
            procs[name] = _start(["worker", "--threads", "2"], env, logs[name])

        def up() -> bool:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited: {logs[name].read_text()[-3000:]}")
            try:
                health = httpx.get(f"{base}/healthz", timeout=2)
            except httpx.HTTPError:
                return False
            return health.status_code == 200 and all(
                any(r.get("msg") == "worker started" for r in _log_lines(logs[n]))
                for n in ("a", "b")
            )

        _wait("vigie serve and two workers up", up, 90)
        # the API process runs no scans: it has no worker of its own
        assert not any(r.get("msg") == "worker started" for r in _log_lines(logs["serve"]))

        with LoopbackServer() as server:
            live = LiveHls(server, media, window=2)  # the capture waits for new segments
            scan = httpx.post(
                f"{base}/v1/scans", headers=headers, json={"url": live.playlist_url}, timeout=10
            ).json()
            sid = scan["id"]
            holder = _wait(
                "a worker claims the scan",
                lambda: next((n for n in ("a", "b") if _claims(logs[n], sid)), None),
                30,
            )
            other = "b" if holder == "a" else "a"
            status = _wait(
                "the scan is sampling",
                lambda: (
                    s
                    if (s := httpx.get(f"{base}/v1/scans/{sid}", headers=headers).json())["status"]
                    == "sampling"
                    else None
                ),
                30,
            )
            time.sleep(1.0)  # mid-capture: an 8 s sample of a live stream takes 8 s
            procs[holder].send_signal(signal.SIGKILL)
            procs[holder].wait(10)
            killed_at = time.time()
            with db.session() as s:
                row = s.get(ScanRow, sid)
                assert (row.status, row.attempts) == ("sampling", 1)  # left in flight

            def finished():  # noqa: ANN202
                got = httpx.get(f"{base}/v1/scans/{sid}", headers=headers).json()
                return got if got["status"] in ("done", "failed") else None

            status = _wait("the scan finishes", finished, 90, interval=0.25)

        assert status["status"] == "done" and status["attempts"] == 2, status
        assert status["verdict"] == "suspected" and status["channel_id"] == "tv1"
        assert _claims(logs[holder], sid) == [1] and _claims(logs[other], sid) == [2]
        with db.session() as s:
            row = s.get(ScanRow, sid)
            taken_over = utc(row.started_at).timestamp() - killed_at
        # the lease ran out (at most LEASE_SECONDS after the last renewal) and a sweep
        # re-sent the scan (every SWEEP_SECONDS); slack for a sweep's own time and the claim
        assert taken_over <= LEASE_SECONDS + SWEEP_SECONDS + 3.0, taken_over  # 5-6 s seen

        # Redis redelivers the dead worker's unacked message once its heartbeat is
        # heartbeat_timeout old and a queue maintenance runs (on a random 0.1 % of polls:
        # unbounded, hence the lease and the sweeper). Run that maintenance now, as a
        # broker would sooner or later; the redelivered message must find nothing to do.
        import redis  # the redis extra; the fixtures skipped already where it is missing
        from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker

        url, namespace = split_namespace(redis_broker_url)
        client = redis.Redis.from_url(url)
        probe = RedisBroker(
            url=url,
            namespace=namespace,
            heartbeat_timeout=int((time.time() - killed_at - 1.0) * 1000),
            maintenance_chance=MAINTENANCE_SCALE,
        )
        dead_acks = [
            k for k in client.scan_iter(match=f"{namespace}:__acks__.*.vigie") if client.scard(k)
        ]
        assert dead_acks, "the killed worker's message should still await redelivery"
        probe.do_qsize("vigie")  # any dispatch with maintenance on requeues dead workers' acks
        probe.close()

        def unacked() -> dict[str, int]:
            # (the ``vigie.DQ`` ack sets hold the delayed second sample: due in an hour)
            keys = [
                *client.scan_iter(match=f"{namespace}:__acks__.*.vigie"),
                f"{namespace}:vigie.msgs",
            ]
            return {k.decode() if isinstance(k, bytes) else k: _size(client, k) for k in keys}

        try:
            _wait("the redelivered message is consumed", lambda: not any(unacked().values()), 30)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; left in Redis: {unacked()}") from None
        time.sleep(1.0)
        assert _claims(logs[other], sid) == [2]  # seen, and left alone
        client.close()
    finally:
        for proc in procs.values():
            _stop(proc)
    with db.session() as s:
        assert s.query(MatchRow).filter(MatchRow.scan_id == sid).count() == 1
        row = s.get(ScanRow, sid)
        assert (row.status, row.attempts) == ("done", 2)
        (follow_up,) = s.query(ScanRow).filter(ScanRow.id != sid).all()
        assert follow_up.confirms == sid and follow_up.status == "queued"
    db.close()
