"""The manifest file of an embedded store: the one source of truth, replaced atomically.

A writer takes ``LOCK`` (``flock``), re-reads the manifest, writes its new segment files,
then renames a new manifest into place and fsyncs the folder. Readers never lock: they
re-read the manifest when its file changes.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .base import Track
from .segment import fsync_dir

__all__ = [
    "MANIFEST",
    "empty_manifest",
    "existing_tracks",
    "locked",
    "params_diff",
    "sweep",
    "write_json_atomic",
]

MANIFEST = "manifest.json"


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` so that a crash leaves the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the store's writer lock (blocks until other writers are done)."""
    with open(root / "LOCK", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def empty_manifest(params: dict, key_dtype: str, parts: int) -> dict:
    """The manifest of a new store."""
    return {
        "version": 1,
        "params": params,
        "key_dtype": key_dtype,
        "parts": parts,
        "next_track": 1,
        "next_segment": 1,
        "segments": [],
        "tracks": {},
        "coverage": {},
    }


def existing_tracks(manifest: dict) -> dict[int, Track]:
    """Every track whose postings must be kept: visible ones and staged ones (written by
    a re-index not yet published)."""
    tracks = {int(k): Track(**v) for k, v in manifest["tracks"].items()}
    for staged in manifest.get("staged", {}).values():
        tracks.update({int(k): Track(**v) for k, v in staged.items()})
    return tracks


def sweep(root: Path, manifest: dict) -> None:
    """Delete segment files and temp files the committed ``manifest`` does not name (called
    under the lock: no other writer has files in flight)."""
    live = set(manifest["segments"])
    for path in root.iterdir():
        name = path.name
        if (name.startswith("seg-") and name not in live) or ".tmp-" in name:
            path.unlink(missing_ok=True)


def params_diff(old: dict, new: dict) -> str:
    """The first few parameters that differ, for error messages."""
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:4])
