"""Write a scan's artefacts (layout in :mod:`service.evidence.artefacts`), crash-safe.

A scan attempt writes everything into ``scans/.staging/<scan_id>.<attempt>/`` and fsyncs
it (:func:`stage_scan`); the scan job then publishes it (:meth:`StagedArtefacts.publish`:
a rename to ``scans/<scan_id>/``) inside the transaction that marks the scan done, after
the attempt fence held. So a scan marked done has its complete artefacts; an attempt
killed mid-way leaves only its staging folder, which the next attempt of the scan
removes; an attempt that lost its scan to another worker never publishes; and a folder
already in place is replaced only by an attempt that holds the scan (it was left by an
attempt that died between publishing and committing: that scan was not done).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import wave
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fingerprinting.capture import Evidence, Sample
from fingerprinting.capture.sniff import media_kind

from ..settings import Settings
from .artefacts import scan_folder, scans_root
from .files import canonical_json, fsync_dir, fsync_tree, pretty_json, sha256_hex, write_new
from .matched import Thumbnails, jpeg, millis, write_matched

if TYPE_CHECKING:
    from ..detect import Match

__all__ = [
    "StagedArtefacts",
    "fingerprint_params",
    "scan_record",
    "stage_scan",
]

log = logging.getLogger("vigie.evidence")
#: File suffix of captured media, by what its bytes are (see ``media_kind``).
_SUFFIX = {
    "mpegts": ".ts",
    "mp4": ".mp4",
    "matroska": ".mkv",
    "flv": ".flv",
    "ogg": ".ogg",
    "adts": ".aac",
    "mp3": ".mp3",
    "ac3": ".ac3",
}
STAGING = ".staging"
#: A staging folder older than this is a dead attempt's, whatever its scan, seconds (an
#: attempt holds its scan for the capture deadline plus a margin: minutes, not a day).
STALE_STAGING_SECONDS = 24 * 3600.0


class StagedArtefacts:
    """A scan attempt's complete artefacts, fsynced, not yet visible."""

    def __init__(self, settings: Settings, scan_id: int, attempt: int, path: Path) -> None:
        self.settings, self.scan_id, self.attempt, self.path = settings, scan_id, attempt, path

    def files(self) -> list[str]:
        return sorted(
            p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()
        )

    def publish(self) -> Path:
        """Move the artefacts into ``scans/<scan_id>/`` (replacing a folder left by an
        attempt that did not finish the scan). Call only while holding the scan."""
        final = scan_folder(self.settings, self.scan_id)
        root = final.parent
        if final.exists():
            old = self.path.with_name(f"{self.scan_id}.{self.attempt}.replaced")
            shutil.rmtree(old, ignore_errors=True)
            os.rename(final, old)
            os.rename(self.path, final)
            fsync_dir(root)
            shutil.rmtree(old, ignore_errors=True)
            log.info("scan artefacts replaced those of an unfinished attempt")
        else:
            os.rename(self.path, final)
            fsync_dir(root)
        fsync_dir(self.path.parent)
        return final

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def stage_scan(
    settings: Settings,
    scan_id: int,
    attempt: int,
    *,
    evidence: Evidence | None,
    record: dict,
    params: dict,
    sample: Sample | None = None,
    matches: Sequence[Match] = (),
    thumbnails: Thumbnails | None = None,
    keep_media: bool = True,
) -> StagedArtefacts:
    """Write attempt ``attempt``'s artefacts of scan ``scan_id`` into its staging folder.

    Parameters
    ----------
    evidence : Evidence or None
        The capture record (its retained playlists and media bytes are written too).
    record : dict
        ``match.json``: the scan's result dict with its decision.
    params : dict
        ``params.json``: ``{"audio": {...}, "video": {...}}`` fingerprint parameters.
    sample : Sample or None
        The captured sample (``None`` for a failed capture): audio and frames.
    matches : sequence of Match
        The matches found, for ``alignment.json`` and the reference frames.
    thumbnails : callable or None
        Reference frames of a candidate at sample times (see :data:`Thumbnails`);
        ``None``: no reference frames.
    keep_media : bool
        ``False`` (nothing matched): keep only the capture record, its playlists and the
        decision. The media bytes, audio and frames are what weighs (up to
        ``evidence_max_bytes`` a scan) and, where nothing matched, they prove nothing:
        most scans of a monitoring fleet are of streams that are not ours.
    """
    staging = scans_root(settings) / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(staging, scan_id, attempt)
    folder = staging / f"{scan_id}.{attempt}"
    folder.mkdir()
    try:
        if evidence is not None:
            _write_capture(folder, evidence, keep_media)
        if sample is not None and keep_media:
            _write_sample(folder, sample)
            write_matched(folder, sample, matches, thumbnails)
        write_new(folder / "match.json", pretty_json(record))
        write_new(folder / "params.json", pretty_json(params))
        fsync_tree(folder)
        fsync_dir(staging)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return StagedArtefacts(settings, scan_id, attempt, folder)


def _clear_leftovers(staging: Path, scan_id: int, attempt: int) -> None:
    """Remove what earlier attempts of the scan left in staging (a killed attempt's
    folder, a replaced one), and any staging folder a day old (a scan that failed after
    staging). Later attempts' folders are not touched: this attempt may itself be the
    stale one."""
    stale = time.time() - STALE_STAGING_SECONDS
    for entry in staging.iterdir():
        parts = entry.name.split(".")
        ours = len(parts) >= 2 and parts[0] == str(scan_id) and parts[1].isdigit()
        try:
            old = entry.stat().st_mtime < stale
        except FileNotFoundError:
            continue
        if (ours and int(parts[1]) <= attempt) or old:
            shutil.rmtree(entry, ignore_errors=True)


def _write_capture(folder: Path, evidence: Evidence, keep_media: bool) -> None:
    public = evidence.public()
    public["sealed_sha256"] = sha256_hex(canonical_json(evidence.sealed()))
    write_new(folder / "capture" / "evidence.json", pretty_json(public))
    for i, _, body in evidence.kept_playlists():
        write_new(folder / "capture" / "playlists" / f"{i:03d}.m3u8", body)
    for i, _, data in evidence.kept_ranges() if keep_media else ():
        suffix = _SUFFIX.get(media_kind(data[:4096]) or "", ".bin")
        write_new(folder / "capture" / "segments" / f"{i:03d}{suffix}", data)


def _write_sample(folder: Path, sample: Sample) -> None:
    if sample.pcm.size and sample.sample_rate:
        pcm = np.clip(sample.pcm, -1.0, 1.0)
        data = (pcm * 32767.0).round().astype("<i2").tobytes()
        path = folder / "sample" / "audio.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(int(sample.sample_rate))
            w.writeframes(data)
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(path, 0o444)
    seen: set[int] = set()
    for t, gray in zip(sample.frames.times, sample.frames.gray, strict=True):
        ms = millis(t)
        if ms in seen:
            continue
        seen.add(ms)
        write_new(folder / "sample" / "frames" / f"q_{ms}.jpg", jpeg(gray))


def scan_record(
    data: dict | None,
    verdict: str,
    *,
    note: str | None = None,
    reason: str | None = None,
    message: str | None = None,
) -> dict:
    """``match.json``: the scan's result dict (``ScanRow.result``; for a failed capture,
    an empty one) with the decision taken on it."""
    record = dict(data) if data is not None else {"verdict": verdict, "matches": [], "sample": None}
    record["decision"] = {"verdict": verdict, "note": note, "reason": reason, "message": message}
    return record


def fingerprint_params(audio: object, video: object) -> dict:
    """``params.json``: every field of the audio and video parameters a scan ran with."""
    return {"audio": asdict(audio), "video": asdict(video)}
