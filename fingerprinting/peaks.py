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

__all__ = ["LIVE_BLOCK_FRAMES", "PeakPicker", "peaks", "peaks_stream", "query_peaks"]

#: Peak blocks of live ingestion: 128 frames (4.1 s), so a reference hash is indexed about
#: 7 s after its audio arrives (block, context and the anchor's 2 s target zone).
LIVE_BLOCK_FRAMES = 128


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


class PeakPicker:
    """Push-style spectral peaks of a PCM stream, identical to :func:`peaks` on the whole.

    Feed consecutive chunks of mono float32 PCM at ``p.sample_rate`` with :meth:`push`, then
    call :meth:`finish` once. Every peak is returned exactly once, in the order :func:`peaks`
    gives them, with frames counted from the stream's first sample.

    Peaks are decided in blocks of :attr:`block_frames` spectrogram frames on a grid fixed
    from the stream's start, each computed with ``p.context_frames`` of real signal on both
    sides. Every block is therefore computed from the very same samples whatever the
    chunking, so the result is equal bit for bit (the local-mean filter is a running sum,
    whose rounding depends on where its segment starts). The price is latency: a block is
    final once ``p.context_frames`` frames past its end have arrived, up to about 66 s
    after its first sample at 8 kHz.

    Memory is bounded: the buffer holds one block and its context (about 2.1 MB at
    8 kHz), whatever the chunk sizes; each sample is copied into it once and analysed once
    (plus the context overlap of its neighbouring blocks).

    Parameters
    ----------
    p : AudioParams
        Analysis parameters.
    query : bool
        Use the suspect sample's thresholds (``p.query_*``) instead of the reference's.
    block_frames : int
        Frames per block. The default grid (2048 frames, 65.5 s) is the batch's, for
        bit-equal results; live ingestion takes short blocks (:data:`LIVE_BLOCK_FRAMES`) for
        a latency of seconds, at the price of peak times that may differ from the batch's
        in their last bits, and of 25 % more spectrogram frames (the context overlap).
    """

    block_frames = 2048  # default frames per block (65.5 s at 32 ms): the batch's grid

    def __init__(
        self, p: AudioParams = AudioParams(), query: bool = False, block_frames: int | None = None
    ) -> None:
        self.p = p
        self.query = query
        if block_frames is not None:
            if block_frames < 1:
                raise ValueError(f"block_frames must be >= 1, not {block_frames}")
            self.block_frames = int(block_frames)
        ctx = p.context_frames
        # One block with its context on both sides: a full buffer always completes a block.
        capacity = (self.block_frames + 2 * ctx - 1) * p.hop_length + p.n_fft
        self._buf = np.empty(capacity, np.float32)
        self._fill = 0  # samples held in _buf
        self._buf_start = 0  # frame index of _buf[0] (the buffer starts on a frame boundary)
        self._next_frame = 0  # first frame whose peaks are not emitted yet
        self._samples = 0
        self._finished = False

    @property
    def final_frame(self) -> int:
        """Frames emitted so far: every peak whose (integer, unrefined) frame is below this has
        been returned, none at or after it. Refined frames lie within 0.5 of the integer one."""
        return self._next_frame

    @property
    def samples(self) -> int:
        """Samples pushed so far."""
        return self._samples

    @property
    def buffered_samples(self) -> int:
        """Samples held for the blocks still to decide (at most one block and its context)."""
        return self._fill

    def push(self, chunk: np.ndarray) -> Peaks:
        """Add the next PCM samples; return the peaks that became final (maybe none).

        Parameters
        ----------
        chunk : ndarray
            Mono PCM at ``p.sample_rate`` (any length, converted to float32).

        Returns
        -------
        Peaks
            Frames from the stream's first sample, in frames of ``p.hop_length`` samples.
        """
        return Peaks.concat(list(self._push_blocks(chunk)), self.p.hop_seconds)

    def finish(self) -> Peaks:
        """End of stream: return the remaining peaks (the end of the signal is treated as
        :func:`peaks` treats it). Further pushes are refused."""
        return Peaks.concat(list(self._finish_blocks()), self.p.hop_seconds)

    def _push_blocks(self, chunk: np.ndarray) -> Iterator[Peaks]:
        if self._finished:
            raise RuntimeError("push() after finish()")
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        self._samples += chunk.size
        pos = 0
        while pos < chunk.size:
            take = min(self._buf.size - self._fill, chunk.size - pos)
            self._buf[self._fill : self._fill + take] = chunk[pos : pos + take]
            self._fill += take
            pos += take
            yield from self._emit(final=False)

    def _finish_blocks(self) -> Iterator[Peaks]:
        if self._finished:
            raise RuntimeError("finish() called twice")
        self._finished = True
        yield from self._emit(final=True)

    def _emit(self, final: bool) -> Iterator[Peaks]:
        p, hop, ctx = self.p, self.p.hop_length, self.p.context_frames
        while True:
            fill, buf_start, next_frame = self._fill, self._buf_start, self._next_frame
            avail = 0 if fill < p.n_fft else 1 + (fill - p.n_fft) // hop
            avail_end = buf_start + avail  # frames [buf_start, avail_end) computable
            stop = next_frame + self.block_frames
            if not final and avail_end - ctx < stop:
                return
            stop = min(stop, avail_end)
            if stop <= next_frame:
                return
            lo = max(buf_start, next_frame - ctx)
            hi = min(avail_end, stop + ctx)
            seg = self._buf[(lo - buf_start) * hop : (hi - buf_start - 1) * hop + p.n_fft]
            ti, t, f, level = _pick_peaks(_log_spectrogram(seg, p), p, self.query)
            # Keep peaks whose maximum lies in this block: they had full context.
            sel = (ti + lo >= next_frame) & (ti + lo < stop)
            out = Peaks(t[sel] + lo, f[sel], level[sel], p.hop_seconds)
            self._next_frame = stop
            drop = max(0, stop - ctx - buf_start) * hop
            if drop:
                keep = fill - drop
                self._buf[:keep] = self._buf[drop:fill]
                self._fill = keep
                self._buf_start += drop // hop
            yield out


def peaks_stream(
    chunks: Iterable[np.ndarray], p: AudioParams = AudioParams(), query: bool = False
) -> Iterator[Peaks]:
    """Peaks of a PCM stream, block by block, identical to :func:`peaks` on the whole signal.

    ``query`` selects the suspect sample's thresholds (``p.query_*``) over the reference's.
    Pull-style wrapper of :class:`PeakPicker`: each block of spectrogram frames is computed
    with ``context_frames`` of real signal on both sides, so block edges never change a
    decision; memory stays bounded by the block.
    """
    picker = PeakPicker(p, query)
    for chunk in chunks:
        yield from picker._push_blocks(chunk)
    yield from picker._finish_blocks()


def peaks(pcm: np.ndarray, p: AudioParams = AudioParams(), query: bool = False) -> Peaks:
    """Spectral peaks of a whole mono float32 signal at ``p.sample_rate``."""
    parts = list(peaks_stream([pcm], p, query))
    return Peaks.concat(parts, p.hop_seconds)


def query_peaks(pcm: np.ndarray, p: AudioParams = AudioParams()) -> Peaks:
    """Peaks of a suspect sample: a wider level range than the reference's, so that the
    reference's peaks are still found when noise or overdubs raise the local maximum."""
    return peaks(pcm, p, query=True)
