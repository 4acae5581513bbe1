"""Exact multi-index hashing (Norouzi et al., 2012) of 64-bit frame hashes over a posting store.

A 64-bit hash is split into ``m`` chunks of ``b`` bits (4 x 16 by default). If two hashes
differ in at most ``d`` bits, some chunk differs in at most ``d // m`` bits (pigeonhole).
So the store keeps every reference hash once per chunk, rotated so that chunk leads the key
(one key space per chunk, ``EmbeddedStore(parts=m, prefix_bits=b)``), and a query looks up,
in each key space, the prefixes within ``radius`` bits of its own chunk. Candidates come
back with their whole key; rotating it back gives the reference hash, and the exact
Hamming distance decides. With radius 1, every hash within ``2 m - 1`` = 7 bits is found;
farther ones are found whenever one chunk happens to be within the radius.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from fingerprinting.framehash import hamming

from .store.base import FrameWindow, PostingStore

__all__ = ["NearHits", "chunk_keys", "distinct_rows", "near_hashes"]


def _rotl(x: np.ndarray, bits: int) -> np.ndarray:
    x = np.asarray(x, np.uint64)
    if bits % 64 == 0:
        return x.copy()
    return (x << np.uint64(bits)) | (x >> np.uint64(64 - bits))


def chunk_keys(hashes: np.ndarray, chunk_bits: int = 16) -> np.ndarray:
    """Posting keys of ``hashes`` in every key space: shape ``(64 // chunk_bits, n)``.

    Key space ``i`` holds the hash rotated left by ``i * chunk_bits``: chunk ``i`` (counted
    from the most significant bits) becomes its prefix.
    """
    return np.stack([_rotl(hashes, i * chunk_bits) for i in range(64 // chunk_bits)])


def _flip_masks(bits: int, radius: int) -> np.ndarray:
    """All values with at most ``radius`` of ``bits`` bits set (the probes' XOR masks)."""
    masks = [0]
    for r in range(1, radius + 1):
        masks += [sum(1 << b for b in combo) for combo in combinations(range(bits), r)]
    return np.asarray(masks, np.uint64)


@dataclass(frozen=True)
class NearHits:
    """Reference frames near query hashes: parallel arrays, one element per (query, frame).

    Attributes
    ----------
    query_pos : ndarray of int64
        Index of the query hash.
    track, frame : ndarray of int64
        Reference track and frame (in the track's hop).
    distance : ndarray of uint8
        Hamming distance (bits of 64).
    """

    query_pos: np.ndarray
    track: np.ndarray
    frame: np.ndarray
    distance: np.ndarray


def near_hashes(
    store: PostingStore,
    hashes: np.ndarray,
    *,
    max_distance: int,
    chunk_bits: int = 16,
    radius: int = 1,
    within: FrameWindow | None = None,
) -> NearHits:
    """Reference postings within ``max_distance`` bits of each query hash (only those
    ``within`` a window, if given).

    Each (query, reference frame) pair appears once, whichever chunks found it.
    """
    hashes = np.asarray(hashes, np.uint64)
    masks = _flip_masks(chunk_bits, radius)
    shift = np.uint64(64 - chunk_bits)
    found = []
    for part in range(64 // chunk_bits):
        rotation = part * chunk_bits
        prefix = _rotl(hashes, rotation) >> shift
        probes = (prefix[:, None] ^ masks[None, :]).reshape(-1)
        hits = store.lookup_prefix(probes, chunk_bits, within, part=part)
        qpos = hits.query_pos // masks.size
        full = _rotl(hits.key, (64 - rotation) % 64)
        dist = hamming(full, hashes[qpos])
        near = dist <= max_distance
        found.append((qpos[near], hits.track[near], hits.frame[near], dist[near]))
    q, t, f, d = (np.concatenate([x[i] for x in found]) for i in range(4))
    # The same pair is found through every chunk that is close enough (same distance).
    q, t, f, d = distinct_rows(q.astype(np.int64), t.astype(np.int64), f.astype(np.int64), d)
    return NearHits(q, t, f, d)


def distinct_rows(*cols: np.ndarray) -> tuple[np.ndarray, ...]:
    """The distinct rows of parallel integer columns, sorted (``np.unique(axis=1)`` is 10x
    slower on the hundreds of thousands of hits of a big index)."""
    if not cols[0].size:
        return cols
    order = np.lexsort(cols[::-1])
    cols = tuple(c[order] for c in cols)
    new = np.zeros(cols[0].size, bool)
    new[0] = True
    for c in cols:
        new[1:] |= c[1:] != c[:-1]
    return tuple(c[new] for c in cols)
