"""A scale-out Vigie on one machine, for the reliability benchmark and the scale-out tests.

:class:`Cluster` runs what ``docker-compose.yml`` runs, as local processes: ``vigie serve``
(API only) and any number of ``vigie worker`` processes on a PostgreSQL database and a
Redis broker, with one channel indexed from a generated recording and a loopback server
streaming ``scans`` distinct URLs (every fourth the channel remuxed as MPEG-TS, a pirate;
the others an unrelated programme). :class:`RedisServer` is a private ``redis-server`` on
a port of its own, so that a test may kill and restart it without touching the machine's.
:meth:`Cluster.submit` posts scans from many clients at once; :meth:`Cluster.tally` reads
the database, the source of truth, for what was lost or duplicated.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["Cluster", "RedisServer", "Submitted", "Tally", "free_port"]

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """``redis-server`` on 127.0.0.1:``port`` keeping nothing on disk (as the machine's
    does): a restart loses every queued message, the worst case for the broker."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self.exe, self.workdir, self.port = exe, workdir, port or free_port()
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: what a crash or an OOM kill does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


@dataclass
class Submitted:
    """What the clients got back: scan ids of the 202s, by URL index; other statuses
    counted; latency of each POST (seconds)."""

    ids: dict[int, int] = field(default_factory=dict)
    refused: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class Tally:
    """The database's account of the accepted scans.

    ``lost``: accepted (202) but absent or unfinished; ``duplicated``: a URL with two
    first scans, or a scan with two matches of one channel; ``scans_per_hour``: finished
    scans over the time from the first submission to the last verdict."""

    accepted: int
    finished: int
    lost: int
    duplicated: int
    attempts_above_one: int
    verdicts: dict[str, int]
    scans_per_hour: float | None
    wall_seconds: float | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _vigie(data: Path, env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env={**os.environ, "VIGIE_DATA_DIR": str(data), **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode:
        raise RuntimeError(f"vigie {' '.join(args)} failed: {done.stderr[-2000:]}")


class Cluster:
    """``vigie serve`` + workers on ``database_url`` and ``broker_url``, with streams to scan.

    Parameters
    ----------
    workdir : Path
        Everything goes under it (data folder, logs, recordings).
    database_url, broker_url : str
        ``VIGIE_DATABASE_URL`` (an empty PostgreSQL database) and ``VIGIE_BROKER_URL``.
    scans : int
        Distinct stream URLs served (``/s/{i}.ts``).
    env : dict
        More ``VIGIE_*`` settings for every process (sample seconds, lease, sweep, ...).
    """

    def __init__(
        self,
        workdir: Path,
        database_url: str,
        broker_url: str,
        scans: int,
        env: dict[str, str] | None = None,
    ) -> None:
        sys.path.insert(0, str(ROOT))
        from tests.fingerprinting.capture.hls_media import make_source
        from tests.fingerprinting.capture.servers import LoopbackServer, static

        self.workdir, self.data = workdir, workdir / "data"
        self.database_url = database_url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            "VIGIE_DATABASE_URL": database_url,
            "VIGIE_BROKER_URL": broker_url,
            "VIGIE_ALLOW_NETWORKS": "127.0.0.0/8",
            "VIGIE_CONFIRM_AFTER_SECONDS": "86400",  # second samples stay scheduled
            "VIGIE_PORT": str(self.port),
            **(env or {}),
        }
        channel = make_source(workdir / "tv1.ts", 60.0, seed=77)
        other = make_source(workdir / "other.ts", 60.0, seed=5)
        db_env = {"VIGIE_DATABASE_URL": database_url}
        _vigie(self.data, db_env, "channels", "add", "tv1", "--name", "TV One")
        _vigie(self.data, db_env, "reindex", "tv1", str(channel))
        from service.db import Database
        from service.keys import create_key

        self.db = Database(database_url)
        _, token = create_key(self.db, "load", ["scans:write"], rate_per_minute=10**7)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.server = LoopbackServer()
        self.server.__enter__()
        bodies = {True: channel.read_bytes(), False: other.read_bytes()}
        for i in range(scans):
            self.server.route(f"/s/{i}.ts", static(bodies[i % 4 == 0], "video/mp2t"))
        self.procs: dict[str, subprocess.Popen] = {}

    def url(self, i: int) -> str:
        return self.server.url(f"/s/{i}.ts")

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start(self, name: str, *args: str) -> None:
        """Start ``vigie ARGS`` as process ``name`` (its stderr in ``<name>.log``)."""
        with self.log(name).open("ab") as out:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "service.cli", *args],
                env={**os.environ, "VIGIE_DATA_DIR": str(self.data), **self.env},
                stdout=subprocess.DEVNULL,
                stderr=out,
            )

    def start_api(self) -> None:
        self.start("api", "serve")
        deadline = time.monotonic() + 120
        while True:
            if self.procs["api"].poll() is not None:
                raise RuntimeError(f"vigie serve exited: {self.log('api').read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("vigie serve did not answer /healthz within 120 s")
            time.sleep(0.2)

    def start_workers(self, count: int, threads: int = 2) -> None:
        for k in range(count):
            self.start(f"worker{k}", "worker", "--threads", str(threads))

    def kill(self, name: str) -> None:
        """SIGKILL process ``name`` (and wait for it)."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

    def submit(
        self,
        indices: list[int],
        clients: int,
        spread_seconds: float = 0.0,
        extra: dict | None = None,
    ) -> Submitted:
        """POST one scan per URL index (``{"url": ..., **extra}``) from ``clients`` threads,
        evenly over ``spread_seconds`` (0: all at once)."""
        got = Submitted()
        lock = threading.Lock()
        started = time.monotonic()

        def bot(k: int) -> None:
            mine = indices[k::clients]
            with httpx.Client(timeout=60) as client:
                for n, i in enumerate(mine):
                    due = started + spread_seconds * n / max(1, len(mine))
                    time.sleep(max(0.0, due - time.monotonic()))
                    t0 = time.perf_counter()
                    try:
                        r = client.post(
                            f"{self.base}/v1/scans",
                            headers=self.headers,
                            json={"url": self.url(i), **(extra or {})},
                        )
                    except httpx.HTTPError as exc:
                        with lock:
                            got.errors[type(exc).__name__] += 1
                        continue
                    with lock:
                        got.latencies.append(time.perf_counter() - t0)
                        if r.status_code == 202:
                            got.ids[i] = r.json()["id"]
                        else:
                            got.refused[r.status_code] += 1

        threads = [threading.Thread(target=bot, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got.seconds = time.monotonic() - started
        return got

    def wait_finished(self, scan_ids: list[int], timeout: float) -> bool:
        """Poll the database until every scan is done or failed (``False`` on timeout)."""
        from sqlalchemy import func, select

        from service.models import ScanRow

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.db.session() as s:
                left = s.scalar(
                    select(func.count())
                    .select_from(ScanRow)
                    .where(ScanRow.id.in_(scan_ids), ScanRow.status.not_in(("done", "failed")))
                )
            if not left:
                return True
            time.sleep(1.0)
        return False

    def tally(self, submitted: Submitted) -> Tally:
        from service.models import MatchRow, ScanRow, utc

        ids = set(submitted.ids.values())
        with self.db.session() as s:
            rows = s.query(ScanRow).filter(ScanRow.id.in_(ids)).all() if ids else []
            first = s.query(ScanRow.url).filter(ScanRow.confirms.is_(None)).all()
            matches = s.query(MatchRow.scan_id, MatchRow.channel_id).all()
        finished = [r for r in rows if r.status in ("done", "failed")]
        per_url = Counter(u for (u,) in first)
        per_match = Counter(matches)
        starts = [utc(r.created_at) for r in rows]
        ends = [utc(r.finished_at) for r in finished if r.finished_at is not None]
        wall = (max(ends) - min(starts)).total_seconds() if starts and ends else None
        return Tally(
            accepted=len(ids),
            finished=len(finished),
            lost=len(ids) - len(finished),
            duplicated=sum(n - 1 for n in per_url.values() if n > 1)
            + sum(n - 1 for n in per_match.values() if n > 1),
            attempts_above_one=sum(1 for r in rows if r.attempts > 1),
            verdicts=dict(Counter(r.verdict or r.status for r in finished)),
            scans_per_hour=round(len(finished) / wall * 3600) if wall else None,
            wall_seconds=round(wall, 1) if wall else None,
        )

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.server.__exit__(None, None, None)
        self.db.engine.dispose()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
