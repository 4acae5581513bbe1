"""Synthetic programme audio and file writing, for the demo and the tests.

The demo and the default tests must run where no real media exists, so they synthesise a
"channel": notes of a random melody with harmonics, chords and percussive noise bursts,
like music is. Different seeds give unrelated channels.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from scipy import signal

__all__ = ["change_speed", "synth_programme", "write_audio"]


def synth_programme(seconds: float, seed: int, sr: int = 22050) -> np.ndarray:
    """Mono float32 "music" of ``seconds`` at ``sr`` Hz, deterministic for a ``seed``.

    Notes of 0.12-0.6 s drawn from a pentatonic scale (root and tuning from the seed) over
    three octaves (110-1760 Hz),
    four harmonics each with an attack-decay envelope, a second voice playing chords, and a
    noise burst on every beat (tempo from the seed).
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    y = np.zeros(n, np.float64)
    scale = np.array([0, 2, 4, 7, 9]) + int(rng.integers(0, 12))
    tuning = 2 ** (float(rng.uniform(-0.5, 0.5)) / 12)  # no two programmes share a tuning
    t0 = 0.0
    while t0 < seconds:
        dur = float(rng.uniform(0.12, 0.6))
        for voice in range(2):
            octave = int(rng.integers(0, 3))
            midi = 45 + 12 * octave + int(rng.choice(scale)) + 7 * voice
            f0 = tuning * 440.0 * 2 ** ((midi - 69) / 12)
            i0, i1 = int(t0 * sr), min(n, int((t0 + dur) * sr))
            if i1 <= i0:
                continue
            t = np.arange(i1 - i0) / sr
            env = np.minimum(t / 0.01, 1.0) * np.exp(-t / (0.4 * dur + 0.05))
            tone = sum(np.sin(2 * np.pi * f0 * k * t) / k**1.2 for k in range(1, 5))
            y[i0:i1] += (0.5 / (voice + 1)) * env * tone
        t0 += dur
    beat = 60.0 / float(rng.uniform(90, 140))
    burst = int(0.05 * sr)
    env = np.exp(-np.arange(burst) / (0.01 * sr))
    for b in np.arange(0.0, seconds, beat):
        i0 = int(b * sr)
        i1 = min(n, i0 + burst)
        y[i0:i1] += 0.3 * env[: i1 - i0] * rng.standard_normal(i1 - i0)
    y /= max(np.abs(y).max(), 1e-9) * 1.1
    return y.astype(np.float32)


def change_speed(y: np.ndarray, factor: float) -> np.ndarray:
    """Play ``y`` ``factor`` times faster, pitch included (band-limited resampling)."""
    frac = Fraction(1 / factor).limit_denominator(1000)
    return signal.resample_poly(y, frac.numerator, frac.denominator).astype(np.float32)


def write_audio(path: Path, y: np.ndarray, sr: int, bitrate: int | None = None) -> Path:
    """Write mono float32 audio; codec from the suffix (.wav, .flac, .mp3, .m4a, .ogg)."""
    path = Path(path)
    codec = {
        ".wav": "pcm_s16le",
        ".flac": "flac",
        ".mp3": "libmp3lame",
        ".m4a": "aac",
        ".ogg": "libopus",
    }[path.suffix.lower()]
    with av.open(str(path), "w") as out:
        rate = 48000 if codec == "libopus" else sr
        stream = out.add_stream(codec, rate=rate, layout="mono")
        if bitrate:
            stream.bit_rate = bitrate
        stream.open()
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        frame = av.AudioFrame.from_ndarray(
            np.clip(y, -1, 1).astype(np.float32).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = sr
        frame.time_base = Fraction(1, sr)
        frame.pts = 0
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
