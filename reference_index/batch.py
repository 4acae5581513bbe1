"""Batch indexing of recordings into a channel, in parallel processes, resumable.

Workers decode and fingerprint (CPU-bound: one process per core), audio and video from one
pass over each file; the parent alone writes to the index. A run is a *job* (named from
the channel and the recordings): each recording's tracks are staged (durable, invisible
to queries) and listed in the job's file as done, and when every recording is done the
job is published: each modality swaps in all its new tracks in one commit, replacing the
old ones of the same recordings. So queries never see a half-re-indexed channel, a crash
loses at most the recordings in flight, and re-running the same command resumes.

The pass that decodes a recording's pictures for hashing also keeps reference thumbnails
(:mod:`.thumbs`), written for the staged video track before the recording counts as done:
they become visible with the track, and the thumbnails of the tracks it replaces are
deleted after the job is published. The audio track's reference peaks (:mod:`.peakstore`)
follow the same rule: :meth:`Index.add_recording` writes them with the staged track, before
the recording is listed as done, so a run killed in between redoes that recording.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fingerprinting import audio, video
from fingerprinting.decode import DecodeError, FrameBatch, iter_media
from fingerprinting.params import AudioParams, VideoParams
from fingerprinting.types import AudioPrint, VideoPrint

from .generations import Recording, current_generation, new_generation, recordings, swap
from .index import Index
from .store.base import Track
from .store.manifest import write_json_atomic
from .thumbs import ThumbParams, Thumbs, ThumbSampler

__all__ = [
    "MEDIA_SUFFIXES",
    "IndexedFile",
    "expand_sources",
    "fingerprint_file",
    "job_name",
    "reindex",
    "reindex_all",
    "stamp_of",
]

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
    """Fingerprints of one recording; a modality the file lacks is ``None``; ``thumbs``
    are its reference thumbnails (``None`` when not asked for)."""

    audio: AudioPrint | None
    video: VideoPrint | None
    thumbs: Thumbs | None = None

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
    source: str,
    params: AudioParams,
    video_params: VideoParams = VideoParams(),
    thumb_params: ThumbParams | None = None,
) -> RecordingPrints:
    """Decode ``source`` once, in chunks, and fingerprint its audio and its pictures; with
    ``thumb_params``, keep reference thumbnails of the pictures too.

    Memory stays bounded: audio chunks feed the peak picker as they come and frame batches
    are hashed at once, so only the hashes (and the thumbnails: 5 MB an hour) accumulate.
    """
    batches: list[VideoPrint] = []
    thumbs: list[Thumbs] = []
    sampler = ThumbSampler(thumb_params) if thumb_params is not None else None
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
                if sampler is not None:
                    thumbs.append(sampler.take(item))
            else:
                saw_audio = True
                yield item

    audio_print = audio.fingerprint_stream(audio_chunks(), params)
    video_print = _join_video(batches, video_params) if batches else None
    kept = Thumbs.concat(thumbs) if sampler is not None else None
    return RecordingPrints(audio_print if saw_audio else None, video_print, kept)


def _join_video(parts: list[VideoPrint], p: VideoParams) -> VideoPrint:
    frames = np.concatenate([v.frames for v in parts])
    hashes = np.concatenate([v.hashes for v in parts])
    frames, first = np.unique(frames, return_index=True)
    end = max(v.duration_seconds for v in parts)
    return VideoPrint(hashes[first], frames, p.hop_seconds, end)


def _work(
    source: str,
    params: AudioParams,
    video_params: VideoParams,
    thumb_params: ThumbParams | None = None,
) -> tuple[str, RecordingPrints | None, str | None]:
    try:
        return source, fingerprint_file(source, params, video_params, thumb_params), None
    except DecodeError as exc:
        return source, None, str(exc)


def stamp_of(source: str) -> str:
    """Version of a recording: size and modification time of a file ("" for a URL), so a
    resumed job redoes a recording that changed since it was staged."""
    try:
        st = os.stat(source)
    except OSError:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"


def job_name(channel_id: str, sources: list[str]) -> str:
    """The job of indexing ``sources`` into ``channel_id``: the same command, the same job."""
    text = "\n".join([channel_id, *sorted(sources)])
    return "reindex-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _job_file(index: Index, job: str) -> Path:
    return index.home / "jobs" / f"{job}.json"


def _job_done(index: Index, job: str) -> dict[str, dict]:
    """Recordings the job has staged whole: source -> {stamp, seconds, error}."""
    path = _job_file(index, job)
    return json.loads(path.read_text())["done"] if path.exists() else {}


def reindex(
    index: Index,
    channel_id: str,
    sources: list[str],
    *,
    jobs: int = 1,
    on_done: Callable[[IndexedFile], None] | None = None,
) -> list[IndexedFile]:
    """Fingerprint ``sources`` into ``channel_id``; returns one :class:`IndexedFile` each.

    Recordings indexed before are replaced, all at once at the end (see the module
    docstring); recordings a killed run of the same job had finished are not fingerprinted
    again. ``jobs`` > 1 uses that many worker processes. The index is compacted at the end
    so queries search few segments, and the thumbnails of replaced tracks are deleted.
    Reference thumbnails are made with ``index.thumb_params``.
    """
    job = job_name(channel_id, sources)
    path = _job_file(index, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    done_before = _job_done(index, job)
    staged = {m: index.store(m).staged(job) for m in ("audio", "video")}
    results: list[IndexedFile] = []
    record = {"channel_id": channel_id, "done": dict(done_before)}

    def report(done: IndexedFile) -> None:
        results.append(done)
        if on_done:
            on_done(done)

    def commit(source: str, prints: RecordingPrints | None, error: str | None) -> None:
        if prints is None:
            done = IndexedFile(source, {}, 0.0, error)
        else:
            tracks = {}
            for modality, fp in (("video", prints.video), ("audio", prints.audio)):
                if fp is None:
                    continue
                track = index.add_recording(channel_id, source, fp, stamp=stamp_of(source), job=job)
                tracks[modality] = track
                if modality == "video" and prints.thumbs is not None:
                    index.add_thumbnails(track, prints.thumbs)
            done = IndexedFile(source, tracks, prints.seconds, None)
        record["done"][source] = {
            "stamp": stamp_of(source),
            "seconds": done.seconds,
            "error": done.error,
        }
        write_json_atomic(path, record)  # after its tracks: "done" means durable
        report(done)

    todo = []
    for src in sources:
        before = done_before.get(src)
        if before is not None and before["stamp"] == stamp_of(src):
            tracks = {m: staged[m][src] for m in staged if src in staged[m]}
            # Killed after publishing, before forgetting the job: the tracks are visible.
            tracks = tracks or _visible_tracks(index, channel_id, src)
            report(IndexedFile(src, tracks, before["seconds"], before["error"]))
        else:
            todo.append(src)
    params = (index.audio_params, index.video_params, index.thumb_params)
    if jobs <= 1 or len(todo) <= 1:
        for src in todo:
            commit(*_work(src, *params))
    else:
        ctx = mp.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            for src, prints, err in _as_completed(pool, todo, params, jobs):
                commit(src, prints, err)
    index.publish(job)
    path.unlink(missing_ok=True)
    index.audio.compact()
    index.video.compact()
    index.drop_stale_packs()
    return results


def _visible_tracks(index: Index, channel_id: str, source: str) -> dict[str, Track]:
    found = {}
    for modality in ("audio", "video"):
        for t in index.store(modality).tracks().values():
            if t.channel_id == channel_id and t.source == source:
                found[modality] = t
    return found


def reindex_all(
    root: Path,
    extra: list[Recording] | None = None,
    *,
    jobs: int = 1,
    on_done: Callable[[IndexedFile], None] | None = None,
    audio_params: AudioParams = AudioParams(),
    video_params: VideoParams = VideoParams(),
    thumb_params: ThumbParams = ThumbParams(),
) -> tuple[str, list[IndexedFile]]:
    """Rebuild every recording of the current generation (and ``extra`` ones, such as the
    catalog's assets) into a new generation with these parameters, then swap it in.

    Returns the new generation's name and one :class:`IndexedFile` per recording. Live
    postings are not carried over (their media is gone): live feeds fill the new
    generation again as they are ingested. Killed midway, the next call resumes. The new
    generation has its own reference thumbnails, made with ``thumb_params``.
    """
    root = Path(root)
    wanted = set(recordings(root / current_generation(root))) | set(extra or [])
    params = {"audio": audio_params.index_dict(), "video": video_params.index_dict()}
    name = new_generation(root, params)
    index = Index(root, audio_params, video_params, generation=name, thumb_params=thumb_params)
    by_channel: dict[str, list[str]] = {}
    for rec in sorted(wanted, key=lambda r: (r.channel_id, r.source)):
        by_channel.setdefault(rec.channel_id, []).append(rec.source)
    results = []
    for channel_id, sources in by_channel.items():
        results += reindex(index, channel_id, sources, jobs=jobs, on_done=on_done)
    swap(root, name)
    return name, results


def _as_completed(
    pool: ProcessPoolExecutor,
    sources: list[str],
    params: tuple[AudioParams, VideoParams, ThumbParams],
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
