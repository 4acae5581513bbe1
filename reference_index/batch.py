"""Batch indexing of recordings into a channel, in parallel processes.

Workers decode and fingerprint (CPU-bound: one process per core); the parent alone writes
to the index, one committed track per recording, so a crash loses at most the recordings
in flight and a re-run replaces rather than duplicates.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from fingerprinting import audio
from fingerprinting.audio import AudioParams
from fingerprinting.decode import DecodeError, iter_audio
from fingerprinting.types import AudioPrint

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
    """Outcome of one recording: its track, or the error that stopped it."""

    source: str
    track: Track | None
    seconds: float
    error: str | None


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


def fingerprint_file(source: str, params: AudioParams) -> AudioPrint:
    """Decode ``source`` in chunks and fingerprint it; memory stays bounded."""
    return audio.fingerprint_stream(iter_audio(source, params.sample_rate), params)


def _work(source: str, params: AudioParams) -> tuple[str, AudioPrint | None, str | None]:
    try:
        return source, fingerprint_file(source, params), None
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

    def commit(source: str, prints: AudioPrint | None, error: str | None) -> None:
        if prints is None:
            done = IndexedFile(source, None, 0.0, error)
        else:
            track = index.add_recording(channel_id, source, prints)
            done = IndexedFile(source, track, prints.duration_seconds, None)
        results.append(done)
        if on_done:
            on_done(done)

    params = index.audio_params
    if jobs <= 1 or len(sources) <= 1:
        for src in sources:
            commit(*_work(src, params))
    else:
        ctx = mp.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            for src, prints, err in _as_completed(pool, sources, params, jobs):
                commit(src, prints, err)
    index.audio.compact()
    return results


def _as_completed(
    pool: ProcessPoolExecutor, sources: list[str], params: AudioParams, jobs: int
) -> Iterator[tuple[str, AudioPrint | None, str | None]]:
    """Keep at most ``2 x jobs`` recordings in flight (their prints wait in memory)."""
    pending: set[Future] = set()
    todo = iter(sources)
    for src in todo:
        pending.add(pool.submit(_work, src, params))
        if len(pending) >= 2 * jobs:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
    for fut in pending:
        yield fut.result()
