"""Live ingestion: chunks in UTC -> postings and coverage; windowed queries; catch-up assets.

The first tests feed :meth:`FeedLoop.ingest` chunks decoded from a synthetic programme
with simulated UTC stamps (minutes of TV in seconds of test); the last ones follow a real
loopback live HLS channel.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import numpy as np
import pytest

from fingerprinting import audio, video
from fingerprinting.capture import Evidence, GuardedClient, HostLimiter, LiveChunk, NetworkPolicy
from fingerprinting.decode import decode_audio, decode_frames
from fingerprinting.types import FrameBatch
from reference_index.catalog import Catalog
from reference_index.catalog_schema import sqlite_url
from reference_index.index import Index
from reference_index.live import FeedHealth, FeedLoop, IngestPlan, LiveWriter
from tests.fingerprinting.capture.hls_media import LiveHls, make_source, segment
from tests.fingerprinting.capture.servers import LoopbackServer

PROGRAMME_SECONDS = 240.0
T0 = 1_800_000_000.0  # simulated UTC of the programme's start (epoch seconds)
CHUNK = 6.0


@pytest.fixture(scope="module")
def programme(tmp_path_factory):
    """Four minutes of A/V programme, decoded as the ingester and a scan would see it."""
    path = make_source(tmp_path_factory.mktemp("live") / "prog.ts", PROGRAMME_SECONDS, 5)
    pcm = decode_audio(path, 8000)
    ref_frames = decode_frames(path, 5.0, width=192)
    query_frames = decode_frames(path, 2.0, width=192)
    return path, pcm, ref_frames, query_frames


def _chunks(pcm, frames, t_from, t_to, utc0=T0):
    """LiveChunks of the programme's [t_from, t_to) seconds, stamped from ``utc0``."""
    out = []
    for start in np.arange(t_from, t_to, CHUNK):
        end = min(start + CHUNK, t_to)
        sel = (frames.times >= start) & (frames.times < end)
        out.append(
            LiveChunk(
                utc_start=datetime.fromtimestamp(utc0 + start, UTC),
                pcm=pcm[int(start * 8000) : int(end * 8000)],
                frames=FrameBatch(frames.times[sel] - start, frames.gray[sel]),
                seconds=end - start,
                sequences=(int(start // CHUNK), int(start // CHUNK)),
                discontinuity=start == t_from,
                evidence=Evidence(requested_url="http://ref.example/live.m3u8"),
            )
        )
    return out


@pytest.fixture
def setup(tmp_path):
    catalog = Catalog(sqlite_url(tmp_path / "vigie.db"))
    catalog.add_channel("ch1", name="Channel One")
    catalog.add_channel("ch2", name="Channel Two")
    feed = catalog.add_feed("ch1", "http://ref.example/live/user/secret/1.m3u8")
    index = Index(tmp_path / "index")
    writer = LiveWriter(index)
    yield catalog, feed, index, writer
    catalog.close()


def _loop(feed, writer, plan=IngestPlan(), client_factory=None, stop=None):
    return FeedLoop(
        feed,
        writer,
        plan,
        client_factory or (lambda: None),
        FeedHealth(feed.id, "test"),
        stop or threading.Event(),
    )


def _query(programme, index, at, seconds, around, **kw):
    _, pcm, _, qframes = programme
    pk = audio.query_peaks(pcm[int(at * 8000) : int((at + seconds) * 8000)], index.audio_params)
    sel = (qframes.times >= at) & (qframes.times < at + seconds)
    vq = video.video_query(FrameBatch(qframes.times[sel] - at, qframes.gray[sel]))
    return index.query(pk, vq, around=around, **kw)


def test_live_sample_matches_with_its_delay_and_only_inside_the_window(programme, setup):
    _, pcm, frames, _ = programme
    catalog, feed, index, writer = setup
    loop = _loop(feed, writer)
    for chunk in _chunks(pcm, frames, 0.0, PROGRAMME_SECONDS):
        loop.ingest(chunk)
    loop.end_run()
    writer.flush()
    assert loop.health.chunks == 40 and loop.health.state == "live"
    tracks = index.audio.tracks()
    assert [t.source for t in tracks.values()] == [f"feed:{feed.id}"]
    # A restream 30 s behind the channel, sampled at programme time 100 s.
    found = _query(programme, index, 100.0, 10.0, around=T0 + 130.0)
    for cands in (found.audio, found.video):
        best = cands[0]
        assert best.channel_id == "ch1" and best.track.kind == "live"
        assert best.confidence > 0.999
        assert T0 + 130.0 - best.offset_seconds == pytest.approx(30.0, abs=0.5)
    # The window (10 minutes before, 30 s after) saw the feed from T0 on: 160 of 630 s.
    assert found.coverage["ch1"] == pytest.approx(160.0 / 630.0, abs=0.01)
    # The same content sampled 20 minutes after the default 10-minute window: no live
    # match, and the reference window is reported blind.
    late = _query(programme, index, 100.0, 10.0, around=T0 + 100.0 + 1800.0)
    assert late.audio == [] and late.video == []
    assert late.coverage["ch1"] == 0.0
    # ... but a catch-up recording of the programme, indexed as an asset, matches it.
    path = programme[0]
    index.add_recording("ch1", str(path), audio.fingerprint(pcm, index.audio_params))
    late = _query(programme, index, 100.0, 10.0, around=T0 + 100.0 + 1800.0)
    best = late.audio[0]
    assert best.track.kind == "asset" and best.offset_seconds == pytest.approx(100.0, abs=0.1)


def test_window_reads_fewer_postings_and_searches_fewer_frames(programme, setup):
    _, pcm, frames, _ = programme
    _, feed, index, writer = setup
    loop = _loop(feed, writer)
    for chunk in _chunks(pcm, frames, 0.0, PROGRAMME_SECONDS):
        loop.ingest(chunk)
        writer.flush()  # one segment per chunk: the window can skip most of them
    tracks = index.audio.tracks()
    qp = audio.query_print(audio.query_peaks(pcm[200 * 8000 : 210 * 8000]))
    whole = index._window(tracks, None, (-60.0, 5.0), 10.0)
    recent = index._window(tracks, T0 + 205.0, (-60.0, 5.0), 10.0)
    assert recent.searched_frames(tracks) < 0.4 * whole.searched_frames(tracks)
    assert len(index.audio._part_segments(0, recent)) < 0.4 * len(index.audio.segment_names)
    hits_all = index.audio.lookup(qp.hashes, whole).size
    hits_recent = index.audio.lookup(qp.hashes, recent).size
    assert hits_recent < hits_all
    found = _query(programme, index, 200.0, 10.0, around=T0 + 205.0, window=(-60.0, 5.0))
    assert found.audio[0].offset_seconds == pytest.approx(T0 + 200.0, abs=0.1)


def test_gaps_are_blind_spans_and_runs_restart_on_the_same_axis(programme, setup):
    _, pcm, frames, _ = programme
    _, feed, index, writer = setup
    loop = _loop(feed, writer)
    # The feed is lost from 120 s to 180 s; then a chunk comes stamped 5 s off its run.
    chunks = _chunks(pcm, frames, 0.0, 120.0) + _chunks(pcm, frames, 180.0, PROGRAMME_SECONDS)
    for chunk in chunks:
        loop.ingest(chunk)
    loop.end_run()
    writer.flush()
    track = next(iter(index.audio.tracks().values()))
    spans = index.audio.coverage(track.id)
    assert len(spans) == 2
    assert spans[0][0] == pytest.approx(T0, abs=0.1)
    assert spans[0][1] == pytest.approx(T0 + 120.0, abs=0.1)
    assert spans[1][0] == pytest.approx(T0 + 180.0, abs=0.1)
    assert index.coverage("audio", track, T0 + 130.0, T0 + 170.0) == 0.0
    assert index.coverage("audio", track, T0 + 100.0, T0 + 140.0) == pytest.approx(0.5, abs=0.01)
    # After the gap, samples still align on the feed's one time axis.
    found = _query(programme, index, 200.0, 10.0, around=T0 + 215.0)
    assert found.audio[0].offset_seconds == pytest.approx(T0 + 200.0, abs=0.1)


def test_clock_jump_starts_a_new_run(programme, setup):
    _, pcm, frames, _ = programme
    _, feed, index, writer = setup
    loop = _loop(feed, writer)
    first = _chunks(pcm, frames, 0.0, 60.0)
    # The next minute arrives without a discontinuity flag but stamped 10 s late (a feed
    # whose PROGRAM-DATE-TIME jumped): it must be placed where its stamps say.
    second = _chunks(pcm, frames, 60.0, 120.0, utc0=T0 + 10.0)
    for c in second:
        c.discontinuity = False
    for chunk in first + second:
        loop.ingest(chunk)
    loop.end_run()
    writer.flush()
    found = _query(programme, index, 80.0, 10.0, around=T0 + 100.0)
    assert found.audio[0].offset_seconds == pytest.approx(T0 + 90.0, abs=0.1)


# -- a real live feed on loopback --------------------------------------------------------


class FlakyLiveHls(LiveHls):
    """A live channel whose server answers 503 while ``down`` is set."""

    down = False

    def _handle(self, request, r):
        if self.down:
            r.send(503, b"busy\n", content_type="text/plain")
            return
        super()._handle(request, r)


@pytest.fixture(scope="module")
def live_media(tmp_path_factory):
    d = tmp_path_factory.mktemp("livehls")
    return segment(make_source(d / "src.ts", 30.0, 8), d / "hls", 2.0)


def test_feed_loop_follows_a_live_channel_and_reconnects(live_media, tmp_path):
    catalog = Catalog(sqlite_url(tmp_path / "vigie.db"))
    catalog.add_channel("ch1", name="Channel One")
    policy = NetworkPolicy.from_setting("127.0.0.0/8")
    plan = IngestPlan(chunk_seconds=2.0, stall_seconds=4.0, backoff_seconds=0.5)
    index = Index(tmp_path / "index")
    writer = LiveWriter(index)
    stop = threading.Event()
    with LoopbackServer() as server:
        channel = FlakyLiveHls(server, live_media, window=4)
        feed = catalog.add_feed("ch1", channel.playlist_url)
        loop = _loop(feed, writer, plan, lambda: GuardedClient(policy, limiter=HostLimiter()), stop)
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        try:
            _wait(lambda: loop.health.chunks >= 3, 20.0)
            assert loop.health.state == "live" and loop.health.lag_seconds < 6.0
            writer.flush()
            channel.down = True
            _wait(lambda: loop.health.reconnects >= 1, 20.0)
            assert loop.health.last_error_reason in ("http_status", "stalled")
            assert loop.health.state == "reconnecting"
            chunks_before = loop.health.chunks
            # Down for longer than the playlist's window (4 x 2 s): segments are missed.
            time.sleep(10.0)
            channel.down = False
            _wait(lambda: loop.health.chunks >= chunks_before + 2, 30.0)
            assert loop.health.state == "live"
        finally:
            stop.set()
            thread.join(30)
    assert not thread.is_alive() and loop.health.state == "stopped"
    loop.end_run()
    writer.flush()
    track = next(t for t in index.audio.tracks().values())
    spans = index.audio.coverage(track.id)
    assert len(spans) >= 2  # the outage is a gap
    status = loop.health.snapshot()
    catalog.report_feed_status([status])
    assert catalog.feed_statuses()[feed.id].reconnects >= 1
    catalog.close()


def _wait(cond, timeout):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def test_segments_missed_while_behind_are_reported(programme, setup):
    _, pcm, frames, _ = programme
    _, feed, index, writer = setup
    loop = _loop(feed, writer)
    chunks = _chunks(pcm, frames, 0.0, 12.0)
    chunks[1].evidence.note("segments_expired", missed=3, at=10)
    for chunk in chunks:
        loop.ingest(chunk)
    assert loop.health.errors == 1 and loop.health.last_error_reason == "fell_behind"
    assert "3 segments" in loop.health.last_error_message
