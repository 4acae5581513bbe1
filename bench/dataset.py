"""Pirate-variant audio transformations for the Vigie benchmark.

Every function works on mono ``float32`` numpy arrays sampled at ``sr`` Hz and
returns a new mono ``float32`` array (inputs are never modified in place).
Parameters follow the librosa conventions: everything is explicit, units are
documented (seconds, Hz, dB, bit/s) and there are no per-sample Python loops.

The :data:`TRANSFORMS` registry maps the benchmark variant names to callables
``f(y, sr, rng, speech) -> y2`` and :data:`SPEED_OF` gives the true time-scale
factor of each variant (``> 1`` means the pirate copy plays faster).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Literal

import librosa
import numpy as np
import scipy.signal

from .codecs import _EPS, _as_mono_float32, codec_roundtrip, load_audio

__all__ = [
    "SPEED_OF",
    "TRANSFORMS",
    "Transform",
    "add_white_noise",
    "band_pass",
    "change_speed",
    "change_tempo",
    "codec_roundtrip",
    "load_audio",
    "mix_speech",
    "quieter_compressed",
]

Transform = Callable[[np.ndarray, int, np.random.Generator, np.ndarray | None], np.ndarray]
"""Signature of a registry entry: ``f(y, sr, rng, speech) -> y2``."""


# --------------------------------------------------------------------------- #
# Signal-domain transforms
# --------------------------------------------------------------------------- #


def _sound_power(x: np.ndarray) -> float:
    """Mean power of ``x`` without its DC offset (float64; 0.0 for an empty array).

    A DC offset carries power nobody hears and every broadcast chain removes: the samples
    of the bench's whale recording sit at +0.36, 21 dB above its sound. Counted as signal,
    a "0 dB SNR" noise would bury that sound 21 dB deep, and a "-6 dB" commentator would
    speak 15 dB over it.
    """
    if x.size == 0:
        return 0.0
    return float(np.var(x, dtype=np.float64))


def add_white_noise(y: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise at an exact signal-to-noise ratio.

    The noise realization is rescaled so that its mean power is exactly
    ``var(y) / 10**(snr_db / 10)``: the power of the sound, DC offset excluded.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono input signal.
    snr_db : float
        Signal-to-noise ratio in dB, relative to the mean power of ``y`` without its DC
        offset.
    rng : np.random.Generator
        Random generator for the noise.

    Returns
    -------
    y_noisy : np.ndarray [shape=(n,), dtype=float32]
        ``y`` plus noise. A silent input is returned unchanged.
    """
    x = _as_mono_float32(y)
    signal_power = _sound_power(x)
    noise = rng.standard_normal(x.size)
    noise_power = float(np.mean(noise**2)) if x.size else 0.0
    if signal_power <= 0.0 or noise_power <= 0.0:
        return x.copy()
    scale = math.sqrt(signal_power / 10.0 ** (snr_db / 10.0) / noise_power)
    return (x + scale * noise).astype(np.float32)


def change_speed(
    y: np.ndarray, sr: int, factor: float, *, max_denominator: int = 1000
) -> np.ndarray:
    """Speed up or slow down playback, pitch included (tape/vinyl style).

    Implemented as band-limited polyphase resampling
    (:func:`scipy.signal.resample_poly`) by the rational approximation
    ``up / down`` of ``1 / factor``, the result being played back at the
    same ``sr``: durations are divided and frequencies multiplied by
    ``factor``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono input signal.
    sr : int
        Sample rate in Hz (unchanged by the transform; kept for API symmetry
        and validation).
    factor : float > 0
        Speed factor: ``1.04`` plays 4 % faster (output ``n / 1.04`` samples
        long, pitch up by 4 %), ``0.96`` plays 4 % slower.
    max_denominator : int
        Largest ``up``/``down`` allowed in the rational approximation; with
        the default the factor error is below 1e-6 for usual factors.

    Returns
    -------
    y_fast : np.ndarray [shape=(≈ n / factor,), dtype=float32]
        Resampled signal.
    """
    x = _as_mono_float32(y)
    if factor <= 0 or sr <= 0:
        raise ValueError(f"factor and sr must be > 0, got factor={factor}, sr={sr}")
    ratio = Fraction(factor).limit_denominator(max_denominator)
    if ratio == 1 or x.size == 0:
        return x.copy()
    up, down = ratio.denominator, ratio.numerator
    return scipy.signal.resample_poly(x, up, down).astype(np.float32)


def change_tempo(
    y: np.ndarray,
    sr: int,
    factor: float,
    *,
    n_fft: int | None = None,
    hop_length: int | None = None,
) -> np.ndarray:
    """Change tempo while preserving pitch (phase-vocoder time stretch).

    Thin wrapper around :func:`librosa.effects.time_stretch`.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono input signal.
    sr : int
        Sample rate in Hz; only used to choose ``n_fft`` when it is ``None``.
    factor : float > 0
        Tempo factor: ``1.05`` is 5 % faster (output ``n / 1.05`` samples).
    n_fft : int or None
        STFT size in samples. ``None`` uses the power of two closest to
        93 ms at ``sr`` (2048 at 22050 Hz).
    hop_length : int or None
        STFT hop in samples; ``None`` means ``n_fft // 4``.

    Returns
    -------
    y_stretched : np.ndarray [shape=(round(n / factor),), dtype=float32]
        Time-stretched signal.
    """
    x = _as_mono_float32(y)
    if factor <= 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    if factor == 1.0 or x.size == 0:
        return x.copy()
    if n_fft is None:
        n_fft = 2 ** round(math.log2(0.093 * sr))
    out = librosa.effects.time_stretch(x, rate=factor, n_fft=n_fft, hop_length=hop_length)
    return out.astype(np.float32)


def band_pass(
    y: np.ndarray,
    sr: int,
    low_hz: float = 300.0,
    high_hz: float = 3400.0,
    *,
    order: int = 8,
) -> np.ndarray:
    """Telephone-band filter: zero-phase Butterworth band-pass.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono input signal.
    sr : int
        Sample rate in Hz.
    low_hz, high_hz : float
        -3 dB band edges in Hz (of one pass; the forward-backward filtering
        squares the magnitude response, so the edges end up at -6 dB).
        If ``high_hz`` is at or above Nyquist a high-pass is used instead.
    order : int
        Butterworth order per band edge. The default 8 gives > 20 dB of
        attenuation at 3.9 kHz (and > 75 dB at 100 Hz) after
        :func:`scipy.signal.sosfiltfilt`.

    Returns
    -------
    y_band : np.ndarray [shape=(n,), dtype=float32]
        Filtered signal.
    """
    x = _as_mono_float32(y)
    if not 0 < low_hz < 0.5 * sr:
        raise ValueError(f"low_hz must be in (0, sr/2), got {low_hz}")
    if high_hz >= 0.5 * sr:
        sos = scipy.signal.butter(order, low_hz, btype="highpass", fs=sr, output="sos")
    else:
        sos = scipy.signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=sr, output="sos")
    if x.size <= 3 * (2 * sos.shape[0] + 1):  # too short for sosfiltfilt padding
        return scipy.signal.sosfilt(sos, x).astype(np.float32)
    return scipy.signal.sosfiltfilt(sos, x).astype(np.float32)


def _one_pole(x: np.ndarray, sr: int, time_ms: float) -> np.ndarray:
    """Exponential smoother ``s[n] = a s[n-1] + (1 - a) x[n]`` with 1/e time ``time_ms``."""
    a = math.exp(-1.0 / max(time_ms * 1e-3 * sr, 1e-9))
    return scipy.signal.lfilter([1.0 - a], [1.0, -a], x)


def quieter_compressed(
    y: np.ndarray,
    sr: int,
    gain_db: float = -12.0,
    *,
    threshold_db: float = -6.0,
    threshold_ref: Literal["rms", "full_scale"] = "rms",
    ratio: float = 4.0,
    attack_ms: float = 10.0,
    release_ms: float = 150.0,
) -> np.ndarray:
    """Lower the level, then apply a feed-forward dynamic range compressor.

    Detector: the power ``x**2`` is smoothed by two one-pole filters
    (:func:`scipy.signal.lfilter`), one with the attack and one with the
    release time constant; the envelope is their element-wise maximum, so it
    rises with the attack time and decays with the release time (a
    vectorized approximation of the classic branching peak follower).
    Static curve: above the threshold, the level in dB is divided by
    ``ratio``. No make-up gain.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono input signal.
    sr : int
        Sample rate in Hz.
    gain_db : float
        Gain applied before compression, in dB (``-12`` = 12 dB quieter).
    threshold_db : float
        Compressor threshold in dB, relative to ``threshold_ref``.
    threshold_ref : {"rms", "full_scale"}
        ``"rms"``: the threshold is relative to the overall RMS level of the
        attenuated signal, so the amount of compression does not depend on
        the recording level. ``"full_scale"``: absolute dBFS.
    ratio : float >= 1
        Compression ratio (4 means 4 dB in -> 1 dB out above threshold).
    attack_ms, release_ms : float
        Detector time constants in milliseconds (1/e times).

    Returns
    -------
    y_comp : np.ndarray [shape=(n,), dtype=float32]
        Attenuated and compressed signal.
    """
    x = _as_mono_float32(y).astype(np.float64) * 10.0 ** (gain_db / 20.0)
    if ratio < 1:
        raise ValueError(f"ratio must be >= 1, got {ratio}")
    if x.size == 0:
        return x.astype(np.float32)
    power = x * x
    envelope = np.maximum(_one_pole(power, sr, attack_ms), _one_pole(power, sr, release_ms))
    level_db = 10.0 * np.log10(envelope + _EPS)
    thr = threshold_db
    if threshold_ref == "rms":
        thr += 10.0 * math.log10(float(np.mean(power)) + _EPS)
    elif threshold_ref != "full_scale":
        raise ValueError(f"threshold_ref must be 'rms' or 'full_scale', got {threshold_ref!r}")
    reduction_db = (1.0 - 1.0 / ratio) * np.maximum(level_db - thr, 0.0)
    return (x * 10.0 ** (-reduction_db / 20.0)).astype(np.float32)


def mix_speech(
    y: np.ndarray, speech: np.ndarray, level_db: float = -6.0, *, offset: int = 0
) -> np.ndarray:
    """Mix a speech track (commentary) over the programme.

    The speech is looped (or trimmed) to the length of ``y`` starting at
    sample ``offset`` and scaled so that its RMS is ``level_db`` relative to
    the RMS of ``y``, both without their DC offset.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono programme signal.
    speech : np.ndarray [shape=(m,)]
        Mono speech signal at the same sample rate as ``y``.
    level_db : float
        Speech level in dB relative to the programme RMS.
    offset : int
        Start sample within ``speech`` (taken modulo ``m``).

    Returns
    -------
    y_mix : np.ndarray [shape=(n,), dtype=float32]
        Programme plus speech. Returned unchanged if either part is silent.
    """
    x = _as_mono_float32(y)
    s = _as_mono_float32(speech, name="speech")
    if s.size == 0:
        raise ValueError("speech is empty")
    looped = np.resize(np.roll(s, -(int(offset) % s.size)), x.size)
    rms_x, rms_s = math.sqrt(_sound_power(x)), math.sqrt(_sound_power(looped))
    if rms_x <= 0.0 or rms_s <= 0.0:
        return x.copy()
    gain = rms_x / rms_s * 10.0 ** (level_db / 20.0)
    return (x + gain * looped).astype(np.float32)


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #


def _clean(y, sr, rng, speech) -> np.ndarray:
    return _as_mono_float32(y).copy()


def _codec(codec: str, bitrate: int) -> Transform:
    def transform(y, sr, rng, speech) -> np.ndarray:
        return codec_roundtrip(y, sr, codec, bitrate)

    return transform


def _noise(snr_db: float) -> Transform:
    def transform(y, sr, rng, speech) -> np.ndarray:
        return add_white_noise(y, snr_db, rng)

    return transform


def _speed(factor: float) -> Transform:
    def transform(y, sr, rng, speech) -> np.ndarray:
        return change_speed(y, sr, factor)

    return transform


def _tempo(factor: float) -> Transform:
    def transform(y, sr, rng, speech) -> np.ndarray:
        return change_tempo(y, sr, factor)

    return transform


def _bandpass(y, sr, rng, speech) -> np.ndarray:
    return band_pass(y, sr, 300.0, 3400.0)


def _quiet_compressed(y, sr, rng, speech) -> np.ndarray:
    return quieter_compressed(y, sr, -12.0)


def _commentary(y, sr, rng, speech) -> np.ndarray:
    if speech is None:
        raise ValueError("the 'commentary' transform needs a speech track (speech=None)")
    offset = int(rng.integers(0, max(len(speech), 1)))
    return mix_speech(y, speech, -6.0, offset=offset)


_SPEEDS: dict[str, float] = {"speed+1": 1.01, "speed+2": 1.02, "speed+4": 1.04, "speed-4": 0.96}
_TEMPOS: dict[str, float] = {"tempo+5": 1.05}

TRANSFORMS: dict[str, Transform] = {
    "clean": _clean,
    "aac32": _codec("aac", 32_000),
    "mp3_48": _codec("mp3", 48_000),
    "noise10": _noise(10.0),
    "noise5": _noise(5.0),
    "noise0": _noise(0.0),
    **{name: _speed(f) for name, f in _SPEEDS.items()},
    **{name: _tempo(f) for name, f in _TEMPOS.items()},
    "bandpass": _bandpass,
    "quiet_compressed": _quiet_compressed,
    "commentary": _commentary,
}
"""Pirate variants: name -> ``f(y, sr, rng, speech) -> y2`` (all float32 mono).

``rng`` drives the random parts (noise, speech offset); ``speech`` is a mono
speech track at ``sr`` and is required by ``"commentary"`` only (a
``ValueError`` is raised if it is ``None``)."""

SPEED_OF: dict[str, float] = {name: 1.0 for name in TRANSFORMS} | _SPEEDS | _TEMPOS
"""True time-scale factor of each variant: the variant's time ``t'`` maps to
the original time ``t = t' * factor`` (``> 1``: the copy plays faster)."""
