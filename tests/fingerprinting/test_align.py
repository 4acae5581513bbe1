import numpy as np
import pytest

from fingerprinting import audio
from fingerprinting.align import NullCalibration, model_score, vote
from reference_index.store.segment import equal_ranges
from service.media import change_speed


def _vote_against(ref_print, query_pcm, track=7):
    """Vote a query against one reference track with an exact hash lookup."""
    qp = audio.query_print(audio.query_peaks(query_pcm))
    order = np.argsort(ref_print.hashes, kind="stable")
    qpos, pos = equal_ranges(ref_print.hashes[order], qp.hashes)
    frames = ref_print.frames[order][pos].astype(np.int64)
    return vote(
        qp.triplet[qpos],
        qp.anchor_frames[qpos],
        np.full(qpos.size, track),
        frames,
        searched_frames=1e5,
    )


@pytest.mark.parametrize("start_s", [3.0, 17.5, 41.25])
def test_alignment_finds_known_offsets(programme, start_s):
    ref = audio.fingerprint(programme)
    q = programme[int(start_s * 8000) : int((start_s + 10) * 8000)]
    best = _vote_against(ref, q)[0]
    assert best.track == 7
    assert best.offset_frames * ref.hop_seconds == pytest.approx(start_s, abs=0.05)
    assert best.speed == pytest.approx(1.0, abs=0.006)
    assert best.votes > 50


@pytest.mark.parametrize("factor", [0.95, 0.97, 1.03, 1.05])
def test_alignment_follows_a_slope(programme, factor):
    ref = audio.fingerprint(programme)
    q = change_speed(programme[8000 * 30 : 8000 * 45], factor)[: 8000 * 10]
    best = _vote_against(ref, q)[0]
    assert best.offset_frames * ref.hop_seconds == pytest.approx(30.0, abs=0.1)
    assert best.speed == pytest.approx(factor, abs=0.006)
    assert best.votes > 30


def test_unrelated_audio_gets_few_votes(programme, other_programme):
    ref = audio.fingerprint(programme)
    res = _vote_against(ref, other_programme[: 10 * 8000])
    assert not res or res[0].votes < 8


def _line_on_a_background(background_per_frame: float, seed: int = 0):
    """Hits of a 10-vote line at offset 5,000 of track 1 over chance hits of that track
    (``background_per_frame`` per offset frame within +-5 s), plus sparse hits elsewhere."""
    rng = np.random.default_rng(seed)
    n_bg = int(background_per_frame * 312)
    q_line = np.linspace(10, 300, 10)
    q_bg = rng.uniform(0, 312, n_bg)
    q_far = rng.uniform(0, 312, 2000)
    t_q = np.concatenate([q_line, q_bg, q_far])
    t_ref = np.concatenate(
        [5000 + q_line, 5000 + rng.uniform(-156, 156, n_bg) + q_bg, rng.uniform(0, 1e6, 2000)]
    )
    track = np.concatenate([np.ones(10 + n_bg), rng.integers(2, 100, 2000)])
    voter = np.arange(t_q.size)
    return voter, t_q, track, np.floor(t_ref)


def test_a_line_on_a_dense_background_of_its_own_track_scores_less():
    """Chance hits crowding one track (music in its key and tempo) make a line through them
    weak evidence; the same line on a quiet track keeps the index-wide score."""

    def best(background_per_frame: float, frames: int):
        hits = _line_on_a_background(background_per_frame)
        return vote(*hits, searched_frames=1e6, background_frames=frames)[0]

    quiet, crowded = best(0.0, 94), best(0.5, 94)
    assert quiet.track == crowded.track == 1
    assert quiet.votes >= 10 and crowded.votes >= 10
    assert quiet.score == pytest.approx(best(0.0, 0).score)  # no denser than the index
    assert crowded.score < quiet.score - 5
    assert best(0.5, 0).score > crowded.score + 5  # the index-wide rate alone misses it


def test_no_hits_no_alignment():
    e = np.empty(0)
    assert vote(e, e, e, e, searched_frames=10.0) == []


def test_model_score_grows_with_votes_and_with_fewer_bins():
    mu = np.full(5, 1e-3)
    s = model_score(np.array([2, 5, 20, 200]), mu, 1e5)
    assert np.all(np.diff(s) > 0) and s[0] >= 0
    assert model_score(np.array([5]), mu, 1e3)[0] > model_score(np.array([5]), mu, 1e6)[0]
    assert np.isfinite(s).all()


def test_calibration_fit_is_monotone_and_matches_its_null():
    rng = np.random.default_rng(0)
    null = rng.exponential(2.0, 2000)
    cal = NullCalibration.fit(null)
    assert cal.n_queries == 2000
    # The fitted tail reproduces the empirical tail where there is data.
    for s in (9.0, 11.0):
        assert cal.p_value(s) == pytest.approx((null >= s).mean(), rel=0.4)
    ps = [cal.p_value(s) for s in np.linspace(0, 60, 50)]
    assert all(a >= b for a, b in zip(ps, ps[1:], strict=False))
    assert cal.confidence(60.0) > 0.999999
    with pytest.raises(ValueError, match="at least 50"):
        NullCalibration.fit(null[:10])


def test_calibration_follows_a_far_tail_heavier_than_the_bulk():
    """Most chance scores are near zero and a few chance alignments (music much like a
    reference) score far higher: the fit must follow those, where confidences are decided."""
    rng = np.random.default_rng(1)
    bulk = np.where(rng.random(200_000) < 0.9, 0.0, rng.exponential(0.5, 200_000))
    far = rng.exponential(2.0, 4000)  # 2 % of the queries
    null = np.concatenate([bulk, far])
    cal = NullCalibration.fit(rng.permutation(null)[:2000])
    for s in (4.0, 6.0):  # a fit over the top tenth said 4x and 20x too rare
        measured = (null >= s).mean()
        assert measured / 2 < cal.p_value(s) < measured * 2


def test_calibration_roundtrip(tmp_path):
    cal = NullCalibration(1.0, 0.1, 0.5, 300, 4.0)
    cal.save(tmp_path / "c.json")
    assert NullCalibration.load(tmp_path / "c.json") == cal


def test_calibration_of_an_empty_null_falls_back_on_the_model():
    """A null set with nothing above its threshold fits no tail: the calibration never
    claims more than the Poisson model's own -log10 p."""
    cal = NullCalibration.fit(np.zeros(300))
    assert cal.slope <= 1.0
    assert cal.p_value(0.0) == 1.0
    assert cal.p_value(2.0) == pytest.approx(1e-2, rel=1e-6)
    assert cal.p_value(4.0) >= 1e-4 and cal.confidence(4.0) < 0.9999 + 1e-12
