"""Reference thumbnails: made at indexing time (batch and live), found at a candidate's
alignment (checked by content: every test picture carries its frame number), dropped with
the postings, rebuilt with a generation, and never corrupted by ``kill -9``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from fingerprinting import audio, video
from fingerprinting.capture import Evidence, GuardedClient, HostLimiter, LiveChunk, NetworkPolicy
from fingerprinting.decode import decode_audio, decode_frames
from fingerprinting.params import AudioParams
from fingerprinting.types import FrameBatch
from reference_index.batch import reindex, reindex_all
from reference_index.catalog import Catalog
from reference_index.catalog_schema import sqlite_url
from reference_index.index import Index
from reference_index.live import FeedHealth, FeedLoop, IngestPlan, LiveWriter, feed_source
from reference_index.store.thumbpack import Pack
from reference_index.thumbs import ThumbParams, Thumbs, ThumbSampler, ThumbStore, encode_jpeg
from service.media import change_speed, synth_pictures, synth_programme, write_video
from tests.fingerprinting.capture.hls_media import LiveHls, segment
from tests.fingerprinting.capture.servers import LoopbackServer

FPS = 10.0  # of the test recordings: frame k shows the code of k, at k / FPS seconds
SECONDS = 60.0
BITS = 10
T0 = 1_800_000_000.0  # simulated UTC of the live programme's start (an hour boundary)
CHUNK = 6.0
SR = 22050


# -- media whose pictures say their time -------------------------------------------------


def coded_pictures(seconds: float, seed: int) -> np.ndarray:
    """Synthetic TV at ``FPS`` (320 x 180 RGB) whose bottom band carries the frame number
    in ``BITS`` blocks (light: 1, dark grey: 0) -- where tickers go, so hashing ignores it."""
    frames = synth_pictures(seconds, FPS, seed, 320, 180)
    band = frames[:, -20:]
    width = 320 // BITS
    for k in range(len(frames)):
        for b in range(BITS):
            band[k, :, b * width : (b + 1) * width] = 230 if (k >> b) & 1 else 70
    return frames


def read_code(jpeg: bytes) -> int:
    """The frame number drawn in a thumbnail (a 192-px-wide grey JPEG)."""
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    h, w = img.shape
    row = img[h - 6]
    centres = ((np.arange(BITS) + 0.5) * w / BITS).astype(int)
    bits = row[centres] > 150
    return int(sum(1 << b for b in range(BITS) if bits[b]))


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("coded") / "show.mp4"
    pcm = synth_programme(SECONDS, 21, sr=SR)
    write_video(path, coded_pictures(SECONDS, 21), FPS, pcm, SR, keyframe_seconds=1.0)
    return path


@pytest.fixture(scope="module")
def decoded(recording):
    """The recording as the ingester and a scan decode it."""
    pcm = decode_audio(recording, 8000)
    return pcm, decode_frames(recording, 5.0, width=192), decode_frames(recording, 2.0, width=192)


def _sample(decoded, at: float, seconds: float):
    pcm, _, qframes = decoded
    pk = audio.query_peaks(pcm[int(at * 8000) : int((at + seconds) * 8000)])
    sel = (qframes.times >= at) & (qframes.times < at + seconds)
    return pk, video.video_query(FrameBatch(qframes.times[sel] - at, qframes.gray[sel]))


def _stored_times(index: Index, track_id: int) -> np.ndarray:
    return np.sort(np.concatenate([p.times(track_id) for p in index.thumbs.refresh().values()]))


def _check_nearest(index, cand, qs, origin=0.0):
    """Each thumbnail is the stored one nearest the aligned time, and shows that time."""
    got = index.thumbnails(cand, qs)
    assert [g[0] for g in got] == list(qs)
    vtrack = cand.track if cand.modality == "video" else index._video_track(cand)
    stored = _stored_times(index, vtrack.id)
    for q, ref, jpeg in got:
        aligned = cand.offset_seconds + q * cand.speed
        assert abs(ref - aligned) <= 1.0
        assert ref == stored[np.argmin(np.abs(stored - aligned))]
        assert read_code(jpeg) == round((ref - origin) * FPS)  # the picture is that frame
    return got


# -- making them -------------------------------------------------------------------------


def test_sampler_takes_one_frame_per_cell_across_batches():
    gray = np.zeros((50, 108, 192), np.uint8)
    times = np.arange(50) / 5.0  # 10 s at 5 fps
    sampler = ThumbSampler(ThumbParams(rate_hz=0.5))
    a = sampler.take(FrameBatch(times[:13], gray[:13]), t0=100.0)  # cuts the cell [102, 104)
    b = sampler.take(FrameBatch(times[13:] - times[13], gray[13:]), t0=100.0 + times[13])
    got = np.concatenate([a.times, b.times])
    assert np.allclose(got, [100.0, 102.0, 104.0, 106.0, 108.0])
    assert all(j[:2] == b"\xff\xd8" for j in a.jpegs + b.jpegs)  # JPEG files
    assert len(ThumbSampler(ThumbParams(rate_hz=0.0)).take(FrameBatch(times, gray))) == 0


def test_store_round_trip_nearest_and_head(tmp_path):
    store = ThumbStore(tmp_path)
    jpegs = tuple(encode_jpeg(np.full((108, 192), 10 * k, np.uint8)) for k in range(10))
    store.add(5, Thumbs(np.arange(10) * 2.0, jpegs))
    store.append(6, Thumbs(np.array([100.0]), (b"queued",)))
    got = store.nearest(5, np.array([0.4, 3.1, 7.0, 19.0, 25.0, np.nan]))
    assert [(i, t) for i, t, _ in got] == [(0, 0.0), (1, 4.0), (2, 6.0), (3, 18.0)]
    assert got[1][2] == jpegs[2]
    assert store.nearest(6, [100.5]) == [(0, 100.0, b"queued")]  # queued: this process sees it
    assert ThumbStore(tmp_path).nearest(6, [100.5]) == []  # ... others once it is flushed
    store.flush()
    assert ThumbStore(tmp_path).nearest(6, [100.5]) == [(0, 100.0, b"queued")]
    assert all(p.verify() for p in store.refresh().values())


def test_reindexed_recording_has_thumbnails_at_the_matched_offsets(tmp_path, recording, decoded):
    index = Index(tmp_path / "index")
    reindex(index, "ch1", [str(recording)])
    (vtrack,) = index.video.tracks().values()
    times = _stored_times(index, vtrack.id)
    assert np.allclose(times, np.arange(0.0, SECONDS, 2.0))  # 0.5 per second, from 0 s
    found = index.query(*_sample(decoded, 13.0, 10.0))
    for cand in (found.audio[0], found.video[0]):
        assert cand.offset_seconds == pytest.approx(13.0, abs=0.25)
        got = _check_nearest(index, cand, [0.0, 1.0, 3.3, 7.9, 9.5])
        assert len(got) == 5
    # Outside the recording, nothing within a second: left out.
    assert index.thumbnails(found.audio[0], [-30.0, 100.0]) == []


def test_thumbnails_follow_a_speed_change(tmp_path, recording, decoded):
    """A candidate at speed 1.04 is shown the reference at offset + 1.04 q."""
    index = Index(tmp_path / "index")
    reindex(index, "ch1", [str(recording)])
    fast = change_speed(decoded[0][20 * 8000 : 32 * 8000], 1.04)[: 10 * 8000]
    cand = index.query_audio(audio.query_peaks(fast))[0]
    assert cand.speed == pytest.approx(1.04, abs=0.006)
    got = _check_nearest(index, cand, [0.0, 4.0, 8.0])
    assert [round(t) for _, t, _ in got] == [20, 24, 28]  # 20 + 1.04 q, nearest on a 2 s grid


def _chunks(decoded, t_from, t_to, utc0=T0):
    pcm, frames, _ = decoded
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
def live(tmp_path):
    catalog = Catalog(sqlite_url(tmp_path / "vigie.db"))
    catalog.add_channel("ch1", name="Channel One")
    feed = catalog.add_feed("ch1", "http://ref.example/live/1.m3u8")
    index = Index(tmp_path / "index")
    writer = LiveWriter(index)
    loop = FeedLoop(
        feed, writer, IngestPlan(), lambda: None, FeedHealth(feed.id, "t"), threading.Event()
    )
    yield feed, index, writer, loop
    catalog.close()


def test_live_ingestion_keeps_thumbnails_in_utc(live, decoded):
    feed, index, writer, loop = live
    for chunk in _chunks(decoded, 0.0, SECONDS):
        loop.ingest(chunk)
    assert index.thumbs.count() == 0  # queued until the flush, like the postings
    loop.end_run()
    writer.flush()
    vtrack = next(t for t in index.video.tracks().values() if t.kind == "live")
    assert np.allclose(_stored_times(index, vtrack.id), T0 + np.arange(0.0, SECONDS, 2.0))
    assert len(index.thumbs.refresh()) == 1  # one pack per flush, all feeds together
    found = index.query(*_sample(decoded, 25.0, 10.0), around=T0 + 45.0)
    for cand in (found.audio[0], found.video[0]):
        assert cand.track.kind == "live"
        assert cand.offset_seconds == pytest.approx(T0 + 25.0, abs=0.25)
        assert len(_check_nearest(index, cand, [0.0, 2.5, 6.1, 9.0], origin=T0)) == 4


def test_retention_drops_thumbnails_with_the_postings_and_merges_the_rest(live, decoded):
    feed, index, writer, loop = live
    for chunk in _chunks(decoded, 0.0, SECONDS):
        loop.ingest(chunk)
        writer.flush()  # one segment and one pack per chunk
    loop.end_run()
    writer.flush()
    vtrack = next(t for t in index.video.tracks().values() if t.kind == "live")
    packs_before = len(index.thumbs.refresh())
    segments_before = len(index.video.segment_names)
    assert packs_before == 10
    # Keep 30 s at T0 + 60 s (merging is not due: the 10-minute bucket has not settled).
    index.retain(T0 + 60.0, {feed_source(feed.id): 30.0})
    kept = _stored_times(index, vtrack.id)
    assert len(index.video.segment_names) < segments_before
    assert kept.min() >= T0 + 30.0 - CHUNK and kept.max() == T0 + 58.0
    assert len(index.thumbs.refresh()) < packs_before
    for old, new in ((T0 + 10.0, T0 + 50.0),):
        assert index.thumbs.nearest(vtrack.id, [old]) == []
        assert read_code(index.thumbs.nearest(vtrack.id, [new])[0][2]) == 50 * FPS
    # Hours later with a long retention: the settled packs are merged into one.
    index.retain(T0 + 3 * 3600.0, {feed_source(feed.id): 24 * 3600.0})
    (pack,) = index.thumbs.refresh().values()
    assert pack.verify() and np.array_equal(pack.times(vtrack.id), kept)
    assert read_code(index.thumbs.nearest(vtrack.id, [T0 + 44.9])[0][2]) == 44 * FPS


def test_a_feed_followed_on_loopback_gets_thumbnails(tmp_path, recording):
    catalog = Catalog(sqlite_url(tmp_path / "vigie.db"))
    catalog.add_channel("ch1", name="Channel One")
    index = Index(tmp_path / "index")
    writer = LiveWriter(index)
    stop = threading.Event()
    policy = NetworkPolicy.from_setting("127.0.0.0/8")
    media = segment(recording, tmp_path / "hls", 2.0)
    plan = IngestPlan(chunk_seconds=2.0, stall_seconds=4.0, backoff_seconds=0.5)
    began = time.time()
    with LoopbackServer() as server:
        channel = LiveHls(server, media, window=4)
        feed = catalog.add_feed("ch1", channel.playlist_url)
        health = FeedHealth(feed.id, "t")
        client = lambda: GuardedClient(policy, limiter=HostLimiter())  # noqa: E731
        loop = FeedLoop(feed, writer, plan, client, health, stop)
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 30.0
            while health.chunks < 4 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            stop.set()
            thread.join(30)
    writer.flush()
    catalog.close()
    assert health.chunks >= 4
    vtrack = next(t for t in index.video.tracks().values() if t.kind == "live")
    stored = ThumbStore(index.thumbs.root)  # as another process sees them
    times = np.sort(np.concatenate([p.times(vtrack.id) for p in stored.refresh().values()]))
    assert times.size >= 3
    assert began - 60.0 < times.min() and times.max() < time.time() + 5.0  # UTC
    # One per 2 s cell of UTC, none skipped. The first is the first frame followed, which
    # may fall anywhere in its cell: the gap to the second is anything up to one cell.
    gaps = np.diff(times)
    assert 0 < gaps[0] < 3.0 and np.all((gaps[1:] > 0.5) & (gaps[1:] < 3.0)), gaps
    codes = np.array([read_code(j) for _, _, j in stored.nearest(vtrack.id, times)])
    assert np.all((codes >= 0) & (codes < SECONDS * FPS))
    # Pictures and stamps agree: the code advances as UTC does (10 frames a second, to
    # within the jitter of the playlist's PROGRAM-DATE-TIME stamps).
    assert np.all(np.abs(np.diff(codes) - FPS * np.diff(times)) <= 3)


# -- replaced recordings, generations ----------------------------------------------------


def test_a_replaced_recording_takes_its_thumbnails_along(tmp_path, recording):
    index = Index(tmp_path / "index")
    reindex(index, "ch1", [str(recording)])
    (old,) = index.video.tracks().values()
    os.utime(recording, ns=(time.time_ns(), time.time_ns()))  # a new version of the file
    reindex(index, "ch1", [str(recording)])
    (new,) = index.video.tracks().values()
    assert new.id != old.id
    packs = list(index.thumbs.refresh().values())
    assert [list(p.tracks) for p in packs] == [[new.id]]


def test_a_rebuilt_generation_has_its_own_thumbnails(tmp_path, recording, decoded):
    root = tmp_path / "index"
    index = Index(root)
    reindex(index, "ch1", [str(recording)])
    old_packs = set(os.listdir(index.thumbs.root))
    name, _ = reindex_all(root, audio_params=AudioParams(fanout=4))
    fresh = Index(root, audio_params=AudioParams(fanout=4))
    assert fresh.generation == name and fresh.thumbs.root == root / name / "thumbs"
    assert set(os.listdir(index.thumbs.root)) == old_packs  # the old one is left as it was
    (vtrack,) = fresh.video.tracks().values()
    assert fresh.thumbs.count(vtrack.id) == SECONDS / 2
    cand = fresh.query_video(_sample(decoded, 31.0, 10.0)[1])[0]
    assert len(_check_nearest(fresh, cand, [0.0, 5.0])) == 2
    # The swap after next deletes the pre-generation layout, thumbnails included.
    reindex_all(root)
    assert not (root / "thumbs").exists() and not (root / "video").exists()


# -- kill -9 -----------------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from pathlib import Path
    from reference_index.thumbs import ThumbStore, Thumbs
    store = ThumbStore(Path(sys.argv[1]))
    mode = sys.argv[2]
    rng = np.random.default_rng(0)
    if mode == "write":
        k = int(sys.argv[3])
        blobs = tuple(rng.bytes(40_000) for _ in range(200))
        while True:  # big packs, back to back: the kill most likely lands mid-write
            store.add(k, Thumbs(np.arange(200, dtype=float), blobs), kind="live")
            if k == int(sys.argv[3]) + 1:
                print("writing", flush=True)
            k += 1
    else:
        print("merging", flush=True)
        store.merge_live(1e10)
        print("merged", flush=True)
    """
)


def _entries(store: ThumbStore) -> set[tuple[int, float]]:
    return {
        (tid, float(t)) for p in store.refresh().values() for tid in p.tracks for t in p.times(tid)
    }


def test_kill_9_mid_write_or_merge_leaves_the_last_good_state(tmp_path):
    root = tmp_path / "thumbs"
    cmd = [sys.executable, "-c", _WRITER, str(root)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    rng = np.random.default_rng(1)
    for attempt in range(8):  # until a kill lands mid-write (most do)
        first = 1000 * attempt  # track ids of this writer's packs
        proc = subprocess.Popen(
            [*cmd, "write", str(first)], env=env, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "writing"  # two packs done, more coming
        time.sleep(rng.uniform(0.1, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = ThumbStore(root)
        packs = store.refresh()
        assert packs and all(p.verify() for p in packs.values())
        assert all(p.n == 200 for p in packs.values())
        if any(".tmp-" in n for n in os.listdir(root)):
            break
    assert any(".tmp-" in n for n in os.listdir(root))  # killed mid-write...
    for n in os.listdir(root):
        os.utime(root / n, (time.time() - 3600, time.time() - 3600))
    store.retain({}, lambda: set(range(10_000)))
    assert not any(".tmp-" in n for n in os.listdir(root))  # ... swept once stale
    before = _entries(store)
    # Killed while merging: every thumbnail is still there (the inputs go last).
    proc = subprocess.Popen([*cmd, "merge"], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "merging"
    deadline = time.monotonic() + 30.0
    while not any(".tmp-" in n for n in os.listdir(root)) and time.monotonic() < deadline:
        time.sleep(0.001)  # the merged pack's temporary file appears: kill it mid-write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(".tmp-" in n for n in os.listdir(root))  # the merged pack was half written
    store = ThumbStore(root)
    assert all(p.verify() for p in store.refresh().values())
    assert _entries(store) == before
    assert store.merge_live(1e10) == 1  # a later merge finishes the job, leftovers included
    (pack,) = store.refresh().values()
    assert pack.verify() and pack.n == len(before) and _entries(store) == before
    assert isinstance(pack, Pack)
