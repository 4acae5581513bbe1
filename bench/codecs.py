"""Codec round trips and decoding for the benchmark's pirate variants (PyAV, in memory).

Encoders add priming delay; :func:`codec_roundtrip` compensates for it (known priming per
container, then a cross-correlation check) so that variants stay time-aligned with the
original within a few milliseconds.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction

import av
import numpy as np
import scipy.signal

__all__ = ["codec_roundtrip", "load_audio"]

# Container used when ``codec_roundtrip`` is not told which one to use.  AAC goes
# into MP4 because the MP4 muxer writes an edit list for the encoder priming and
# FFmpeg's demuxer honours it, so the decoded stream is already time-aligned.
_DEFAULT_CONTAINER: dict[str, str] = {
    "aac": "mp4",
    "libmp3lame": "mp3",
    "libshine": "mp3",
    "mp3": "mp3",
    "libopus": "ogg",
    "opus": "ogg",
    "flac": "flac",
}

# Leading samples (at the encoder sample rate) that survive demuxing+decoding,
# i.e. encoder priming that the container does *not* signal.  Measured with the
# FFmpeg bundled in PyAV 18.1: AAC in ADTS keeps its 1024-sample priming; AAC in
# MP4 (edit list) and MP3 (LAME/Xing gapless header) come back aligned.  These
# are only priors: the actual lag is refined by cross-correlation.
_KNOWN_PRIMING: dict[tuple[str, str], int] = {("aac", "adts"): 1024}

_EPS = 1e-12


def _as_mono_float32(y: np.ndarray, name: str = "y") -> np.ndarray:
    """Return ``y`` as a contiguous 1-D float32 array or raise ``ValueError``."""
    x = np.ascontiguousarray(y, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a mono 1-D array, got shape {x.shape}")
    return x


# --------------------------------------------------------------------------- #
# Decoding / codecs
# --------------------------------------------------------------------------- #


def _decode_to_mono(source: str | os.PathLike | io.BytesIO, sr: int) -> np.ndarray:
    """Decode the first audio stream of ``source`` to mono float32 at ``sr`` Hz."""
    chunks: list[np.ndarray] = []
    with av.open(source, mode="r") as container:
        if not container.streams.audio:
            raise ValueError(f"no audio stream in {source!r}")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        for frame in container.decode(stream):
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)


def load_audio(path: str | os.PathLike, sr: int) -> np.ndarray:
    """Decode any media file to a mono float32 signal with PyAV.

    Parameters
    ----------
    path : str or os.PathLike
        Audio or video file readable by FFmpeg. The first audio stream is used.
    sr : int
        Target sample rate in Hz.

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
        Mono signal at ``sr`` Hz (channels down-mixed by libswresample).

    Raises
    ------
    ValueError
        If the file has no audio stream.
    """
    return _decode_to_mono(os.fspath(path), int(sr))


def _encoder_rate(codec: av.Codec, sr: int) -> int:
    """Pick the encoder sample rate: ``sr`` if supported, else the next one up."""
    rates = sorted(codec.audio_rates or ())
    if not rates or sr in rates:
        return sr
    higher = [r for r in rates if r >= sr]
    return higher[0] if higher else rates[-1]


def _encoder_format(codec: av.Codec) -> str:
    """Pick the encoder sample format, preferring planar float."""
    names = [f.name for f in (codec.audio_formats or ())]
    if not names:
        return "fltp"
    for preferred in ("fltp", "flt", "s32p", "s16p", "s16"):
        if preferred in names:
            return preferred
    return names[0]


def _encode(
    x: np.ndarray,
    sr: int,
    codec: str,
    container: str,
    bitrate: int,
    codec_sr: int,
    sample_format: str,
) -> bytes:
    """Encode mono float32 ``x`` (at ``sr``) in memory and return the file bytes."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=codec_sr, layout="mono")
        stream.bit_rate = int(bitrate)
        ctx = stream.codec_context
        ctx.format = sample_format
        # Open now (not lazily on the first encode) so that frame_size is known
        # and the muxer sees the encoder priming (MP4 edit list).
        ctx.open()
        resampler = av.AudioResampler(
            format=sample_format,
            layout="mono",
            rate=codec_sr,
            frame_size=ctx.frame_size or None,
        )
        block = max(int(sr), 1)  # feed one second at a time to bound memory
        for start in range(0, x.size, block):
            frame = av.AudioFrame.from_ndarray(
                x[np.newaxis, start : start + block], format="flt", layout="mono"
            )
            frame.sample_rate = sr
            frame.pts = start
            frame.time_base = Fraction(1, sr)
            for packet_frame in resampler.resample(frame):
                out.mux(stream.encode(packet_frame))
        for packet_frame in resampler.resample(None):
            out.mux(stream.encode(packet_frame))
        out.mux(stream.encode(None))  # flush the encoder
    return buf.getvalue()


def _estimate_lag(
    z: np.ndarray,
    x: np.ndarray,
    prior: int,
    max_lag: int,
    window: int | None = None,
    rel_peak: float = 0.9,
) -> int:
    """Lag ``k`` (samples) maximizing ``sum_n z[n + k] * x[n]`` near ``prior``.

    Only lags in ``[prior - max_lag, prior + max_lag]`` are searched, using
    the loudest ``window`` samples of ``x`` (all of ``x`` if ``None``). Among
    the local maxima reaching ``rel_peak`` times the best one, the one
    closest to ``prior`` wins; this keeps periodic signals (pure tones),
    whose correlation has many near-equal peaks, on the known codec delay.
    """
    if x.size == 0 or z.size == 0 or not np.any(x):
        return prior
    w = x.size if window is None else min(max(int(window), 1), x.size)
    start = 0
    if w < x.size:  # loudest window on a w/4 grid
        energy = np.concatenate(([0.0], np.cumsum(np.square(x, dtype=np.float64))))
        starts = np.arange(0, x.size - w + 1, max(w // 4, 1))
        start = int(starts[np.argmax(energy[starts + w] - energy[starts])])
    lo, hi = prior - max_lag, prior + max_lag
    z_start = max(start + lo, 0)
    zz = z[z_start : max(start + w + hi, z_start + 1)]
    seg = x[start : start + w]
    corr = scipy.signal.correlate(zz, seg, mode="full", method="fft")
    lags = scipy.signal.correlation_lags(zz.size, seg.size, mode="full") + (z_start - start)
    keep = (lags >= lo) & (lags <= hi)
    corr, lags = corr[keep], lags[keep]
    if corr.size == 0 or corr.max() <= 0:
        return prior
    rising = np.r_[True, corr[1:] >= corr[:-1]]
    falling = np.r_[corr[:-1] >= corr[1:], True]
    candidates = np.flatnonzero(rising & falling & (corr >= rel_peak * corr.max()))
    best = candidates[np.argmin(np.abs(lags[candidates] - prior))]
    return int(lags[best])


def _shift_to_length(z: np.ndarray, lag: int, n: int) -> np.ndarray:
    """Return ``z[lag : lag + n]`` zero-padded on either side to exactly ``n``."""
    out = np.zeros(n, dtype=np.float32)
    src, dst = max(lag, 0), max(-lag, 0)
    m = min(n - dst, z.size - src)
    if m > 0:
        out[dst : dst + m] = z[src : src + m]
    return out


def codec_roundtrip(
    y: np.ndarray,
    sr: int,
    codec: str,
    bitrate: int,
    *,
    container: str | None = None,
    codec_sr: int | None = None,
    max_lag_s: float = 0.1,
    align_window_s: float = 20.0,
) -> np.ndarray:
    """Encode with a lossy codec in memory, decode, and re-align to the input.

    The signal is encoded with PyAV/FFmpeg into an in-memory container
    (:class:`io.BytesIO`), decoded back to mono float32 at ``sr`` and cut to
    the input length.

    Codec delay is compensated in two steps: a known-priming prior (AAC in
    ADTS keeps 1024 priming samples; AAC in MP4 and LAME MP3 are already
    aligned by the demuxer thanks to the edit list / gapless header), then a
    cross-correlation search for the integer lag within ``max_lag_s`` around
    that prior. With FFmpeg's encoders the result is aligned to the sample
    when ``codec_sr == sr``; when the encoder runs at another rate the
    residual misalignment is below one sample at ``sr``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono input signal.
    sr : int
        Sample rate of ``y`` in Hz.
    codec : str
        FFmpeg encoder name, e.g. ``"aac"``, ``"libmp3lame"`` or ``"mp3"``
        (an alias resolving to the available MP3 encoder). See
        ``av.codecs_available``.
    bitrate : int
        Target bit rate in bit/s (e.g. ``32000`` for 32 kbit/s).
    container : str or None
        FFmpeg muxer name (``"mp4"``, ``"adts"``, ``"mp3"``, ...). ``None``
        picks ``"mp4"`` for AAC and ``"mp3"`` for MP3.
    codec_sr : int or None
        Sample rate in Hz the encoder runs at. ``None`` uses ``sr`` when the
        encoder supports it, else the next supported rate up.
    max_lag_s : float
        Half-width in seconds of the lag search around the known priming.
    align_window_s : float
        Length in seconds of the (loudest) excerpt of ``y`` used for the
        cross-correlation; bounds the cost on long inputs.

    Returns
    -------
    y_coded : np.ndarray [shape=(n,), dtype=float32]
        Decoded signal, time-aligned with ``y`` and of the same length.

    Raises
    ------
    ValueError
        If the encoder is not available in the PyAV build or ``bitrate`` is
        not in bit/s.
    """
    x = _as_mono_float32(y)
    sr = int(sr)
    if bitrate < 1000:
        raise ValueError(f"bitrate is in bit/s (e.g. 32000), got {bitrate}")
    try:
        encoder = av.Codec(codec, "w")
    except Exception as exc:  # av raises its own UnknownCodecError
        raise ValueError(f"encoder {codec!r} is not available in this PyAV build") from exc
    if x.size == 0:
        return x.copy()
    name = encoder.name
    container = container or _DEFAULT_CONTAINER.get(name) or _DEFAULT_CONTAINER.get(codec)
    if container is None:
        raise ValueError(f"no default container for {codec!r}; pass container=")
    rate = int(codec_sr) if codec_sr else _encoder_rate(encoder, sr)
    data = _encode(x, sr, name, container, bitrate, rate, _encoder_format(encoder))
    z = _decode_to_mono(io.BytesIO(data), sr)
    prior = round(_KNOWN_PRIMING.get((name, container), 0) * sr / rate)
    lag = _estimate_lag(
        z, x, prior, max_lag=round(max_lag_s * sr), window=round(align_window_s * sr)
    )
    return _shift_to_length(z, lag, x.size)
