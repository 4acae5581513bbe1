"""Slope-tolerant offset voting and its calibrated confidence.

A true match makes many query triplets hit reference postings along one line
``t_ref = offset + speed x t_query``; chance hits scatter over all tracks and times. Voting
runs in two stages, both vectorised:

1. coarse: count distinct query triplets per (track, 0.5 s offset bin) -- a 5 % speed change
   drifts by at most 0.5 s over a 10 s sample -- and keep the best bins;
2. fine: in each kept bin, search the speed (slope) on a grid and the offset to one frame,
   counting the distinct voters (audio triplets, video frames) within +-1 frame of the
   line. That count is the ``votes``.

For the tracks returned (the top few, not every bin refined), the hits that voted are kept
as :attr:`Alignment.pairs`, ``(query frame, reference frame)``, so an analyst can see the
straight line that makes the match (at most ``max_pairs``, evenly subsampled).

Confidence. Under the null hypothesis (the sample is in no reference) the ``H`` hits fall
anywhere in the ``B`` frames searched, so the count along one line is Poisson with mean
``mu = 3 H / B``, and the chance that one of the ``B x n_speeds`` lines reaches ``v`` votes is
``p = 1 - (1 - P[Poisson(mu) >= v])^(B n_speeds)``. Optionally (``background_frames``, the
audio path's choice) ``mu`` is raised to the rate of the hits around the line in its own
track, which a sample resembling that track by chance hits densely. Real audio repeats
itself (loops, sustained notes, shared keys and tempi), so real negatives score higher
than that model says; :class:`NullCalibration` corrects it with the tail of the score
``-log10 p`` *measured* on samples known not to be in the index (``vigie calibrate``,
``python -m bench``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import stats

__all__ = ["MAX_PAIRS", "Alignment", "NullCalibration", "model_score", "speed_grid", "vote"]

_MAX_SCORE = 300.0

#: Voting hits kept per alignment for plots: a line of 2,000 points is as straight to the
#: eye as one of 20,000, and 2,000 pairs are 24 kB of float32 + float64.
MAX_PAIRS = 2000


@dataclass(frozen=True)
class Alignment:
    """Best line of one track for one query.

    Attributes
    ----------
    track : int
        Track id in the index.
    offset_frames : float
        Reference frame where the sample's frame 0 lies.
    speed : float
        Sample speed relative to the reference (1.04 = 4 % fast): reference time advances
        ``speed`` frames per sample frame.
    votes : int
        Distinct query triplets within one frame of the line.
    hits : int
        All hits of the query on the index (the chance background).
    score : float
        ``-log10`` of the model chance probability (see module doc); higher is stronger.
    pairs : tuple of ndarray or None
        ``(query_frames, reference_frames)`` (float64, frames) of the hits that voted for
        this line -- those within one frame of it, after the same rounding as the vote --
        distinct, sorted by query time, at most ``max_pairs`` of them (evenly subsampled);
        ``None`` when not asked for. Not compared: two alignments are equal by their line.
    peaks_found, peaks_checked : int
        Reference peaks found in the sample along the line, of those on its span, where
        the line was checked against the reference's peaks (:mod:`fingerprinting.verify`);
        0 and 0 where it was not.
    """

    track: int
    offset_frames: float
    speed: float
    votes: int
    hits: int
    score: float
    pairs: tuple[np.ndarray, np.ndarray] | None = field(default=None, compare=False, repr=False)
    peaks_found: int = field(default=0, compare=False)
    peaks_checked: int = field(default=0, compare=False)


def speed_grid(max_speed_change: float, speed_step: float) -> np.ndarray:
    """Speeds searched for a line: ``1 +- k x speed_step`` up to ``+-max_speed_change``."""
    n_steps = int(round(max_speed_change / speed_step))
    return 1.0 + speed_step * np.arange(-n_steps, n_steps + 1)


def model_score(votes: np.ndarray, mu: np.ndarray, bins: float) -> np.ndarray:
    """``-log10`` of the chance that some of ``bins`` x len(mu) Poisson bins reaches ``votes``.

    Parameters
    ----------
    votes : ndarray of int
        Vote counts to score.
    mu : ndarray of float
        Mean chance votes per bin, one per hypothesis (speed).
    bins : float
        Offset bins per hypothesis (frames searched).
    """
    votes = np.asarray(votes, np.float64)[:, None]
    mu = np.maximum(np.asarray(mu, np.float64)[None, :], 1e-12)
    log_tail = stats.poisson.logsf(votes - 1, mu)
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


def _distinct_counts(key: np.ndarray, voter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ``key`` values with the number of distinct ``voter`` values of each."""
    n_v = int(voter.max()) + 1
    pairs = np.sort(key * n_v + voter)  # a plain sort: np.unique is 5x slower here
    pairs = pairs[np.concatenate([[True], pairs[1:] != pairs[:-1]])]
    keys = pairs // n_v  # sorted, so equal keys are adjacent
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return keys[starts], np.diff(np.append(starts, keys.size))


def vote(
    query_triplet: np.ndarray,
    query_frames: np.ndarray,
    hit_track: np.ndarray,
    hit_frame: np.ndarray,
    searched_frames: float,
    *,
    max_speed_change: float = 0.05,
    speed_step: float = 0.0025,
    coarse_frames: int = 16,
    candidates: int = 8,
    top: int = 5,
    max_pairs: int = MAX_PAIRS,
    background_frames: int = 0,
) -> list[Alignment]:
    """Find the best line of up to ``top`` tracks, strongest evidence (score) first.

    Parameters
    ----------
    query_triplet : ndarray of int, one per hit
        Query triplet that made the hit (each triplet votes once per line).
    query_frames : ndarray of float, one per hit
        That triplet's anchor time in the sample (frames).
    hit_track, hit_frame : ndarray of int, one per hit
        Track id and reference anchor frame of the posting hit.
    searched_frames : float
        Frames of reference searched: the offsets a chance hit can take.
    coarse_frames : int
        Width of the first-stage offset bins; must exceed the drift of the largest speed
        change over the sample (5 % of 10 s = 16 frames of 32 ms).
    candidates : int
        First-stage bins refined in the second stage.
    max_pairs : int
        Voting hits kept per returned alignment (:attr:`Alignment.pairs`); 0 keeps none.
        They are gathered only for the ``top`` alignments returned, from the hits of the
        bins already selected: a few vectorised passes over a fraction of the hits.
    background_frames : int
        When > 0, each line is scored against the chance rate of its own neighbourhood as
        well: the hits of its track at offsets within this many frames of it (off the
        line itself), when they are denser than the index's average. See
        :func:`_local_rate`.
    """
    hits = int(hit_track.size)
    if hits == 0:
        return []
    track = hit_track.astype(np.int64)
    voter = query_triplet.astype(np.int64)
    t_ref = hit_frame.astype(np.float64)
    t_q = query_frames.astype(np.float64)
    # Stage 1: coarse offset bins, each summed with its neighbours.
    cbin = np.floor((t_ref - t_q) / coarse_frames).astype(np.int64)
    cbin -= cbin.min() - 1
    span = int(cbin.max()) + 2
    keys, counts = _distinct_counts(track * span + cbin, voter)
    window = counts.copy()
    for d in (-1, 1):
        pos = np.minimum(np.searchsorted(keys, keys + d), keys.size - 1)
        window += np.where(keys[pos] == keys + d, counts[pos], 0)
    best = np.argsort(-window, kind="stable")[:candidates]
    # Stage 2: slope and offset to one frame, near each candidate bin.
    speeds = speed_grid(max_speed_change, speed_step)
    mu_index = 3.0 * hits / max(searched_frames, 1.0)
    reach = 1 + -(-background_frames // coarse_frames)  # coarse bins the neighbourhood spans
    found: dict[int, tuple[Alignment, np.ndarray]] = {}
    for k in best:
        tr, cb = int(keys[k] // span), int(keys[k] % span)
        same_track = track == tr
        near = same_track & (np.abs(cbin - cb) <= 1)
        line = _best_line(t_ref[near], t_q[near], voter[near], speeds)
        if line is None:
            continue
        offset, speed, votes = line
        mu = mu_index
        if background_frames > 0:
            around = same_track & (np.abs(cbin - cb) <= reach)
            rate = _local_rate(
                t_ref[around], t_q[around], voter[around], offset, speed, background_frames
            )
            mu = max(mu, rate)
        line_mu = np.full(speeds.size, mu)
        score = float(model_score(np.array([votes]), line_mu, max(searched_frames, 1.0))[0])
        if tr not in found or (score, votes) > (found[tr][0].score, found[tr][0].votes):
            found[tr] = (Alignment(tr, offset, speed, votes, hits, score), near)
    winners = sorted(found.values(), key=lambda f: (-f[0].score, -f[0].votes))[:top]
    if max_pairs <= 0:
        return [a for a, _ in winners]
    return [_with_pairs(a, t_ref[near], t_q[near], max_pairs) for a, near in winners]


def _local_rate(
    t_ref: np.ndarray,
    t_q: np.ndarray,
    voter: np.ndarray,
    offset: float,
    speed: float,
    frames: int,
) -> float:
    """Chance votes expected on a line from the hits around it: distinct (voter, offset)
    hits per offset frame within ``frames`` of the line, off its +-1 frame, times 3 (a
    line counts three offset frames).

    Why. The index-wide rate assumes chance hits spread evenly over every track; they do
    not. A sample of music in the key and tempo of a reference track hits that track far
    more densely than the others (held chords, shared intervals), and one line among
    those hits collects votes by chance. A true alignment stands on a quiet background,
    since its sample otherwise resembles the track no more than any other: measured on
    the bench, 0-0.03 hits per offset frame around true lines of 6-13 votes, 0.04-0.19
    around the best lines of non-matching samples.
    """
    d = np.floor(t_ref - speed * t_q + 0.5) - offset
    side = (np.abs(d) > 1) & (np.abs(d) <= frames)
    if not side.any():
        return 0.0
    pairs = np.unique(d[side].astype(np.int64) * (int(voter.max()) + 1) + voter[side])
    return 3.0 * pairs.size / (2.0 * (frames - 1))


def _with_pairs(a: Alignment, t_ref: np.ndarray, t_q: np.ndarray, max_pairs: int) -> Alignment:
    """``a`` with the hits (of its refined bins) that voted for its line, as
    :attr:`Alignment.pairs`: the test of :func:`_best_line`'s ``on_line``, same rounding."""
    off = np.floor(t_ref - a.speed * t_q + 0.5)
    on = np.abs(off - a.offset_frames) <= 1
    q, r = t_q[on], t_ref[on]
    order = np.lexsort((r, q))
    q, r = q[order], r[order]
    new = np.ones(q.size, bool)  # one point per (query, reference) time, however many hashes
    new[1:] = (q[1:] != q[:-1]) | (r[1:] != r[:-1])
    q, r = q[new], r[new]
    if q.size > max_pairs:
        pick = np.round(np.linspace(0, q.size - 1, max_pairs)).astype(np.int64)
        q, r = q[pick], r[pick]
    return replace(a, pairs=(q, r))


def _best_line(
    t_ref: np.ndarray, t_q: np.ndarray, voter: np.ndarray, speeds: np.ndarray
) -> tuple[float, float, int] | None:
    """Offset (frames), speed and votes of the line through the most distinct voters."""
    if t_ref.size == 0:
        return None
    off = np.floor(t_ref[None, :] - speeds[:, None] * t_q[None, :] + 0.5).astype(np.int64)
    base = off.min() - 1
    width = int(off.max() - base) + 2
    flat = (np.arange(speeds.size)[:, None] * width + (off - base)).ravel()
    keys, counts = _distinct_counts(flat, np.broadcast_to(voter, off.shape).ravel())
    grid = np.zeros(speeds.size * width, np.int64)
    grid[keys] = counts
    grid = grid.reshape(speeds.size, width)
    # Votes within +-1 frame of the line (rounding of peak times).
    win = grid.copy()
    win[:, 1:] += grid[:, :-1]
    win[:, :-1] += grid[:, 1:]
    # Ties go to the sharpest peak, then to the speed nearest 1.
    closeness = np.abs(speeds - 1.0)[:, None] * np.ones_like(win)
    order = np.lexsort((closeness.ravel(), -grid.ravel(), -win.ravel()))
    s, o = divmod(int(order[0]), width)
    # The window summed distinct voters per offset; one voter can hit next to the line more
    # than once (a video frame matches its neighbours too): count each once.
    on_line = np.abs(off[s] - (o + base)) <= 1
    votes = int(np.unique(voter[on_line]).size)
    return float(o + base), float(speeds[s]), votes


@dataclass(frozen=True)
class NullCalibration:
    """Tail of the model score measured on non-matching queries (peaks over a threshold).

    ``P_null(score >= s) = tail_at_threshold x 10^(-slope (s - threshold))`` for
    ``s >= threshold``; below it the measured fraction. A perfect model would have
    ``slope = 1``; real audio repeats itself, so the measured slope is lower.

    Attributes
    ----------
    threshold : float
        Score above which the tail is fitted: the highest scores, 40 of them (a tenth of
        the null queries when there are fewer than 400). Confidences are decided out in
        the far tail, and the bulk of chance scores near zero sets a slope that the far
        tail does not follow: fitted over the top tenth of 2,000 bench nulls, the tail
        predicted a chance rate of 7e-5 at a score of 5.5, which 1 in 2,000 null and 1 in
        400 held-out negative cuts reached.
    tail_at_threshold : float
        Fraction of null queries whose best score exceeds ``threshold``.
    slope : float
        Decades of probability per unit of score in the tail (maximum-likelihood fit of an
        exponential tail to the exceedances), at most 1: the calibration may say chance
        alignments are commoner than the model says, never rarer (a null set with nothing
        above its threshold, as a big but varied video index gives, fits no tail at all).
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
        top = min(s.size // 10, 40)
        threshold = float(s[-top - 1])
        exceed = s[s > threshold] - threshold
        if exceed.size < 3:
            exceed = s[-max(5, s.size // 10) :] - threshold + 1e-3
        slope = min(1.0, 1.0 / (np.log(10.0) * max(float(exceed.mean()), 1e-3)))
        return cls(
            threshold=threshold,
            tail_at_threshold=float(max(exceed.size, 1) / s.size),
            slope=float(slope),
            n_queries=int(s.size),
            max_null_score=float(s[-1]),
        )

    def p_value(self, score: float) -> float:
        """Calibrated chance probability of a best score at least ``score``: the measured
        tail, and never below the model's own ``10^-score``."""
        if score <= self.threshold:
            return 1.0  # as common as the bulk of chance alignments: no evidence
        tail = self.tail_at_threshold * 10.0 ** (-min(self.slope, 1.0) * (score - self.threshold))
        return float(min(1.0, max(tail, 10.0 ** (-score))))

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
