"""Decode any file, URL or in-memory bytes FFmpeg reads: mono float32 PCM and grey frames.

PyAV (FFmpeg inside the wheel) does the demuxing, decoding, resampling and scaling. One pass
over the container feeds both outputs, so a network sample is read once and a recording is
demuxed once. Audio comes in chunks of bounded size and frames in small batches, so an
hour-long recording never sits whole in memory; the fingerprinters consume them as streams.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from .sinks import AudioSink, FrameSink
from .types import FrameBatch

__all__ = [
    "DecodeError",
    "FrameBatch",
    "decode_audio",
    "decode_frames",
    "iter_audio",
    "iter_frames",
    "iter_media",
    "probe_duration",
]

Source = str | os.PathLike[str] | bytes | io.BufferedIOBase

#: Default chunk length (seconds of output audio). 30 s at 8 kHz is 960 kB of float32.
DEFAULT_CHUNK_SECONDS = 30.0
#: Default width of decoded frames (pixels). Perceptual hashes look at 32 x 32 pixels; 192
#: columns leave room to find black bars and picture-in-picture windows, and scaling down
#: inside FFmpeg (area averaging) is cheaper than carrying full frames into Python.
DEFAULT_FRAME_WIDTH = 192


class DecodeError(Exception):
    """The input could not be decoded: missing, corrupt, unsupported, or without the media
    asked for. The message names the source and what was wrong, in one line."""


def _describe(source: Source) -> str:
    if isinstance(source, bytes | io.BufferedIOBase):
        return "<in-memory bytes>"
    return str(source)


def _open(source: Source, timeout: float | None) -> av.container.InputContainer:
    what = _describe(source)
    if isinstance(source, bytes):
        if not source:
            raise DecodeError(f"{what}: empty input")
        source = io.BytesIO(source)
    elif not isinstance(source, io.BufferedIOBase):
        text = os.fspath(source)
        if "://" not in text:
            path = Path(text)
            if not path.exists():
                raise DecodeError(f"{what}: no such file")
            if path.is_dir():
                raise DecodeError(f"{what}: is a directory, not a media file")
            if path.stat().st_size == 0:
                raise DecodeError(f"{what}: empty file")
        source = text
    try:
        return av.open(source, mode="r", timeout=timeout)
    except av.FFmpegError as exc:
        if isinstance(source, str) and "://" in source:
            raise DecodeError(f"{what}: cannot open stream ({_reason(exc)})") from None
        raise DecodeError(f"{what}: not a readable media file ({_reason(exc)})") from None
    except (OSError, ValueError) as exc:
        raise DecodeError(f"{what}: cannot open ({exc})") from None


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[-1].strip() if ":" in text else text


def iter_media(
    source: Source,
    *,
    sample_rate: int | None = None,
    fps: float | None = None,
    width: int = DEFAULT_FRAME_WIDTH,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    max_seconds: float | None = None,
    keyframes: bool | None = None,
    timeout: float | None = 20.0,
    require: str = "any",
    fast_video: bool = False,
) -> Iterator[np.ndarray | FrameBatch]:
    """Decode ``source`` once, yielding audio chunks and frame batches as they come.

    Parameters
    ----------
    source : path, URL, bytes or binary file object
        Anything FFmpeg demuxes. The first audio and the first video stream are used.
    sample_rate : int or None
        Audio output rate in Hz (the fingerprint rate, e.g. 8000); ``None``: no audio.
    fps : float or None
        Frames per second to keep (references densely, queries sparsely); ``None``: no video.
    width : int
        Width of output frames in pixels (never upscaled); the height keeps the display
        aspect ratio.
    chunk_seconds : float
        Target audio chunk length in seconds; the last chunk may be shorter.
    max_seconds : float or None
        Stop after this much media (seconds); ``None`` reads to the end.
    keyframes : bool or None
        Decode keyframes only: much cheaper, and right when keyframes come at least ``fps``
        times a second. ``None`` switches to it after four such keyframes, and back as soon
        as one is late; ``True`` forces it, ``False`` never.
    timeout : float or None
        FFmpeg open/read timeout in seconds for network sources.
    fast_video : bool
        Skip non-reference frames and the deblocking filter: half the CPU of broadcast
        H.264 (B-frames), for live references that sample 5 of 25 frames per second and
        hash them at 64 x 64 pixels, where deblocking makes no difference that survives
        (see ``fingerprinting/VIDEO.md``), in one thread. Frames keep their true timestamps.
    require : {"any", "audio", "video"}
        Which output must exist: a missing one raises :class:`DecodeError`.

    Yields
    ------
    ndarray of float32 (an audio chunk) or :class:`FrameBatch`
    """
    if sample_rate is None and fps is None:
        raise ValueError("ask for audio (sample_rate), video (fps) or both")
    what = _describe(source)
    container = _open(source, timeout)
    try:
        a_stream = container.streams.audio[0] if sample_rate and container.streams.audio else None
        v_stream = container.streams.video[0] if fps and container.streams.video else None
        if require == "audio" and a_stream is None:
            raise DecodeError(f"{what}: no audio stream")
        if require == "video" and v_stream is None:
            raise DecodeError(f"{what}: no video stream")
        if a_stream is None and v_stream is None:
            wanted = " or ".join(k for k, v in (("audio", sample_rate), ("video", fps)) if v)
            raise DecodeError(f"{what}: no {wanted} stream")
        t0 = container.start_time / av.time_base if container.start_time is not None else 0.0
        audio_sink = frame_sink = None
        if a_stream is not None:
            a_stream.thread_type = "AUTO"
            limit = None if max_seconds is None else int(round(max_seconds * sample_rate))
            chunk_len = max(1, int(round(chunk_seconds * sample_rate)))
            audio_sink = AudioSink(sample_rate, chunk_len, limit)
        if v_stream is not None:
            v_stream.thread_type = "AUTO"
            if fast_video:
                v_stream.codec_context.skip_frame = "NONREF"
                v_stream.codec_context.options = {"skip_loop_filter": "all"}
                # Many feeds decode at once: decoder threads would only add switching
                # (3 more threads per feed with "AUTO", measured at 100 feeds).
                v_stream.thread_type = "SLICE"
                v_stream.thread_count = 1
            frame_sink = FrameSink(v_stream, fps, width, t0, max_seconds, keyframes)
        streams = [s for s in (a_stream, v_stream) if s is not None]
        yield from _demux(container, streams, audio_sink, frame_sink, what)
        if audio_sink is not None:
            yield from audio_sink.finish()
        if frame_sink is not None:
            yield from frame_sink.finish()
        produced_audio = audio_sink is not None and audio_sink.produced > 0
        produced_video = frame_sink is not None and frame_sink.produced > 0
        if require == "audio" and not produced_audio:
            raise DecodeError(f"{what}: no decodable audio")
        if require == "video" and not produced_video:
            raise DecodeError(f"{what}: no decodable video frames")
        if not (produced_audio or produced_video):
            raise DecodeError(f"{what}: no decodable audio or video")
    finally:
        container.close()


def _demux(
    container: av.container.InputContainer,
    streams: list,
    audio_sink: AudioSink | None,
    frame_sink: FrameSink | None,
    what: str,
) -> Iterator[np.ndarray | FrameBatch]:
    errors = 0
    packets = container.demux(*streams)
    while True:
        if (audio_sink is None or audio_sink.done) and (frame_sink is None or frame_sink.done):
            return
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as exc:
            raise DecodeError(f"{what}: corrupt stream ({_reason(exc)})") from None
        is_video = packet.stream.type == "video"
        sink = frame_sink if is_video else audio_sink
        if sink is None or sink.done:
            continue
        for pk in frame_sink.to_decode(packet) if is_video else (packet,):
            try:
                decoded = pk.decode()
            except av.FFmpegError:
                # One damaged packet in a broadcast capture is normal; many are not.
                errors += 1
                if errors > 50:
                    raise DecodeError(f"{what}: too many corrupt packets") from None
                continue
            for frame in decoded:
                yield from sink.push(frame)


def iter_audio(
    source: Source,
    sample_rate: int,
    *,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    max_seconds: float | None = None,
    timeout: float | None = 20.0,
) -> Iterator[np.ndarray]:
    """Yield mono float32 PCM chunks of ``source`` resampled to ``sample_rate`` (Hz).

    Raises :class:`DecodeError` for no audio stream, corrupt data or no decodable audio.
    See :func:`iter_media` for the parameters.
    """
    yield from iter_media(
        source,
        sample_rate=sample_rate,
        chunk_seconds=chunk_seconds,
        max_seconds=max_seconds,
        timeout=timeout,
        require="audio",
    )


def iter_frames(
    source: Source,
    fps: float,
    *,
    width: int = DEFAULT_FRAME_WIDTH,
    max_seconds: float | None = None,
    keyframes: bool | None = None,
    timeout: float | None = 20.0,
) -> Iterator[FrameBatch]:
    """Yield grey frames of ``source`` at ``fps`` frames per second, in batches.

    Raises :class:`DecodeError` for no video stream or no decodable frame. See
    :func:`iter_media` for the parameters.
    """
    yield from iter_media(
        source,
        fps=fps,
        width=width,
        max_seconds=max_seconds,
        keyframes=keyframes,
        timeout=timeout,
        require="video",
    )


def decode_audio(
    source: Source,
    sample_rate: int,
    *,
    max_seconds: float | None = None,
    timeout: float | None = 20.0,
) -> np.ndarray:
    """Decode ``source`` whole into one mono float32 array (for short samples and tests)."""
    chunks = list(iter_audio(source, sample_rate, max_seconds=max_seconds, timeout=timeout))
    return np.concatenate(chunks).astype(np.float32, copy=False)


def decode_frames(source: Source, fps: float, **kwargs: object) -> FrameBatch:
    """Decode ``source``'s frames at ``fps`` whole into one batch (for samples and tests)."""
    return FrameBatch.concat(list(iter_frames(source, fps, **kwargs)))


def probe_duration(source: Source) -> float | None:
    """Container duration in seconds, or ``None`` when the container does not say."""
    container = _open(source, timeout=20.0)
    try:
        if container.duration is None:
            return None
        return container.duration / av.time_base
    finally:
        container.close()
