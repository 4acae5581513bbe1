from dataclasses import replace

import numpy as np
import pytest

from fingerprinting import audio
from fingerprinting.params import AudioParams
from service.media import change_speed


def test_hashes_are_deterministic(programme):
    a = audio.fingerprint(programme)
    b = audio.fingerprint(programme.copy())
    assert len(a) > 0
    assert np.array_equal(a.hashes, b.hashes) and np.array_equal(a.frames, b.frames)
    assert a.hashes.dtype == np.uint32
    assert np.all(np.diff(a.frames.astype(np.int64)) >= 0)


def test_streaming_in_chunks_gives_the_same_fingerprint(programme):
    whole = audio.fingerprint(programme)
    for size in (1000, 12345, 8000 * 7):
        chunks = [programme[i : i + size] for i in range(0, programme.size, size)]
        part = audio.fingerprint_stream(chunks)
        assert np.array_equal(whole.hashes, part.hashes)
        assert np.array_equal(whole.frames, part.frames)
        assert part.duration_seconds == pytest.approx(programme.size / 8000)


def test_density_and_loudness_invariance(programme):
    fp = audio.fingerprint(programme)
    per_second = len(fp) / fp.duration_seconds
    assert 10 < per_second < 80
    quiet = audio.fingerprint(programme * 10 ** (-12 / 20))
    same = np.intersect1d(fp.hashes, quiet.hashes).size / np.unique(fp.hashes).size
    assert same > 0.95


def test_silence_and_short_input_have_no_hashes():
    assert len(audio.fingerprint(np.zeros(8000 * 5, np.float32))) == 0
    assert len(audio.fingerprint(np.zeros(100, np.float32))) == 0
    assert len(audio.query_print(audio.query_peaks(np.zeros(100, np.float32)))) == 0


def test_hash_fits_its_fields(programme):
    p = AudioParams()
    bits = sum(b for _, b in p.hash_fields)
    assert bits == 27
    fp = audio.fingerprint(programme, p)
    assert int(fp.hashes.max()) < 2**bits
    with pytest.raises(ValueError, match="over 32"):
        AudioParams(ratio_steps=4096)


def test_a_noisy_sample_still_pairs_its_anchors_with_targets_seconds_away(programme):
    """Noise multiplies a sample's peaks (here five-fold); its triplets must still reach
    the reference's targets up to 2 s away, not only those among the next 24 peaks."""
    p = AudioParams()
    clean = programme[8000 * 20 : 8000 * 30]
    noise = np.random.default_rng(0).standard_normal(clean.size) * np.std(clean) * 10**0.25
    noisy = (clean + noise).astype(np.float32)  # -5 dB SNR
    ref = audio.fingerprint(clean, p)
    pk = audio.query_peaks(noisy, p)
    assert len(pk) > 4 * len(audio.peaks(clean, p))

    def found(zone_peaks: int) -> float:
        qp = audio.query_print(pk, replace(p, query_zone_peaks=zone_peaks))
        return float(np.isin(ref.hashes, qp.hashes).mean())

    assert found(p.query_zone_peaks) > 0.35
    assert found(p.zone_peaks) < 0.05  # the reference's zone size, at five times the density


@pytest.mark.parametrize("factor", [0.95, 0.96, 1.0, 1.02, 1.04, 1.05])
def test_query_probes_reach_reference_hashes_under_speed_changes(programme, factor):
    """Speed-invariant components plus probes: most reference hashes of the same stretch
    are among the query's lookups whatever the speed within +-5 %."""
    p = AudioParams()
    ref = audio.fingerprint(programme[8000 * 20 : 8000 * 40], p)
    fast = change_speed(programme[8000 * 20 : 8000 * 40], factor)
    qp = audio.query_print(audio.query_peaks(fast, p), p)
    found = np.isin(ref.hashes, qp.hashes).mean()
    unrelated = audio.query_print(audio.query_peaks(programme[8000 * 60 : 8000 * 80], p), p)
    chance = np.isin(ref.hashes, unrelated.hashes).mean()
    assert found > 0.4
    assert found > 3 * chance


def test_query_print_groups_probes_by_triplet(programme):
    qp = audio.query_print(audio.query_peaks(programme[: 8000 * 10]))
    assert qp.triplet.min() >= 0 and qp.triplet.max() < qp.n_triplets
    assert qp.hashes.size == qp.triplet.size == qp.anchor_frames.size
    pairs = set(zip(qp.triplet.tolist(), qp.hashes.tolist(), strict=True))
    assert len(pairs) == qp.hashes.size  # one lookup per distinct probe
    assert qp.anchor_frames.max() < 10 / 0.032 + 1
