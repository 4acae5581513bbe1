"""Byte-level helpers of the evidence store: JSON encodings, hashes, durable writes.

Everything under ``<data_dir>/evidence`` is written once. A file is written and fsynced
before the rename that makes it visible, and the folder holding it is fsynced after, so
a process killed at any point leaves either the old state or the new one, never a torn
file under a final name.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath

__all__ = [
    "MEDIA_TYPES",
    "canonical_json",
    "check_relpath",
    "fsync_dir",
    "fsync_tree",
    "media_type",
    "pretty_json",
    "sha256_file",
    "sha256_hex",
    "write_durable",
    "write_new",
]

#: Media type of each artefact suffix (what the manifest and the zip declare).
MEDIA_TYPES = {
    ".json": "application/json",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".mp4": "video/mp4",
    ".mkv": "video/x-matroska",
    ".flv": "video/x-flv",
    ".aac": "audio/aac",
    ".mp3": "audio/mpeg",
    ".ac3": "audio/ac3",
    ".ogg": "audio/ogg",
    ".wav": "audio/wav",
    ".jpg": "image/jpeg",
    ".pem": "application/x-pem-file",
    ".sig": "application/octet-stream",
    ".bin": "application/octet-stream",
}
#: Read size when hashing files, bytes.
_BLOCK = 1 << 20


def media_type(relpath: str) -> str:
    """The media type of an artefact, from its suffix."""
    return MEDIA_TYPES.get(PurePosixPath(relpath).suffix.lower(), "application/octet-stream")


def canonical_json(value: object) -> bytes:
    """Compact JSON with sorted keys (UTF-8): the form whose SHA-256 is recorded when a
    structure, not a file, is hashed (``sealed_sha256`` of the capture record)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def pretty_json(value: object) -> bytes:
    """Indented JSON with sorted keys and a final newline: the bytes of a JSON artefact
    (readable in a text editor, and the same bytes for the same value)."""
    text = json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> tuple[int, str]:
    """``(bytes, SHA-256 hex)`` of a file, read in blocks of 1 MiB."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def write_new(path: Path, data: bytes, mode: int = 0o444) -> None:
    """Create ``path`` (its folder too) with ``data`` and fsync it; fails if it exists.
    For files inside a staging folder that is renamed into place as a whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
            f.flush()
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(path: Path, data: bytes, mode: int = 0o444) -> None:
    """Write ``path`` atomically: a temporary file beside it, fsynced, renamed over it,
    then the folder fsynced."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    write_new(tmp, data, mode)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (created, renamed, removed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every folder under ``root`` (its files were fsynced as they were written)."""
    for folder, _, _ in os.walk(root):
        fsync_dir(Path(folder))


def check_relpath(relpath: str) -> str:
    """``relpath`` if it is a plain relative POSIX path (no ``..``, ``.``, empty or
    absolute parts, no backslash), else ``KeyError``: what may name an artefact."""
    parts = relpath.split("/")
    if (
        not relpath
        or relpath.startswith("/")
        or "\\" in relpath
        or "\x00" in relpath
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise KeyError(relpath)
    return relpath
