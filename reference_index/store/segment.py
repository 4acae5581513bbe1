"""Immutable posting segments: one file of postings sorted by hash, memory-mapped for reads.

File layout (little-endian)::

    b"VIGSEG1\\n"                       8 bytes magic
    header length                       uint32
    header (JSON, padded to 64 bytes)   n, key dtype, tracks [[track_id, base, frames]], crc32
    keys                                n x key dtype, sorted ascending, padded to 64 bytes
    locs                                n x uint32: track base + frame within the track

A posting's location packs the track and the frame into 32 bits: each track of the segment
owns the range ``[base, base + frames)``. Eight bytes per audio posting (hash + location)
is what keeps the index near 1 MB per channel-hour.

Files are written under a temporary name, fsynced, then renamed into place, and the folder
is fsynced: a reader (or a process restarted after ``kill -9``) sees either the whole file
or none of it.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Segment", "SegmentError", "equal_ranges", "fsync_dir", "write_segment"]

MAGIC = b"VIGSEG1\n"
_ALIGN = 64


class SegmentError(Exception):
    """A segment file is damaged or not a segment."""


def _pad(n: int) -> int:
    return (-n) % _ALIGN


def equal_ranges(sorted_keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``sorted_keys`` equal to each query key, without a Python loop.

    Returns ``(query_pos, key_pos)``: one element per match, the query's index and the
    matching position in ``sorted_keys``.
    """
    lo = np.searchsorted(sorted_keys, query, side="left")
    hi = np.searchsorted(sorted_keys, query, side="right")
    counts = hi - lo
    qpos = np.repeat(np.arange(query.size), counts)
    # lo[q], lo[q] + 1, ..., hi[q] - 1 for every q: a ramp restarted at each range.
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return qpos, starts + np.arange(qpos.size)


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_segment(
    path: Path,
    keys: np.ndarray,
    track_ids: np.ndarray,
    frames: np.ndarray,
) -> dict:
    """Sort postings by key and write them atomically to ``path``.

    Parameters
    ----------
    keys : ndarray (uint32 or uint64)
        Hash of each posting.
    track_ids : ndarray of int
        Track id of each posting.
    frames : ndarray of int
        Frame of each posting within its track (>= 0).

    Returns
    -------
    dict
        The header written (tracks with their ranges, counts, checksum).
    """
    keys = np.asarray(keys)
    track_ids = np.asarray(track_ids, np.int64)
    frames = np.asarray(frames, np.int64)
    if not (keys.size == track_ids.size == frames.size):
        raise ValueError("keys, track_ids and frames must have the same length")
    if frames.size and frames.min() < 0:
        raise ValueError("frames must be >= 0")
    uniq, inverse = np.unique(track_ids, return_inverse=True)
    lengths = np.zeros(uniq.size, np.int64)
    np.maximum.at(lengths, inverse, frames + 1)
    bases = np.concatenate([[0], np.cumsum(lengths)[:-1]])[: uniq.size]
    if uniq.size and bases[-1] + lengths[-1] >= 2**32:
        raise ValueError("segment spans more than 2^32 frames; split it")
    locs = (bases[inverse] + frames).astype(np.uint32)
    order = np.lexsort((locs, keys))
    keys_sorted = np.ascontiguousarray(keys[order])
    locs_sorted = np.ascontiguousarray(locs[order])
    crc = zlib.crc32(keys_sorted.tobytes())
    crc = zlib.crc32(locs_sorted.tobytes(), crc)
    header = {
        "n": int(keys.size),
        "key_dtype": keys_sorted.dtype.str,
        "tracks": [[int(t), int(b), int(n)] for t, b, n in zip(uniq, bases, lengths, strict=True)],
        "crc32": crc,
    }
    raw = json.dumps(header).encode()
    head_len = len(MAGIC) + 4 + len(raw)
    raw += b" " * _pad(head_len)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(MAGIC)
        fh.write(np.uint32(len(raw)).tobytes())
        fh.write(raw)
        fh.write(keys_sorted.tobytes())
        fh.write(b"\0" * _pad(keys_sorted.nbytes))
        fh.write(locs_sorted.tobytes())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return header


@dataclass
class Segment:
    """A memory-mapped segment (read-only)."""

    path: Path
    keys: np.ndarray
    locs: np.ndarray
    track_ids: np.ndarray  # per track of the segment, sorted by base
    bases: np.ndarray
    crc32: int

    @classmethod
    def open(cls, path: Path) -> Segment:
        """Map ``path``; raises :class:`SegmentError` if it is not a whole segment."""
        size = path.stat().st_size
        with open(path, "rb") as fh:
            if fh.read(len(MAGIC)) != MAGIC:
                raise SegmentError(f"{path}: not a posting segment")
            head_len = int(np.frombuffer(fh.read(4), np.uint32)[0])
            try:
                header = json.loads(fh.read(head_len))
            except ValueError:
                raise SegmentError(f"{path}: damaged header") from None
        n = header["n"]
        key_dtype = np.dtype(header["key_dtype"])
        off_keys = len(MAGIC) + 4 + head_len
        off_locs = off_keys + n * key_dtype.itemsize + _pad(n * key_dtype.itemsize)
        if size != off_locs + 4 * n:
            raise SegmentError(f"{path}: truncated ({size} bytes, expected {off_locs + 4 * n})")
        if n:
            keys = np.memmap(path, key_dtype, "r", offset=off_keys, shape=(n,))
            locs = np.memmap(path, np.uint32, "r", offset=off_locs, shape=(n,))
        else:
            keys, locs = np.empty(0, key_dtype), np.empty(0, np.uint32)
        tracks = np.asarray(header["tracks"], np.int64).reshape(-1, 3)
        return cls(path, keys, locs, tracks[:, 0], tracks[:, 1], int(header["crc32"]))

    def verify(self) -> bool:
        """Recompute the checksum of the postings (reads the whole file)."""
        crc = zlib.crc32(np.ascontiguousarray(self.keys).tobytes())
        return zlib.crc32(np.ascontiguousarray(self.locs).tobytes(), crc) == self.crc32

    def lookup(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Postings whose key equals a query key.

        Returns ``(query_pos, track_id, frame)``: for every hit, the position in ``query``
        of the key that hit, the posting's track id and its frame within the track.
        """
        qpos, pos = equal_ranges(self.keys, np.asarray(query, self.keys.dtype))
        locs = np.asarray(self.locs[pos], np.int64)
        t = np.searchsorted(self.bases, locs, side="right") - 1
        return qpos, self.track_ids[t], locs - self.bases[t]
