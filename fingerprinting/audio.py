"""Audio fingerprints: speed-invariant triplets of spectral peaks (after Panako, Six 2014).

Each anchor peak ``a`` takes the loudest peaks of its target zone and forms triplets
``(a, b, c)`` with two of them (``t_b <= t_c``). A triplet's hash packs

* the frequency steps ``log2 f_b - log2 f_a`` and ``log2 f_c - log2 f_a`` (octaves),
* the time ratio ``(t_b - t_a) / (t_c - t_a)``,
* coarsely, the anchor's frequency and ``log2 (t_c - t_a)``.

A copy played ``s`` times faster multiplies every frequency by ``s`` (unless pitch is
corrected) and divides every time step by ``s``: frequency *ratios* and time *ratios* do not
change, and the two coarse components move by at most 0.07 of an octave for ``|s - 1| <= 5 %``.
So the query probes a few neighbouring hash values instead of searching dozens of speeds, and
the 27-bit hash (~19.5 effective bits on music) stays specific enough to query 100
channel-hours at once. Pairs, the classic landmark, carry ~16 effective bits here: at 100
channel-hours each lookup would read hundreds of postings (see README.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from .params import AudioParams
from .peaks import peaks, peaks_stream, query_peaks
from .types import AudioPrint, Peaks, QueryPrint

__all__ = [
    "AudioParams",
    "fingerprint",
    "fingerprint_stream",
    "hash_triplets",
    "peaks",
    "query_peaks",
    "query_print",
    "triplets",
]


def _octaves(pk: Peaks, p: AudioParams) -> np.ndarray:
    """Peak frequencies in octaves (log2 Hz)."""
    lo, _ = p.bin_range
    return np.log2((pk.bins + lo) * (p.sample_rate / p.n_fft))


def triplets(
    frames: np.ndarray,
    octaves: np.ndarray,
    levels: np.ndarray,
    p: AudioParams,
    fanout: int,
    zone_peaks: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices ``(a, b, c)`` of the triplets of a peak list.

    Parameters
    ----------
    frames, octaves, levels : ndarray of float
        Peak times (frames), frequencies (log2 Hz) and levels (dB), in any order.
    fanout : int
        Loudest zone peaks kept per anchor; every two of them make a triplet.
    zone_peaks : int
        Peaks after the anchor examined for its zone (``p.zone_peaks`` for references,
        ``p.query_zone_peaks`` for suspect samples).
    """
    order = np.lexsort((octaves, frames))
    t, q, lev = frames[order], octaves[order], levels[order]
    n = t.size
    empty = np.empty(0, np.int64)
    if n < 3:
        return empty, empty, empty
    k = min(zone_peaks, n - 1)
    j = np.arange(n)[:, None] + np.arange(1, k + 1)[None, :]
    inside = j < n
    j = np.minimum(j, n - 1)
    dt = t[j] - t[:, None]
    valid = inside & (dt >= 0.5) & (dt <= p.max_dt) & (np.abs(q[j] - q[:, None]) <= p.max_dq)
    loud = np.where(valid, lev[j], -np.inf)
    top = np.argsort(-loud, axis=1, kind="stable")[:, :fanout]
    top_ok = np.take_along_axis(valid, top, axis=1)
    # Targets back in time order (columns are sorted by time), missing ones last.
    top = np.sort(np.where(top_ok, top, k), axis=1)
    u, v = np.triu_indices(top.shape[1], 1)
    a, pair = np.nonzero((top[:, u] < k) & (top[:, v] < k))
    b = a + 1 + top[a, u[pair]]
    c = a + 1 + top[a, v[pair]]
    keep = t[c] - t[a] >= p.min_dt
    return order[a[keep]], order[b[keep]], order[c[keep]]


def _components(
    t: np.ndarray, q: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, p: AudioParams
) -> dict[str, np.ndarray]:
    """Triplet components in units of their quantisation bins (floats)."""
    span = t[c] - t[a]
    dq_bins = p.max_dq / p.dq_step
    return {
        "dq_ab": (q[b] - q[a]) / p.dq_step + dq_bins,
        "dq_ac": (q[c] - q[a]) / p.dq_step + dq_bins,
        "ratio": (t[b] - t[a]) / span * (p.ratio_steps - 1) + 0.5,
        "anchor": (q[a] - np.log2(p.fmin_hz)) / p.anchor_step,
        "dt": np.log2(span) / p.dt_step,
    }


def _pack(idx: dict[str, np.ndarray], p: AudioParams) -> tuple[np.ndarray, np.ndarray]:
    """Pack integer components into hashes; also says which are in range."""
    h = np.zeros(next(iter(idx.values())).shape, np.uint32)
    ok = np.ones(h.shape, bool)
    for name, bits in p.hash_fields:
        v = idx[name]
        ok &= (v >= 0) & (v < (1 << bits))
        h = (h << np.uint32(bits)) | (np.clip(v, 0, (1 << bits) - 1).astype(np.uint32))
    return h, ok


def fingerprint(pcm: np.ndarray, p: AudioParams = AudioParams()) -> AudioPrint:
    """Reference fingerprint of a whole mono float32 signal sampled at ``p.sample_rate``."""
    return fingerprint_stream([pcm], p)


def fingerprint_stream(chunks: Iterable[np.ndarray], p: AudioParams = AudioParams()) -> AudioPrint:
    """Reference fingerprint of a PCM stream (chunks of mono float32 at ``p.sample_rate``).

    Peaks are found block by block with bounded memory; the peak list itself is small
    (about 10 per second, 24 bytes each), so triplets are formed once over all of it.
    """
    n_samples = 0

    def counted() -> Iterator[np.ndarray]:
        nonlocal n_samples
        for chunk in chunks:
            n_samples += len(chunk)
            yield chunk

    pk = Peaks.concat(list(peaks_stream(counted(), p)), p.hop_seconds)
    hashes, frames = hash_triplets(pk, p)
    return AudioPrint(
        hashes=hashes,
        frames=frames,
        hop_seconds=p.hop_seconds,
        duration_seconds=n_samples / p.sample_rate,
        peaks=pk,
    )


def hash_triplets(pk: Peaks, p: AudioParams = AudioParams()) -> tuple[np.ndarray, np.ndarray]:
    """Reference hashes of a peak list and the frame of each, sorted by frame.

    Parameters
    ----------
    pk : Peaks
        Reference peaks (frames of ``p.hop_length`` samples, in any order).
    p : AudioParams
        Hashing parameters; each anchor takes ``p.fanout`` targets.

    Returns
    -------
    hashes : ndarray of uint32
        Triplet hashes in range (``p.hash_fields``), in triplet order within a frame.
    frames : ndarray of uint32
        Anchor peak's frame rounded to the nearest integer, non-decreasing.
    """
    q = _octaves(pk, p)
    a, b, c = triplets(pk.frames, q, pk.levels, p, p.fanout, p.zone_peaks)
    comp = _components(pk.frames, q, a, b, c, p)
    hashes, ok = _pack({k: np.floor(v).astype(np.int64) for k, v in comp.items()}, p)
    frames = np.floor(pk.frames[a] + 0.5).astype(np.uint32)
    order = np.argsort(frames[ok], kind="stable")
    return hashes[ok][order], frames[ok][order]


def _probe_values(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, width: int) -> np.ndarray:
    """Bins ``floor(x + d)`` for ``d`` in ``[lo, hi]``: shape (n, width), -1 where unused."""
    first = np.floor(x + lo).astype(np.int64)
    last = np.floor(x + hi).astype(np.int64)
    cols = first[:, None] + np.arange(width)[None, :]
    return np.where(cols <= last[:, None], cols, -1)


def query_print(pk: Peaks, p: AudioParams = AudioParams()) -> QueryPrint:
    """Hashes to look up for a suspect sample's peaks, with every probe it needs.

    Each query triplet probes the bins its coarse components can reach under a speed change
    of up to ``p.max_speed_change`` (with or without pitch change), and the neighbouring bin
    of each fine component that lies within ``p.probe_margin`` of a bin edge.
    """
    q = _octaves(pk, p)
    a, b, c = triplets(pk.frames, q, pk.levels, p, p.query_fanout, p.query_zone_peaks)
    comp = _components(pk.frames, q, a, b, c, p)
    n = a.size
    m = p.probe_margin
    shift = np.log2(1.0 + p.max_speed_change)
    zeros = np.zeros(n)
    options = {
        name: _probe_values(comp[name], zeros - m, zeros + m, 2)
        for name in ("dq_ab", "dq_ac", "ratio")
    }
    # The reference anchor is the query's divided by the speed (pitch follows) or equal.
    reach = shift / p.anchor_step + m
    options["anchor"] = _probe_values(comp["anchor"], zeros - reach, zeros + reach, 3)
    # The reference's time step is the query's times the speed.
    reach = shift / p.dt_step + m
    options["dt"] = _probe_values(comp["dt"], zeros - reach, zeros + reach, 3)
    # Cartesian product of the options of every component, vectorised.
    names = [name for name, _ in p.hash_fields]
    grids = np.meshgrid(*[np.arange(options[k].shape[1]) for k in names], indexing="ij")
    combos = np.stack([g.ravel() for g in grids], axis=1)  # (n_combos, n_fields)
    picked = {k: options[k][:, combos[:, i]] for i, k in enumerate(names)}  # (n, n_combos)
    used = np.ones((n, combos.shape[0]), bool)
    for k in names:
        used &= picked[k] >= 0
    hashes, ok = _pack(picked, p)
    keep = used & ok
    row = np.nonzero(keep)[0]
    hashes = hashes[keep]
    # Probes of one triplet that land on the same hash are one lookup.
    ident = np.unique((row.astype(np.int64) << 32) | hashes.astype(np.int64))
    row, hashes = ident >> 32, (ident & 0xFFFFFFFF).astype(np.uint32)
    return QueryPrint(
        hashes=hashes,
        triplet=row,
        anchor_frames=pk.frames[a][row],
        n_triplets=n,
        duration_seconds=float(pk.frames.max() + 1) * p.hop_seconds if len(pk) else 0.0,
    )
