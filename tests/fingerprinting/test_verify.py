"""Peak verification of a candidate line: found along the true line, chance elsewhere."""

import numpy as np
import pytest
from scipy import stats

from fingerprinting import audio
from fingerprinting.params import AudioParams
from fingerprinting.types import Peaks
from fingerprinting.verify import VOTES_NEED_PEAKS, PeakCheck, PeakGrid, line_score
from service.media import change_speed, synth_programme

SR = 8000
P = AudioParams()
N_BINS = P.bin_range[1] - P.bin_range[0]


@pytest.fixture(scope="module")
def reference() -> tuple[np.ndarray, Peaks]:
    y = synth_programme(60.0, seed=5, sr=SR).astype(np.float32)
    return y, audio.fingerprint(y, P).peaks


def _noisy(x: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 1.0, x.size) * np.std(x) * 10 ** (-snr_db / 20)
    return (x + noise).astype(np.float32)


def _grid(x: np.ndarray) -> PeakGrid:
    return PeakGrid(audio.query_peaks(x, P), int(round(x.size / P.hop_length)), P)


def test_true_line_finds_most_peaks_and_a_wrong_one_finds_chance(reference):
    y, ref = reference
    start = 20.0
    grid = _grid(_noisy(y[int(start * SR) : int((start + 5) * SR)], 0.0, seed=1))
    offset = start / P.hop_seconds
    true = grid.check(ref.frames, ref.bins, offset, 1.0)
    assert true.checked > 30
    assert true.found / true.checked > 0.4
    assert true.found / true.checked > 4 * true.chance
    assert true.score > 10
    for wrong in (offset - 300, offset + 40, offset + 700):
        miss = grid.check(ref.frames, ref.bins, wrong, 1.0)
        assert miss.checked > 30
        assert miss.score < 3, miss


def test_pitch_follows_a_speed_up_and_stays_after_a_tempo_change(reference):
    y, ref = reference
    start, speed = 12.0, 1.04
    piece = y[int(start * SR) : int((start + 6 * speed + 1) * SR)]
    fast = change_speed(piece, speed)[: 5 * SR]  # resampled: pitch up 4 %
    check = _grid(fast).check(ref.frames, ref.bins, start / P.hop_seconds, speed)
    assert check.pitch_follows
    assert check.score > 10
    # The same line taken as 1.00 (the peaks' times drift by 6 frames over 5 s): weaker.
    flat = _grid(fast).check(ref.frames, ref.bins, start / P.hop_seconds, 1.0)
    assert flat.score < check.score


def test_nothing_to_check_scores_zero(reference):
    y, _ = reference
    grid = _grid(y[: 5 * SR])
    empty = np.empty(0)
    assert grid.check(empty, empty, 0.0, 1.0) == PeakCheck.none()
    # Reference peaks that all fall outside the sample's span are not checked.
    far = grid.check(np.array([5000.0, 5001.0]), np.array([10.0, 20.0]), 0.0, 1.0)
    assert far.checked == 0 and far.score == 0.0


def test_a_sparse_sample_never_makes_chance_zero():
    """One peak in the sample: decoys find nothing, yet the chance stays above zero, so
    one found peak is no proof."""
    pk = Peaks(np.array([50.0]), np.array([40.0]), np.array([-10.0]), P.hop_seconds)
    grid = PeakGrid(pk, 156, P)
    check = grid.check(np.array([50.0, 90.0, 120.0]), np.array([40.0, 80.0, 100.0]), 0.0, 1.0)
    assert check.found == 1 and check.checked == 3
    assert 0 < check.chance < 0.05
    assert check.score < 2


def test_votes_and_peaks_add_up_and_votes_without_peaks_do_not_count():
    found = PeakCheck(30, 60, 0.05, 12.0, True, 1.0, 12.0)
    weak = PeakCheck(6, 60, 0.05, 2.5, True, 1.0, 12.0)
    at_chance = PeakCheck(3, 60, 0.05, 0.4, True, 1.0, 12.0)
    # Fisher's method: p-values of 1e-8 and 1e-12 make 1e-20 x (1 + 20 ln 10) = 1e-18.3.
    assert line_score(8.0, found) == pytest.approx(18.33, abs=0.01)
    assert line_score(3.0, weak) > 3.0 + 2.5 - 1.2
    # Votes along a line whose reference peaks are not in the sample: chance coincidences.
    assert line_score(9.6, at_chance) == 0.4
    assert line_score(9.6, PeakCheck(4, 60, 0.05, VOTES_NEED_PEAKS - 0.01, True, 1, 12)) < 2
    # A check that could not have confirmed a copy (13 peaks in a dense sample) vetoes
    # nothing: its weak score adds to the votes.
    powerless = PeakCheck(12, 13, 0.26, 1.3, True, 3.9, 0.4)
    assert line_score(18.4, powerless) > 18.0
    # Nothing checked (no peaks stored): the votes stand alone.
    assert line_score(9.6, PeakCheck.none()) == 9.6


def test_peaks_found_in_runs_count_for_fewer():
    """A held note in both (at the aligned time) makes 16 peaks found together, not 16
    independent coincidences: decoys see the run come and go, the dispersion they measure
    tempers the score."""
    rng = np.random.default_rng(4)
    run = np.arange(40.0, 104.0, 4.0)  # 16 peaks of one note over 2 s, at bin 50
    q_frames = np.concatenate([run, rng.uniform(0, 312, 150)])
    q_bins = np.concatenate([np.full(run.size, 50.0), rng.uniform(0, N_BINS - 1, 150)])
    grid = PeakGrid(Peaks(q_frames, q_bins, np.zeros(q_frames.size), P.hop_seconds), 312, P)
    r_frames = np.concatenate([run, rng.uniform(0, 312, 60)])
    r_bins = np.concatenate([np.full(run.size, 50.0), rng.uniform(0, N_BINS - 1, 60)])
    check = grid.check(r_frames, r_bins, 0.0, 1.0)
    assert check.found >= 16 and check.dispersion > 2
    naive = -stats.binom.logsf(check.found - 1, check.checked, check.chance) / np.log(10)
    assert check.score < naive - 3


SPEEDS = 1.0 + 0.0025 * np.arange(-20, 21)


def test_search_finds_the_speed_through_one_true_hit(reference):
    """Two votes, one of them chance: the voted line (through both) has the wrong speed and
    finds little; the line through the true hit at the right speed finds the peaks."""
    y, ref = reference
    start, speed = 12.0, 1.03
    piece = y[int(start * SR) : int((start + 6 * speed + 1) * SR)]
    grid = _grid(_noisy(change_speed(piece, speed)[: 5 * SR], 5.0, seed=2))
    offset = start / P.hop_seconds
    true_hit = (100.0, offset + speed * 100.0)
    chance_hit = (20.0, true_hit[1] - 80.0 * 0.96)  # makes the voted line 0.96
    through = (np.array([chance_hit[0], true_hit[0]]), np.array([chance_hit[1], true_hit[1]]))
    voted = grid.check(ref.frames, ref.bins, true_hit[1] - 0.96 * 100.0, 0.96)
    found, off, s = grid.search(ref.frames, ref.bins, through, SPEEDS)
    assert s == pytest.approx(speed, abs=0.0051)
    assert off == pytest.approx(offset, abs=100.0 * 0.0051 + 1)
    assert found.pitch_follows
    assert found.score > voted.score + 4


def test_search_of_one_line_is_the_check_and_more_lines_pay_for_themselves(reference):
    y, ref = reference
    start = 30.0
    grid = _grid(_noisy(y[int(start * SR) : int((start + 5) * SR)], 0.0, seed=3))
    offset = start / P.hop_seconds
    hit = (np.array([50.0]), np.array([offset + 50.0]))
    one = grid.check(ref.frames, ref.bins, offset, 1.0)
    alone, off, s = grid.search(ref.frames, ref.bins, hit, np.array([1.0]))
    assert (alone, off, s) == (one, offset, 1.0)
    # Every speed tried through the same hit: the best is still the true line, and its
    # score pays log10 of the lines tried (41 speeds, one offset each).
    many, _, s = grid.search(ref.frames, ref.bins, hit, SPEEDS)
    assert s == 1.0
    assert many.score <= one.score - np.log10(SPEEDS.size) + 1.0
    # A dispersion imposed from outside (the voted line's) is kept as a floor.
    tempered, _, _ = grid.search(ref.frames, ref.bins, hit, SPEEDS, min_dispersion=3.0)
    assert tempered.dispersion >= 3.0 and tempered.score < many.score


def test_search_on_other_music_finds_nothing_to_speak_of(reference):
    _, ref = reference
    other = synth_programme(5.0, seed=21, sr=SR).astype(np.float32)
    grid = _grid(other)
    rng = np.random.default_rng(8)
    q = rng.uniform(0, 150, 6)
    r = rng.uniform(0, ref.frames.max() - 200, 6)
    found, _, _ = grid.search(ref.frames, ref.bins, (q, r), SPEEDS)
    assert found.checked > 0
    assert found.score < 2
