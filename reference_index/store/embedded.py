"""Embedded posting store: immutable memory-mapped segments, a JSON manifest, an in-memory head.

Folder layout::

    manifest.json      params, tracks, live segment names (the only source of truth)
    seg-000001.vseg    immutable segments (see segment.py)
    LOCK               flock()ed by writers

Commit protocol: a writer takes the lock, re-reads the manifest, writes new segment files
(temp + fsync + rename), then writes the new manifest the same way. A segment becomes
visible only when the manifest that names it is renamed into place, so a writer killed at
any moment leaves the previous state; files no manifest names are swept at the next write.
Readers never lock: they re-read the manifest when its file changes.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .base import Hits, ParamsMismatch, Track
from .segment import Segment, equal_ranges, fsync_dir, write_segment

__all__ = ["EmbeddedStore"]

_MANIFEST = "manifest.json"


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class EmbeddedStore:
    """Posting store in one folder. Safe for one writer process and many reader processes.

    Parameters
    ----------
    root : Path
        Folder of the store (created if missing).
    params : dict
        Fingerprint parameters the postings are made with. Opening an existing store with
        other parameters raises :class:`ParamsMismatch`.
    key_dtype : numpy dtype
        Dtype of posting keys (uint32 for audio triplet hashes, uint64 for frame hashes).
    parts : int
        Independent key spaces, each with its own segments: multi-index hashing stores every
        frame hash once per chunk, rotated so that chunk leads the key. A track's postings in
        all parts are committed together.
    prefix_bits : int or None
        Segment directories cover exactly this many top key bits, for
        :meth:`lookup_prefix`; ``None`` sizes them for exact lookups.
    """

    def __init__(
        self,
        root: Path,
        params: dict,
        key_dtype: np.dtype = np.dtype(np.uint32),
        *,
        parts: int = 1,
        prefix_bits: int | None = None,
    ):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.params = dict(params)
        self.key_dtype = np.dtype(key_dtype)
        self.parts = int(parts)
        self.prefix_bits = prefix_bits
        self._stamp: tuple[int, int] | None = None
        self._manifest: dict = {}
        self._segments: dict[str, Segment] = {}
        self._tracks: dict[int, Track] = {}
        self._live_ids = np.empty(0, np.int64)
        # Head: postings appended since the last flush, per track (live ingestion); keys
        # have shape (parts, n).
        self._head: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._head_sorted: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        if not (self.root / _MANIFEST).exists():
            with self._locked():
                if not (self.root / _MANIFEST).exists():
                    _write_json_atomic(self.root / _MANIFEST, self._empty_manifest())
        self.refresh()
        if self._manifest.get("parts", 1) != self.parts:
            raise ParamsMismatch(
                f"{self.root} has {self._manifest.get('parts', 1)} key spaces, not {self.parts}"
            )
        if self._manifest["params"] != self.params:
            raise ParamsMismatch(
                f"{self.root} was built with other fingerprint parameters "
                f"({_diff(self._manifest['params'], self.params)}); run `vigie reindex --all`"
            )

    # -- reading ---------------------------------------------------------------------------
    def _empty_manifest(self) -> dict:
        return {
            "version": 1,
            "params": self.params,
            "key_dtype": self.key_dtype.str,
            "parts": self.parts,
            "next_track": 1,
            "next_segment": 1,
            "segments": [],
            "tracks": {},
        }

    def refresh(self) -> None:
        """Reload the manifest if another process committed since we last read it."""
        st = (self.root / _MANIFEST).stat()
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp == self._stamp:
            return
        manifest = json.loads((self.root / _MANIFEST).read_text())
        segments = {}
        for name in manifest["segments"]:
            segments[name] = self._segments.get(name) or Segment.open(self.root / name)
        self._manifest, self._segments, self._stamp = manifest, segments, stamp
        self._tracks = {int(k): Track(**v) for k, v in manifest["tracks"].items()}
        self._live_ids = np.array(sorted(self._tracks), np.int64)

    def tracks(self) -> dict[int, Track]:
        """Tracks visible to queries."""
        self.refresh()
        return dict(self._tracks)

    @property
    def segment_names(self) -> list[str]:
        """Segments of the current manifest, oldest first."""
        return list(self._manifest["segments"])

    def disk_bytes(self) -> int:
        """Bytes of the segment files currently in use."""
        return sum((self.root / n).stat().st_size for n in self._manifest["segments"])

    def posting_count(self) -> int:
        """Postings in segments (including those of removed, not yet compacted tracks)."""
        return sum(int(s.keys.size) for s in self._segments.values())

    def lookup(
        self, keys: np.ndarray, track_ids: np.ndarray | None = None, *, part: int = 0
    ) -> Hits:
        """Every posting of key space ``part`` whose key is in ``keys``; see
        :class:`PostingStore`."""
        self.refresh()
        keys = np.asarray(keys, self.key_dtype)
        found = [seg.lookup(keys) for seg in self._part_segments(part)]
        hk, ht, hf = self._head_part(part)
        qpos, pos = equal_ranges(hk, keys)
        found.append((qpos, ht[pos], hf[pos]))
        return self._hits(found, track_ids)

    def lookup_prefix(
        self,
        prefixes: np.ndarray,
        bits: int,
        track_ids: np.ndarray | None = None,
        *,
        part: int = 0,
    ) -> Hits:
        """Every posting of key space ``part`` whose top ``bits`` key bits equal a prefix,
        with the posting's whole key (``Hits.key``) for the caller to verify."""
        self.refresh()
        prefixes = np.asarray(prefixes, np.uint64)
        found = [seg.lookup_prefix(prefixes, bits) for seg in self._part_segments(part)]
        hk, ht, hf = self._head_part(part)
        if hk.size:
            width = np.uint64(8 * self.key_dtype.itemsize - bits)
            head_prefix = hk.astype(np.uint64) >> width
            qpos, pos = equal_ranges(head_prefix, prefixes)
            found.append((qpos, ht[pos], hf[pos], hk[pos]))
        return self._hits(found, track_ids)

    def _part_segments(self, part: int) -> list[Segment]:
        if not 0 <= part < self.parts:
            raise ValueError(f"part must be in [0, {self.parts}), not {part}")
        return [seg for seg in self._segments.values() if seg.part == part]

    def _hits(self, found: list[tuple], track_ids: np.ndarray | None) -> Hits:
        wanted = self._live_ids if track_ids is None else np.asarray(track_ids, np.int64)
        q = np.concatenate([np.asarray(p[0], np.int64) for p in found])
        t = np.concatenate([np.asarray(p[1], np.int64) for p in found])
        f = np.concatenate([np.asarray(p[2], np.int64) for p in found])
        keep = np.isin(t, wanted)
        key = None
        if all(len(p) == 4 for p in found):
            key = np.concatenate([np.asarray(p[3], self.key_dtype) for p in found])[keep]
        return Hits(q[keep], t[keep], f[keep], key)

    def _head_part(self, part: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Head postings of one key space, sorted by key: (keys, tracks, frames)."""
        if not self._head:
            empty = np.empty(0, np.int64)
            return np.empty(0, self.key_dtype), empty, empty
        if part not in self._head_sorted:
            k = np.concatenate([a[part] for ps in self._head.values() for a, _ in ps])
            fr = np.concatenate([b for ps in self._head.values() for _, b in ps])
            tr = np.concatenate(
                [np.full(b.size, tid, np.int64) for tid, ps in self._head.items() for _, b in ps]
            )
            order = np.argsort(k, kind="stable")
            self._head_sorted[part] = (k[order], tr[order], fr[order].astype(np.int64))
        return self._head_sorted[part]

    def _as_parts(self, keys: np.ndarray) -> np.ndarray:
        """Keys as shape (parts, n) in the store's dtype; 1-D keys need ``parts == 1``."""
        keys = np.asarray(keys)
        if keys.ndim == 1 and self.parts == 1:
            keys = keys[None, :]
        if keys.ndim != 2 or keys.shape[0] != self.parts:
            raise ValueError(f"keys must have shape ({self.parts}, n), not {keys.shape}")
        return keys.astype(self.key_dtype)

    # -- writing ---------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / "LOCK", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextmanager
    def _transaction(self) -> Iterator[dict]:
        """Lock, hand out a fresh copy of the manifest, commit it atomically on success."""
        with self._locked():
            self._stamp = None
            self.refresh()
            manifest = json.loads(json.dumps(self._manifest))
            yield manifest
            _write_json_atomic(self.root / _MANIFEST, manifest)
            self._sweep(manifest)
        self.refresh()

    def _sweep(self, manifest: dict) -> None:
        """Delete segment files and temp files no committed manifest names."""
        live = set(manifest["segments"])
        for path in self.root.iterdir():
            name = path.name
            if (name.startswith("seg-") and name not in live) or ".tmp-" in name:
                path.unlink(missing_ok=True)

    def _new_segment(
        self,
        manifest: dict,
        keys: np.ndarray,
        tracks: np.ndarray,
        frames: np.ndarray,
        part: int = 0,
    ) -> str:
        """Write postings as a new segment file; the caller decides where the manifest lists it."""
        name = f"seg-{manifest['next_segment']:06d}.vseg"
        manifest["next_segment"] += 1
        write_segment(
            self.root / name,
            keys.astype(self.key_dtype),
            tracks,
            frames,
            part=part,
            prefix_bits=self.prefix_bits,
        )
        return name

    def add_track(
        self,
        channel_id: str,
        source: str,
        keys: np.ndarray,
        frames: np.ndarray,
        *,
        hop_seconds: float,
        kind: str = "asset",
        start: float = 0.0,
        length_frames: int | None = None,
    ) -> Track:
        """Store a whole track in its own segment (one per part); replaces the same
        channel+source track. ``keys`` has shape (n,), or (parts, n) for a multi-part store."""
        if kind not in ("asset", "live"):
            raise ValueError(f"kind must be 'asset' or 'live', not {kind!r}")
        keys = self._as_parts(keys)
        frames = np.asarray(frames, np.int64)
        n_frames = int(frames.max()) + 1 if frames.size else 0
        length = max(n_frames, int(length_frames or 0))
        with self._transaction() as manifest:
            tid = manifest["next_track"]
            manifest["next_track"] += 1
            if keys.shape[1]:
                for part, part_keys in enumerate(keys):
                    name = self._new_segment(
                        manifest, part_keys, np.full(part_keys.size, tid), frames, part
                    )
                    manifest["segments"].append(name)
            for old_id, old in list(manifest["tracks"].items()):
                if old["channel_id"] == channel_id and old["source"] == source:
                    del manifest["tracks"][old_id]
            track = Track(tid, channel_id, source, kind, float(start), length, hop_seconds)
            manifest["tracks"][str(tid)] = track.as_dict()
        return track

    def remove_tracks(self, track_ids: list[int]) -> None:
        """Hide tracks from queries; their postings are dropped by :meth:`compact`."""
        with self._transaction() as manifest:
            for tid in track_ids:
                manifest["tracks"].pop(str(int(tid)), None)

    def remove_channel(self, channel_id: str) -> int:
        """Hide every track of a channel; returns how many."""
        ids = [t.id for t in self.tracks().values() if t.channel_id == channel_id]
        self.remove_tracks(ids)
        return len(ids)

    def append(self, track_id: int, keys: np.ndarray, frames: np.ndarray) -> None:
        """Add postings of an existing track to the in-memory head (live ingestion)."""
        if track_id not in self._tracks:
            raise KeyError(f"no track {track_id}")
        self._head.setdefault(track_id, []).append(
            (self._as_parts(keys), np.asarray(frames, np.int64))
        )
        self._head_sorted = {}

    def flush(self) -> None:
        """Write the head as one segment per part and extend its tracks' lengths."""
        if not self._head:
            return
        keys = np.concatenate([a for ps in self._head.values() for a, _ in ps], axis=1)
        frames = np.concatenate([b for ps in self._head.values() for _, b in ps])
        tracks = np.concatenate(
            [np.full(b.size, tid, np.int64) for tid, ps in self._head.items() for _, b in ps]
        )
        with self._transaction() as manifest:
            for part, part_keys in enumerate(keys):
                manifest["segments"].append(
                    self._new_segment(manifest, part_keys, tracks, frames, part)
                )
            for tid in np.unique(tracks):
                rec = manifest["tracks"].get(str(int(tid)))
                if rec is not None:
                    rec["frames"] = max(rec["frames"], int(frames[tracks == tid].max()) + 1)
        self._head.clear()
        self._head_sorted = {}

    def compact(self, max_postings: int = 50_000_000) -> int:
        """Merge segments into as few as possible, dropping postings of removed tracks.

        Segments are merged oldest first into outputs of at most ``max_postings`` postings
        (400 MB of audio postings). Returns the number of segments after compaction.
        """
        with self._transaction() as manifest:
            merged: list[str] = []
            for part in range(self.parts):
                names = [n for n in manifest["segments"] if self._segments[n].part == part]
                merged.extend(self._merge(manifest, names, max_postings, part))
            manifest["segments"] = merged
        return len(self._manifest["segments"])

    def _merge(self, manifest: dict, names: list[str], max_postings: int, part: int) -> list[str]:
        """Merge the segments ``names`` of one part, oldest first; returns the new list."""
        live = np.array(sorted(int(k) for k in manifest["tracks"]), np.int64)
        merged: list[str] = []
        batch: list[Segment] = []
        count = 0

        def flush_batch() -> None:
            nonlocal batch, count
            if not batch:
                return
            if len(batch) == 1 and np.all(np.isin(batch[0].track_ids, live)):
                merged.append(batch[0].path.name)
            else:
                ks, ts, fs = [], [], []
                for seg in batch:
                    locs = np.asarray(seg.locs, np.int64)
                    t = np.searchsorted(seg.bases, locs, side="right") - 1
                    tid = seg.track_ids[t]
                    keep = np.isin(tid, live)
                    ks.append(np.asarray(seg.keys)[keep])
                    ts.append(tid[keep])
                    fs.append((locs - seg.bases[t])[keep])
                keys = np.concatenate(ks)
                if keys.size:
                    merged.append(
                        self._new_segment(
                            manifest, keys, np.concatenate(ts), np.concatenate(fs), part
                        )
                    )
            batch, count = [], 0

        for name in names:
            seg = self._segments[name]
            if count and count + seg.keys.size > max_postings:
                flush_batch()
            batch.append(seg)
            count += int(seg.keys.size)
        flush_batch()
        return merged


def _diff(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:4])
