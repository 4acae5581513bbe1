"""Video clips for the Vigie benchmark: the :class:`Clip` type, decoded and encoded with PyAV.

A :class:`Clip` is a constant-frame-rate run of RGB ``uint8`` frames cut from a reference at a
known time. Sizes are in pixels, times in seconds, rates in frames/s and bit rates in bit/s.
:func:`read_clip` and :func:`write_clip` decode and encode clips with PyAV. The pirate
transformations are in :mod:`bench.video_dataset`, which re-exports these three names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = ["Clip", "read_clip", "write_clip"]

_SEEK_MARGIN = 2.0  # s decoded before the start after a seek, to meet a key frame
_MUXERS = {".mp4": "mp4", ".ts": "mpegts", ".mkv": "matroska"}


@dataclass(frozen=True, eq=False)
class Clip:
    """A constant-frame-rate video excerpt.

    Parameters
    ----------
    frames : np.ndarray [shape=(n, height, width, 3), dtype=uint8]
        RGB frames, ``n >= 1``; stored as a read-only view.
    fps : float > 0
        Frame rate in frames/s: frame ``k`` is shown at ``start_seconds + k / fps``.
    start_seconds : float
        Time in seconds, in the reference, of frame 0 (the truth offset of a query).
    """

    frames: np.ndarray
    fps: float
    start_seconds: float = 0.0

    def __post_init__(self) -> None:
        frames = np.ascontiguousarray(self.frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or not len(frames):
            raise ValueError(f"frames must be (n>=1, H, W, 3) uint8, got {frames.shape}")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        view = frames.view()
        view.flags.writeable = False
        object.__setattr__(self, "frames", view)
        object.__setattr__(self, "fps", float(self.fps))
        object.__setattr__(self, "start_seconds", float(self.start_seconds))

    n_frames = property(lambda self: self.frames.shape[0], doc="Number of frames.")
    height = property(lambda self: self.frames.shape[1], doc="Frame height in pixels.")
    width = property(lambda self: self.frames.shape[2], doc="Frame width in pixels.")
    duration = property(lambda self: self.frames.shape[0] / self.fps, doc="``n / fps`` in s.")


def _even(x: float) -> int:
    return max(2, 2 * round(x / 2))


# --------------------------------------------------------------------------- #
# Decoding / encoding
# --------------------------------------------------------------------------- #


def _decode(path: str | os.PathLike, start: float, end: float, max_width: int, seek: bool):
    """``(fps, times, rgb frames)`` with pts in ``[start, end)`` ± half a frame, or ``None``
    if ``seek`` landed after ``start``. After a seek, frames before a key frame are dropped."""
    with av.open(os.fspath(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.guessed_rate or stream.average_rate
        if not rate:
            raise ValueError(f"{path}: unknown frame rate")
        fps, tb, origin = float(rate), stream.time_base, stream.start_time or 0
        sar = stream.sample_aspect_ratio
        display_w = stream.width * (float(sar) if sar and sar > 0 else 1.0)
        scale = min(1.0, max_width / display_w)
        width = min(_even(display_w * scale), max(2, max_width // 2 * 2))
        size = {"width": width, "height": _even(stream.height * scale)}
        if seek:
            container.seek(origin + int((start - _SEEK_MARGIN) / tb), stream=stream)
        keyed, half = not seek, 0.5 / fps
        times: list[float] = []
        images: list[np.ndarray] = []
        for frame in container.decode(stream):
            keyed = keyed or frame.key_frame
            if frame.pts is None or not keyed:
                continue
            t = float((frame.pts - origin) * tb)
            if t < start - half:
                continue
            if t >= end + half:
                break
            if seek and not times and t > start + half:
                return None
            times.append(t)
            images.append(frame.to_ndarray(format="rgb24", interpolation="AREA", **size))
    return fps, times, images


def _nearest(t: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Index of the element of sorted ``t`` nearest to each ``target``."""
    hi = np.clip(np.searchsorted(t, target), 0, len(t) - 1)
    lo = np.maximum(hi - 1, 0)
    return np.where(np.abs(target - t[lo]) <= np.abs(t[hi] - target), lo, hi)


def read_clip(
    path: str | os.PathLike,
    start_seconds: float = 0.0,
    seconds: float | None = None,
    max_width: int = 640,
) -> Clip:
    """Decode an excerpt of the first video stream with PyAV, as RGB at constant frame rate.

    Times come from the frame pts, relative to the stream start time (MPEG-TS files may start
    at any pts). The demuxer seeks 2 s before ``start_seconds`` and decodes from the next key
    frame (from the file start if that key frame is after ``start_seconds``). Frame 0 is the
    decoded frame nearest to ``start_seconds``, frame ``k`` the one nearest to ``t0 + k / fps``
    (the identity for constant-rate files; variable-rate ones get frames repeated/dropped).

    Parameters
    ----------
    path : str or os.PathLike
        Any file FFmpeg reads.
    start_seconds : float
        Excerpt start in seconds from the start of the stream.
    seconds : float or None
        Excerpt length in seconds (``round(seconds * fps)`` frames, fewer at the end of the
        file); ``None`` reads to the end.
    max_width : int
        Largest output width in pixels. Frames are scaled (area filter, never up) to square
        pixels (the sample aspect ratio is applied), both dimensions rounded to even.

    Returns
    -------
    clip : Clip
        ``fps`` is the stream's nominal rate, ``start_seconds`` the exact time of frame 0.

    Raises
    ------
    ValueError
        No video stream, or no frame in the requested window.
    """
    end = np.inf if seconds is None else start_seconds + seconds
    got = None
    if start_seconds > _SEEK_MARGIN:
        got = _decode(path, start_seconds, end, max_width, seek=True)
    if not got or not got[1]:
        got = _decode(path, start_seconds, end, max_width, seek=False)
    fps, times, images = got
    if not times:
        raise ValueError(f"{path}: no video frame between {start_seconds} s and {end} s")
    t, first = np.unique(times, return_index=True)
    n = int(np.floor((t[-1] - t[0]) * fps + 0.5)) + 1
    if seconds is not None:
        n = min(n, max(1, round(seconds * fps)))
    idx = first[_nearest(t, t[0] + np.arange(n) / fps)]
    return Clip(np.stack([images[i] for i in idx]), fps, float(t[0]))


def write_clip(
    path: str | os.PathLike,
    clip: Clip,
    *,
    bitrate: int | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    gop: int | None = None,
    preset: str = "veryfast",
) -> Path:
    """Encode a clip as a video-only file: MP4, MPEG-TS or Matroska, from the suffix.

    Frame ``k`` gets pts ``k`` in a time base of ``1 / fps``, the rate being an exact
    fraction (``29.97`` -> 2997/100, ``30000 / 1001`` stays NTSC), so the first pts is 0 and
    the duration ``n / fps``. MPEG-TS is written without B-frames, so that its first pts is 0
    too (the muxer would otherwise shift everything by the reordering delay).

    Parameters
    ----------
    path : str or os.PathLike
        Output file: ``.mp4``, ``.ts`` or ``.mkv``. Parent folders are created.
    clip : Clip
        Frames to encode (even dimensions for 4:2:0 pixel formats).
    bitrate : int or None
        Target bit rate in bit/s: ABR with a VBV (max rate ``bitrate``, 2 s buffer) as for a
        streamed channel. ``None`` keeps the encoder's default quality (x264: CRF 23).
    codec : str
        FFmpeg video encoder.
    pix_fmt : str
        Encoder pixel format (RGB is converted with the BT.601 matrix, as read back).
    gop : int or None
        Key-frame interval in frames; ``None`` keeps the encoder default (x264: 250).
    preset : str
        x264/x265 speed preset.

    Returns
    -------
    path : Path
        The written file.
    """
    path = Path(path)
    fmt = _MUXERS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"unsupported suffix {path.suffix!r}; use one of {sorted(_MUXERS)}")
    if "420" in pix_fmt and (clip.width % 2 or clip.height % 2):
        raise ValueError(f"{pix_fmt} needs even dimensions, got {clip.width}x{clip.height}")
    rate = Fraction(clip.fps).limit_denominator(1001)
    options = {"preset": preset} if codec in ("libx264", "libx265") else {}
    if fmt == "mpegts":
        options["bf"] = "0"
    if bitrate:
        options |= {"maxrate": str(int(bitrate)), "bufsize": str(int(2 * bitrate))}
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, pix_fmt
        stream.time_base = time_base = 1 / rate  # the muxer changes the stream's own later
        stream.options = options
        if bitrate:
            stream.bit_rate = int(bitrate)
        if gop:
            stream.codec_context.gop_size = int(gop)
        for k, image in enumerate(clip.frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = k, time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path
