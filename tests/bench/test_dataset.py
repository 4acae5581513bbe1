"""Tests for the pirate-variant transforms in ``bench/dataset.py``."""

import av
import numpy as np
import pytest
import scipy.signal

from bench import codecs
from bench import dataset as ds

SR = 22050


def tone(freq, seconds=2.0, sr=SR, amp=0.5):
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def music_like(seconds=4.0, sr=SR, seed=0):
    """Broadband test signal: gated chirp plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sr)) / sr
    y = 0.3 * scipy.signal.chirp(t, 100, seconds, 4000) + 0.05 * rng.standard_normal(t.size)
    y *= 0.3 + 0.7 * (np.sin(2 * np.pi * 1.3 * t) > 0)
    return y.astype(np.float32)


def peak_freq(y, sr=SR):
    """Frequency in Hz of the largest spectral peak (parabolic interpolation)."""
    n = 8 * len(y)
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y)), n))
    k = int(np.argmax(spec))
    a, b, c = np.log(spec[k - 1 : k + 2])
    k_true = k + 0.5 * (a - c) / (a - 2 * b + c)
    return k_true * sr / n


def rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def db(x):
    return 20 * np.log10(x)


def lag_of(z, y, max_lag):
    corr = scipy.signal.correlate(z, y, mode="full", method="fft")
    lags = scipy.signal.correlation_lags(len(z), len(y), mode="full")
    keep = np.abs(lags) <= max_lag
    return int(lags[keep][np.argmax(corr[keep])])


# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("snr_db", [10.0, 5.0, 0.0, -3.0])
def test_add_white_noise_snr(snr_db):
    y = music_like()
    z = ds.add_white_noise(y, snr_db, np.random.default_rng(1))
    assert z.dtype == np.float32 and z.shape == y.shape
    measured = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean((z - y) ** 2.0))
    assert measured == pytest.approx(snr_db, abs=0.2)
    # Whiteness: noise spectrum roughly flat between low and high halves.
    spec = np.abs(np.fft.rfft(z - y)) ** 2
    half = len(spec) // 2
    assert 0.8 < spec[:half].mean() / spec[half:].mean() < 1.25


def test_snr_and_commentary_level_ignore_a_dc_offset():
    # A recording whose samples sit on a DC offset (the whale song's: +0.36) is as loud as
    # its sound, not as its offset: noise and speech levels are set against the sound.
    y = music_like()
    offset = y + np.float32(10 * rms(y))
    noise = ds.add_white_noise(offset, 0.0, np.random.default_rng(1)) - offset
    assert db(rms(noise) / rms(y)) == pytest.approx(0.0, abs=0.2)
    speech = music_like(0.7, seed=5)
    added = ds.mix_speech(offset, speech + np.float32(1.0), level_db=-6.0) - offset
    assert db(np.std(added) / rms(y)) == pytest.approx(-6.0, abs=0.5)


def test_add_white_noise_reproducible_and_silent_input():
    y = music_like(1.0)
    a = ds.add_white_noise(y, 5.0, np.random.default_rng(7))
    b = ds.add_white_noise(y, 5.0, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    silent = np.zeros(100, np.float32)
    np.testing.assert_array_equal(ds.add_white_noise(silent, 5.0, np.random.default_rng()), 0)


@pytest.mark.parametrize("factor", [1.01, 1.02, 1.04, 0.96])
def test_change_speed_length_and_pitch(factor):
    y = tone(1000.0)
    z = ds.change_speed(y, SR, factor)
    assert z.dtype == np.float32
    assert abs(len(z) - len(y) / factor) <= 1
    assert peak_freq(z[500:-500]) == pytest.approx(1000.0 * factor, rel=1e-3)
    # Band-limited: no audible energy away from the shifted tone.
    spec = np.abs(np.fft.rfft(z[500:-500] * np.hanning(len(z) - 1000)))
    freqs = np.fft.rfftfreq(len(z) - 1000, 1 / SR)
    far = np.abs(freqs - 1000.0 * factor) > 100
    assert db(spec[far].max() / spec.max()) < -60


def test_change_speed_identity():
    y = music_like(1.0)
    np.testing.assert_array_equal(ds.change_speed(y, SR, 1.0), y)


def test_change_tempo_keeps_pitch():
    y = tone(1000.0, seconds=3.0)
    z = ds.change_tempo(y, SR, 1.05)
    assert z.dtype == np.float32
    assert abs(len(z) - len(y) / 1.05) <= 2
    assert peak_freq(z[2048:-2048]) == pytest.approx(1000.0, rel=2e-3)


def test_band_pass_telephone():
    gains = {}
    for freq in (100.0, 1000.0, 3900.0):
        y = tone(freq, seconds=1.0)
        z = ds.band_pass(y, SR)
        mid = slice(SR // 4, -SR // 4)  # ignore filtfilt edge transients
        gains[freq] = db(rms(z[mid]) / rms(y[mid]))
    assert abs(gains[1000.0]) < 0.5
    assert gains[100.0] < -20
    assert gains[3900.0] < -20


def test_band_pass_at_8khz_and_short_input():
    z = ds.band_pass(tone(1000.0, 1.0, sr=8000), 8000)
    assert abs(db(rms(z[2000:-2000]) / rms(tone(1000.0, 1.0, sr=8000)[2000:-2000]))) < 0.5
    assert ds.band_pass(np.ones(10, np.float32), SR).shape == (10,)


def test_codecs_available():
    assert "aac" in av.codecs_available
    assert "libmp3lame" in av.codecs_available


@pytest.mark.parametrize(
    ("codec", "bitrate", "container", "sr"),
    [
        ("aac", 32_000, None, SR),
        ("aac", 32_000, "adts", SR),
        ("aac", 32_000, "adts", 16_000),
        ("aac", 32_000, "mp4", 20_000),  # encoder at 22050 Hz, resampled both ways
        ("libmp3lame", 48_000, None, SR),
        ("mp3", 48_000, "mp3", 16_000),
    ],
)
def test_codec_roundtrip_aligned(codec, bitrate, container, sr):
    y = music_like(4.0, sr=sr)
    z = ds.codec_roundtrip(y, sr, codec, bitrate, container=container)
    assert z.dtype == np.float32 and z.shape == y.shape
    assert np.corrcoef(y, z)[0, 1] > 0.8
    assert abs(lag_of(z, y, max_lag=sr // 10)) <= round(0.005 * sr)


def test_lag_estimation_prior_and_refinement():
    # A stationary tone correlates (almost) equally at every period: the known
    # priming prior must win. A broadband signal is found even off the prior.
    pure = tone(441.0, seconds=2.0)  # period: 50 samples
    delayed = np.r_[np.zeros(1024, np.float32), pure, np.zeros(300, np.float32)]
    assert codecs._estimate_lag(delayed, pure, prior=1024, max_lag=SR // 10) == 1024
    broad = music_like(2.0)
    delayed = np.r_[np.zeros(1024, np.float32), broad, np.zeros(300, np.float32)]
    assert codecs._estimate_lag(delayed, broad, prior=0, max_lag=SR // 10) == 1024
    assert codecs._estimate_lag(delayed, np.zeros_like(broad), prior=7, max_lag=100) == 7
    # Windowed search (loudest excerpt only) finds the same lag, also negative.
    assert codecs._estimate_lag(delayed, broad, prior=0, max_lag=SR // 10, window=SR // 2) == 1024
    early = broad[333:]
    assert codecs._estimate_lag(early, broad, prior=0, max_lag=SR // 10, window=SR // 2) == -333


def test_codec_roundtrip_errors():
    with pytest.raises(ValueError, match="bit/s"):
        ds.codec_roundtrip(music_like(1.0), SR, "aac", 32)
    with pytest.raises(ValueError, match="not available"):
        ds.codec_roundtrip(music_like(1.0), SR, "no_such_codec", 32_000)


def test_quieter_compressed_reduces_crest_factor():
    # Noise whose level swings smoothly over 30 dB, like music dynamics.
    rng = np.random.default_rng(3)
    t = np.arange(6 * SR) / SR
    level_db = -15.0 + 15.0 * np.sin(2 * np.pi * 0.5 * t)
    y = (0.3 * 10 ** (level_db / 20) * rng.standard_normal(t.size)).astype(np.float32)
    z = ds.quieter_compressed(y, SR, gain_db=-12.0)
    assert z.dtype == np.float32 and z.shape == y.shape
    crest_in = db(np.max(np.abs(y)) / rms(y))
    crest_out = db(np.max(np.abs(z)) / rms(z))
    assert crest_out < crest_in - 1.5
    # At least the 12 dB of gain, plus compression, no make-up gain.
    assert db(rms(z) / rms(y)) < -12.0


def test_quieter_compressed_reduces_dynamic_range():
    rng = np.random.default_rng(4)
    t = np.arange(4 * SR) / SR
    loud, quiet = (t % 1.0) < 0.5, (t % 1.0) > 0.85  # quiet: after the release
    y = (0.3 * np.where(loud, 1.0, 0.05) * rng.standard_normal(t.size)).astype(np.float32)
    z = ds.quieter_compressed(y, SR, gain_db=-12.0)
    range_in = db(rms(y[loud]) / rms(y[quiet]))  # 26 dB
    range_out = db(rms(z[loud]) / rms(z[quiet]))
    # Default threshold: 6 dB below the overall RMS; the loud part (which
    # dominates that RMS) is ~9 dB over it and a 4:1 ratio removes 3/4 of that.
    over_db = db(rms(y[loud]) / rms(y)) + 6.0
    assert range_out == pytest.approx(range_in - 0.75 * over_db, abs=1.5)
    assert range_out < range_in - 5.0
    # The bed is below threshold: it only loses the 12 dB of gain.
    assert db(rms(z[quiet]) / rms(y[quiet])) == pytest.approx(-12.0, abs=0.5)


def test_quieter_compressed_full_scale_threshold_untouched_when_quiet():
    y = tone(1000.0, 1.0, amp=0.01)  # -43 dBFS: below an absolute -20 dBFS threshold
    z = ds.quieter_compressed(y, SR, gain_db=-12.0, threshold_db=-20.0, threshold_ref="full_scale")
    np.testing.assert_allclose(z, y * 10 ** (-12 / 20), rtol=1e-5, atol=1e-7)


def test_mix_speech_level_and_looping():
    y = music_like(3.0)
    speech = music_like(0.7, seed=5)  # shorter than y: must be looped
    z = ds.mix_speech(y, speech, level_db=-6.0)
    assert z.dtype == np.float32 and z.shape == y.shape
    assert db(rms(z - y) / rms(y)) == pytest.approx(-6.0, abs=0.5)
    added = z - y
    np.testing.assert_allclose(
        added[: len(speech)], added[len(speech) : 2 * len(speech)], atol=1e-5
    )
    long_speech = music_like(5.0, seed=6)
    z2 = ds.mix_speech(y, long_speech, level_db=-6.0, offset=1234)
    assert db(rms(z2 - y) / rms(y)) == pytest.approx(-6.0, abs=0.5)


def test_load_audio_roundtrip(tmp_path):
    y = music_like(1.0, sr=16_000)
    path = tmp_path / "x.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=16_000, layout="stereo")
        frame = av.AudioFrame.from_ndarray(
            (np.stack([y, y]) * 32767).astype(np.int16), format="s16p", layout="stereo"
        )
        frame.sample_rate = 16_000
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    z = ds.load_audio(path, 16_000)
    assert z.dtype == np.float32 and z.ndim == 1
    assert len(z) == len(y)
    assert np.corrcoef(y, z)[0, 1] > 0.999
    z8 = ds.load_audio(str(path), 8_000)
    assert abs(len(z8) - len(y) // 2) <= 2


EXPECTED = {
    "clean",
    "aac32",
    "mp3_48",
    "noise10",
    "noise5",
    "noise0",
    "speed+1",
    "speed+2",
    "speed+4",
    "speed-4",
    "tempo+5",
    "bandpass",
    "quiet_compressed",
    "commentary",
}


def test_registry_runs_every_transform():
    assert set(ds.TRANSFORMS) == EXPECTED
    assert set(ds.SPEED_OF) == EXPECTED
    assert ds.SPEED_OF["speed-4"] == 0.96 and ds.SPEED_OF["tempo+5"] == 1.05
    assert ds.SPEED_OF["aac32"] == 1.0
    y = music_like(2.0)
    speech = music_like(1.0, seed=9)
    for name, transform in ds.TRANSFORMS.items():
        z = transform(y, SR, np.random.default_rng(0), speech)
        assert z.dtype == np.float32 and z.ndim == 1, name
        assert abs(len(z) - len(y) / ds.SPEED_OF[name]) <= 2, name
        assert np.all(np.isfinite(z)), name
    with pytest.raises(ValueError, match="speech"):
        ds.TRANSFORMS["commentary"](y, SR, np.random.default_rng(0), None)
