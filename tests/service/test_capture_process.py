"""Captures in processes of their own (``service.capture_process``): the sample and the
errors cross back whole, a process that dies or hangs fails its scan with a message, and
the per-host limits hold across processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import pytest

from fingerprinting.capture import (
    CaptureError,
    CapturePlan,
    Deadline,
    GuardedClient,
    HostLimiter,
    NetworkPolicy,
    SharedHostLimiter,
    sample,
)
from service import capture_process
from service.capture_process import CaptureProcessDied, Capturer
from tests.fingerprinting.capture.hls_media import make_source, segment, serve_vod
from tests.fingerprinting.capture.servers import LoopbackServer

LOOPBACK = "127.0.0.0/8,::1/128"
PLAN = CapturePlan(
    seconds=6, sample_rate=8000, fps=2, deadline_seconds=30, keep_bytes=16 * 1024 * 1024
)


@pytest.fixture(scope="module")
def vod(tmp_path_factory):
    root = tmp_path_factory.mktemp("capture-process")
    return segment(make_source(root / "source.ts", 8.0, seed=5), root / "hls", 2.0)


@pytest.fixture
def server():
    with LoopbackServer() as s:
        yield s


def _capturer(allow: str = LOOPBACK) -> Capturer:
    policy = NetworkPolicy.from_setting(allow)
    return Capturer(allow, isolated=True, client_factory=lambda: GuardedClient(policy), nice=3)


def test_a_sample_taken_in_a_process_equals_one_taken_on_the_thread(server, vod):
    url = serve_vod(server, vod)
    capturer = _capturer()
    got = capturer.sample(url, PLAN)
    policy = NetworkPolicy.from_setting(LOOPBACK)
    with GuardedClient(policy, limiter=HostLimiter()) as client:
        here = sample(url, PLAN, client=client)
    assert got.kind == here.kind == "hls"
    np.testing.assert_array_equal(got.pcm, here.pcm)
    np.testing.assert_array_equal(got.frames.gray, here.frames.gray)
    # The evidence crossed whole, the bytes it kept included, and still takes appends.
    assert [r.sha256 for r in got.evidence.ranges] == [r.sha256 for r in here.evidence.ranges]
    kept = [(r["kept_bytes"], r["kept_sha256"]) for r in got.evidence.sealed()["ranges"]]
    assert kept == [(r["kept_bytes"], r["kept_sha256"]) for r in here.evidence.sealed()["ranges"]]
    assert got.evidence._range_bytes and got.evidence._range_bytes == here.evidence._range_bytes
    got.evidence.add_playlist("http://example.test/x.m3u8", b"#EXTM3U\n")
    assert not capturer._running


def test_capture_errors_cross_back_with_their_reason_and_evidence(server, vod):
    capturer = _capturer()
    with pytest.raises(CaptureError) as missing:
        capturer.sample(server.url("/nothing.m3u8"), PLAN)
    assert missing.value.reason == "http_status"
    assert missing.value.evidence.hops[0].status == 404
    # The network policy is rebuilt in the process from the setting: loopback refused.
    with pytest.raises(CaptureError) as refused:
        _capturer("").sample(serve_vod(server, vod), PLAN)
    assert refused.value.reason == "refused_address"


def _child_of(capturer: Capturer, timeout: float = 10.0) -> multiprocessing.Process:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        with capturer._lock:
            running = list(capturer._running)
        if running and running[0].pid:
            return running[0]
        time.sleep(0.01)
    raise AssertionError("no capture process started")


def _slow_vod(server: LoopbackServer, vod, delay: float) -> str:
    url = serve_vod(server, vod, "slow")

    def slow(request, r):
        time.sleep(delay)
        r.send(200, vod.segments[0], content_type=vod.content_type)

    for i in range(len(vod.segments)):
        server.route(f"/vod/slow/seg{i}{vod.extension}", slow)
    return url


def _capture_in_thread(capturer: Capturer, url: str, plan: CapturePlan) -> dict:
    out: dict = {}

    def run() -> None:
        try:
            out["sample"] = capturer.sample(url, plan)
        except BaseException as exc:  # handed to the test
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    out["thread"] = thread
    return out


def test_a_capture_process_killed_mid_way_fails_its_scan_with_a_message(server, vod):
    capturer = _capturer()
    url = _slow_vod(server, vod, 5.0) + "?token=s3cret"
    out = _capture_in_thread(capturer, url, PLAN)
    child = _child_of(capturer)
    # The process runs at the scan priority below this process's main thread.
    time.sleep(0.2)
    assert os.getpriority(os.PRIO_PROCESS, child.pid) == min(
        19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + 3
    )
    os.kill(child.pid, signal.SIGKILL)
    out["thread"].join(10)
    error = out["error"]
    assert isinstance(error, CaptureProcessDied)
    assert "killed by SIGKILL" in str(error) and "s3cret" not in str(error)
    assert not capturer._running


def test_a_capture_process_that_hangs_past_the_deadline_is_killed(server, vod, monkeypatch):
    monkeypatch.setattr(capture_process, "GRACE_SECONDS", 0.5)
    capturer = _capturer()
    url = _slow_vod(server, vod, 5.0)
    started = time.monotonic()
    out = _capture_in_thread(capturer, url, CapturePlan(seconds=6, deadline_seconds=1.5))
    child = _child_of(capturer)
    os.kill(child.pid, signal.SIGSTOP)  # stuck where no deadline is checked
    out["thread"].join(10)
    assert isinstance(out["error"], CaptureProcessDied)
    assert "outlasted the capture deadline" in str(out["error"])
    assert time.monotonic() - started < 5
    assert not child.is_alive()


def _hold(limiter: SharedHostLimiter, host: str, seconds: float, log, index: int) -> None:
    with limiter.slot(host, Deadline(30), "test"):
        log[2 * index] = time.monotonic()
        time.sleep(seconds)
        log[2 * index + 1] = time.monotonic()


def test_the_shared_host_limits_hold_across_processes():
    ctx = multiprocessing.get_context("spawn")
    limiter = SharedHostLimiter(rate=1000, burst=1000, concurrent=2, context=ctx)
    log = ctx.RawArray("d", 2 * 4)
    procs = [
        ctx.Process(target=_hold, args=(limiter, "panel.example", 0.5, log, i)) for i in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert all(p.exitcode == 0 for p in procs)
    spans = sorted((log[2 * i], log[2 * i + 1]) for i in range(4))
    # Never more than two open at once: the third started after the first ended.
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    assert max(np.cumsum([d for _, d in edges])) <= 2
    assert limiter.open_requests("panel.example") == 0
    # Another host has its own bucket; the rate limit is shared too.
    limiter = SharedHostLimiter(rate=5, burst=1, concurrent=8, context=ctx)
    started = time.monotonic()
    for _ in range(4):
        with limiter.slot("a.example", Deadline(10), "test"):
            pass
    assert time.monotonic() - started >= 0.55  # 3 tokens refilled at 5 per second
    with pytest.raises(CaptureError) as late, limiter.slot("a.example", Deadline(0.05), "x"):
        pass
    assert late.value.reason == "timeout"
    assert "x (waiting for a.example's rate limit)" in late.value.message


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="rate must be > 0"):
        SharedHostLimiter(rate=0)
