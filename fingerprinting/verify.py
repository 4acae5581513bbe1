"""Second look at a candidate alignment: are the reference's own peaks in the sample?

Why. A triplet hash needs three peaks to survive the pirate's processing *and* to be
grouped and quantised as in the reference: after a phase-vocoder tempo change about a
tenth of a sample's triplets do (0.65 of the peaks found again, cubed, x 0.66 formed again
x 0.60 hashed alike, measured on the bench), and a 5 s sample at 0 dB SNR, under a
commentator or after such a change may align only 2-6 triplets with its reference -- too
few to tell from chance in 100 channel-hours.
Single peaks survive far more often (a median 70 % of the reference's peaks, 28 % for the
worst tenth, along the true lines of the bench's 5 s noise 0 dB, tempo +5 % and commentary
queries). Once
voting has named a line (track, offset, speed), the reference's peaks along it can be
mapped into the sample and looked up one by one: a question asked of a few candidates,
not of the whole index, so a weak but real alignment gains tens of independent pieces of
evidence.

Test. Each reference peak on the sample's span is mapped to sample time
``(t_ref - offset) / speed`` and to the sample's frequency (times ``speed`` when the copy's
pitch follows its speed, unchanged after a pitch-preserving tempo change: both are tried,
and the score pays ``log10 2`` for the choice). It is *found* when the sample has a peak
within ``p.verify_frames`` frames and ``p.verify_bins`` bins of that place. The chance of
finding one is measured on the same sample: the same reference peaks shifted along the
sample's time axis by amounts that are not the alignment (*decoys*) keep their frequency
distribution and meet the sample's own peak density, so a noisy or dense sample does not
pass for a match. The score is ``-log10 P[Binomial(checked, chance) >= found]``, with the
counts divided by the dispersion the decoys show (found peaks come in runs: held notes,
drum patterns); the :class:`~fingerprinting.align.NullCalibration` measured through the
whole query corrects what remains.

A line's evidence is its votes and its peaks together (:func:`line_score`): votes along
a line whose reference peaks are found no better than chance are coincidences of hashes
(shared keys, tempi, loops), not a copy. A line of few votes has an uncertain slope, so the
line through one of its hits that finds the most peaks is looked for as well
(:meth:`PeakGrid.search`), paying for the lines it tries.

Units: frames of ``p.hop_length`` samples (32 ms), band-relative FFT bins (15.6 Hz).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage, special

from .params import AudioParams
from .types import Peaks

__all__ = ["VOTES_NEED_PEAKS", "PeakCheck", "PeakGrid", "line_score"]

#: Decoy shifts are at least this many frames from the alignment (0.26 s): well past the
#: tolerance, so a decoy never re-finds the peaks it is meant to stand in for.
_MIN_DECOY_SHIFT = 8
#: Frames between two decoy shifts: 30-60 decoys for a 5-10 s sample.
_DECOY_STEP = 5
#: Peak score (``-log10`` chance) a line's peaks need for its votes to count
#: (:func:`line_score`): 1 chance in 100.
VOTES_NEED_PEAKS = 2.0


@dataclass(frozen=True)
class PeakCheck:
    """Reference peaks looked up along one alignment.

    Attributes
    ----------
    found : int
        Reference peaks with a sample peak near their mapped place.
    checked : int
        Reference peaks that fall on the sample's span.
    chance : float
        Probability of finding one by chance (decoys of the same peaks on this sample).
    score : float
        ``-log10`` of the binomial chance of ``found`` or more, less ``log10 2`` for trying
        both pitch hypotheses; 0 when nothing was checked.
    pitch_follows : bool
        Whether the better hypothesis had the sample's pitch follow its speed.
    dispersion : float
        How much wider than a binomial's the decoys' found counts spread (>= 1); the test
        counts ``checked / dispersion`` independent peaks.
    power : float
        The score that finding half of the checked peaks would have given: what a copy
        could expect. A check without power (few reference peaks, a dense sample) says
        nothing either way.
    """

    found: int
    checked: int
    chance: float
    score: float
    pitch_follows: bool
    dispersion: float = 1.0
    power: float = 0.0

    @classmethod
    def none(cls) -> PeakCheck:
        """Nothing to check (no reference peaks stored for the span)."""
        return cls(0, 0, 0.0, 0.0, True)


class PeakGrid:
    """Where a suspect sample has peaks, widened by the lookup tolerance.

    Parameters
    ----------
    pk : Peaks
        The sample's peaks (:func:`fingerprinting.peaks.query_peaks`).
    n_frames : int
        The sample's length in frames.
    p : AudioParams
        Analysis parameters (band, tolerances).
    """

    def __init__(self, pk: Peaks, n_frames: int, p: AudioParams = AudioParams()) -> None:
        lo, hi = p.bin_range
        self.lo_bin = lo
        self.n_bins = hi - lo
        self.n_frames = max(int(n_frames), 1)
        grid = np.zeros((self.n_frames, self.n_bins), bool)
        t = np.clip(np.floor(pk.frames + 0.5).astype(np.int64), 0, self.n_frames - 1)
        f = np.clip(np.floor(pk.bins + 0.5).astype(np.int64), 0, self.n_bins - 1)
        grid[t, f] = True
        size = (2 * p.verify_frames + 1, 2 * p.verify_bins + 1)
        self.occupied = ndimage.maximum_filter(grid, size=size, mode="constant")
        shifts = np.arange(_MIN_DECOY_SHIFT, self.n_frames - _MIN_DECOY_SHIFT + 1, _DECOY_STEP)
        self._shifts = shifts
        #: Chance that a lookup at a bin finds a peak, at any frame (ranks searched lines).
        self._bin_density = self.occupied.mean(axis=0)

    def check(
        self, ref_frames: np.ndarray, ref_bins: np.ndarray, offset_frames: float, speed: float
    ) -> PeakCheck:
        """Look up reference peaks (frames on the track's axis, band-relative bins) along
        the line ``t_ref = offset_frames + speed x t_sample``."""
        best = PeakCheck.none()
        if np.size(ref_frames) == 0:
            return best
        line = np.array([float(offset_frames)]), np.array([float(speed)])
        for follows in (True, False):
            ti, fi, inside = self._place(ref_frames, ref_bins, *line, follows)
            if inside.any():
                check = self._test(ti[0][inside[0]], fi[0][inside[0]], follows)
                if check.score > best.score or best.checked == 0:
                    best = check
        return best

    def search(
        self,
        ref_frames: np.ndarray,
        ref_bins: np.ndarray,
        through: tuple[np.ndarray, np.ndarray],
        speeds: np.ndarray,
        min_dispersion: float = 1.0,
    ) -> tuple[PeakCheck, float, float]:
        """The best of the lines through one of the hits ``through`` = ``(sample frames,
        reference frames)`` at one of ``speeds``: ``(check, offset_frames, speed)``.

        Why. Two or three triplet votes do not fix a line: a slope passes through any two
        points within a frame, and one of the points may be a chance hit. On the bench's
        5 s misses whose true track was the first candidate, its voted line often had the
        wrong speed (0.96 for a 2 % speed-up, 1.00 for a 5 % tempo change) and found 2-8
        of its peaks, where the line through one of its hits at the right speed found 8-27.

        Lines are ranked by how far their found count stands above the sample's peak
        density in the bins they look up (a z-score, cheap for all of them at once); the
        winner of each pitch hypothesis is then tested with decoys like one line
        (:meth:`_test`), with a dispersion of at least ``min_dispersion`` (the voted
        line's: the runs of found peaks belong to the sample and the track, not to the
        line, and a decoy estimate that came out low by chance is exactly what a search
        picks). The score then pays ``log10`` of the lines tried (Bonferroni): without
        that, the best of ~80 lines on every candidate raised the null calibration's
        0.999 point from 3.2 to 5.0, and a held-out negative scored 6.3.
        """
        q, r = (np.asarray(x, np.float64) for x in through)
        offsets = (r[:, None] - speeds[None, :] * q[:, None]).ravel()
        which = np.broadcast_to(np.arange(speeds.size), (q.size, speeds.size)).ravel()
        if q.size > 1:  # lines through two hits that agree within a frame are one line
            key = np.round(offsets).astype(np.int64) * speeds.size + which
            _, first = np.unique(key, return_index=True)
            offsets, which = offsets[first], which[first]
        slopes = speeds[which]
        best, best_line = PeakCheck.none(), (0.0, 1.0)
        if np.size(ref_frames) == 0 or offsets.size == 0:
            return best, *best_line
        for follows in (True, False):
            ti, fi, inside = self._place(ref_frames, ref_bins, offsets, slopes, follows)
            found = np.count_nonzero(self.occupied[ti, fi] & inside, axis=1)
            checked = np.count_nonzero(inside, axis=1)
            expected = np.sum(np.where(inside, self._bin_density[fi], 0.0), axis=1)
            z = (found - expected) / np.sqrt(expected + 1.0)
            # The most peaks over chance; ties go to the speed nearest 1.
            h = int(np.lexsort((np.abs(slopes - 1.0), -z))[0]) if z.size > 1 else 0
            if checked[h] == 0:
                continue
            on = inside[h]
            check = self._test(ti[h][on], fi[h][on], follows, min_dispersion)
            check = replace(check, score=max(0.0, check.score - float(np.log10(offsets.size))))
            if check.score > best.score or best.checked == 0:
                best, best_line = check, (float(offsets[h]), float(slopes[h]))
        return best, *best_line

    def _place(
        self,
        ref_frames: np.ndarray,
        ref_bins: np.ndarray,
        offsets: np.ndarray,
        slopes: np.ndarray,
        follows: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample frame and bin of each reference peak (columns) along each line ``t_ref =
        offset + slope x t_sample`` (rows), its frequency scaled by the slope when the
        pitch ``follows`` the speed: ``(frames, bins, inside)``, 0 where not inside the
        sample's grid."""
        ref = np.asarray(ref_frames, np.float64)[None, :]
        hz_bins = np.asarray(ref_bins, np.float64)[None, :] + self.lo_bin
        t = np.floor((ref - offsets[:, None]) / slopes[:, None] + 0.5)
        f = np.floor((hz_bins * slopes[:, None] if follows else hz_bins) - self.lo_bin + 0.5)
        f = np.broadcast_to(f, t.shape)
        inside = (t >= 0) & (t < self.n_frames) & (f >= 0) & (f < self.n_bins)
        ti = np.where(inside, t, 0).astype(np.int64)
        fi = np.where(inside, f, 0).astype(np.int64)
        return ti, fi, inside

    def _test(
        self, ti: np.ndarray, fi: np.ndarray, follows: bool, min_dispersion: float = 1.0
    ) -> PeakCheck:
        """Found peaks against the decoys' (see the module docstring).

        The chance is the decoys' found fraction, ``(k + 1) / (m + 1)`` for ``k`` found of
        ``m`` decoy lookups, so a sample too sparse for any decoy to land still leaves a
        chance above zero. Peaks are not independent -- a held note or a drum pattern
        makes runs of them found together -- so the counts are spread wider than a
        binomial's; the decoys measure by how much (``dispersion``, the variance of their
        found counts over the binomial variance, at least 1), and the test is taken on
        ``checked / dispersion`` peaks (quasi-binomial). Measured on the bench: without
        it, a held-out negative whose notes shared a reference's held chords scored 4.6
        (1 false match in 400); with it, 3.2. ``min_dispersion`` is a floor set from
        outside (:meth:`search`)."""
        n = int(ti.size)
        found = int(np.count_nonzero(self.occupied[ti, fi]))
        shifted = (ti[None, :] + self._shifts[:, None]) % self.n_frames
        per_decoy = np.count_nonzero(self.occupied[shifted, fi[None, :]], axis=1)
        chance = (float(per_decoy.sum()) + 1.0) / (per_decoy.size * n + 1.0)
        dispersion = max(1.0, min_dispersion)
        if per_decoy.size >= 3:
            binomial = max(n * chance * (1.0 - chance), 1e-12)
            spread = float(np.var(per_decoy, ddof=1)) / binomial
            dispersion = max(dispersion, spread)
        m = n / dispersion
        score = _binomial_score(found / dispersion, m, chance)
        power = _binomial_score(m / 2.0, m, chance)
        return PeakCheck(found, n, chance, score, follows, dispersion, power)


def _binomial_score(k: float, m: float, chance: float) -> float:
    """``-log10 P[X >= k]`` for ``X ~ Binomial(m, chance)``, continuous in ``k`` and ``m``
    (regularised incomplete beta), less ``log10 2`` for the two pitch hypotheses; 0 when
    ``k`` is not above the mean."""
    if k <= m * chance:
        return 0.0
    tail = float(special.betainc(k, m - k + 1.0, chance))
    return max(0.0, float(-np.log10(max(tail, 1e-300)) - np.log10(2.0)))


def line_score(vote_score: float, check: PeakCheck) -> float:
    """Evidence of one line, from its votes and its peaks.

    * Nothing checked (no peaks stored for the span): the votes alone.
    * Peaks found no better than 1 chance in 100 (``check.score < VOTES_NEED_PEAKS``)
      where a copy would have done better (``check.power >= VOTES_NEED_PEAKS``): the peak
      score alone -- the votes are coincidences of hashes, not a copy.
    * Otherwise both, combined by Fisher's method: ``-log10 [q (1 - ln q)]`` with
      ``q = 10^-(vote_score + check.score)``.

    Why. Music that shares a key, a tempo or a loop with a reference makes triplet hashes
    coincide along one line, whose peaks then do not line up beyond chance: on the bench the
    heaviest chance lines had vote scores of 5.5-12.3 (false matches after calibration) and
    peak scores of 0-1.5, while a copy's line finds a third or more of its reference's
    peaks, which on tens of them is far beyond 1 in 100 (of ~300 true lines of the weakest
    variants, one with a vote score over 3 had a peak score under 2). A check without power
    does not veto: a 5 s sample of a sparse arcade track had 13 reference peaks to check in
    a dense copy (chance 0.26), found 12, and scored 1.3 beside 25 votes. The two tests are not
    independent under chance (a vote is made of peaks), so the null calibration is measured
    through this score, not derived from it. A pitch shift *without* a tempo change is not
    among the hypotheses checked (:meth:`PeakGrid.check`), so such a copy would be missed.
    """
    if not check.checked:
        return vote_score
    if check.score < VOTES_NEED_PEAKS <= check.power:
        return check.score
    total = vote_score + check.score
    return float(total - np.log10(1.0 + total * np.log(10.0)))
