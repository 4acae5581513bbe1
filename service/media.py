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

__all__ = ["change_speed", "synth_pictures", "synth_programme", "write_audio", "write_video"]


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


def synth_pictures(
    seconds: float, fps: float, seed: int, width: int = 320, height: int = 180
) -> np.ndarray:
    """RGB uint8 frames ``(n, height, width, 3)`` of synthetic "television", deterministic for
    a ``seed``: scenes of 1.5-4 s, each a drifting two-colour wave with 3-5 shapes bouncing
    across it, so pictures change within a scene and jump at cuts, as programmes do."""
    import cv2

    rng = np.random.default_rng(seed)
    n = max(1, round(seconds * fps))
    cuts = np.cumsum(rng.uniform(1.5, 4.0, int(seconds / 1.5) + 2))
    scene_of = np.searchsorted(cuts, np.arange(n) / fps, side="right")
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / max(width, height)
    frames = np.empty((n, height, width, 3), np.uint8)
    scenes: dict[int, dict] = {}
    for i in range(n):
        k = int(scene_of[i])
        if k not in scenes:
            m, angle = int(rng.integers(3, 6)), rng.uniform(0, 2 * np.pi)
            scenes[k] = {
                "ramp": np.cos(angle) * xx + np.sin(angle) * yy,
                "colours": rng.uniform(0, 255, (2, 3)).astype(np.float32),
                "wave": rng.uniform((0.5, -0.4), (3.0, 0.4)),
                "p0": rng.uniform(0, 1, (m, 2)),
                "v": rng.uniform(-0.5, 0.5, (m, 2)),
                "r": np.maximum(2, rng.uniform(0.05, 0.2, m) * height).astype(int).tolist(),
                "colour": rng.integers(0, 256, (m, 3)).tolist(),
            }
        sc, t = scenes[k], i / fps
        c0, c1 = sc["colours"]
        g = 0.5 + 0.5 * np.sin(2 * np.pi * sc["wave"][0] * (sc["ramp"] + sc["wave"][1] * t))
        img = frames[i]
        img[:] = c0 + (c1 - c0) * g[..., None]
        centres = (1 - np.abs((sc["p0"] + sc["v"] * t) % 2 - 1)) * (width, height)
        for j, ((x, y), r, colour) in enumerate(
            zip(centres.astype(int).tolist(), sc["r"], sc["colour"], strict=True)
        ):
            if j % 2:
                cv2.circle(img, (x, y), r, colour, -1)
            else:
                cv2.rectangle(img, (x - r, y - r // 2), (x + r, y + r // 2), colour, -1)
    return frames


def write_video(
    path: Path,
    frames: np.ndarray | None,
    fps: float,
    pcm: np.ndarray | None = None,
    sr: int = 22050,
    bitrate: int | None = None,
    keyframe_seconds: float | None = None,
    preset: str = "veryfast",
) -> Path:
    """Write H.264 video (RGB frames at ``fps``) and/or AAC audio (mono float32 at ``sr``
    Hz) into one file (.mp4, .ts, .mkv), interleaved as a broadcaster's muxer would.

    ``keyframe_seconds``: a keyframe exactly this often and no scene-cut ones, as HLS
    packagers need to cut segments where asked (``None``: x264's own choice)."""
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as out:
        vs = a_s = None
        if frames is not None:
            vs = out.add_stream("libx264", rate=rate)
            vs.height, vs.width = frames.shape[1:3]
            vs.pix_fmt = "yuv420p"
            vs.options = {"preset": preset}
            if keyframe_seconds is not None:
                keyint = max(1, round(keyframe_seconds * fps))
                vs.options["x264-params"] = f"keyint={keyint}:min-keyint={keyint}:scenecut=0"
            if bitrate:
                vs.bit_rate = bitrate
        if pcm is not None:
            a_s = out.add_stream("aac", rate=sr, layout="mono")
            a_s.open()
        packets = []
        if vs is not None:
            for k, img in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts, frame.time_base = k, 1 / rate
                packets += vs.encode(frame)
            packets += vs.encode(None)
        if a_s is not None:
            resampler = av.AudioResampler(format=a_s.format.name, layout="mono", rate=sr)
            frame = av.AudioFrame.from_ndarray(
                np.clip(pcm, -1, 1).astype(np.float32).reshape(1, -1), format="flt", layout="mono"
            )
            frame.sample_rate, frame.time_base, frame.pts = sr, Fraction(1, sr), 0
            for f in resampler.resample(frame) + resampler.resample(None):
                packets += a_s.encode(f)
            packets += a_s.encode(None)
        packets.sort(key=lambda pk: float((pk.dts or 0) * pk.time_base))
        for pk in packets:
            out.mux(pk)
    return path


def write_hls(
    source: Path,
    out_dir: Path,
    segment_seconds: float,
    kind: str = "mpegts",
    *,
    audio: bool = True,
    video: bool = True,
    playlist: str = "index.m3u8",
) -> Path:
    """Cut ``source`` into a VOD HLS rendition in ``out_dir`` with FFmpeg's ``hls`` muxer
    (stream copy, no re-encoding): segments of ``segment_seconds`` (cut at the first
    keyframe after each; see ``keyframe_seconds`` of :func:`write_video`), MPEG-TS or fMP4
    (``kind``), sound and/or pictures. Returns the playlist's path."""
    if kind not in ("mpegts", "fmp4"):
        raise ValueError(f"kind must be 'mpegts' or 'fmp4', not {kind!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ext = ".m4s" if kind == "fmp4" else ".ts"
    index = out_dir / playlist
    options = {
        "hls_time": f"{segment_seconds:g}",
        "hls_segment_type": kind,
        "hls_playlist_type": "vod",
        "hls_list_size": "0",
        "hls_segment_filename": str(out_dir / f"{index.stem}-%05d{ext}"),
        "hls_fmp4_init_filename": "init.mp4",
    }
    with (
        av.open(str(source)) as inp,
        av.open(str(index), "w", format="hls", options=options) as out,
    ):
        wanted = [
            s for s in inp.streams if (s.type == "video" and video) or (s.type == "audio" and audio)
        ]
        if not wanted:
            raise ValueError(f"{source} has none of the streams asked for")
        outs, filters = {}, {}
        for s in wanted:
            outs[s.index] = o = out.add_stream_from_template(s)
            if kind == "fmp4" and s.codec_context.name == "aac":
                # ADTS AAC (from MPEG-TS) must become raw AAC + AudioSpecificConfig in MP4.
                filters[s.index] = av.BitStreamFilterContext("aac_adtstoasc", s, o)
        for packet in inp.demux(wanted):
            if packet.dts is None:
                continue
            index_in = packet.stream.index
            bsf = filters.get(index_in)
            for pk in bsf.filter(packet) if bsf else [packet]:
                pk.stream = outs[index_in]
                out.mux(pk)
        for index_in, bsf in filters.items():
            for pk in bsf.filter(None):
                pk.stream = outs[index_in]
                out.mux(pk)
    return index
