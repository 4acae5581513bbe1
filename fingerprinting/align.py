"""Offset-histogram voting and its calibrated confidence.

A true match makes many query landmarks hit reference postings at one and the same time
offset (for the right speed hypothesis); chance hits scatter over all offsets of all tracks.
:func:`vote` counts, for every (hypothesis, track, offset) bin, the distinct query landmarks
that land in it (plus the two neighbouring bins, which absorbs rounding), and keeps the best
bin of each track.

Confidence. Under the null hypothesis (the query is in no reference) the hits of hypothesis
``h`` are spread over ``B`` offset bins -- ``B`` = frames searched in the index -- so a bin
count is Poisson with mean ``mu_h = 3 H_h / B`` and the chance that *any* of the ``B x
n_hypotheses`` bins reaches ``v`` votes is ``p = 1 - prod_h (1 - P[Poisson(mu_h) >= v])^B``.
That model ignores that real audio repeats itself, so it is too optimistic on real negatives;
:class:`NullCalibration` corrects it with the tail of the score ``-log10 p`` *measured* on
queries known not to be in the index (see ``fingerprinting/README.md`` and ``bench``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats

__all__ = ["Alignment", "NullCalibration", "vote", "model_score"]

_MAX_SCORE = 300.0


@dataclass(frozen=True)
class Alignment:
    """Best offset of one track for one query.

    Attributes
    ----------
    track : int
        Track id in the index.
    offset_frames : float
        Reference frame where the query's frame 0 lies (reference time = offset + speed x
        query time).
    speed : float
        Suspect speed relative to the reference (1.04 = 4 % fast).
    pitch_follows : bool
        Whether the speed change also scaled the pitch.
    votes : int
        Distinct query landmarks agreeing on this offset.
    hits : int
        All hits of the winning hypothesis on the index (the chance background).
    score : float
        ``-log10`` of the model chance probability (see module doc); higher is stronger.
    """

    track: int
    offset_frames: float
    speed: float
    pitch_follows: bool
    votes: int
    hits: int
    score: float


def model_score(votes: np.ndarray, mu: np.ndarray, bins: float) -> np.ndarray:
    """``-log10`` of the chance that some of ``bins`` x len(mu) Poisson bins reaches ``votes``.

    Parameters
    ----------
    votes : ndarray of int
        Vote counts to score.
    mu : ndarray of float
        Mean chance votes per bin, one per hypothesis.
    bins : float
        Offset bins per hypothesis (frames searched).
    """
    votes = np.asarray(votes, np.float64)[:, None]
    mu = np.maximum(np.asarray(mu, np.float64)[None, :], 1e-12)
    # log P[Poisson(mu) >= v] for every (votes, hypothesis)
    log_tail = stats.poisson.logsf(votes - 1, mu)
    # log P[no bin reaches v] = B * sum_h log(1 - tail_h)
    log_none = bins * np.sum(np.log1p(-np.minimum(np.exp(log_tail), 1 - 1e-16)), axis=1)
    p = -np.expm1(log_none)
    # Where p underflows, use the union bound p ~ B * sum_h tail_h (accurate when tiny).
    log_union = np.log(bins) + _logsumexp(log_tail, axis=1)
    log_p = np.where(p > 1e-300, np.log(np.maximum(p, 1e-300)), log_union)
    return np.clip(np.nan_to_num(-log_p / np.log(10.0), nan=_MAX_SCORE), 0.0, _MAX_SCORE)


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return (m + np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True))).squeeze(axis)


def vote(
    query_index: np.ndarray,
    query_ref_frames: np.ndarray,
    query_hyp: np.ndarray,
    hit_query: np.ndarray,
    hit_track: np.ndarray,
    hit_frame: np.ndarray,
    speeds: np.ndarray,
    pitch_follows: np.ndarray,
    searched_frames: float,
    *,
    top: int = 5,
) -> list[Alignment]:
    """Vote on offsets and return the best alignment of up to ``top`` tracks.

    Parameters
    ----------
    query_index : ndarray of int
        Distinct id of each query landmark (the same pair under the same hypothesis).
    query_ref_frames : ndarray of float
        Each query landmark's anchor time mapped to reference frames (query frame x speed).
    query_hyp : ndarray of int
        Hypothesis index of each query landmark.
    hit_query : ndarray of int
        For each posting hit, the position of the query landmark in the three arrays above.
    hit_track, hit_frame : ndarray of int
        The hit posting's track id and reference frame.
    speeds, pitch_follows : ndarray
        The hypotheses (see :class:`fingerprinting.types.SpeedHypotheses`).
    searched_frames : float
        Frames of reference searched (sum of the lengths of the tracks queried): the number
        of offset bins a chance hit can fall in.
    """
    if hit_query.size == 0:
        return []
    n_hyp = speeds.size
    hyp = query_hyp[hit_query].astype(np.int64)
    offset = np.floor(hit_frame - query_ref_frames[hit_query] + 0.5).astype(np.int64)
    track = hit_track.astype(np.int64)
    # One vote per (query landmark, hypothesis, track, offset).
    qid = query_index[hit_query].astype(np.int64)
    off_base = offset.min() - 1
    off = offset - off_base  # >= 1
    span = int(off.max()) + 2
    key = (hyp * (int(track.max()) + 1) + track) * span + off
    n_q = int(qid.max()) + 1
    if int(key.max()) < np.iinfo(np.int64).max // n_q:
        key = np.unique(key * n_q + qid) // n_q
    else:  # too wide to pack: sort on both columns instead
        order = np.lexsort((qid, key))
        key, qid = key[order], qid[order]
        first = np.ones(key.size, bool)
        first[1:] = (key[1:] != key[:-1]) | (qid[1:] != qid[:-1])
        key = key[first]
    keys, counts = np.unique(key, return_counts=True)
    # Sum each bin with its two neighbours (same hypothesis and track; off never wraps).
    window = counts.copy()
    for d in (-1, 1):
        pos = np.searchsorted(keys, keys + d)
        pos_c = np.minimum(pos, keys.size - 1)
        window += np.where(keys[pos_c] == keys + d, counts[pos_c], 0)
    hits_per_hyp = np.bincount(hyp, minlength=n_hyp)
    mu = 3.0 * hits_per_hyp / max(searched_frames, 1.0)
    # Best bin per track.
    track_of = (keys // span) % (int(track.max()) + 1)
    hyp_of = keys // span // (int(track.max()) + 1)
    closeness = np.abs(np.asarray(speeds, np.float64)[hyp_of] - 1.0)
    # Ties on the window go to the sharpest peak, then to the speed nearest 1: short queries
    # barely tell a 0.4 % tempo change from none.
    order = np.lexsort((closeness, -counts, -window, track_of))
    first = np.ones(order.size, bool)
    first[1:] = track_of[order][1:] != track_of[order][:-1]
    best = order[first]
    best = best[np.argsort(-window[best], kind="stable")][:top]
    scores = model_score(window[best], mu, max(searched_frames, 1.0))
    out = []
    for b, score in zip(best, scores, strict=True):
        h = int(keys[b] // span // (int(track.max()) + 1))
        out.append(
            Alignment(
                track=int(track_of[b]),
                offset_frames=float(keys[b] % span + off_base),
                speed=float(speeds[h]),
                pitch_follows=bool(pitch_follows[h]),
                votes=int(window[b]),
                hits=int(hits_per_hyp[h]),
                score=float(score),
            )
        )
    return out


@dataclass(frozen=True)
class NullCalibration:
    """Tail of the model score measured on non-matching queries (peaks over a threshold).

    ``P_null(score >= s) = tail_at_threshold x 10^(-slope (s - threshold))`` for
    ``s >= threshold``; below it the measured fraction. A perfect model would have
    ``slope = 1``; real audio repeats itself, so the measured slope is lower.

    Attributes
    ----------
    threshold : float
        Score above which the tail is fitted (the 90th percentile of the null scores).
    tail_at_threshold : float
        Fraction of null queries whose best score exceeds ``threshold``.
    slope : float
        Decades of probability per unit of score in the tail (maximum-likelihood fit of an
        exponential tail to the exceedances).
    n_queries : int
        Null queries measured.
    max_null_score : float
        Highest null score seen (for the record).
    """

    threshold: float
    tail_at_threshold: float
    slope: float
    n_queries: int
    max_null_score: float

    @classmethod
    def fit(cls, null_scores: np.ndarray) -> NullCalibration:
        """Fit the tail of the best-candidate scores of ``>= 50`` non-matching queries."""
        s = np.sort(np.asarray(null_scores, np.float64))
        if s.size < 50:
            raise ValueError(f"need at least 50 null queries to calibrate, got {s.size}")
        threshold = float(np.quantile(s, 0.9))
        exceed = s[s > threshold] - threshold
        if exceed.size < 3:
            exceed = s[-max(5, s.size // 10) :] - threshold + 1e-3
        slope = 1.0 / (np.log(10.0) * max(float(exceed.mean()), 1e-3))
        return cls(
            threshold=threshold,
            tail_at_threshold=float(max(exceed.size, 1) / s.size),
            slope=float(slope),
            n_queries=int(s.size),
            max_null_score=float(s[-1]),
        )

    def p_value(self, score: float) -> float:
        """Calibrated chance probability of a best score at least ``score``."""
        if score <= self.threshold:
            return 1.0  # as common as the bulk of chance alignments: no evidence
        return float(
            min(1.0, self.tail_at_threshold * 10.0 ** (-self.slope * (score - self.threshold)))
        )

    def confidence(self, score: float) -> float:
        """``1 - p_value(score)``: probability that the alignment is not chance."""
        return 1.0 - self.p_value(score)

    def save(self, path: Path) -> None:
        """Write as JSON."""
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> NullCalibration:
        """Read from JSON written by :meth:`save`."""
        return cls(**json.loads(path.read_text()))
