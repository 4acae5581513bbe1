"""Immutable thumbnail packs: JPEG thumbnails of reference frames, with their times, in one file.

File layout (little-endian)::

    b"VIGTHB1\\n"                       8 bytes magic
    header length                       uint32
    header (JSON, padded to 8 bytes)    n, kind, tracks [[track_id, lo, hi, t_min, t_max]],
                                        blob bytes, crc32
    times                               n x float64: reference time of each thumbnail, in
                                        seconds on its track's axis (asset seconds, or UTC
                                        epoch seconds for live tracks), sorted by (track, time)
    ends                                n x uint64: end of each JPEG in the blob (bytes; the
                                        start is the previous end)
    blob                                the JPEG files, concatenated

Entries ``[lo, hi)`` belong to the track of their header row, so a reader reads the header
once (it is cached: the file never changes), then only the times of the track it wants
(one small read), then only the JPEGs it returns.

Written like posting segments (:func:`~.segment.write_segment`): under a temporary name,
fsynced, renamed into place, folder fsynced. A reader (or a process restarted after
``kill -9``) sees the whole file or none of it; a leftover temporary file is swept by
:class:`~reference_index.thumbs.ThumbStore`.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .segment import fsync_dir

__all__ = ["PACK_SUFFIX", "Pack", "PackError", "merge_packs", "write_pack"]

MAGIC = b"VIGTHB1\n"
PACK_SUFFIX = ".vth"
_ALIGN = 8
_CRC_SLOT = "crc32-slot"  # 10 characters, replaced by the checksum in 10 digits


class PackError(Exception):
    """A thumbnail pack is damaged or not a pack."""


def write_pack(
    path: Path, track_ids: np.ndarray, times: np.ndarray, jpegs: Sequence[bytes], *, kind: str
) -> dict:
    """Write thumbnails atomically to ``path`` (temp, fsync, rename, fsync folder).

    Parameters
    ----------
    track_ids : ndarray of int, shape (n,)
        Track of each thumbnail (a video track of the posting store).
    times : ndarray of float, shape (n,)
        Reference time of each thumbnail, in seconds on its track's axis.
    jpegs : sequence of bytes, length n
        The JPEG files.
    kind : {"asset", "live"}
        What the pack holds: live packs are merged by time bucket and expire; an asset
        pack holds one recording's track and goes with it.

    Returns
    -------
    dict
        The header written. Entries repeating a (track, time) are stored once.
    """
    sizes = np.fromiter((len(j) for j in jpegs), np.int64, len(jpegs))
    return _write(path, track_ids, times, sizes, lambda pick: (jpegs[i] for i in pick), kind)


def merge_packs(path: Path, packs: list[Pack], *, kind: str = "live") -> dict:
    """Write the entries of ``packs`` as one pack at ``path``, streaming the JPEGs from
    the inputs (an hour of 100 live channels is 500 MB: never held in memory). Entries
    found in several inputs (a merge killed before it deleted its inputs) are kept once."""
    tracks, times, sizes, source, entry = [], [], [], [], []
    for k, pack in enumerate(packs):
        ends = pack.ends().astype(np.int64)
        tid = np.zeros(pack.n, np.int64)
        for t, (lo, hi, _, _) in pack.tracks.items():
            tid[lo:hi] = t
        tracks.append(tid)
        times.append(pack.all_times())
        sizes.append(np.diff(np.concatenate([[0], ends])))
        source.append(np.full(pack.n, k, np.int64))
        entry.append(np.arange(pack.n, dtype=np.int64))
    src, ent = np.concatenate(source), np.concatenate(entry)

    def blobs(pick: np.ndarray) -> Iterator[bytes]:
        with ExitStack() as stack:
            handles = [stack.enter_context(open(p.path, "rb")) for p in packs]
            starts = [np.concatenate([[0], p.ends().astype(np.int64)]) for p in packs]
            for i in pick.tolist():
                k, e = int(src[i]), int(ent[i])
                handles[k].seek(packs[k].blob_at + int(starts[k][e]))
                yield handles[k].read(int(starts[k][e + 1] - starts[k][e]))

    return _write(
        path, np.concatenate(tracks), np.concatenate(times), np.concatenate(sizes), blobs, kind
    )


def _write(
    path: Path,
    track_ids: np.ndarray,
    times: np.ndarray,
    sizes: np.ndarray,
    blobs: Callable[[np.ndarray], Iterable[bytes]],
    kind: str,
) -> dict:
    """Order entries by (track, time), drop repeats, write header, arrays and the JPEGs
    ``blobs(pick)`` yields for the kept entries ``pick``, in that order."""
    if kind not in ("asset", "live"):
        raise ValueError(f"kind must be 'asset' or 'live', not {kind!r}")
    track_ids = np.asarray(track_ids, np.int64)
    times = np.asarray(times, np.float64)
    sizes = np.asarray(sizes, np.int64)
    if not (track_ids.size == times.size == sizes.size):
        raise ValueError("track_ids, times and jpegs must have the same length")
    order = np.lexsort((times, track_ids))
    tids, t = track_ids[order], times[order]
    keep = np.ones(order.size, bool)
    keep[1:] = (tids[1:] != tids[:-1]) | (t[1:] != t[:-1])
    pick, tids, t = order[keep], tids[keep], np.ascontiguousarray(t[keep])
    ends = np.cumsum(sizes[pick]).astype(np.uint64)
    firsts = np.flatnonzero(np.concatenate([[True], tids[1:] != tids[:-1]])) if tids.size else []
    bounds = np.append(firsts, tids.size).astype(np.int64)
    header = {
        "n": int(tids.size),
        "kind": kind,
        "tracks": [
            [int(tids[lo]), int(lo), int(hi), float(t[lo]), float(t[hi - 1])]
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        ],
        "blob_bytes": int(ends[-1]) if ends.size else 0,
        "crc32": _CRC_SLOT,
    }
    raw = json.dumps(header).encode()
    raw += b" " * ((-(len(MAGIC) + 4 + len(raw))) % _ALIGN)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(MAGIC)
        fh.write(np.uint32(len(raw)).tobytes())
        head_at = fh.tell()
        fh.write(raw)
        crc = zlib.crc32(t.tobytes())
        crc = zlib.crc32(ends.tobytes(), crc)
        fh.write(t.tobytes())
        fh.write(ends.tobytes())
        written = 0
        for blob in blobs(pick):
            crc = zlib.crc32(blob, crc)
            fh.write(blob)
            written += len(blob)
        if written != header["blob_bytes"]:
            raise ValueError(f"{written} JPEG bytes written, {header['blob_bytes']} expected")
        # The checksum streams with the body; its fixed-width slot in the header is filled
        # in last, before the file gets its name.
        fh.seek(head_at)
        fh.write(raw.replace(_CRC_SLOT.encode(), f"{crc:010d}".encode(), 1))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return {**header, "crc32": crc}


@dataclass(frozen=True)
class Pack:
    """The header of one pack file (what readers cache) and reads of its parts."""

    path: Path
    kind: str
    n: int
    tracks: dict[int, tuple[int, int, float, float]]  # track -> (lo, hi, t_min, t_max)
    times_at: int  # file offset of the times array
    blob_at: int  # file offset of the blob
    crc32: int

    @classmethod
    def open(cls, path: Path) -> Pack:
        """Read a pack's header; raises :class:`PackError` if it is not a whole pack and
        ``FileNotFoundError`` if it is gone (merged or expired meanwhile)."""
        size = path.stat().st_size
        with open(path, "rb") as fh:
            if fh.read(len(MAGIC)) != MAGIC:
                raise PackError(f"{path}: not a thumbnail pack")
            head_len = int(np.frombuffer(fh.read(4), np.uint32)[0])
            try:
                header = json.loads(fh.read(head_len))
            except ValueError:
                raise PackError(f"{path}: damaged header") from None
        n = int(header["n"])
        times_at = len(MAGIC) + 4 + head_len
        blob_at = times_at + 16 * n
        if size != blob_at + int(header["blob_bytes"]):
            raise PackError(f"{path}: truncated ({size} bytes)")
        tracks = {
            int(r[0]): (int(r[1]), int(r[2]), float(r[3]), float(r[4])) for r in header["tracks"]
        }
        return cls(path, header["kind"], n, tracks, times_at, blob_at, int(header["crc32"]))

    @property
    def newest(self) -> float:
        """Latest time of any entry (seconds), -inf for an empty pack."""
        return max((row[3] for row in self.tracks.values()), default=float("-inf"))

    def times(self, track_id: int) -> np.ndarray:
        """Times of one track's thumbnails (sorted; empty if the pack has none of it)."""
        if track_id not in self.tracks:
            return np.empty(0, np.float64)
        lo, hi, _, _ = self.tracks[track_id]
        return np.fromfile(self.path, np.float64, hi - lo, offset=self.times_at + 8 * lo)

    def ends(self) -> np.ndarray:
        """End of every JPEG in the blob (bytes)."""
        return np.fromfile(self.path, np.uint64, self.n, offset=self.times_at + 8 * self.n)

    def all_times(self) -> np.ndarray:
        """Times of every entry, in file order."""
        return np.fromfile(self.path, np.float64, self.n, offset=self.times_at)

    def jpegs(self, entries: np.ndarray) -> list[bytes]:
        """The JPEG bytes of entries (indices in file order): two ends and one JPEG read
        per entry, whatever the size of the pack."""
        out = []
        ends_at = self.times_at + 8 * self.n
        with open(self.path, "rb") as fh:
            for i in np.asarray(entries, np.int64).tolist():
                if i:
                    fh.seek(ends_at + 8 * (i - 1))
                    start, end = np.frombuffer(fh.read(16), np.uint64).tolist()
                else:
                    fh.seek(ends_at)
                    start, end = 0, int(np.frombuffer(fh.read(8), np.uint64)[0])
                fh.seek(self.blob_at + start)
                out.append(fh.read(end - start))
        return out

    def span(self, lo: int, hi: int) -> list[bytes]:
        """The bytes of the consecutive entries ``[lo, hi)`` (file order): one read of their
        ends and one of their bytes."""
        if hi <= lo:
            return []
        ends_at = self.times_at + 8 * self.n
        with open(self.path, "rb") as fh:
            fh.seek(ends_at + 8 * (lo - 1) if lo else ends_at)
            ends = np.frombuffer(fh.read(8 * (hi - lo + (1 if lo else 0))), np.uint64)
            ends = ends.astype(np.int64) if lo else np.concatenate([[0], ends.astype(np.int64)])
            fh.seek(self.blob_at + int(ends[0]))
            blob = fh.read(int(ends[-1] - ends[0]))
        cuts = (ends - ends[0]).tolist()
        return [blob[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]

    def verify(self) -> bool:
        """Recompute the checksum of the body (reads the whole file)."""
        with open(self.path, "rb") as fh:
            fh.seek(self.times_at)
            crc = 0
            while chunk := fh.read(1 << 20):
                crc = zlib.crc32(chunk, crc)
        return crc == self.crc32
