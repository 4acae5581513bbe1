"""`vigie ingest` as an operator runs it: a subprocess following loopback live channels,
stopped cleanly, and killed with SIGKILL at random moments."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest

from reference_index.catalog import Catalog
from reference_index.index import Index
from reference_index.store.segment import Segment
from tests.fingerprinting.capture.hls_media import LiveHls, make_source, segment
from tests.fingerprinting.capture.servers import LoopbackServer


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("ingest")
    return segment(make_source(d / "src.ts", 30.0, 13), d / "hls", 2.0)


@pytest.fixture
def feeds(tmp_path, media, vigie):
    """Two channels, each with a live feed on a loopback server; yields the data dir."""
    data = tmp_path / "data"
    with LoopbackServer() as server:
        for i in (1, 2):
            live = LiveHls(server, media, name=f"ch{i}", window=4)
            vigie(data, "channels", "add", f"ch{i}", "--name", f"Channel {i}")
            vigie(data, "channels", "feeds", "add", f"ch{i}", live.playlist_url)
        yield data


class Ingester:
    """``vigie ingest`` in a subprocess, its log lines collected as they come."""

    def __init__(self, data, *args, env=None):
        env = {
            **os.environ,
            "VIGIE_DATA_DIR": str(data),
            "VIGIE_ALLOW_NETWORKS": "127.0.0.0/8",
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "ingest", *args],
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def flushes(self) -> list[dict]:
        """What each reported flush committed."""
        return [
            json.loads(line.split("flushed ", 1)[1]) for line in self.lines if "flushed {" in line
        ]

    def wait_for(self, cond, timeout=60.0):
        deadline = time.monotonic() + timeout
        while not cond():
            if self.proc.poll() is not None:
                raise AssertionError("ingest exited:\n" + "".join(self.lines[-30:]))
            if time.monotonic() > deadline:
                raise AssertionError("timed out:\n" + "".join(self.lines[-30:]))
            time.sleep(0.1)

    def wait(self, timeout=60.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code


FAST = ["--flush-seconds", "1", "--chunk-seconds", "2", "--poll-seconds", "1"]


def _check_index(data):
    """The index opens, every segment it names is whole, and coverage is recorded."""
    index = Index(data / "index")
    for modality in ("audio", "video"):
        store = index.store(modality)
        for name in store.segment_names:
            assert Segment.open(store.root / name).verify(), name
    return index


def test_ingest_follows_every_feed_and_stops_cleanly(vigie, feeds):
    ingest = Ingester(feeds, "--workers", "2", *FAST)
    ingest.wait_for(lambda: len(ingest.flushes()) >= 6)
    ingest.proc.send_signal(signal.SIGTERM)
    assert ingest.wait() == 0
    index = _check_index(feeds)
    tracks = index.audio.tracks().values()
    assert sorted(t.channel_id for t in tracks) == ["ch1", "ch2"]
    for t in tracks:
        assert t.kind == "live" and index.audio.coverage(t.id)
    catalog = Catalog(f"sqlite:///{feeds / 'vigie.db'}")
    statuses = catalog.feed_statuses()
    assert len(statuses) == 2
    for s in statuses.values():
        assert s.state == "stopped" and s.chunks >= 1 and s.lag_seconds is not None
    catalog.close()
    health = json.loads(vigie(feeds, "channels", "feeds", "health", "--json").stdout)
    assert {h["status"]["state"] for h in health} == {"stopped"}


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_loses_nothing_that_was_reported_written(feeds, seed):
    rng = random.Random(seed)
    ingest = Ingester(feeds, "--workers", "1", *FAST)
    wanted = rng.randint(1, 5)
    ingest.wait_for(lambda: len(ingest.flushes()) >= wanted)
    time.sleep(rng.uniform(0.0, 1.5))  # anywhere in the flush cycle, mid-write included
    ingest.proc.kill()
    ingest.wait()
    reported = ingest.flushes()
    index = _check_index(feeds)
    for done in reported:
        for modality, names in done["segments"].items():
            present = set(index.store(modality).segment_names)
            assert set(names) <= present, (modality, names)
        for modality, until in done["covered_until"].items():
            store = index.store(modality)
            for tid, end in until.items():
                assert store.coverage(int(tid))[-1][1] >= end - 1e-6
    tracks_before = {t.id for t in index.audio.tracks().values()}
    # A restarted ingester appends to the same tracks, after a recorded gap.
    again = Ingester(feeds, "--workers", "1", *FAST, "--for", "8")
    assert again.wait() == 0
    index = _check_index(feeds)
    assert {t.id for t in index.audio.tracks().values()} == tracks_before
    for t in index.audio.tracks().values():
        assert len(index.audio.coverage(t.id)) >= 1


LEASE_SECONDS = 3.0


@pytest.fixture(params=["postgresql"])
def shared_catalog(request, tmp_path, media, vigie):
    """Two live loopback channels in a catalog two ingesters share (the scale-out
    PostgreSQL database; the lease rules are tested on SQLite too, in test_feed_leases.py);
    yields ``(data_dir, env)``."""
    data = tmp_path / "data"
    env = {"VIGIE_FEED_LEASE_SECONDS": str(LEASE_SECONDS)}
    if request.param == "postgresql":
        env["VIGIE_DATABASE_URL"] = request.getfixturevalue("pg_database")
    with LoopbackServer() as server:
        for i in (1, 2):
            live = LiveHls(server, media, name=f"ch{i}", window=4)
            vigie(data, "channels", "add", f"ch{i}", "--name", f"Channel {i}", env=env)
            vigie(data, "channels", "feeds", "add", f"ch{i}", live.playlist_url, env=env)
        yield data, env


def _leases(data, env) -> dict:
    from reference_index.feed_leases import feed_leases

    catalog = Catalog(env.get("VIGIE_DATABASE_URL") or f"sqlite:///{data / 'vigie.db'}")
    try:
        return feed_leases(catalog.engine)
    finally:
        catalog.close()


def test_kill_9_ingester_its_feed_is_taken_over_within_two_lease_periods(shared_catalog):
    data, env = shared_catalog
    first = Ingester(data, "--workers", "1", *FAST, env=env)
    first.wait_for(lambda: len(first.flushes()) >= 2)
    second = Ingester(data, "--workers", "1", *FAST, env=env)
    try:
        # Two ingesters share two feeds: one each once the first hands one back.
        def shared() -> bool:
            now = datetime.now(UTC)
            live = {
                lease.holder for lease in _leases(data, env).values() if lease.lease_until > now
            }
            return len(live) == 2

        first.wait_for(shared, timeout=8 * LEASE_SECONDS)
        second.wait_for(lambda: len(second.flushes()) >= 2)
        victim = {lease.feed_id: lease.holder for lease in _leases(data, env).values()}
        lost = [f for f, h in victim.items() if h.split(":")[1] == str(first.proc.pid)]
        assert len(lost) == 1, victim
        first.proc.kill()
        killed_at = time.monotonic()
        first.wait()

        def taken() -> bool:
            lease = _leases(data, env)[lost[0]]
            return lease.holder.split(":")[1] == str(second.proc.pid)

        second.wait_for(taken, timeout=4 * LEASE_SECONDS)
        took = time.monotonic() - killed_at
        assert took <= 2 * LEASE_SECONDS, f"taken over after {took:.1f} s"
        lease = _leases(data, env)[lost[0]]
        assert lease.takeovers == 1 and lease.previous_holder.split(":")[1] == str(first.proc.pid)
        assert lease.blind_since_utc is not None  # the dead holder had reported postings
        assert any("taken over from" in line for line in second.lines)
        # The new holder indexes the feed again; the index shows the blind span between.
        second.wait_for(lambda: _resumed(data, lost[0], lease.acquired_utc), timeout=30)
    finally:
        second.proc.send_signal(signal.SIGTERM)
        assert second.wait() == 0
    index = _check_index(data)
    (track,) = [t for t in index.audio.tracks().values() if t.source == f"feed:{lost[0]}"]
    # The gap is in the index: coverage stops where the dead holder's last reported flush
    # ended and starts again later. The lease's blind_since_utc, from the dead holder's last
    # health report, is near: reports come every 5 s, flushes every second.
    written = [
        until
        for done in first.flushes()
        for tid, until in done["covered_until"].get("audio", {}).items()
        if int(tid) == track.id
    ]
    spans = index.audio.coverage(track.id)
    hole = [(end, nxt) for (_, end), (nxt, _) in zip(spans, spans[1:], strict=False)]
    assert any(abs(end - max(written)) < 1e-3 and nxt > end for end, nxt in hole), (written, spans)
    assert abs(lease.blind_since_utc.timestamp() - max(written)) <= 5.0 + 1.0 + 2.0
    assert index.coverage("audio", track, max(written), max(written) + 0.5) == 0.0
    after = _leases(data, env)
    assert {lease.holder for lease in after.values()} == {""}  # SIGTERM released them


def _resumed(data, feed_id: int, since: datetime) -> bool:
    """Whether feed ``feed_id`` has audio coverage starting after ``since`` (UTC)."""
    index = Index(data / "index")
    tracks = [t for t in index.audio.tracks().values() if t.source == f"feed:{feed_id}"]
    return bool(tracks) and any(
        a >= since.timestamp() - 30.0 and b > since.timestamp()
        for a, b in index.audio.coverage(tracks[0].id)
    )


def test_ingest_refuses_what_it_cannot_run(vigie, tmp_path):
    data = tmp_path / "empty"
    done = vigie(data, "ingest", "--for", "1", check=False)
    assert done.returncode == 2 and "no enabled reference feed" in done.stderr
    # A container's ingester waits for feeds to be added instead.
    assert vigie(data, "ingest", "--wait-for-feeds", "--for", "2").returncode == 0
    vigie(data, "channels", "add", "ch1", "--name", "One")
    vigie(data, "channels", "feeds", "add", "ch1", "https://ref.example/live.m3u8")
    done = vigie(data, "ingest", "--feed", "99", "--for", "1", check=False)
    assert done.returncode == 2 and "no feed 99" in done.stderr
    assert "Traceback" not in done.stderr
