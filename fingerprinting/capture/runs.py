"""Decoding captured bytes: runs of pieces through the detection core's decoder.

Each run (between HLS discontinuities) gets a decoder of its own, because timestamps and
codec parameters may jump there; the sample's times continue where the previous run's
media ended. What was decoded before a capture failure is kept: the sampler decides
whether it is enough.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..decode import DecodeError, iter_media
from ..types import FrameBatch
from .errors import CaptureError
from .evidence import Evidence
from .feed import PieceFeed
from .hls import Piece

if TYPE_CHECKING:
    from .sample import CapturePlan

__all__ = ["Decoded", "decode_once", "decode_pieces", "merge", "video_seconds"]


def video_seconds(frames: FrameBatch) -> float:
    """Span of the frames in seconds, counting the last frame's own duration."""
    if not len(frames):
        return 0.0
    step = float(np.median(np.diff(frames.times))) if len(frames) > 1 else 0.5
    return float(frames.times[-1] - frames.times[0]) + step


@dataclass
class Decoded:
    """Decoded sound (mono float32), frames, and the failure that ended the capture."""

    pcm: np.ndarray
    frames: FrameBatch
    stopped: CaptureError | None


def decode_pieces(
    pieces: Iterator[Piece],
    plan: CapturePlan,
    sample_rate: int | None,
    fps: float | None,
    evidence: Evidence,
    shown: str,
    cancel: threading.Event | None = None,
) -> Decoded:
    """Decode runs of pieces until ``plan.seconds`` of media; each run restarts the
    decoder and its times continue where the previous run's media ended. ``cancel``:
    stop reading when set (the other stream of an alternate-audio capture failed)."""
    feed = PieceFeed(pieces, cancel)
    pcm_parts: list[np.ndarray] = []
    frame_parts: list[FrameBatch] = []
    offset = 0.0
    try:
        while True:
            try:
                run = decode_once(
                    feed.reader,
                    plan,
                    sample_rate,
                    fps,
                    evidence,
                    shown,
                    max_seconds=plan.seconds - offset,
                    first=offset == 0.0,
                )
            except CaptureError:
                # Nothing decodable came before the feed failed: its failure is the reason.
                if feed.error is not None:
                    raise feed.error from None
                raise
            if run is not None:
                pcm_parts.append(run.pcm)
                if len(run.frames):
                    frame_parts.append(FrameBatch(run.frames.times + offset, run.frames.gray))
                ran = run.pcm.size / sample_rate if sample_rate and run.pcm.size else 0.0
                offset += ran or feed.run_seconds or video_seconds(run.frames)
            if offset >= plan.seconds - 0.05 or feed.error is not None or not feed.next_run():
                break
            evidence.note("decoder_restarted", at_seconds=round(offset, 3))
    finally:
        feed.close()
    pcm = np.concatenate(pcm_parts) if pcm_parts else np.zeros(0, np.float32)
    return Decoded(pcm.astype(np.float32, copy=False), _concat(frame_parts), feed.error)


def decode_once(
    source: Callable[[], object],
    plan: CapturePlan,
    sample_rate: int | None,
    fps: float | None,
    evidence: Evidence,
    shown: str,
    *,
    max_seconds: float | None = None,
    first: bool = True,
) -> Decoded | None:
    """One decoder pass over ``source()`` (a path, bytes or a run's reader)."""
    chunks: list[np.ndarray] = []
    batches: list[FrameBatch] = []
    try:
        for item in iter_media(
            source(),
            sample_rate=sample_rate,
            fps=fps,
            width=plan.frame_width,
            chunk_seconds=1.0,
            max_seconds=max_seconds if max_seconds is not None else plan.seconds,
            timeout=None,
            fast_video=plan.fast_video,
        ):
            evidence.mark_first_media()
            (batches if isinstance(item, FrameBatch) else chunks).append(item)
    except DecodeError as exc:
        if not first:
            evidence.note("run_undecodable", message=str(exc))
            return None
        text = str(exc).replace("<in-memory bytes>", shown)
        reason = "no_audio_no_video" if (": no " in text) else "not_media"
        raise CaptureError(reason, text) from None
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return Decoded(pcm, _concat(batches), None)


def _concat(parts: list[FrameBatch]) -> FrameBatch:
    """Join frame batches; a later run at another picture size is scaled to the first."""
    if not parts:
        return FrameBatch.concat([])
    shape = parts[0].gray.shape[1:]
    if any(p.gray.shape[1:] != shape for p in parts):
        import cv2

        parts = [
            p
            if p.gray.shape[1:] == shape
            else FrameBatch(
                p.times,
                np.stack(
                    [cv2.resize(g, shape[::-1], interpolation=cv2.INTER_AREA) for g in p.gray]
                ),
            )
            for p in parts
        ]
    return FrameBatch.concat(parts)


def merge(sound: Decoded, video: Decoded) -> Decoded:
    return Decoded(sound.pcm, video.frames, sound.stopped or video.stopped)
