"""Following a live feed: consecutive chunks of whole segments, stamped in UTC."""

import threading
from datetime import timedelta

import numpy as np
import pytest

from fingerprinting.capture import (
    CaptureError,
    CapturePlan,
    GuardedClient,
    HostLimiter,
    NetworkPolicy,
)
from fingerprinting.capture.follow import follow
from tests.fingerprinting.capture.hls_media import LiveHls

PLAN = CapturePlan(seconds=4, sample_rate=8000, fps=2)


@pytest.fixture
def client():
    policy = NetworkPolicy.from_setting("127.0.0.0/8")
    with GuardedClient(policy, limiter=HostLimiter(rate=1000, burst=1000)) as c:
        yield c


@pytest.mark.parametrize("media", ["hls_ts_2s", "hls_fmp4"])
def test_chunks_follow_each_other_in_sequence_and_in_utc(server, client, media, request):
    live = LiveHls(server, request.getfixturevalue(media), window=4)
    chunks = []
    for chunk in follow(live.playlist_url, PLAN, client=client):
        chunks.append(chunk)
        if len(chunks) == 4:  # 16 s: some chunks were waited for in real time
            break
    seqs = [c.sequences for c in chunks]
    assert all(b[0] == a[1] + 1 for a, b in zip(seqs, seqs[1:], strict=False))
    for a, b in zip(chunks, chunks[1:], strict=False):
        # PROGRAM-DATE-TIME: each chunk starts where the previous one ended.
        assert abs((b.utc_start - a.utc_start) - timedelta(seconds=a.seconds)) < timedelta(
            milliseconds=50
        )
        assert not b.discontinuity
    for c in chunks:
        assert c.seconds >= 4 and abs(c.pcm.size / 8000 - c.seconds) < 0.15
        assert len(c.frames) >= 7 and np.all(np.diff(c.frames.times) > 0)
        ranges = [r for r in c.evidence.ranges if r.role == "segment"]
        assert [r.media_sequence for r in ranges] == list(range(c.sequences[0], c.sequences[1] + 1))


def test_a_stop_event_ends_following_after_the_chunk(server, client, hls_ts_2s):
    live = LiveHls(server, hls_ts_2s, window=6)
    stop = threading.Event()
    got = []
    for chunk in follow(live.playlist_url, PLAN, client=client, stop=stop):
        got.append(chunk)
        stop.set()
    assert len(got) == 1


def test_a_feed_that_stops_advancing_ends_as_stalled(server, client, hls_ts_2s):
    live = LiveHls(server, hls_ts_2s, window=3, frozen=True)
    got = []
    with pytest.raises(CaptureError) as info:
        for chunk in follow(live.playlist_url, PLAN, client=client):
            got.append(chunk)
    assert info.value.reason == "stalled" and len(got) == 1  # 6 s published: one chunk
