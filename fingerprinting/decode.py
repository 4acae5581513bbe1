"""Decode any file, URL or in-memory bytes FFmpeg reads into mono float32 PCM, in chunks.

PyAV (FFmpeg inside the wheel) does the demuxing, decoding and resampling. Audio is yielded
in chunks of a bounded size so that an hour-long recording never sits whole in memory; the
fingerprinter consumes the chunks as a stream.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

__all__ = ["DecodeError", "decode_audio", "iter_audio", "probe_duration"]

Source = str | os.PathLike[str] | bytes | io.BufferedIOBase

#: Default chunk length (seconds of output audio). 30 s at 8 kHz is 960 kB of float32.
DEFAULT_CHUNK_SECONDS = 30.0


class DecodeError(Exception):
    """The input could not be decoded into audio: missing, corrupt, unsupported or silent-less.

    The message names the source and what was wrong, in one line, for users and bots.
    """


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


def iter_audio(
    source: Source,
    sample_rate: int,
    *,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    max_seconds: float | None = None,
    timeout: float | None = 20.0,
) -> Iterator[np.ndarray]:
    """Yield mono float32 PCM chunks of ``source`` resampled to ``sample_rate``.

    Parameters
    ----------
    source : path, URL, bytes or binary file object
        Anything FFmpeg demuxes. The first audio stream is used.
    sample_rate : int
        Output rate in Hz (the fingerprint rate, e.g. 8000).
    chunk_seconds : float
        Target chunk length in seconds; the last chunk may be shorter.
    max_seconds : float or None
        Stop after this much output audio (seconds); ``None`` reads to the end.
    timeout : float or None
        FFmpeg open/read timeout in seconds for network sources.

    Raises
    ------
    DecodeError
        No audio stream, corrupt data, or no decodable audio at all.
    """
    what = _describe(source)
    chunk_len = max(1, int(round(chunk_seconds * sample_rate)))
    limit = None if max_seconds is None else int(round(max_seconds * sample_rate))
    container = _open(source, timeout)
    try:
        if not container.streams.audio:
            raise DecodeError(f"{what}: no audio stream")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        # Compressed audio comes in frames of a few ms; resampling each one costs more than
        # decoding it. A FIFO batches them into blocks of about a second first.
        fifo = av.AudioFifo()
        block = None
        pending: list[np.ndarray] = []
        pending_len = 0
        produced = 0

        def frames() -> Iterator[av.AudioFrame | None]:
            nonlocal block, fifo
            errors = 0
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.FFmpegError as exc:
                    raise DecodeError(f"{what}: corrupt stream ({_reason(exc)})") from None
                try:
                    decoded = packet.decode()
                except av.FFmpegError:
                    # One damaged packet in a broadcast capture is normal; many are not.
                    errors += 1
                    if errors > 50:
                        raise DecodeError(f"{what}: too many corrupt audio packets") from None
                    continue
                for frame in decoded:
                    if block is None:
                        block = max(1024, frame.sample_rate)
                    if fifo.samples and (
                        frame.format.name != fifo.format.name
                        or frame.layout.name != fifo.layout.name
                        or frame.sample_rate != fifo.sample_rate
                    ):
                        yield fifo.read()  # the stream changed format: flush what we have
                        fifo = av.AudioFifo()
                    frame.pts = None
                    fifo.write(frame)
                    if fifo.samples >= block:
                        yield fifo.read()
            if fifo.samples:
                yield fifo.read()
            yield None  # flush marker for the resampler

        for frame in frames():
            for out in resampler.resample(frame):
                data = out.to_ndarray().reshape(-1)
                if limit is not None and produced + pending_len + data.size > limit:
                    data = data[: max(0, limit - produced - pending_len)]
                pending.append(data)
                pending_len += data.size
                while pending_len >= chunk_len:
                    buf = np.concatenate(pending)
                    yield buf[:chunk_len]
                    produced += chunk_len
                    rest = buf[chunk_len:]
                    pending, pending_len = ([rest], rest.size) if rest.size else ([], 0)
                if limit is not None and produced + pending_len >= limit:
                    break
            if limit is not None and produced + pending_len >= limit:
                break
        if pending_len:
            yield np.concatenate(pending)
            produced += pending_len
        if produced == 0:
            raise DecodeError(f"{what}: no decodable audio")
    finally:
        container.close()


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


def probe_duration(source: Source) -> float | None:
    """Container duration in seconds, or ``None`` when the container does not say."""
    container = _open(source, timeout=20.0)
    try:
        if container.duration is None:
            return None
        return container.duration / av.time_base
    finally:
        container.close()
