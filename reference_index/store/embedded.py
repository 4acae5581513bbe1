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

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .base import FrameWindow, Hits, ParamsMismatch, Track
from .head import Head
from .live_tracks import LiveTracks
from .manifest import (
    MANIFEST,
    empty_manifest,
    existing_tracks,
    locked,
    params_diff,
    sweep,
    write_json_atomic,
)
from .segment import Segment, equal_ranges, write_segment
from .staging import StagedTracks
from .upkeep import Spans, surviving_postings

__all__ = ["EmbeddedStore"]


class EmbeddedStore(LiveTracks, StagedTracks):
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
        self._spans = Spans.of([], {})
        self._head = Head(self.parts, self.key_dtype)
        if not (self.root / MANIFEST).exists():
            with locked(self.root):
                if not (self.root / MANIFEST).exists():
                    manifest = empty_manifest(self.params, self.key_dtype.str, self.parts)
                    write_json_atomic(self.root / MANIFEST, manifest)
        self.refresh()
        if self._manifest.get("parts", 1) != self.parts:
            raise ParamsMismatch(
                f"{self.root} has {self._manifest.get('parts', 1)} key spaces, not {self.parts}"
            )
        if self._manifest["params"] != self.params:
            raise ParamsMismatch(
                f"{self.root} was built with other fingerprint parameters "
                f"({params_diff(self._manifest['params'], self.params)}); run `vigie reindex --all`"
            )

    # -- reading ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Reload the manifest if another process committed since we last read it."""
        for attempt in range(10):
            st = (self.root / MANIFEST).stat()
            stamp = (st.st_mtime_ns, st.st_ino)
            if stamp == self._stamp:
                return
            manifest = json.loads((self.root / MANIFEST).read_text())
            try:
                segments = {
                    name: self._segments.get(name) or Segment.open(self.root / name)
                    for name in manifest["segments"]
                }
                break
            except FileNotFoundError:
                # A writer committed a newer manifest and swept a segment this one names.
                if attempt == 9:
                    raise
        self._manifest, self._segments, self._stamp = manifest, segments, stamp
        self._tracks = {int(k): Track(**v) for k, v in manifest["tracks"].items()}
        self._live_ids = np.array(sorted(self._tracks), np.int64)
        self._spans = Spans.of(manifest["segments"], segments)

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

    def lookup(self, keys: np.ndarray, within: FrameWindow | None = None, *, part: int = 0) -> Hits:
        """Every posting of key space ``part`` whose key is in ``keys``; see
        :class:`PostingStore`."""
        self.refresh()
        keys = np.asarray(keys, self.key_dtype)
        found = [seg.lookup(keys) for seg in self._part_segments(part, within)]
        hk, ht, hf = self._head.part(part)
        qpos, pos = equal_ranges(hk, keys)
        found.append((qpos, ht[pos], hf[pos]))
        return self._hits(found, within)

    def lookup_prefix(
        self,
        prefixes: np.ndarray,
        bits: int,
        within: FrameWindow | None = None,
        *,
        part: int = 0,
    ) -> Hits:
        """Every posting of key space ``part`` whose top ``bits`` key bits equal a prefix,
        with the posting's whole key (``Hits.key``) for the caller to verify."""
        self.refresh()
        prefixes = np.asarray(prefixes, np.uint64)
        found = [seg.lookup_prefix(prefixes, bits) for seg in self._part_segments(part, within)]
        hk, ht, hf = self._head.part(part)
        width = np.uint64(8 * self.key_dtype.itemsize - bits)
        qpos, pos = equal_ranges(hk.astype(np.uint64) >> width, prefixes)
        found.append((qpos, ht[pos], hf[pos], hk[pos]))
        return self._hits(found, within)

    def _part_segments(self, part: int, within: FrameWindow | None = None) -> list[Segment]:
        """Segments of key space ``part``; with a window, only those holding frames in it."""
        if not 0 <= part < self.parts:
            raise ValueError(f"part must be in [0, {self.parts}), not {part}")
        if within is not None:
            return [self._segments[n] for n in self._spans.touching(within, part)]
        return [seg for seg in self._segments.values() if seg.part == part]

    def _hits(self, found: list[tuple], within: FrameWindow | None) -> Hits:
        q = np.concatenate([np.asarray(p[0], np.int64) for p in found])
        t = np.concatenate([np.asarray(p[1], np.int64) for p in found])
        f = np.concatenate([np.asarray(p[2], np.int64) for p in found])
        # Removed tracks' postings stay in segments until compaction.
        keep = np.isin(t, self._live_ids)
        if within is not None:
            keep &= within.contains(t, f)
        key = None
        if all(len(p) == 4 for p in found):
            key = np.concatenate([np.asarray(p[3], self.key_dtype) for p in found])[keep]
        return Hits(q[keep], t[keep], f[keep], key)

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
    def _transaction(self) -> Iterator[dict]:
        """Lock, hand out a fresh copy of the manifest, commit it atomically on success."""
        with locked(self.root):
            self._stamp = None
            self.refresh()
            manifest = json.loads(json.dumps(self._manifest))
            yield manifest
            write_json_atomic(self.root / MANIFEST, manifest)
            sweep(self.root, manifest)
        self.refresh()

    def _new_segment(
        self,
        manifest: dict,
        keys: np.ndarray,
        tracks: np.ndarray,
        frames: np.ndarray,
        part: int = 0,
    ) -> str:
        """Write postings as a new segment file; the caller decides where the manifest lists it.

        A prefix directory (``2^prefix_bits`` entries, 256 kB at 16 bits) is written only
        for segments with at least as many postings: a live flush of a few thousand frame
        hashes would otherwise carry 50 times its own size in directory, in every reader's
        memory; small segments answer prefix lookups by binary search instead.
        """
        name = f"seg-{manifest['next_segment']:06d}.vseg"
        manifest["next_segment"] += 1
        bits = self.prefix_bits
        write_segment(
            self.root / name,
            keys.astype(self.key_dtype),
            tracks,
            frames,
            part=part,
            prefix_bits=bits if bits is not None and keys.size >= (1 << bits) else None,
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
        stamp: str = "",
        job: str | None = None,
    ) -> Track:
        """Store a whole track in its own segment (one per part); replaces the same
        channel+source track. ``keys`` has shape (n,), or (parts, n) for a multi-part store.

        ``stamp`` identifies the recording's version (size and modification time), so a
        resumed re-index knows what is done. With ``job``, the track is staged: written
        and durable but invisible to queries until :meth:`publish` swaps in every track of
        the job at once (see :mod:`.staging`).
        """
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
            track = Track(tid, channel_id, source, kind, float(start), length, hop_seconds, stamp)
            if job is not None:
                manifest.setdefault("staged", {}).setdefault(job, {})[str(tid)] = track.as_dict()
                return track
            for old_id, old in list(manifest["tracks"].items()):
                if old["channel_id"] == channel_id and old["source"] == source:
                    del manifest["tracks"][old_id]
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

    def compact(self, max_postings: int = 50_000_000) -> int:
        """Merge asset segments into as few as possible, dropping postings of removed tracks.

        Segments are merged oldest first into outputs of at most ``max_postings`` postings
        (400 MB of audio postings). Live segments are left to :meth:`merge_live` and
        :meth:`retain`, which keep them in time buckets. Returns the number of segments
        after compaction.
        """
        with self._transaction() as manifest:
            tracks = {int(k): Track(**v) for k, v in manifest["tracks"].items()}
            merged: list[str] = []
            for part in range(self.parts):
                names = [n for n in manifest["segments"] if self._segments[n].part == part]
                live = [n for n in names if self._holds_live(n, tracks)]
                assets = [n for n in names if n not in set(live)]
                merged.extend(self._merge(manifest, assets, max_postings, part))
                merged.extend(live)
            manifest["segments"] = merged
        return len(self._manifest["segments"])

    def _holds_live(self, name: str, tracks: dict[int, Track]) -> bool:
        ids = self._segments[name].track_ids.tolist()
        return any(tracks.get(t) is not None and tracks[t].kind == "live" for t in ids)

    def _merge(self, manifest: dict, names: list[str], max_postings: int, part: int) -> list[str]:
        """Merge the segments ``names`` of one part, oldest first, into outputs of at most
        ``max_postings`` postings, without removed tracks; returns the new list."""
        alive = np.array(sorted(existing_tracks(manifest)), np.int64)
        merged: list[str] = []
        batch: list[Segment] = []
        for name in [*names, None]:
            seg = self._segments[name] if name is not None else None
            full = seg is None or sum(s.keys.size for s in batch) + seg.keys.size > max_postings
            if batch and full:
                if len(batch) == 1 and np.all(np.isin(batch[0].track_ids, alive)):
                    merged.append(batch[0].path.name)
                else:
                    keys, tracks, frames = surviving_postings(batch, alive)
                    if keys.size:
                        merged.append(self._new_segment(manifest, keys, tracks, frames, part))
                batch = []
            if seg is not None:
                batch.append(seg)
        return merged
