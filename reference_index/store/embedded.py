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
        Dtype of posting keys (uint32 for audio triplet hashes).
    """

    def __init__(self, root: Path, params: dict, key_dtype: np.dtype = np.dtype(np.uint32)):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.params = dict(params)
        self.key_dtype = np.dtype(key_dtype)
        self._stamp: tuple[int, int] | None = None
        self._manifest: dict = {}
        self._segments: dict[str, Segment] = {}
        self._tracks: dict[int, Track] = {}
        self._live_ids = np.empty(0, np.int64)
        # Head: postings appended since the last flush, per track (live ingestion).
        self._head: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._head_sorted: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if not (self.root / _MANIFEST).exists():
            with self._locked():
                if not (self.root / _MANIFEST).exists():
                    _write_json_atomic(self.root / _MANIFEST, self._empty_manifest())
        self.refresh()
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

    def lookup(self, keys: np.ndarray, track_ids: np.ndarray | None = None) -> Hits:
        """Every posting whose key is in ``keys``; see :class:`PostingStore`."""
        self.refresh()
        keys = np.asarray(keys, self.key_dtype)
        wanted = self._live_ids if track_ids is None else np.asarray(track_ids, np.int64)
        parts = [seg.lookup(keys) for seg in self._segments.values()]
        parts.append(self._head_lookup(keys))
        q = np.concatenate([p[0] for p in parts])
        t = np.concatenate([p[1] for p in parts])
        f = np.concatenate([p[2] for p in parts])
        keep = np.isin(t, wanted)
        return Hits(q[keep], t[keep], f[keep])

    def _head_lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self._head:
            empty = np.empty(0, np.int64)
            return empty, empty, empty
        if self._head_sorted is None:
            k = np.concatenate([a for parts in self._head.values() for a, _ in parts])
            fr = np.concatenate([b for parts in self._head.values() for _, b in parts])
            tr = np.concatenate(
                [np.full(a.size, tid, np.int64) for tid, ps in self._head.items() for a, _ in ps]
            )
            order = np.argsort(k, kind="stable")
            self._head_sorted = (k[order], tr[order], fr[order].astype(np.int64))
        hk, ht, hf = self._head_sorted
        qpos, pos = equal_ranges(hk, keys)
        return qpos, ht[pos], hf[pos]

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
        self, manifest: dict, keys: np.ndarray, tracks: np.ndarray, frames: np.ndarray
    ) -> str:
        """Write postings as a new segment file; the caller decides where the manifest lists it."""
        name = f"seg-{manifest['next_segment']:06d}.vseg"
        manifest["next_segment"] += 1
        write_segment(self.root / name, keys.astype(self.key_dtype), tracks, frames)
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
        """Store a whole track in its own segment; replaces the same channel+source track."""
        if kind not in ("asset", "live"):
            raise ValueError(f"kind must be 'asset' or 'live', not {kind!r}")
        frames = np.asarray(frames, np.int64)
        n_frames = int(frames.max()) + 1 if frames.size else 0
        length = max(n_frames, int(length_frames or 0))
        with self._transaction() as manifest:
            tid = manifest["next_track"]
            manifest["next_track"] += 1
            if keys.size:
                name = self._new_segment(
                    manifest, np.asarray(keys), np.full(keys.size, tid), frames
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
            (np.asarray(keys, self.key_dtype), np.asarray(frames, np.int64))
        )
        self._head_sorted = None

    def flush(self) -> None:
        """Write the head as one segment and extend its tracks' lengths."""
        if not self._head:
            return
        keys = np.concatenate([a for ps in self._head.values() for a, _ in ps])
        frames = np.concatenate([b for ps in self._head.values() for _, b in ps])
        tracks = np.concatenate(
            [np.full(a.size, tid, np.int64) for tid, ps in self._head.items() for a, _ in ps]
        )
        with self._transaction() as manifest:
            manifest["segments"].append(self._new_segment(manifest, keys, tracks, frames))
            for tid in np.unique(tracks):
                rec = manifest["tracks"].get(str(int(tid)))
                if rec is not None:
                    rec["frames"] = max(rec["frames"], int(frames[tracks == tid].max()) + 1)
        self._head.clear()
        self._head_sorted = None

    def compact(self, max_postings: int = 50_000_000) -> int:
        """Merge segments into as few as possible, dropping postings of removed tracks.

        Segments are merged oldest first into outputs of at most ``max_postings`` postings
        (400 MB of audio postings). Returns the number of segments after compaction.
        """
        with self._transaction() as manifest:
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
                                manifest, keys, np.concatenate(ts), np.concatenate(fs)
                            )
                        )
                batch, count = [], 0

            for name in manifest["segments"]:
                seg = self._segments[name]
                if count and count + seg.keys.size > max_postings:
                    flush_batch()
                batch.append(seg)
                count += int(seg.keys.size)
            flush_batch()
            manifest["segments"] = merged
        return len(self._manifest["segments"])


def _diff(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:4])
