"""Matching in pool processes gives the same result as on the scan thread, and survives a
pool process being killed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fingerprinting.decode import FrameBatch, iter_media
from service.matcher import IndexHolder, MatchPool
from tests.fingerprinting.capture.hls_media import make_source


@pytest.fixture(scope="module")
def indexed(vigie, tmp_path_factory):
    """An index holding channel tv1 (a 30 s A/V recording) and a 10 s sample cut from it
    at 12 s, decoded as a scan would decode it."""
    root = tmp_path_factory.mktemp("matcher")
    data = root / "data"
    recording = make_source(root / "tv1.ts", 30.0, seed=11)
    vigie(data, "channels", "add", "tv1", "--name", "TV One")
    vigie(data, "reindex", "tv1", str(recording))
    holder = IndexHolder(data / "index")
    pa, pv = holder.use(lambda ix: (ix.audio_params, ix.video_params))
    chunks, batches = [], []
    for item in iter_media(
        str(recording), sample_rate=pa.sample_rate, fps=pv.query_fps, width=pv.frame_width
    ):
        (batches if isinstance(item, FrameBatch) else chunks).append(item)
    pcm = np.concatenate(chunks)[12 * pa.sample_rate : 22 * pa.sample_rate]
    frames = FrameBatch.concat(batches)
    keep = (frames.times >= 12.0) & (frames.times < 22.0)
    frames = FrameBatch(frames.times[keep] - 12.0, frames.gray[keep])
    return data / "index", holder, pcm, frames


def _match(pool, pcm, frames):
    return pool.match(pcm, frames, 0.99, "sample", time.perf_counter())


def test_a_pool_process_finds_what_the_scan_thread_finds(indexed):
    root, holder, pcm, frames = indexed
    local = _match(MatchPool(root, 0, holder), pcm, frames)
    pool = MatchPool(root, 1, holder)
    try:
        remote = _match(pool, pcm, frames)
        worker = pool._get().submit(os.getpid).result()
    finally:
        pool.close()
    assert worker != os.getpid()
    assert [m.channel_id for m in remote.matches] == ["tv1"]
    assert remote.as_dict()["matches"] == local.as_dict()["matches"]
    assert remote.matches[0].offset_seconds == pytest.approx(12.0, abs=0.1)


def test_a_killed_pool_process_is_replaced_and_the_match_still_answers(indexed):
    root, holder, pcm, frames = indexed
    pool = MatchPool(root, 1, holder)
    try:
        first = pool._get().submit(os.getpid).result()
        os.kill(first, signal.SIGKILL)
        time.sleep(0.5)
        result = _match(pool, pcm, frames)
        second = pool._get().submit(os.getpid).result()
    finally:
        pool.close()
    assert second != first
    assert [m.channel_id for m in result.matches] == ["tv1"]


def test_pool_processes_die_with_a_worker_killed_by_sigkill(indexed, tmp_path):
    root = indexed[0]
    script = tmp_path / "worker.py"
    script.write_text(
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from service.matcher import IndexHolder, MatchPool\n"
        "if __name__ == '__main__':\n"
        "    root = Path(sys.argv[1])\n"
        "    pool = MatchPool(root, 1, IndexHolder(root))\n"
        "    print(pool._get().submit(os.getpid).result(), flush=True)\n"
        "    time.sleep(600)\n"
    )
    worker = subprocess.Popen(
        [sys.executable, str(script), str(root)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    child = int(worker.stdout.readline())
    os.kill(child, 0)  # the pool process is alive
    worker.kill()  # SIGKILL: no chance to shut the pool down
    worker.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(child, signal.SIGKILL)
    raise AssertionError(f"pool process {child} outlived its worker by 10 s")
