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

    def __init__(self, data, *args):
        env = {**os.environ, "VIGIE_DATA_DIR": str(data), "VIGIE_ALLOW_NETWORKS": "127.0.0.0/8"}
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


def test_ingest_refuses_what_it_cannot_run(vigie, tmp_path):
    data = tmp_path / "empty"
    done = vigie(data, "ingest", "--for", "1", check=False)
    assert done.returncode == 2 and "no enabled reference feed" in done.stderr
    vigie(data, "channels", "add", "ch1", "--name", "One")
    vigie(data, "channels", "feeds", "add", "ch1", "https://ref.example/live.m3u8")
    done = vigie(data, "ingest", "--feed", "99", "--for", "1", check=False)
    assert done.returncode == 2 and "no feed 99" in done.stderr
    assert "Traceback" not in done.stderr
