"""The frame-hash comparison's scoring (``bench/video_hashes/``) on synthetic numbers and
pictures: thresholds at an impostor rate, recall, AUC, probes, pairing. No media needed."""

import numpy as np
import pytest

from bench import video_hashes as vh
from bench.video_dataset import mirror, picture_in_picture, synthetic_clip
from bench.video_hashes import hashing, pairs, scoring
from fingerprinting.decode import FrameBatch
from fingerprinting.framehash import dhash, phash
from fingerprinting.params import VideoParams
from fingerprinting.video import WHOLE, query_probes

# Impostor counts at distances 0..5 (+ the "no valid probe" bin): cumulative rates are
# 0, 1e-4, 1e-3, 1e-2, 1e-1, 1.
HIST = np.array([0, 1, 9, 90, 900, 9000, 0])


def test_threshold_at_rate_is_the_largest_under_the_rate():
    assert scoring.threshold_at_rate(HIST, 1e-3) == (2, pytest.approx(1e-3))
    assert scoring.threshold_at_rate(HIST, 9.9e-4) == (1, pytest.approx(1e-4))
    assert scoring.threshold_at_rate(HIST, 1e-2) == (3, pytest.approx(1e-2))
    assert scoring.threshold_at_rate(HIST, 1e-5) == (0, 0.0)  # nothing at 0: accept d == 0
    assert scoring.threshold_at_rate(HIST, 1.0) == (6, 1.0)
    assert scoring.threshold_at_rate(np.array([5, 5, 0]), 0.1) == (-1, 0.0)  # even d == 0 too often
    with pytest.raises(ValueError):
        scoring.threshold_at_rate(np.zeros(4), 1e-3)


def test_recall_and_interpolation_between_integer_thresholds():
    true = np.array([0, 1, 2, 3, 3, 3, 4, 5, 9, 9])
    assert scoring.recall_at(true, 2) == pytest.approx(0.3)
    assert scoring.recall_at(true, -1) == 0.0
    assert scoring.recall_at(np.array([]), 3) == 0.0
    # At 5.5e-3: t = 2 (rate 1e-3); half of the impostors at 3 (rate 9e-3) would reach the
    # target: accept d == 3 with probability 0.5 -> 0.3 + 0.5 * 0.3.
    assert scoring.interpolated_recall(true, HIST, 5.5e-3) == pytest.approx(0.45)
    assert scoring.interpolated_recall(true, HIST, 1e-3) == pytest.approx(0.3)  # exact: no extra
    w = scoring.acceptance_weights(true, HIST, 5.5e-3)
    assert w.tolist() == [1, 1, 1, 0.5, 0.5, 0.5, 0, 0, 0, 0]
    lo, hi = scoring.recall_at(true, 2), scoring.recall_at(true, 3)
    for rate in np.linspace(1e-3, 1e-2, 7):
        assert lo - 1e-12 <= scoring.interpolated_recall(true, HIST, rate) <= hi + 1e-12


def test_auc_matches_brute_force():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 20, 300)
    imp = rng.integers(5, 40, 500)
    brute = np.mean(true[:, None] < imp[None, :]) + 0.5 * np.mean(true[:, None] == imp[None, :])
    assert scoring.auc(true, hashing.histogram(imp, 64)) == pytest.approx(brute)
    assert scoring.auc(np.zeros(5, int), hashing.histogram(np.full(5, 3), 64)) == 1.0
    assert scoring.auc(np.full(5, 3), hashing.histogram(np.full(5, 3), 64)) == 0.5


def test_summarise_fixed_thresholds_and_rates():
    true = np.array([0, 1, 2, 3, 3, 3, 4, 5, 9, 9])
    s = scoring.summarise(true, HIST, 64)
    assert s["n_true"] == 10 and s["n_impostor_pairs"] == 10000
    assert s["median_true"] == 3.0 and s["median_impostor"] == 5
    assert s["at_rate"]["0.001"]["threshold"] == 2
    assert s["at_rate"]["0.001"]["recall"] == pytest.approx(0.3)
    assert s["at_rate"]["0.01"]["recall"] == pytest.approx(0.6)
    fixed = scoring.summarise(true, HIST, 64, {"0.01": 4, "0.001": 0, "0.0001": -1})
    assert fixed["at_rate"]["0.01"]["recall"] == pytest.approx(0.7)
    assert fixed["at_rate"]["0.01"]["impostor_rate"] == pytest.approx(0.1)
    assert fixed["at_rate"]["0.0001"] | {"threshold_fraction": 0} == {
        "threshold": -1,
        "threshold_fraction": 0,
        "impostor_rate": 0.0,
        "recall": 0.0,
    }
    roc = scoring.roc_points(true, HIST, 64)
    assert roc[2] == [2, pytest.approx(1e-3), pytest.approx(0.3)] and roc[-1][1:] == [1.0, 1.0]


def test_best_over_probes_ignores_invalid_probes():
    d = np.array([[10, 3, 7], [5, 1, 9], [4, 4, 4]], np.uint16)
    valid = np.array([[True, False, True], [True, True, True], [False, False, False]])
    assert hashing.best_over_probes(d, valid, 64).tolist() == [7, 1, 65]
    d3 = np.stack([d, d + 1], axis=-1)  # (n, P, m): against two pool frames
    assert hashing.best_over_probes(d3, valid, 64).tolist() == [[7, 8], [1, 2], [65, 65]]


@pytest.mark.parametrize("words", [1, 4])
def test_impostor_histograms_match_brute_force(words):
    rng = np.random.default_rng(words)
    q = rng.integers(0, 2**63, (7, 5, words), dtype=np.uint64)
    pool = rng.integers(0, 2**63, (11, words), dtype=np.uint64)
    q[2, 3] = pool[4]  # one probe equal to a pool hash: a distance 0 in "best" only
    valid = rng.random((7, 5)) < 0.7
    valid[:, 0] = True
    bits = 64 * words
    got = hashing.impostor_histograms(q, valid, pool, bits, chunk_pairs=60)  # several chunks
    whole, best = [], []
    for i in range(7):
        for j in range(11):
            ds = [
                sum(bin(int(a) ^ int(b)).count("1") for a, b in zip(q[i, k], pool[j], strict=True))
                for k in range(5)
            ]
            whole.append(ds[0])
            best.append(min(x for x, v in zip(ds, valid[i], strict=True) if v))
    assert got["whole"].tolist() == hashing.histogram(np.array(whole), bits).tolist()
    assert got["best"].tolist() == hashing.histogram(np.array(best), bits).tolist()
    assert got["best"][0] == (1 if valid[2, 3] else 0) and got["best"].sum() == 77


def test_nearest_index_pairs_each_time_with_the_closest_frame():
    grid = np.arange(0.0, 1.0, 0.1)
    t = np.array([-1.0, 0.04, 0.06, 0.449, 0.451, 2.0])
    assert pairs.nearest_index(grid, t).tolist() == [0, 0, 1, 4, 5, 9]
    assert pairs.nearest_index(np.array([3.0]), t).tolist() == [0] * 6


def test_bootstrap_difference():
    groups = np.repeat(np.arange(10), 5)
    a = np.ones(50, bool)
    assert scoring.bootstrap_difference(a, a, groups) == (0.0, 0.0, 0.0)
    diff, lo, hi = scoring.bootstrap_difference(a, ~a, groups)
    assert diff == lo == hi == 1.0
    b = groups < 5  # b finds every frame of half of the clips
    diff, lo, hi = scoring.bootstrap_difference(a, b, groups, seed=1)
    assert diff == pytest.approx(0.5) and 0.1 < lo < 0.5 < hi < 0.9


def test_segments_cover_the_reference():
    rng = np.random.default_rng(0)
    segs = pairs.segments(30.0, False, rng)
    assert len(segs) == 3 and all(length <= vh.SEGMENT_SECONDS for _, length in segs)
    assert segs[-1][0] + segs[-1][1] == pytest.approx(29.5)
    assert pairs.segments(9.64, False, rng) == [(0.0, pytest.approx(9.14))]
    ((start, length),) = pairs.segments(40.0, True, rng)
    assert length == vh.SEGMENT_SECONDS and 0.0 <= start <= 29.5


def _gray(frames):
    return FrameBatch(np.arange(len(frames)) / 5.0, frames.mean(axis=3).astype(np.uint8))


def test_normalised_hashes_pair_a_frame_with_itself_and_its_mirror():
    p = VideoParams()
    fns = {"phash": lambda g: phash(g)[:, None], "dhash": lambda g: dhash(g)[:, None]}
    clip = synthetic_clip(6.0, 5.0, 192, 108, seed=3)
    ref = hashing.normalise_and_hash(_gray(clip.frames), [WHOLE], p.bar_window, fns, p)
    probes = query_probes(p)
    q = hashing.normalise_and_hash(_gray(mirror(clip).frames), probes, None, fns, p)
    assert ref.valid.shape == (30, 1) and q.valid.shape == (30, len(probes))
    assert q.hashes["phash"].shape == (30, len(probes), 1)
    assert q.probes == tuple(pr.name for pr in probes)
    ok = ref.valid[:, 0] & q.valid[:, 0]
    assert ok.sum() >= 10
    for k in fns:
        h = ref.hashes[k][ok]
        assert hashing.pair_distances(h, h).max() == 0
        d = hashing.pair_distances(q.hashes[k][ok], h)  # (n, P): each probe vs the true frame
        best = hashing.best_over_probes(d, q.valid[ok], 64)
        # The mirrored picture is far from the reference; its "mirror" probe is close.
        assert np.median(d[:, 0]) > 16
        assert np.median(best) <= 4
        assert np.all(best <= d[:, probes.index(next(pr for pr in probes if pr.mirrored))])


@pytest.mark.skipif(not hasattr(hashing.video, "pip_windows"), reason="no PiP window detection")
def test_query_probes_include_the_samples_pip_window():
    p = VideoParams()
    fns = {"phash": lambda g: phash(g)[:, None]}
    clip = synthetic_clip(10.0, 2.0, 192, 108, seed=3)
    inset = picture_in_picture(clip, synthetic_clip(10.0, 2.0, 192, 108, seed=4), "top_right")
    ref = hashing.normalise_and_hash(_gray(clip.frames), [WHOLE], p.bar_window, fns, p)
    q = hashing.normalise_and_hash(_gray(inset.frames), None, None, fns, p)
    assert q.probes[: len(query_probes(p))] == tuple(pr.name for pr in query_probes(p))
    assert len(q.probes) > len(query_probes(p))  # the inset was found
    d = hashing.pair_distances(q.hashes["phash"], ref.hashes["phash"])
    best = hashing.best_over_probes(d, q.valid, 64)
    assert np.median(d[:, 0]) > 16 and np.median(best) <= 8


def test_choice_prefers_a_cheaper_hash_only_when_not_significantly_worse():
    def report(ci_low):
        pair = {"a": "pdq", "b": "dhash", "rate": "0.001", "difference": 0.02}
        return {
            "comparisons": {
                "best": {"ranking": ["pdq", "dhash"], "pairs": [pair | {"ci95": [ci_low, 0.05]}]}
            },
            "speed": {"pdq": {"cpu_us_per_frame": 150.0}, "dhash": {"cpu_us_per_frame": 13.0}},
        }

    assert scoring.choose(report(-0.01)) == "dhash"  # within noise: the cheaper one
    assert scoring.choose(report(0.005)) == "pdq"  # significantly better: the better one
    reverse = scoring._pair(report(-0.01)["comparisons"]["best"], "dhash", "pdq", "0.001")
    assert reverse["difference"] == -0.02 and reverse["ci95"] == [-0.05, 0.01]
