"""Frame hashes of the frame-hash comparison: Vigie's normalisation, the hashes compared,
and the Hamming distances between them (true pairs, impostor histograms).

Part of :mod:`bench.video_hashes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fingerprinting import video
from fingerprinting.decode import FrameBatch
from fingerprinting.framehash import dhash, hamming, pdq, phash
from fingerprinting.params import VideoParams
from fingerprinting.video import Probe, bar_boxes, canonical, informative

from . import BITS, MODES


def hash_functions() -> tuple[dict[str, Callable[[np.ndarray], np.ndarray]], str | None]:
    """Hashes to compare, each ``(n, S, S) uint8 -> (n, words) uint64``; and why PDQ is
    missing (``None`` when ``pdqhash`` imports)."""
    fns: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "phash": lambda g: phash(g)[:, None],
        "dhash": lambda g: dhash(g)[:, None],
    }
    try:
        import pdqhash  # noqa: F401
    except ImportError as exc:
        return fns, f"pdqhash is not importable ({exc}); PDQ left out"
    fns["pdq"] = lambda g: pdq(g)[0]
    return fns, None


@dataclass(frozen=True)
class Hashed:
    """Normalised, hashed frames of one source.

    Attributes
    ----------
    times : ndarray of float64, shape (n,)
        Frame times in seconds (content time of the reference for queries).
    valid : ndarray of bool, shape (n, P)
        Which probe pictures are informative (column 0: the WHOLE probe).
    hashes : dict of str to ndarray of uint64, shape (n, P, words)
    probes : tuple of str
        Name of each probe (column).
    """

    times: np.ndarray
    valid: np.ndarray
    hashes: dict[str, np.ndarray]
    probes: tuple[str, ...] = ("whole",)

    def take(self, rows: np.ndarray) -> Hashed:
        """The rows (frames) ``rows`` only."""
        hashes = {k: v[rows] for k, v in self.hashes.items()}
        return Hashed(self.times[rows], self.valid[rows], hashes, self.probes)


def normalise_and_hash(
    batch: FrameBatch,
    probes: list[Probe] | None,
    window: int | None,
    fns: dict[str, Callable[[np.ndarray], np.ndarray]],
    p: VideoParams,
) -> Hashed:
    """Vigie's normalisation (bars, canonical pictures, informative test), then every hash.

    ``probes``: the views hashed; ``None``: the sample's own
    (:func:`fingerprinting.video.sample_probes`), as for a query. ``window`` is the bar
    smoothing (frames; ``None``: over the whole batch, as for a short query). Returns all
    frames; :attr:`Hashed.valid` marks which probe pictures may
    vote, :attr:`Hashed.probes` names them.
    """
    n, size = len(batch), p.canonical_size
    boxes = bar_boxes(batch.gray, p, window=window)
    if probes is None:
        probes = video.sample_probes(batch.gray, boxes, p)
    names = tuple(pr.name for pr in probes)
    if n == 0:
        empty = {k: np.empty((0, len(probes), BITS[k] // 64), np.uint64) for k in fns}
        return Hashed(np.empty(0), np.empty((0, len(probes)), bool), empty, names)
    pics = canonical(batch.gray, boxes, probes, p)  # (n, P, S, S)
    valid = informative(pics, p)
    valid &= valid[:, :1]
    flat = pics.reshape(-1, size, size)
    hashes = {k: fn(flat).reshape(n, len(probes), -1) for k, fn in fns.items()}
    return Hashed(batch.times.astype(np.float64), valid, hashes, names)


# --------------------------------------------------------------------------- distances


def pair_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances (bits) of multi-word hashes, broadcast: ``(..., words)`` -> ``(...)``
    uint16 (0..64 per word, summed over words)."""
    return hamming(a, b).sum(axis=-1, dtype=np.uint16)


def best_over_probes(d: np.ndarray, valid: np.ndarray, bits: int) -> np.ndarray:
    """Smallest distance over the probe axis (axis 1) among valid probes.

    ``d`` is ``(n, P, ...)`` distances in bits, ``valid`` ``(n, P)``; a frame without a valid
    probe gets ``bits + 1`` (never accepted). Returns ``d.shape`` without axis 1, uint16.
    """
    mask = valid.reshape(valid.shape + (1,) * (d.ndim - valid.ndim))
    return np.where(mask, d, np.uint16(bits + 1)).min(axis=1).astype(np.uint16)


def histogram(d: np.ndarray, bits: int) -> np.ndarray:
    """Counts of each distance ``0 .. bits + 1`` (the last bin: no valid probe), int64."""
    return np.bincount(np.asarray(d, np.int64).ravel(), minlength=bits + 2)[: bits + 2]


def impostor_histograms(
    q: np.ndarray, valid: np.ndarray, pool: np.ndarray, bits: int, chunk_pairs: int = 1 << 22
) -> dict[str, np.ndarray]:
    """Histograms of impostor distances over all (query frame, pool frame) pairs.

    Parameters
    ----------
    q : ndarray of uint64, shape (n, P, words)
        Query probe hashes; ``valid`` (n, P) says which probes count.
    pool : ndarray of uint64, shape (m, words)
        Impostor reference hashes.
    bits : int
        Hash length in bits.
    chunk_pairs : int
        Probe pairs per block (bounds memory: about 8 bytes per pair and word).

    Returns
    -------
    dict
        ``{"whole": hist, "best": hist}``, each ``(bits + 2,)`` int64 counts of the WHOLE
        probe's distance and of the best valid probe's, over ``n * m`` pairs.
    """
    out = {m: np.zeros(bits + 2, np.int64) for m in MODES}
    n, probes = q.shape[:2]
    if n == 0 or pool.shape[0] == 0:
        return out
    step = max(1, chunk_pairs // (probes * pool.shape[0]))
    for i in range(0, n, step):
        d = pair_distances(q[i : i + step, :, None, :], pool[None, None, :, :])
        out["whole"] += histogram(d[:, 0], bits)
        out["best"] += histogram(best_over_probes(d, valid[i : i + step], bits), bits)
    return out
