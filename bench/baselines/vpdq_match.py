"""Matching for the vPDQ baseline (:mod:`bench.baselines.vpdq`), reimplemented in numpy.

vPDQ compares two videos as unordered bags of PDQ frame hashes (256 bits, 0-100 quality).
This module reimplements ThreatExchange's reference rule, vectorised, so that hundreds of
queries against dozens of references take seconds: :func:`prepare_references` packs the
references once, :func:`match` and :func:`match_many` score queries against them.
:mod:`bench.baselines.vpdq` computes the features (``hash_videos``) and re-exports this API.

A feature is a dict ``{"frame": int, "time": float (seconds), "quality": int (0-100),
"hash": str (64 hex digits, PDQ's 256 bits)}``. vPDQ's ``time`` is the decoded frame's
index divided by the stream's average frame rate (not its PTS), and the frames hashed
are decoded frames number 0, k, 2k, ... with ``k = int(seconds_per_hash * fps)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "COMPARED_MATCH_THRESHOLD_PERCENT",
    "DISTANCE_THRESHOLD",
    "QUALITY_THRESHOLD",
    "QUERY_MATCH_THRESHOLD_PERCENT",
    "FeatureArrays",
    "VpdqMatch",
    "VpdqReferences",
    "hamming_matrix",
    "hashes_to_words",
    "match",
    "match_many",
    "prepare_references",
    "vpdq_similarity",
]

# ThreatExchange defaults: python-threatexchange/threatexchange/extensions/vpdq/vpdq_util.py
# (VPDQ_DISTANCE_THRESHOLD, VPDQ_QUALITY_THRESHOLD, VPDQ_QUERY_MATCH_THRESHOLD_PERCENT,
# VPDQ_INDEX_MATCH_THRESHOLD_PERCENT), used by VPDQSignal.compare_hash (vpdq.py) and
# VPDQIndex.query (vpdq_index.py).
#: Two frames match when their PDQ Hamming distance is <= this (bits out of 256).
DISTANCE_THRESHOLD = 31
#: Frames whose PDQ quality is below this (0-100) are dropped before comparing.
QUALITY_THRESHOLD = 50
#: A video matches when at least this % of the query's frames match the reference...
QUERY_MATCH_THRESHOLD_PERCENT = 80.0
#: ...and at least this % of the reference's ("compared"/"index") frames match the query.
COMPARED_MATCH_THRESHOLD_PERCENT = 0.0

#: Largest XOR block computed at once in :func:`hamming_matrix` (uint64 elements, 32 MiB).
_BLOCK_ELEMENTS = 1 << 22


# ----------------------------------------------------------------------------- arrays


def hashes_to_words(hexes: Sequence[str]) -> np.ndarray:
    """Pack 64-digit hex PDQ hashes into an ``(n, 4)`` uint64 array (big-endian words).

    Raises
    ------
    ValueError
        If a hash is not 64 hexadecimal digits.
    """
    if len(hexes) == 0:
        return np.zeros((0, 4), dtype=np.uint64)
    for h in hexes:
        if len(h) != 64:
            raise ValueError(f"a PDQ hash has 64 hex digits, got {len(h)}: {h!r}")
    raw = bytes.fromhex("".join(hexes))
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(-1, 4)


if hasattr(np, "bitwise_count"):

    def _popcount(x: np.ndarray) -> np.ndarray:
        return np.bitwise_count(x)

else:  # numpy < 2.0
    _POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.uint64)
        return _POP8[x.view(np.uint8)].reshape(*x.shape, 8).sum(axis=-1, dtype=np.uint8)


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All pairwise Hamming distances between two sets of 256-bit hashes.

    Parameters
    ----------
    a, b : numpy.ndarray
        ``(na, 4)`` and ``(nb, 4)`` uint64 arrays, as from :func:`hashes_to_words`.

    Returns
    -------
    numpy.ndarray
        ``(na, nb)`` uint16 distances in bits (0-256). Computed in column blocks of
        at most ~4 M words, so memory stays bounded for long every-frame hashes.
    """
    a = np.asarray(a, dtype=np.uint64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.uint64).reshape(-1, 4)
    out = np.empty((len(a), len(b)), dtype=np.uint16)
    if len(a) == 0 or len(b) == 0:
        return out
    step = max(1, _BLOCK_ELEMENTS // (4 * len(a)))
    for lo in range(0, len(b), step):
        blk = a[:, None, :] ^ b[None, lo : lo + step, :]
        out[:, lo : lo + step] = _popcount(blk).sum(axis=-1, dtype=np.uint16)
    return out


@dataclass(frozen=True)
class FeatureArrays:
    """One video's vPDQ features as arrays.

    Attributes
    ----------
    words : numpy.ndarray
        ``(n, 4)`` uint64 PDQ hashes.
    times : numpy.ndarray
        ``(n,)`` float64 frame times in seconds.
    quality : numpy.ndarray
        ``(n,)`` int16 PDQ quality, 0-100.
    """

    words: np.ndarray
    times: np.ndarray
    quality: np.ndarray

    def __len__(self) -> int:
        return len(self.times)

    @classmethod
    def from_features(cls, features: Sequence[Mapping[str, Any]] | FeatureArrays) -> FeatureArrays:
        """Build from feature dicts (keys ``hash``, ``time``, ``quality``; see module doc)."""
        if isinstance(features, FeatureArrays):
            return features
        words = hashes_to_words([str(f["hash"]) for f in features])
        times = np.array([float(f["time"]) for f in features], dtype=np.float64)
        quality = np.array([int(f["quality"]) for f in features], dtype=np.int16)
        return cls(words, times, quality)

    def vpdq_filtered(self, quality_threshold: int = QUALITY_THRESHOLD) -> FeatureArrays:
        """The frames vPDQ compares: exact duplicate hashes dropped, then low quality.

        Same order as ThreatExchange's ``match_VPDQ_hash_brute``
        (``quality_filter(dedupe(hashes), quality_tolerance)``): the first occurrence of
        each distinct hash is kept, then kept only if its quality is >= the threshold.
        """
        if len(self) == 0:
            return self
        _, first = np.unique(self.words, axis=0, return_index=True)
        keep = np.zeros(len(self), dtype=bool)
        keep[first] = True
        keep &= self.quality >= quality_threshold
        return FeatureArrays(self.words[keep], self.times[keep], self.quality[keep])


@dataclass(frozen=True)
class VpdqReferences:
    """Reference videos' vPDQ-filtered frames, concatenated for vectorised matching.

    Build with :func:`prepare_references`. Reference ``r``'s frames are rows
    ``starts[r] : starts[r] + counts[r]`` of ``words`` and ``times``.
    """

    ids: tuple[str, ...]
    words: np.ndarray
    times: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    quality_threshold: int


def prepare_references(
    reference_features_by_id: Mapping[str, Sequence[Mapping[str, Any]] | FeatureArrays],
    quality_threshold: int = QUALITY_THRESHOLD,
) -> VpdqReferences:
    """Pack reference features once, to match many queries against them.

    Parameters
    ----------
    reference_features_by_id : mapping
        Reference id -> its features (dicts as returned by :func:`hash_videos`, or
        :class:`FeatureArrays`). Ids keep the mapping's order, which breaks ties.
    quality_threshold : int
        vPDQ quality filter (0-100), applied here after de-duplication.

    Returns
    -------
    VpdqReferences
    """
    ids = tuple(str(k) for k in reference_features_by_id)
    parts = [
        FeatureArrays.from_features(f).vpdq_filtered(quality_threshold)
        for f in reference_features_by_id.values()
    ]
    counts = np.array([len(p) for p in parts], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    words = np.concatenate([p.words for p in parts]) if parts else np.zeros((0, 4), np.uint64)
    times = np.concatenate([p.times for p in parts]) if parts else np.zeros(0)
    return VpdqReferences(ids, words, times, starts, counts, quality_threshold)


# ----------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class VpdqMatch:
    """Outcome of matching one query video against the references.

    Attributes
    ----------
    reference_id : str or None
        Best reference: highest (rule says similar, query-match %, compared-match %),
        first in reference order on ties; None if no query frame matched any reference.
    is_match : bool
        vPDQ's rule says the query is similar to ``reference_id``.
    query_match_percent : float
        % of the query's filtered frames within the distance threshold of some frame
        of ``reference_id`` (0-100).
    compared_match_percent : float
        % of ``reference_id``'s filtered frames within the threshold of some query frame.
    offset_seconds : float or None
        Estimated start of the query inside ``reference_id``, in seconds: median over
        matched query frames of (time of its nearest reference frame - its own time).
        Resolution is about ``seconds_per_hash``. None without a matched frame.
    matched_query_frames : int
        Query frames (after filtering) that matched ``reference_id``.
    query_frames : int
        Query frames left after de-duplication and the quality filter.
    scores : dict
        Every reference id -> (query-match %, compared-match %), for threshold sweeps.
    """

    reference_id: str | None
    is_match: bool
    query_match_percent: float
    compared_match_percent: float
    offset_seconds: float | None
    matched_query_frames: int
    query_frames: int
    scores: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)

    @property
    def matched_id(self) -> str | None:
        """``reference_id`` if vPDQ's rule says similar, else None."""
        return self.reference_id if self.is_match else None


def vpdq_similarity(
    query_match_percent: float,
    compared_match_percent: float,
    query_match_threshold: float = QUERY_MATCH_THRESHOLD_PERCENT,
    compared_match_threshold: float = COMPARED_MATCH_THRESHOLD_PERCENT,
) -> bool:
    """vPDQ's decision: ``query% >= P_q and compared% >= P_c`` (both in percent).

    As in ThreatExchange's ``VPDQSignal.compare_hash`` and ``VPDQIndex.query``; a query
    with no usable frame (0 %) never matches, whatever the thresholds.
    """
    return (
        query_match_percent > 0.0
        and query_match_percent >= query_match_threshold
        and compared_match_percent >= compared_match_threshold
    )


def match(
    query_features: Sequence[Mapping[str, Any]] | FeatureArrays,
    reference_features_by_id: Mapping[str, Sequence[Mapping[str, Any]] | FeatureArrays]
    | VpdqReferences,
    *,
    distance_threshold: int = DISTANCE_THRESHOLD,
    quality_threshold: int = QUALITY_THRESHOLD,
    query_match_threshold: float = QUERY_MATCH_THRESHOLD_PERCENT,
    compared_match_threshold: float = COMPARED_MATCH_THRESHOLD_PERCENT,
) -> VpdqMatch:
    """Match one query video against reference videos with vPDQ's brute-force rule.

    The rule is ThreatExchange's reference matcher (``vpdq/README.md``, "Comparison
    (Matching) Algorithm", and python-threatexchange's
    ``extensions/vpdq/vpdq_brute_matcher.py::match_VPDQ_hash_brute`` called by
    ``VPDQSignal.compare_hash``), vectorised:

    1. in each video, drop exact duplicate hashes (first occurrence kept), then frames
       with quality < ``quality_threshold`` (50);
    2. query-match % = share of the query's frames with some reference frame at PDQ
       Hamming distance <= ``distance_threshold`` (31); compared-match % = share of the
       reference's frames with some query frame that close. Frame times are not used;
       the videos are bags of hashes. A side left with no frame scores 0 % (as the C++
       ``matchTwoHashBrute``);
    3. similar iff query-match % >= ``query_match_threshold`` (80) and compared-match %
       >= ``compared_match_threshold`` (0), see :func:`vpdq_similarity`.

    vPDQ only compares two videos; picking the best reference and estimating the
    offset are additions of this baseline.

    Parameters
    ----------
    query_features : sequence of dict or FeatureArrays
        The query's features (see module doc).
    reference_features_by_id : mapping or VpdqReferences
        Reference id -> features, or the output of :func:`prepare_references` (much
        faster for many queries; its own quality threshold is then used).
    distance_threshold : int
        Largest matching PDQ Hamming distance, bits.
    quality_threshold : int
        Smallest PDQ quality kept, 0-100.
    query_match_threshold, compared_match_threshold : float
        vPDQ's P_q and P_c, percent.

    Returns
    -------
    VpdqMatch
    """
    refs = (
        reference_features_by_id
        if isinstance(reference_features_by_id, VpdqReferences)
        else prepare_references(reference_features_by_id, quality_threshold)
    )
    query = FeatureArrays.from_features(query_features).vpdq_filtered(refs.quality_threshold)
    n_refs = len(refs.ids)
    q_pct = np.zeros(n_refs)
    c_pct = np.zeros(n_refs)
    q_hits = np.zeros(n_refs, dtype=np.int64)
    nonempty = np.flatnonzero(refs.counts > 0)
    if len(query) and len(nonempty):
        close = hamming_matrix(query.words, refs.words) <= distance_threshold  # (nq, N)
        starts = refs.starts[nonempty]
        # Segments of consecutive columns = references (empty references own no column).
        q_hit = np.logical_or.reduceat(close, starts, axis=1)  # (nq, R') query frame hits ref
        c_hit = np.add.reduceat(close.any(axis=0).astype(np.int64), starts)  # ref frames hit
        q_hits[nonempty] = q_hit.sum(axis=0)
        q_pct[nonempty] = q_hits[nonempty] * 100.0 / len(query)
        c_pct[nonempty] = c_hit * 100.0 / refs.counts[nonempty]

    similar = np.array(
        [
            vpdq_similarity(q, c, query_match_threshold, compared_match_threshold)
            for q, c in zip(q_pct, c_pct, strict=True)
        ],
        dtype=bool,
    )
    scores = {rid: (float(q), float(c)) for rid, q, c in zip(refs.ids, q_pct, c_pct, strict=True)}
    if n_refs == 0 or q_hits.max(initial=0) == 0:
        return VpdqMatch(None, False, 0.0, 0.0, None, 0, len(query), scores)
    # Lexicographic best: similar, then query %, then compared %; lexsort keeps the
    # input order among equal keys, so the first such reference wins ties.
    order = np.lexsort((-c_pct, -q_pct, ~similar))
    best = int(order[0])
    return VpdqMatch(
        reference_id=refs.ids[best],
        is_match=bool(similar[best]),
        query_match_percent=float(q_pct[best]),
        compared_match_percent=float(c_pct[best]),
        offset_seconds=_offset(query, refs, best, distance_threshold),
        matched_query_frames=int(q_hits[best]),
        query_frames=len(query),
        scores=scores,
    )


def _offset(query: FeatureArrays, refs: VpdqReferences, r: int, threshold: int) -> float | None:
    """Median of (nearest matching reference frame's time - query frame's time), seconds."""
    lo, hi = int(refs.starts[r]), int(refs.starts[r] + refs.counts[r])
    dist = hamming_matrix(query.words, refs.words[lo:hi])
    nearest = dist.argmin(axis=1)  # first minimum: earliest reference frame on ties
    ok = dist[np.arange(len(query)), nearest] <= threshold
    if not ok.any():
        return None
    return float(np.median(refs.times[lo:hi][nearest[ok]] - query.times[ok]))


def match_many(
    queries_by_id: Mapping[str, Sequence[Mapping[str, Any]] | FeatureArrays],
    reference_features_by_id: Mapping[str, Sequence[Mapping[str, Any]] | FeatureArrays]
    | VpdqReferences,
    **options: Any,
) -> dict[str, VpdqMatch]:
    """:func:`match` for each query, packing the references once.

    ``options`` are :func:`match`'s keywords; with a mapping of references, its
    ``quality_threshold`` also filters them.
    """
    refs = reference_features_by_id
    if not isinstance(refs, VpdqReferences):
        refs = prepare_references(refs, options.get("quality_threshold", QUALITY_THRESHOLD))
    return {qid: match(q, refs, **options) for qid, q in queries_by_id.items()}
