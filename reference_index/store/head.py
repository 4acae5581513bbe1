"""The in-memory head of an embedded store: live postings appended since the last flush.

Live ingestion appends a few seconds of postings per feed at a time; writing each append
as a segment would leave thousands of tiny files. The head collects them, answers lookups
of the process that owns it, and is written out as one segment per key space by
:meth:`EmbeddedStore.flush`. It is lost if the process dies, which is why the ingester
flushes every few seconds and records coverage only for what was flushed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Head"]


class Head:
    """Postings ``(keys[parts, n], frames[n])`` per track, with a sorted view per key space."""

    def __init__(self, parts: int, key_dtype: np.dtype):
        self.parts = parts
        self.key_dtype = np.dtype(key_dtype)
        self._by_track: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._sorted: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __bool__(self) -> bool:
        return bool(self._by_track)

    @property
    def size(self) -> int:
        """Postings held (per key space)."""
        return sum(f.size for ps in self._by_track.values() for _, f in ps)

    def add(self, track_id: int, keys: np.ndarray, frames: np.ndarray) -> None:
        """Append postings of one track; ``keys`` has shape ``(parts, n)``."""
        self._by_track.setdefault(track_id, []).append((keys, np.asarray(frames, np.int64)))
        self._sorted = {}

    def postings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Everything held: ``(keys[parts, n], track[n], frame[n])``."""
        if not self._by_track:
            empty = np.empty(0, np.int64)
            return np.empty((self.parts, 0), self.key_dtype), empty, empty
        keys = np.concatenate([k for ps in self._by_track.values() for k, _ in ps], axis=1)
        frames = np.concatenate([f for ps in self._by_track.values() for _, f in ps])
        tracks = np.concatenate(
            [np.full(f.size, tid, np.int64) for tid, ps in self._by_track.items() for _, f in ps]
        )
        return keys, tracks, frames

    def part(self, part: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Postings of one key space sorted by key: ``(keys, tracks, frames)``."""
        if part not in self._sorted:
            keys, tracks, frames = self.postings()
            order = np.argsort(keys[part], kind="stable")
            self._sorted[part] = (keys[part][order], tracks[order], frames[order])
        return self._sorted[part]

    def clear(self) -> None:
        """Forget everything (after a flush)."""
        self._by_track.clear()
        self._sorted = {}
