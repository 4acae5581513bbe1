"""Spectral peaks: log-magnitude STFT, local maxima, sub-bin refinement, streamed in blocks.

Peaks are what survives codecs, noise, equalisation and loudness changes: only the position
of a local maximum matters, not its level. Positions are refined to sub-frame and sub-bin
precision so that a query can rescale them for speed changes before hashing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from scipy import ndimage

from .params import AudioParams
from .types import Peaks

__all__ = ["peaks", "peaks_stream", "query_peaks"]


def _log_spectrogram(pcm: np.ndarray, p: AudioParams) -> np.ndarray:
    """Log-magnitude spectrogram (dB), shape (frames, bins) of the analysed band."""
    n_frames = 1 + (pcm.size - p.n_fft) // p.hop_length if pcm.size >= p.n_fft else 0
    lo, hi = p.bin_range
    if n_frames <= 0:
        return np.empty((0, hi - lo), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(pcm, p.n_fft)[:: p.hop_length][:n_frames]
    window = np.hanning(p.n_fft + 1)[:-1].astype(np.float32)
    spec = np.abs(np.fft.rfft(frames * window, axis=1)[:, lo:hi])
    # Scale so a full-scale sine reads about 0 dBFS.
    spec *= 2.0 / window.sum()
    return (20.0 * np.log10(spec + 1e-9)).astype(np.float32)


def _pick_peaks(
    spec: np.ndarray, p: AudioParams, query: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Local maxima of ``spec`` (frames, bins) -> integer frame, frame, bin, level (dB).

    Positions are refined to sub-frame and sub-bin precision with a parabola through the
    maximum and its neighbours, so the query side can rescale them for a speed change.
    """
    if spec.shape[0] == 0:
        return (np.empty(0, np.int64), *(np.empty(0, np.float64) for _ in range(3)))
    size = (2 * p.peak_time_radius + 1, 2 * p.peak_freq_radius + 1)
    is_max = spec == ndimage.maximum_filter(spec, size=size, mode="nearest")
    local_mean = ndimage.uniform_filter(spec, size=(p.whiten_frames, p.whiten_bins), mode="nearest")
    loudest = ndimage.maximum_filter1d(spec.max(axis=1), p.range_frames, mode="nearest")
    range_db = p.query_range_db if query else p.range_db
    keep = is_max & (spec - local_mean >= p.min_prominence_db) & (spec >= p.floor_db)
    keep &= spec >= (loudest - range_db)[:, None]
    t, f = np.nonzero(keep)
    # Parabolic refinement along each axis; edges stay at the integer position.
    tf = t.astype(np.float64)
    ff = f.astype(np.float64)
    inner_t = (t > 0) & (t < spec.shape[0] - 1)
    inner_f = (f > 0) & (f < spec.shape[1] - 1)
    c = spec[t, f].astype(np.float64)
    tt, ft = t[inner_t], f[inner_t]
    tf[inner_t] += _vertex(spec[tt - 1, ft], c[inner_t], spec[tt + 1, ft])
    tb, fb = t[inner_f], f[inner_f]
    ff[inner_f] += _vertex(spec[tb, fb - 1], c[inner_f], spec[tb, fb + 1])
    return t, tf, ff, c


def _vertex(left: np.ndarray, centre: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Offset (in [-0.5, 0.5]) of the vertex of the parabola through three samples."""
    left = left.astype(np.float64)
    right = right.astype(np.float64)
    denom = left - 2.0 * centre + right
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(denom < 0, 0.5 * (left - right) / denom, 0.0)
    return np.clip(off, -0.5, 0.5)


def peaks_stream(
    chunks: Iterable[np.ndarray], p: AudioParams = AudioParams(), query: bool = False
) -> Iterator[Peaks]:
    """Peaks of a PCM stream, block by block, identical to :func:`peaks` on the whole signal.

    ``query`` selects the suspect sample's thresholds (``p.query_*``) over the reference's.
    Each block of spectrogram frames is computed with ``context_frames`` of real signal on
    both sides, so block edges never change a decision; memory stays bounded by the block.
    """
    hop, ctx = p.hop_length, p.context_frames
    block = 2048  # frames per block (65 s at 32 ms)
    buf = np.empty(0, np.float32)
    buf_start = 0  # frame index of buf[0] (buf starts on a frame boundary)
    next_frame = 0  # first frame whose peaks are not emitted yet

    def emit(final: bool) -> Iterator[Peaks]:
        nonlocal buf, buf_start, next_frame
        while True:
            avail = 0 if buf.size < p.n_fft else 1 + (buf.size - p.n_fft) // hop
            avail_end = buf_start + avail  # frames [buf_start, avail_end) computable
            stop = next_frame + block
            if not final and avail_end - ctx < stop:
                return
            stop = min(stop, avail_end)
            if stop <= next_frame:
                return
            lo = max(buf_start, next_frame - ctx)
            hi = min(avail_end, stop + ctx)
            seg = buf[(lo - buf_start) * hop : (hi - buf_start - 1) * hop + p.n_fft]
            ti, t, f, level = _pick_peaks(_log_spectrogram(seg, p), p, query)
            # Keep peaks whose maximum lies in this block: they had full context.
            sel = (ti + lo >= next_frame) & (ti + lo < stop)
            yield Peaks(t[sel] + lo, f[sel], level[sel], p.hop_seconds)
            next_frame = stop
            drop = max(0, next_frame - ctx - buf_start)
            buf = buf[drop * hop :]
            buf_start += drop

    for chunk in chunks:
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        buf = np.concatenate([buf, chunk])
        yield from emit(final=False)
    yield from emit(final=True)


def peaks(pcm: np.ndarray, p: AudioParams = AudioParams(), query: bool = False) -> Peaks:
    """Spectral peaks of a whole mono float32 signal at ``p.sample_rate``."""
    parts = list(peaks_stream([pcm], p, query))
    return Peaks.concat(parts, p.hop_seconds)


def query_peaks(pcm: np.ndarray, p: AudioParams = AudioParams()) -> Peaks:
    """Peaks of a suspect sample: a wider level range than the reference's, so that the
    reference's peaks are still found when noise or overdubs raise the local maximum."""
    return peaks(pcm, p, query=True)
