"""Batch indexing of recordings into a channel, in parallel processes.

Workers decode and fingerprint (CPU-bound: one process per core), audio and video from one
pass over each file; the parent alone writes to the index, one committed track per
recording and modality, so a crash loses at most the recordings in flight and a re-run
replaces rather than duplicates.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fingerprinting import audio, video
from fingerprinting.decode import DecodeError, FrameBatch, iter_media
from fingerprinting.params import AudioParams, VideoParams
from fingerprinting.types import AudioPrint, VideoPrint

from .index import Index
from .store.base import Track

__all__ = ["MEDIA_SUFFIXES", "IndexedFile", "expand_sources", "fingerprint_file", "reindex"]

#: File name suffixes taken from folders (explicitly named files are always tried).
MEDIA_SUFFIXES = frozenset(
    [
        ".aac",
        ".ac3",
        ".flac",
        ".flv",
        ".m4a",
        ".mkv",
        ".mov",
        ".mp2",
        ".mp3",
        ".mp4",
        ".mpg",
        ".mts",
        ".oga",
        ".ogg",
        ".opus",
        ".ts",
        ".wav",
        ".webm",
        ".wma",
        ".wmv",
        ".m2ts",
        ".avi",
    ]
)


@dataclass(frozen=True)
class IndexedFile:
    """Outcome of one recording: its tracks (one per modality it has), or the error."""

    source: str
    tracks: dict[str, Track]
    seconds: float
    error: str | None

    @property
    def track(self) -> Track | None:
        """The audio track, else the video track (``None`` if the recording failed)."""
        return self.tracks.get("audio") or self.tracks.get("video")


@dataclass(frozen=True)
class RecordingPrints:
    """Fingerprints of one recording; a modality the file lacks is ``None``."""

    audio: AudioPrint | None
    video: VideoPrint | None

    @property
    def seconds(self) -> float:
        """Duration of the longest modality, in seconds."""
        return max((p.duration_seconds for p in (self.audio, self.video) if p), default=0.0)


def expand_sources(items: Iterable[str]) -> list[str]:
    """Files and URLs as given; folders replaced by their media files (recursive, sorted)."""
    out: list[str] = []
    for item in items:
        path = Path(item)
        if "://" not in item and path.is_dir():
            out.extend(
                str(p)
                for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES
            )
        else:
            out.append(item)
    return out


def fingerprint_file(
    source: str, params: AudioParams, video_params: VideoParams = VideoParams()
) -> RecordingPrints:
    """Decode ``source`` once, in chunks, and fingerprint its audio and its pictures.

    Memory stays bounded: audio chunks feed the peak picker as they come and frame batches
    are hashed at once, so only the hashes accumulate.
    """
    batches: list[VideoPrint] = []
    saw_audio = False

    def audio_chunks() -> Iterator:
        nonlocal saw_audio
        media = iter_media(
            source,
            sample_rate=params.sample_rate,
            fps=video_params.ref_fps,
            width=video_params.frame_width,
        )
        for item in media:
            if isinstance(item, FrameBatch):
                batches.append(video.fingerprint_frames([item], video_params))
            else:
                saw_audio = True
                yield item

    audio_print = audio.fingerprint_stream(audio_chunks(), params)
    video_print = _join_video(batches, video_params) if batches else None
    return RecordingPrints(audio_print if saw_audio else None, video_print)


def _join_video(parts: list[VideoPrint], p: VideoParams) -> VideoPrint:
    frames = np.concatenate([v.frames for v in parts])
    hashes = np.concatenate([v.hashes for v in parts])
    frames, first = np.unique(frames, return_index=True)
    end = max(v.duration_seconds for v in parts)
    return VideoPrint(hashes[first], frames, p.hop_seconds, end)


def _work(
    source: str, params: AudioParams, video_params: VideoParams
) -> tuple[str, RecordingPrints | None, str | None]:
    try:
        return source, fingerprint_file(source, params, video_params), None
    except DecodeError as exc:
        return source, None, str(exc)


def reindex(
    index: Index,
    channel_id: str,
    sources: list[str],
    *,
    jobs: int = 1,
    on_done: Callable[[IndexedFile], None] | None = None,
) -> list[IndexedFile]:
    """Fingerprint ``sources`` into ``channel_id``; returns one :class:`IndexedFile` each.

    A recording that was indexed before is replaced. ``jobs`` > 1 uses that many worker
    processes. The index is compacted at the end so queries search few segments.
    """
    results: list[IndexedFile] = []

    def commit(source: str, prints: RecordingPrints | None, error: str | None) -> None:
        if prints is None:
            done = IndexedFile(source, {}, 0.0, error)
        else:
            tracks = {
                modality: index.add_recording(channel_id, source, fp)
                for modality, fp in (("audio", prints.audio), ("video", prints.video))
                if fp is not None
            }
            done = IndexedFile(source, tracks, prints.seconds, None)
        results.append(done)
        if on_done:
            on_done(done)

    params = (index.audio_params, index.video_params)
    if jobs <= 1 or len(sources) <= 1:
        for src in sources:
            commit(*_work(src, *params))
    else:
        ctx = mp.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            for src, prints, err in _as_completed(pool, sources, params, jobs):
                commit(src, prints, err)
    index.audio.compact()
    index.video.compact()
    return results


def _as_completed(
    pool: ProcessPoolExecutor,
    sources: list[str],
    params: tuple[AudioParams, VideoParams],
    jobs: int,
) -> Iterator[tuple[str, RecordingPrints | None, str | None]]:
    """Keep at most ``2 x jobs`` recordings in flight (their prints wait in memory)."""
    pending: set[Future] = set()
    todo = iter(sources)
    for src in todo:
        pending.add(pool.submit(_work, src, *params))
        if len(pending) >= 2 * jobs:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
    for fut in pending:
        yield fut.result()
