"""Where a scan's artefacts live and how they are read (the contract shared with the UI).

``<data_dir>/evidence/scans/<scan_id>/``, written once at scan time by
:mod:`service.evidence.writer`::

    capture/evidence.json        capture record, credentials masked, + sealed_sha256
    capture/playlists/NNN.m3u8   playlist bodies as received (NNN: index in "playlists")
    capture/segments/NNN.<ext>   media bytes as decoded (NNN: index in "ranges"), up to
                                 settings.evidence_max_bytes in all
    sample/audio.wav             the sample's mono PCM, 16-bit, at the fingerprint rate
    sample/frames/q_<ms>.jpg     suspect frames kept for matching (ms: sample time)
    reference/<channel>/r_<ms>.jpg   reference frames at the matched offsets (ms: query time)
    reference/<channel>/frames.json  [{"query_seconds", "reference_seconds", "path"}]
    alignment.json               {channel: {"audio": {"query_seconds": [...],
                                  "reference_seconds": [...]} | null, "video": ...}}
    match.json                   the scan's result dict (verdict, matches, sample), with
                                 the decision ("decision": verdict, note, reason, message)
    params.json                  the fingerprint parameters the scan ran with

Paths are relative POSIX paths; :meth:`ScanArtefacts.path` refuses anything outside the
folder or not in it, so a relpath from a URL cannot reach other files.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..settings import Settings
from .files import check_relpath

__all__ = ["ScanArtefacts", "evidence_root", "scan_folder", "scans_root"]

_SUSPECT = re.compile(r"^sample/frames/q_(\d+)\.jpg$")
_REFERENCE = re.compile(r"^reference/[^/]+/r_(\d+)\.jpg$")


def evidence_root(settings: Settings) -> Path:
    """``<data_dir>/evidence``: scans' artefacts and matches' signed manifests."""
    return Path(settings.data_dir) / "evidence"


def scans_root(settings: Settings) -> Path:
    return evidence_root(settings) / "scans"


def scan_folder(settings: Settings, scan_id: int) -> Path:
    return scans_root(settings) / str(int(scan_id))


class ScanArtefacts:
    """The stored artefacts of one scan (a published folder never changes, so its file
    list is read once)."""

    def __init__(self, folder: Path, scan_id: int) -> None:
        self.folder = folder
        self.scan_id = scan_id
        self._files = _walk(folder)

    @classmethod
    def open(cls, settings: Settings, scan_id: int) -> ScanArtefacts | None:
        """The scan's artefacts; ``None`` when it has none (scanned before they were
        kept, or not finished)."""
        folder = scan_folder(settings, scan_id)
        if not folder.is_dir():
            return None
        return cls(folder, int(scan_id))

    def files(self) -> list[str]:
        """Every artefact's relpath, sorted."""
        return list(self._files)

    def path(self, relpath: str) -> Path:
        """The file of an artefact; ``KeyError`` for a relpath that is not one (outside
        the folder, a folder, unknown)."""
        check_relpath(relpath)
        if relpath not in self._files:
            raise KeyError(relpath)
        return self.folder / relpath

    def read_json(self, relpath: str) -> object | None:
        """A JSON artefact's value, ``None`` when the scan has no such file."""
        try:
            return json.loads(self.path(relpath).read_bytes())
        except KeyError:
            return None

    def suspect_frames(self) -> list[tuple[float, str]]:
        """``(sample seconds, relpath)`` of the suspect frames, in time order."""
        found = []
        for rel in self._files:
            m = _SUSPECT.match(rel)
            if m:
                found.append((int(m.group(1)) / 1000.0, rel))
        return sorted(found)

    def reference_frames(self, channel_id: str) -> list[tuple[float, float, str]]:
        """``(query s, reference s, relpath)`` of a channel's reference frames, in query
        time order (reference seconds: asset seconds, or UTC epoch seconds for live).

        Reference times are those stored beside the frames (``frames.json``); a folder
        without that list (written to the bare layout) gets them from the match's
        offset and speed in ``match.json``, else from the alignment's matched points.
        """
        try:
            folder = check_relpath(f"reference/{channel_id}")
        except KeyError:
            return []
        listed = self.read_json(f"{folder}/frames.json")
        if listed is not None:
            out = [
                (float(f["query_seconds"]), float(f["reference_seconds"]), f["path"])
                for f in listed
                if f.get("path") in self._files
            ]
            return sorted(out)
        frames = []
        for rel in self._files:
            m = _REFERENCE.match(rel)
            if m and rel.startswith(f"{folder}/"):
                frames.append((int(m.group(1)) / 1000.0, rel))
        at = self._reference_time(channel_id)
        if at is None:
            return []
        return sorted((q, at(q), rel) for q, rel in frames)

    def _reference_time(self, channel_id: str) -> Callable[[float], float] | None:
        """Reference time of a sample time, from the match or the alignment."""
        record = self.read_json("match.json") or {}
        for m in record.get("matches") or []:
            if m.get("channel_id") == channel_id and m.get("offset_seconds") is not None:
                offset, speed = float(m["offset_seconds"]), float(m.get("speed") or 1.0)
                return lambda q: offset + q * speed
        alignment = self.alignment(channel_id) or {}
        for modality in ("video", "audio"):
            part = alignment.get(modality) or {}
            q, r = part.get("query_seconds") or [], part.get("reference_seconds") or []
            pairs = sorted(zip(q, r, strict=False))  # a damaged file: the common part
            if pairs:
                qs, rs = [p[0] for p in pairs], [p[1] for p in pairs]
                return lambda q, qs=qs, rs=rs: float(np.interp(q, qs, rs))
        return None

    def alignment(self, channel_id: str) -> dict | None:
        """The matched hashes/frames of a channel, as in ``alignment.json``."""
        data = self.read_json("alignment.json") or {}
        return data.get(channel_id)


def _walk(folder: Path) -> list[str]:
    """Relpaths of the regular files under ``folder`` (symbolic links are not followed
    and not listed)."""
    out = []
    for parent, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(parent, d)))
        for name in names:
            full = os.path.join(parent, name)
            if os.path.isfile(full) and not os.path.islink(full):
                out.append(Path(full).relative_to(folder).as_posix())
    return sorted(out)
