from collections import Counter

import numpy as np
import pytest

from fingerprinting import AudioStream, audio
from fingerprinting.params import AudioParams
from fingerprinting.peaks import LIVE_BLOCK_FRAMES, PeakPicker, peaks
from fingerprinting.types import AudioPrint, Peaks
from service.media import synth_programme

SR = 8000
P = AudioParams()


def _signal(seconds: float, seed: int) -> np.ndarray:
    """Notes, chords and noise bursts (synth_programme) plus a slow chirp and tone bursts."""
    y = synth_programme(seconds, seed=seed, sr=SR).astype(np.float64)
    t = np.arange(y.size) / SR
    # Chirp sweeping 400-3000 Hz every 7 s, and 1 kHz tone bursts of 0.3 s every 2.3 s.
    phase = 2 * np.pi * (400 * t + (2600 / 14) * (t % 7) ** 2)
    y += 0.15 * np.sin(phase) + 0.2 * np.sin(2 * np.pi * 1000 * t) * ((t % 2.3) < 0.3)
    return (y / np.abs(y).max() * 0.9).astype(np.float32)


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    """150 s: peaks come in blocks of 2048 frames (65.5 s), so 60 s would sit inside the
    first block and never cross a block boundary; 150 s crosses two."""
    return _signal(150.0, seed=21)


@pytest.fixture(scope="module")
def batch(signal) -> AudioPrint:
    return audio.fingerprint(signal, P)


def _pairs(h: np.ndarray, f: np.ndarray) -> Counter:
    return Counter(zip(h.tolist(), f.tolist(), strict=True))


def _run(x: np.ndarray, sizes) -> tuple[list[AudioPrint], list[int], AudioStream]:
    """Push ``x`` in chunks of ``sizes`` (cycled), then finish; prints and cut frames."""
    stream = AudioStream(P)
    prints, cuts = [], []
    i, k = 0, 0
    while i < x.size:
        n = int(sizes[k % len(sizes)])
        prints.append(stream.push(x[i : i + n]))
        cuts.append(stream.final_frame)
        i, k = i + n, k + 1
        assert prints[-1].duration_seconds == pytest.approx(min(i, x.size) / SR)
    prints.append(stream.finish())
    return prints, cuts, stream


def _check_equal(prints: list[AudioPrint], batch: AudioPrint, cuts: list[int]) -> None:
    h = np.concatenate([p.hashes for p in prints])
    f = np.concatenate([p.frames for p in prints])
    assert h.dtype == np.uint32 and f.dtype == np.uint32
    assert _pairs(h, f) == _pairs(batch.hashes, batch.frames)  # the same multiset
    # Stronger, and true by construction: the very same arrays, in the same order.
    assert np.array_equal(h, batch.hashes) and np.array_equal(f, batch.frames)
    # And every peak the hashes were made of, once, in the batch's order (the index stores
    # them to verify alignments).
    pf = np.concatenate([p.peaks.frames for p in prints])
    pb = np.concatenate([p.peaks.bins for p in prints])
    assert np.array_equal(pf, batch.peaks.frames) and np.array_equal(pb, batch.peaks.bins)
    # Each push returns hashes below its cut, at or after the previous one's.
    lo = 0
    for pr, cut in zip(prints, [*cuts, np.inf], strict=True):
        assert pr.hop_seconds == P.hop_seconds
        assert np.all(np.diff(pr.frames.astype(np.int64)) >= 0)
        assert np.all((pr.frames >= lo) & (pr.frames < cut))
        lo = max(lo, cut) if np.isfinite(cut) else lo


def _random_sizes(seed: int, n: int = 400) -> list[int]:
    """Tiny (1, 100 samples), mid-frame (255, 257), big (3 s, 6 s) and arbitrary sizes."""
    rng = np.random.default_rng(seed)
    menu = np.array([1, 100, 255, 257, 1000, 3 * SR, 6 * SR])
    return np.where(rng.random(n) < 0.6, rng.choice(menu, n), rng.integers(1, 5 * SR, n)).tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_chunks_give_the_batch_pairs(signal, batch, seed):
    sizes = _random_sizes(seed)
    prints, cuts, stream = _run(signal, sizes)
    _check_equal(prints, batch, cuts)
    assert prints[-1].duration_seconds == pytest.approx(signal.size / SR)
    assert stream.seconds == pytest.approx(signal.size / SR)
    # Hashes were handed over at block boundaries during the run, not all at the end.
    assert sum(len(pr) for pr in prints[:-1]) > len(batch) / 3


@pytest.mark.parametrize(
    "sizes",
    [[P.hop_length], [SR * 3], [SR * 6 + 123], [10**9]],
    ids=["one-hop", "3s", "6s-mid-frame", "single-push"],
)
def test_fixed_chunks_give_the_batch_pairs(signal, batch, sizes):
    prints, cuts, _ = _run(signal, sizes)
    _check_equal(prints, batch, cuts)


def test_hand_over_points_have_hashes_on_both_sides(signal, batch):
    """The equality tests would catch a hash lost or duplicated at a hand-over: the batch
    has hashes within a few frames before and after every frame where one push's hashes
    stop and the next one's start, and the multiset comparison counts duplicates."""
    prints, cuts, _ = _run(signal, [SR * 2])
    handovers = sorted({c for c in cuts if c > 0})
    assert len(handovers) >= 2  # two block boundaries in 150 s
    f = batch.frames.astype(np.int64)
    for c in handovers:
        assert np.any((f >= c - 8) & (f < c)) and np.any((f >= c) & (f < c + 8))
    # Chunk edges mid-frame: hashes sit within a frame of them too.
    edges = np.arange(SR * 2, signal.size, SR * 2) / P.hop_length
    near = np.abs(f[:, None] - edges[None, :]) <= 1
    assert near.any(axis=0).sum() >= 20  # of 74 edges
    # Losing or duplicating one hash at a hand-over breaks the comparison.
    h = np.concatenate([p.hashes for p in prints])
    fr = np.concatenate([p.frames for p in prints])
    i = int(np.searchsorted(fr, handovers[0]))  # first hash of the push after the cut
    want = _pairs(batch.hashes, batch.frames)
    assert _pairs(h, fr) == want
    assert _pairs(np.delete(h, i), np.delete(fr, i)) != want
    assert _pairs(np.insert(h, i, h[i]), np.insert(fr, i, fr[i])) != want
    assert _pairs(np.delete(h, i - 1), np.delete(fr, i - 1)) != want


@pytest.mark.parametrize("sizes", [[1000, 1, 100, 3 * SR, 257], [P.hop_length], [10**9]])
def test_peak_picker_equals_whole_signal_peaks(signal, sizes):
    whole = peaks(signal, P)
    picker = PeakPicker(P)
    parts, i, k, n_got = [], 0, 0, 0
    while i < signal.size:
        n = sizes[k % len(sizes)]
        new = picker.push(signal[i : i + n])
        parts.append(new)
        i, k = i + n, k + 1
        # Emitted peaks are a prefix of the whole list, and final_frame splits it.
        assert np.array_equal(new.frames, whole.frames[n_got : n_got + len(new)])
        n_got += len(new)
        assert np.all(new.frames < picker.final_frame + 0.5)
        assert np.all(whole.frames[n_got:] >= picker.final_frame - 0.5)
    parts.append(picker.finish())
    got = Peaks.concat(parts, P.hop_seconds)
    for name in ("frames", "bins", "levels"):
        assert np.array_equal(getattr(got, name), getattr(whole, name))
    assert picker.samples == signal.size
    assert picker.final_frame == 1 + (signal.size - P.n_fft) // P.hop_length
    with pytest.raises(RuntimeError):
        picker.push(signal[:10])


def test_query_picker_equals_query_peaks(signal):
    whole = peaks(signal, P, query=True)
    picker = PeakPicker(P, query=True)
    parts = [picker.push(signal[i : i + 5000]) for i in range(0, signal.size, 5000)]
    got = Peaks.concat([*parts, picker.finish()], P.hop_seconds)
    assert np.array_equal(got.frames, whole.frames) and np.array_equal(got.bins, whole.bins)
    assert len(whole) > len(peaks(signal, P))


def test_memory_stays_bounded_over_ten_minutes():
    x = _signal(600.0, seed=5)
    stream = AudioStream(P)
    ctx = P.context_frames
    block = PeakPicker.block_frames
    max_samples = (block + 2 * ctx - 1) * P.hop_length + P.n_fft  # one block and context
    assert max_samples < 70 * SR < x.size / 8
    worst_samples = worst_peaks = 0
    prints = []
    for i in range(0, x.size, 2 * SR):
        prints.append(stream.push(x[i : i + 2 * SR]))
        worst_samples = max(worst_samples, stream.buffered_samples)
        worst_peaks = max(worst_peaks, stream.pending_peaks)
        # Audio not fully hashed: at most one block, its context and one target zone.
        lag = (block + ctx + P.max_dt + 3) * P.hop_length + P.n_fft
        assert stream.pending_seconds <= lag / SR
    assert worst_samples <= max_samples
    assert 0 < worst_peaks < 100  # ~65 frames of peaks (25 here), against ~5000 in 10 min
    prints.append(stream.finish())
    assert stream.pending_peaks == 0
    whole = audio.fingerprint(x, P)
    h = np.concatenate([p.hashes for p in prints])
    f = np.concatenate([p.frames for p in prints])
    assert len(whole) > 10_000
    assert _pairs(h, f) == _pairs(whole.hashes, whole.frames)


@pytest.mark.parametrize("n", [0, 1, 100, P.n_fft - 1, P.n_fft, P.n_fft + P.hop_length])
def test_empty_and_short_streams_have_no_hashes(n):
    x = _signal(1.0, seed=3)[:n]
    stream = AudioStream(P)
    first = stream.push(x)
    last = stream.finish()
    assert len(first) == 0 and len(last) == 0
    assert last.hashes.dtype == np.uint32 and last.frames.dtype == np.uint32
    assert last.duration_seconds == pytest.approx(n / SR)
    assert len(audio.fingerprint(x, P)) == 0
    empty = AudioStream(P).finish()
    assert len(empty) == 0 and empty.duration_seconds == 0.0
    with pytest.raises(RuntimeError):
        stream.push(x)
    with pytest.raises(RuntimeError):
        stream.finish()


def test_hash_triplets_is_the_fingerprint(signal, batch):
    h, f = audio.hash_triplets(peaks(signal, P), P)
    assert np.array_equal(h, batch.hashes) and np.array_equal(f, batch.frames)


def _pings(n_frames: int, spec: list[tuple[int, float, float]]) -> np.ndarray:
    """Faint noise and 3-frame tone bursts ``(frame, Hz, amplitude)`` centred on frames."""
    rng = np.random.default_rng(0)
    y = 1e-5 * rng.standard_normal(n_frames * P.hop_length + P.n_fft)
    size = 3 * P.hop_length
    burst = np.hanning(size)
    t = np.arange(size) / SR
    for frame, hz, amp in spec:
        i0 = frame * P.hop_length + P.n_fft // 2 - size // 2
        y[i0 : i0 + size] += amp * burst * np.sin(2 * np.pi * hz * t)
    return y.astype(np.float32)


def test_an_anchor_waits_for_the_end_of_its_zone():
    """Sparse pings, so target zones reach the full max_dt: an anchor 62 frames before a
    block's end has a loud target on the first frame of the next block. Hashing it one
    block early (before that target is final) would give other hashes."""
    block = PeakPicker.block_frames
    rng = np.random.default_rng(1)
    spec = [
        (f, float(rng.uniform(500, 1000)), float(rng.uniform(0.1, 0.2))) for f in range(6, 4800, 8)
    ]
    late = [(end - P.max_dt + 1, 700.0, 0.2) for end in (block, 2 * block)]  # anchors
    late += [(end, 800.0, 0.3) for end in (block, 2 * block)]  # their farthest targets
    x = _pings(4800, spec + late)
    whole = audio.fingerprint(x, P)
    without = audio.fingerprint(_pings(4800, spec + late[:2]), P)
    for anchor, _, _ in late[:2]:  # the late targets change the anchors' hashes
        mine = np.sort(whole.hashes[whole.frames == anchor])
        assert mine.size and not np.array_equal(
            mine, np.sort(without.hashes[without.frames == anchor])
        )
    for sizes in ([2 * SR], [P.hop_length * 7 + 1]):
        prints, cuts, _ = _run(x, sizes)
        _check_equal(prints, whole, cuts)


def test_live_blocks_find_the_same_peaks_and_nearly_all_hashes(signal, batch):
    """Short blocks (live feeds) trade bit-equality for seconds of latency: the same peaks,
    times equal to 1e-9 frame, and all but a few hashes on bin edges."""
    whole = peaks(signal, P)
    picker = PeakPicker(P, block_frames=LIVE_BLOCK_FRAMES)
    parts = [picker.push(signal[i : i + 6 * SR]) for i in range(0, signal.size, 6 * SR)]
    got = Peaks.concat([*parts, picker.finish()], P.hop_seconds)
    assert np.array_equal(np.round(got.frames), np.round(whole.frames))
    assert np.allclose(got.frames, whole.frames, atol=1e-9, rtol=0)
    assert np.allclose(got.bins, whole.bins, atol=1e-9, rtol=0)
    stream = AudioStream(P, block_frames=LIVE_BLOCK_FRAMES)
    prints = []
    for i in range(0, signal.size, 6 * SR):
        prints.append(stream.push(signal[i : i + 6 * SR]))
        # Everything but the last ~7 s is hashed after each push.
        assert stream.pending_seconds < 8.0
    prints.append(stream.finish())
    live = _pairs(
        np.concatenate([p.hashes for p in prints]), np.concatenate([p.frames for p in prints])
    )
    ref = _pairs(batch.hashes, batch.frames)
    n_ref, n_live = sum(ref.values()), sum(live.values())
    assert sum((ref & live).values()) >= 0.995 * n_ref and n_live <= 1.005 * n_ref
    with pytest.raises(ValueError, match="block_frames"):
        PeakPicker(P, block_frames=0)
