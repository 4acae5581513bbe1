"""``Candidate.pairs``: the matched (query, reference) times behind an alignment, in seconds."""

import cv2
import numpy as np
import pytest

from fingerprinting import audio
from fingerprinting.align import MAX_PAIRS, NullCalibration
from fingerprinting.decode import FrameBatch
from fingerprinting.params import VideoParams
from fingerprinting.video import fingerprint_frames, video_query
from reference_index.index import Index
from service.media import change_speed, synth_pictures, synth_programme

SR = 8000
CAL = NullCalibration(
    threshold=10.0, tail_at_threshold=0.1, slope=0.2, n_queries=100, max_null_score=15.0
)
T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def programmes():
    return {ch: synth_programme(60.0, seed=60 + i, sr=SR) for i, ch in enumerate("abc")}


@pytest.fixture(scope="module")
def index(tmp_path_factory, programmes):
    idx = Index(tmp_path_factory.mktemp("idx"), calibrations={"audio": CAL, "video": CAL})
    for ch, y in programmes.items():
        idx.add_recording(ch, f"{ch}.wav", audio.fingerprint(y))
    return idx


def _on_line(c, hop):
    q, r = c.pairs
    # +-1 frame after rounding to the nearest frame: 1.5 frames (and float32 sample times).
    return np.abs(r - (c.offset_seconds + q.astype(np.float64) * c.speed)).max() <= 1.5 * hop + 1e-5


@pytest.mark.parametrize("speed", [1.0, 1.04])
def test_audio_pairs_lie_on_the_matched_line(index, programmes, speed):
    y = programmes["b"]
    q = change_speed(y[SR * 12 : SR * 30], speed)[: SR * 10]
    best = index.query_audio(audio.query_peaks(q))[0]
    assert best.channel_id == "b" and best.speed == pytest.approx(speed, abs=0.006)
    qs, rs = best.pairs
    assert qs.dtype == np.float32 and rs.dtype == np.float64
    assert 30 <= qs.size <= MAX_PAIRS
    hop = index.audio_params.hop_seconds
    # On the candidate's line within the vote's window (one frame, plus rounding)...
    assert _on_line(best, hop)
    # ... which is the true one: the cut started 12 s in, at this speed.
    true_ref = 12.0 + qs.astype(np.float64) * speed
    assert np.abs(rs - true_ref).max() <= 0.1
    assert qs.min() >= 0 and qs.max() <= 10.0
    assert np.all(np.diff(qs) >= 0)


def test_audio_pairs_exclude_the_hits_of_other_alignments(index, programmes):
    """A sample spliced from two places of one recording: the winning line is one of
    them, and none of the other's hits -- which the index does find -- is in its pairs."""
    y = programmes["c"]
    first, second = y[SR * 12 : SR * 19], y[SR * 40 : SR * 44]  # 7 s, then 4 s
    pk = audio.query_peaks(np.concatenate([first, second]))
    best = index.query_audio(pk)[0]
    assert best.channel_id == "c" and best.offset_seconds == pytest.approx(12.0, abs=0.1)
    qs, rs = best.pairs
    assert qs.max() <= 7.0 + 0.1 and rs.max() <= 19.1  # nothing of the second part
    # The second part did hit the reference, near 40 s: those hits were left out.
    qp = audio.query_print(pk)
    hits = index.audio.lookup(qp.hashes)
    hop = index.audio_params.hop_seconds
    t_q = qp.anchor_frames[hits.query_pos] * hop
    t_ref = hits.frame * hop
    on_second = np.abs(t_ref - (40.0 - 7.0 + t_q)) < 0.1
    assert on_second.sum() >= 20
    assert _on_line(best, hop)


def test_live_pairs_are_in_utc(tmp_path, programmes):
    idx = Index(tmp_path, calibrations={"audio": CAL})
    y = programmes["a"]
    idx.add_recording("live1", "feed", audio.fingerprint(y), kind="live", start=T0)
    best = idx.query_audio(audio.query_peaks(y[SR * 20 : SR * 30]))[0]
    qs, rs = best.pairs
    assert rs.dtype == np.float64 and rs.min() > T0  # float32 would be off by minutes here
    assert np.abs(rs - (T0 + 20.0 + qs.astype(np.float64))).max() <= 0.1


def test_video_pairs_are_the_matched_frames(tmp_path):
    p = VideoParams()
    rgb = synth_pictures(60.0, 10.0, seed=3, width=192, height=108)
    pics = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb])
    idx = Index(tmp_path, calibrations={"audio": CAL, "video": CAL})
    times = np.arange(len(pics)) / 10.0
    idx.add_recording("news", "news.mp4", fingerprint_frames([FrameBatch(times, pics)], p))
    for speed in (1.0, 1.04):
        t = np.arange(0.0, 10.0, 1 / p.query_fps)
        ref = np.round((21.3 + speed * t) * 10.0).astype(int)
        best = idx.query_video(video_query(FrameBatch(t, pics[ref]), p))[0]
        qs, rs = best.pairs
        assert best.channel_id == "news" and qs.size >= 15
        assert _on_line(best, p.hop_seconds)
        # Each sample time is one the sample has, each reference time a reference frame's.
        assert set(np.round(qs, 3).tolist()) <= set(np.round(t, 3).tolist())
        assert np.allclose(rs / p.hop_seconds, np.round(rs / p.hop_seconds))
        assert np.abs(rs - (21.3 + speed * qs.astype(np.float64))).max() <= 0.4
