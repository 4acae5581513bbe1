"""Which segments a query must read, which have expired, and which to merge.

Pure planning over the segments' track ranges (``Segment.track_ranges``) and the
manifest's tracks; :class:`~.embedded.EmbeddedStore` carries the plans out.

Live postings arrive as one small segment per flush (every few seconds). They are merged
by the UTC of their newest posting: into 10-minute buckets while the hour is running, into
one segment per hour once it is over. So a store holding 48 h of live channels keeps about
60 flush segments, 5 ten-minute and 48 hour segments per key space; a query for the last
10 minutes reads a handful of them; and retention drops whole hour segments, never
rewriting one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from .base import FrameWindow, Track
from .segment import Segment

__all__ = [
    "CLOSED_BUCKET_SECONDS",
    "RUNNING_BUCKET_SECONDS",
    "Spans",
    "merge_intervals",
    "surviving_postings",
]

#: Live segments of the running hour are merged per 10 minutes (s).
RUNNING_BUCKET_SECONDS = 600.0
#: Live segments of a finished hour are merged into one (s).
CLOSED_BUCKET_SECONDS = 3600.0
#: A bucket is merged this long after it ends, so that a late flush still lands in it (s).
SETTLE_SECONDS = 120.0


@dataclass(frozen=True)
class Spans:
    """One row per (segment, track) pair: the frames ``[first, end)`` the track holds there."""

    names: list[str]
    parts: np.ndarray  # per segment
    seg: np.ndarray  # per row: index into names
    track: np.ndarray
    first: np.ndarray
    end: np.ndarray

    @classmethod
    def of(cls, names: list[str], segments: dict[str, Segment]) -> Spans:
        """The spans of the segments ``names``."""
        rows = [segments[n].track_ranges for n in names]
        sizes = [r[0].size for r in rows]
        cat = (lambda i: np.concatenate([r[i] for r in rows]).astype(np.int64)) if rows else None
        empty = np.empty(0, np.int64)
        return cls(
            list(names),
            np.array([segments[n].part for n in names], np.int64),
            np.repeat(np.arange(len(names)), sizes).astype(np.int64),
            cat(0) if cat else empty,
            cat(1) if cat else empty,
            cat(2) if cat else empty,
        )

    def touching(self, window: FrameWindow, part: int) -> list[str]:
        """Segments of key space ``part`` holding frames inside ``window``."""
        hit = self.window_rows(window) & (self.parts[self.seg] == part)
        return [self.names[i] for i in np.unique(self.seg[hit])]

    def window_rows(self, window: FrameWindow) -> np.ndarray:
        """Rows whose range meets ``window`` (bool)."""
        return window.overlaps(self.track, self.first, self.end)

    def _track_columns(self, tracks: dict[int, Track]) -> tuple[np.ndarray, ...]:
        """Per row: does its track exist, is it live, and the track's start (UTC) and hop."""
        ids = np.array(sorted(tracks), np.int64)
        pos = np.minimum(np.searchsorted(ids, self.track), max(ids.size - 1, 0))
        exists = ids[pos] == self.track if ids.size else np.zeros(self.track.size, bool)
        ordered = [tracks[int(t)] for t in ids]
        live = np.array([t.kind == "live" for t in ordered], bool)[pos] if ids.size else exists
        start = np.array([t.start for t in ordered], float)[pos] if ids.size else 0.0
        hop = np.array([t.hop_seconds for t in ordered], float)[pos] if ids.size else 0.0
        return exists, exists & live, start, hop

    def expired(self, tracks: dict[int, Track], cutoff_frames: dict[int, int]) -> list[str]:
        """Segments whose every posting is of a removed track or of a live track before its
        cutoff frame; asset tracks never expire (they are kept until removed)."""
        exists, _, _, _ = self._track_columns(tracks)
        cut_ids = np.array(sorted(cutoff_frames), np.int64)
        cut = np.array([cutoff_frames[int(t)] for t in cut_ids], np.int64)
        pos = np.minimum(np.searchsorted(cut_ids, self.track), max(cut_ids.size - 1, 0))
        has_cut = cut_ids[pos] == self.track if cut_ids.size else np.zeros(exists.shape, bool)
        before = has_cut & (self.end <= (cut[pos] if cut_ids.size else 0))
        dead = ~exists | before
        alive = np.zeros(len(self.names), bool)
        alive[self.seg[~dead]] = True
        return [n for i, n in enumerate(self.names) if not alive[i]]

    def live_merges(self, tracks: dict[int, Track], now_utc: float) -> list[list[str]]:
        """Groups of live segments to merge, oldest group first: each group is one settled
        bucket (10 minutes of the running hour, or a finished hour) of one key space."""
        _, live_row, start, hop = self._track_columns(tracks)
        n = len(self.names)
        live = np.ones(n, bool)
        live[self.seg[~live_row]] = False
        newest = np.full(n, -np.inf)
        last = start + (self.end - 1) * hop  # UTC of each row's newest posting
        np.maximum.at(newest, self.seg[live_row], last[live_row])
        hour_end = (np.floor(newest / CLOSED_BUCKET_SECONDS) + 1) * CLOSED_BUCKET_SECONDS
        size = np.where(
            hour_end + SETTLE_SECONDS > now_utc, RUNNING_BUCKET_SECONDS, CLOSED_BUCKET_SECONDS
        )
        bucket_end = (np.floor(newest / size) + 1) * size
        ready = live & np.isfinite(newest) & (bucket_end + SETTLE_SECONDS <= now_utc)
        groups: dict[tuple[float, int], list[str]] = defaultdict(list)
        for i in np.flatnonzero(ready):
            groups[(float(bucket_end[i]), int(self.parts[i]))].append(self.names[i])
        return [names for _, names in sorted(groups.items()) if len(names) > 1]


def surviving_postings(
    segments: list[Segment], alive: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The postings ``(key, track, frame)`` of ``segments`` whose track is in ``alive``."""
    ks, ts, fs = [], [], []
    for seg in segments:
        key, track, frame = seg.postings()
        keep = np.isin(track, alive)
        ks.append(key[keep])
        ts.append(track[keep])
        fs.append(frame[keep])
    return np.concatenate(ks), np.concatenate(ts), np.concatenate(fs)


def merge_intervals(intervals: list[tuple[float, float]], gap: float = 1.0) -> list[list[float]]:
    """Union of ``(start, end)`` intervals (UTC epoch seconds), sorted; ones less than
    ``gap`` seconds apart are joined (chunk stamps jitter by a fraction of a second)."""
    out: list[list[float]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([float(start), float(end)])
    return out
