"""Reference peaks beside the postings: storage, windows, live flushes, retention, and the
verification they give a weak sample through the index."""

from dataclasses import replace

import numpy as np
import pytest

from fingerprinting import AudioStream, audio
from fingerprinting.align import Alignment, NullCalibration
from fingerprinting.params import AudioParams
from fingerprinting.peaks import LIVE_BLOCK_FRAMES
from fingerprinting.types import AudioPrint, Peaks
from reference_index.index import Index
from reference_index.peakstore import PeakStore
from service.media import change_speed, synth_programme

P = AudioParams()
SR = P.sample_rate
HOP = P.hop_seconds
N_BINS = P.bin_range[1] - P.bin_range[0]
UNCALIBRATED = {"audio": NullCalibration(0, 1, 1, 0, 0), "video": NullCalibration(0, 1, 1, 0, 0)}


def _random_peaks(n: int, frames: float, seed: int) -> Peaks:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, frames, n))
    return Peaks(t, rng.uniform(0, N_BINS - 1, n), rng.normal(-30, 5, n), HOP)


def test_window_gives_the_peaks_back_to_an_eighth_of_a_frame(tmp_path):
    store = PeakStore(tmp_path / "peaks", N_BINS)
    pk = _random_peaks(5000, 20000.0, seed=1)
    store.add(7, pk, 0.0)
    frames, bins = store.window(7, 1000.0, 1500.0, 0.0, HOP)
    inside = (pk.frames >= 1000.0) & (pk.frames < 1500.0)
    # Peaks within an eighth of a frame of the window's edges may fall either side.
    edge = np.abs(pk.frames - 1000.0) < 0.2
    edge |= np.abs(pk.frames - 1500.0) < 0.2
    assert abs(frames.size - inside.sum()) <= edge.sum()
    assert np.all((frames >= 1000.0) & (frames < 1500.0))
    near = np.searchsorted(frames, pk.frames[inside & ~edge])
    near = np.clip(near, 0, frames.size - 1)
    err = np.minimum(
        np.abs(frames[near] - pk.frames[inside & ~edge]),
        np.abs(frames[np.maximum(near - 1, 0)] - pk.frames[inside & ~edge]),
    )
    assert err.max() <= 0.126
    expected = np.floor(pk.bins[inside & ~edge] + 0.5)
    assert np.isin(expected, bins).all()
    assert store.window(8, 0.0, 1e9, 0.0, HOP)[0].size == 0  # another track: nothing
    # Two bytes a peak and 16 an entry, plus a header.
    assert store.disk_bytes() < 2 * 5000 + 16 * (20000 / 32 + 1) + 4096


def test_live_peaks_split_across_appends_are_all_kept(tmp_path):
    """A block's peaks arriving in two appends make two entries, both kept through the
    flush, the reading of queued peaks and a merge."""
    store = PeakStore(tmp_path / "peaks", N_BINS)
    start = 1_800_000_000.0
    pk = _random_peaks(400, 3000.0, seed=2)
    for part in np.array_split(np.arange(400), 7):  # cuts fall inside blocks
        store.append(3, Peaks(pk.frames[part], pk.bins[part], pk.levels[part], HOP), start)
    queued = store.window(3, 0.0, 3000.0, start, HOP)[0]
    assert queued.size == 400
    store.flush()
    store.append(3, _random_peaks(10, 10.0, seed=3), start + 3000 * HOP)
    store.flush()
    assert store.window(3, 0.0, 3000.0, start, HOP)[0].size == 400
    assert store.merge_live(now_utc=start + 10 * 86400) == 1
    frames = store.window(3, 0.0, 3000.0, start, HOP)[0]
    assert frames.size == 400
    assert np.abs(frames - pk.frames).max() <= 0.126


def test_retention_and_dead_tracks(tmp_path):
    store = PeakStore(tmp_path / "peaks", N_BINS)
    start = 1_800_000_000.0
    store.add(1, _random_peaks(100, 1000.0, seed=4), 0.0)
    store.append(2, _random_peaks(100, 1000.0, seed=5), start)
    store.flush()
    assert store.retain({2: start - 1}, lambda: {1, 2}) == 0
    assert store.retain({2: start + 1000 * HOP + 1}, lambda: {1, 2}) == 1  # expired
    assert store.window(2, 0.0, 1e9, start, HOP)[0].size == 0
    assert store.retain({}, lambda: {2}) == 1  # track 1 is gone
    assert store.window(1, 0.0, 1e9, 0.0, HOP)[0].size == 0


def test_a_band_over_256_bins_is_refused(tmp_path):
    with pytest.raises(ValueError, match="over 256"):
        PeakStore(tmp_path / "peaks", 300)


@pytest.fixture(scope="module")
def programme() -> np.ndarray:
    return synth_programme(90.0, seed=11, sr=SR).astype(np.float32)


def _weak_sample(y: np.ndarray, start: float, seconds: float) -> np.ndarray:
    """Buried in noise at -12 dB SNR: few triplets survive, more single peaks do."""
    x = y[int(start * SR) : int((start + seconds) * SR)]
    rng = np.random.default_rng(9)
    return (x + rng.normal(0, 3.98 * np.std(x), x.size)).astype(np.float32)


def test_stored_peaks_raise_a_weak_true_alignment(tmp_path, programme):
    fp = audio.fingerprint(programme, P)
    with_peaks = Index(tmp_path / "a", calibrations=UNCALIBRATED)
    with_peaks.add_recording("ch", "prog", fp)
    without = Index(tmp_path / "b", calibrations=UNCALIBRATED)
    bare = AudioPrint(fp.hashes, fp.frames, fp.hop_seconds, fp.duration_seconds)
    without.add_recording("ch", "prog", bare)
    pk = audio.query_peaks(_weak_sample(programme, 40.0, 5.0), P)
    a, b = with_peaks.query_audio(pk), without.query_audio(pk)
    assert a and b and a[0].channel_id == b[0].channel_id == "ch"
    assert a[0].offset_seconds == pytest.approx(40.0, abs=0.1)
    assert a[0].score > b[0].score + 4
    # A sample of other music: the check finds nothing to speak of.
    other = synth_programme(5.0, seed=12, sr=SR).astype(np.float32)
    found = with_peaks.query_audio(audio.query_peaks(other, P))
    assert not found or found[0].score < 4


def test_live_peaks_reach_the_index_and_expire(tmp_path, programme):
    index = Index(tmp_path / "idx", calibrations=UNCALIBRATED)
    utc = 1_800_000_000.0
    track = index.live_track("audio", "ch", "feed:1", utc)
    stream = AudioStream(P, block_frames=LIVE_BLOCK_FRAMES)
    for chunk in np.array_split(programme, 30):
        index.append_live(track, stream.push(chunk), utc)
    index.append_live(track, stream.finish(), utc)
    index.flush_live({})
    batch = audio.fingerprint(programme, P).peaks
    frames, _ = index.peaks.window(track.id, 0.0, 1e9, track.start, HOP)
    assert frames.size == len(batch)
    pk = audio.query_peaks(_weak_sample(programme, 30.0, 5.0), P)
    found = index.query_audio(pk, around=utc + 35.0)
    assert found and found[0].offset_seconds == pytest.approx(utc + 30.0, abs=0.1)
    index.retain(now_utc=utc + 90 + 49 * 3600)
    assert index.peaks.window(track.id, 0.0, 1e9, track.start, HOP)[0].size == 0


def test_replaced_recording_takes_its_peaks_along(tmp_path, programme):
    index = Index(tmp_path / "idx", calibrations=UNCALIBRATED)
    fp = audio.fingerprint(programme[: 30 * SR], P)
    old = index.add_recording("ch", "prog", fp)
    new = index.add_recording("ch", "prog", fp)  # re-indexed: replaces the track
    assert new.id != old.id
    assert index.drop_stale_packs() == 1
    assert index.peaks.window(old.id, 0.0, 1e9, 0.0, HOP)[0].size == 0
    assert index.peaks.window(new.id, 0.0, 1e9, 0.0, HOP)[0].size == len(fp.peaks)


def test_a_line_of_few_votes_is_searched_for_by_its_peaks(tmp_path, programme):
    """Two votes, one of them chance, make a line at 0.96 for a copy played 3 % fast: the
    check moves it through the true hit at the true speed; a line of many votes stays."""
    index = Index(tmp_path / "idx", calibrations=UNCALIBRATED)
    track = index.add_recording("ch", "prog", audio.fingerprint(programme, P))
    start, speed = 40.0, 1.03
    piece = programme[int(start * SR) : int((start + 7) * SR)]
    pk = audio.query_peaks(change_speed(piece, speed)[: 5 * SR], P)
    offset = start / HOP
    q = np.array([20.0, 100.0])
    r = np.array([offset + speed * 100.0 - 80.0 * 0.96, offset + speed * 100.0])
    voted = Alignment(track.id, r[1] - 0.96 * 100.0, 0.96, 2, 500, 0.0, pairs=(q, r))
    tracks = {track.id: track}
    (moved,) = index.peaks.check_lines([voted], pk, 156, tracks, P)
    assert moved.speed == pytest.approx(speed, abs=0.0051)
    assert moved.offset_frames == pytest.approx(offset, abs=1.5)
    assert moved.score > 10 and moved.peaks_found > moved.peaks_checked / 2
    assert moved.votes == 2  # the votes are the voted line's: the search adds none
    # The plotted hits are those on the new line: the true one, not the chance one.
    assert [p.tolist() for p in moved.pairs] == [[100.0], [r[1]]]
    # Beyond the first verify_search_lines lines, none is searched.
    unsearched = replace(P, verify_search_lines=0)
    (kept,) = index.peaks.check_lines([voted], pk, 156, tracks, unsearched)
    assert (kept.offset_frames, kept.speed) == (voted.offset_frames, 0.96)
    many = Alignment(
        track.id, r[1] - 0.96 * 100.0, 0.96, P.verify_search_votes, 500, 0.0, pairs=(q, r)
    )
    (kept,) = index.peaks.check_lines([many], pk, 156, tracks, P)
    assert (kept.offset_frames, kept.speed) == (many.offset_frames, 0.96)
    assert kept.score < moved.score - 5
