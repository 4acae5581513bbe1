import numpy as np
import pytest

from fingerprinting import audio
from fingerprinting.audio import AudioParams
from service.media import change_speed


def test_hashes_are_deterministic(programme):
    a = audio.fingerprint(programme)
    b = audio.fingerprint(programme.copy())
    assert len(a) > 0
    assert np.array_equal(a.hashes, b.hashes) and np.array_equal(a.frames, b.frames)
    assert a.hashes.dtype == np.uint32


def test_streaming_in_chunks_gives_the_same_fingerprint(programme):
    whole = audio.fingerprint(programme)
    for size in (1000, 12345, 8000 * 7):
        chunks = [programme[i : i + size] for i in range(0, programme.size, size)]
        part = audio.fingerprint_stream(chunks)
        assert np.array_equal(whole.hashes, part.hashes)
        assert np.array_equal(whole.frames, part.frames)
        assert part.duration_seconds == pytest.approx(programme.size / 8000)


def test_density_and_loudness_invariance(programme):
    p = AudioParams()
    fp = audio.fingerprint(programme, p)
    per_second = len(fp) / fp.duration_seconds
    assert 10 < per_second < 120
    quiet = audio.fingerprint(programme * 10 ** (-12 / 20), p)
    same = np.intersect1d(fp.hashes, quiet.hashes).size / np.unique(fp.hashes).size
    assert same > 0.95


def test_silence_and_short_input_have_no_hashes():
    assert len(audio.fingerprint(np.zeros(8000 * 5, np.float32))) == 0
    assert len(audio.fingerprint(np.zeros(100, np.float32))) == 0


def test_hash_fields_stay_in_their_bits(programme):
    p = AudioParams()
    fp = audio.fingerprint(programme, p)
    dt = fp.hashes & 0x3F
    assert dt.min() >= 1 and dt.max() <= p.max_dt
    assert (fp.hashes >> 21).max() == 0  # 21 bits used


def test_speed_hypotheses_cover_plus_minus_five_percent():
    h = audio.speed_hypotheses()
    assert h.speeds.min() <= 0.95 + 1e-9 and h.speeds.max() >= 1.05 - 1e-9
    assert h.speeds[0] == 1.0 and h.pitch_follows[0]
    assert (~h.pitch_follows).sum() == h.pitch_follows.sum() - 1


@pytest.mark.parametrize("factor", [0.96, 1.04])
def test_undoing_the_right_speed_recovers_reference_hashes(programme, factor):
    p = AudioParams()
    ref = set(audio.fingerprint(programme, p).hashes.tolist())
    fast = change_speed(programme, factor)
    pk = audio.peaks(fast, p)
    hyps = audio.speed_hypotheses(p)
    hashes, _, hyp = audio.query_hashes(pk, p, hyps)
    overlap = []
    for k in range(len(hyps)):
        hk = hashes[hyp == k]
        overlap.append(np.isin(hk, list(ref)).mean() if hk.size else 0)
    best = int(np.argmax(overlap))
    assert hyps.speeds[best] == pytest.approx(factor, abs=0.006)
    assert hyps.pitch_follows[best]
    assert overlap[best] > 3 * overlap[0]
