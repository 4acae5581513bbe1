"""The posting-store contract shared by the embedded and the PostgreSQL stores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["FrameWindow", "Hits", "ParamsMismatch", "PostingStore", "Track"]


class ParamsMismatch(Exception):
    """The index was built with other fingerprint parameters; mixing them would be wrong."""


@dataclass(frozen=True)
class Track:
    """A stretch of reference content whose postings share one time axis.

    Attributes
    ----------
    id : int
        Store-wide id.
    channel_id : str
        Catalog channel the content belongs to.
    source : str
        Recording path/URL or live feed id; re-indexing the same source replaces the track.
    kind : str
        ``"asset"`` (times from the recording's start) or ``"live"`` (times from ``start``
        as UTC).
    start : float
        UTC epoch seconds of frame 0 for live tracks; 0.0 for assets.
    frames : int
        Length in frames (1 + the last posting's frame).
    hop_seconds : float
        Seconds per frame.
    stamp : str
        Version of the recording indexed (size and modification time), "" if unknown.
    """

    id: int
    channel_id: str
    source: str
    kind: str
    start: float
    frames: int
    hop_seconds: float
    stamp: str = ""

    @property
    def seconds(self) -> float:
        """Duration covered, in seconds."""
        return self.frames * self.hop_seconds

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "id": self.id,
            "channel_id": self.channel_id,
            "source": self.source,
            "kind": self.kind,
            "start": self.start,
            "frames": self.frames,
            "hop_seconds": self.hop_seconds,
            "stamp": self.stamp,
        }


@dataclass(frozen=True)
class FrameWindow:
    """The frames a query searches: ``[lo, hi)`` of each track in ``track`` (sorted).

    A live sample captured at UTC ``T`` can only come from what the channel aired shortly
    before ``T``: searching 10 minutes of a 48-hour track reads a fraction of the postings
    and leaves chance alignments fewer places to happen.
    """

    track: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    ALL = 2**62

    @classmethod
    def whole(cls, track_ids: np.ndarray) -> FrameWindow:
        """Every frame of ``track_ids``."""
        ids = np.unique(np.asarray(track_ids, np.int64))
        return cls(ids, np.zeros(ids.size, np.int64), np.full(ids.size, cls.ALL, np.int64))

    def contains(self, track: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """Which ``(track, frame)`` pairs lie inside (bool array)."""
        track = np.asarray(track, np.int64)
        if not self.track.size:
            return np.zeros(track.shape, bool)
        pos = np.minimum(np.searchsorted(self.track, track), self.track.size - 1)
        return (self.track[pos] == track) & (frame >= self.lo[pos]) & (frame < self.hi[pos])

    def overlaps(self, track: np.ndarray, first: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Which track ranges ``[first, end)`` meet the window (bool array)."""
        track = np.asarray(track, np.int64)
        if not self.track.size:
            return np.zeros(track.shape, bool)
        pos = np.minimum(np.searchsorted(self.track, track), self.track.size - 1)
        return (self.track[pos] == track) & (first < self.hi[pos]) & (end > self.lo[pos])

    def searched_frames(self, tracks: dict[int, Track]) -> float:
        """Frames of reference the window covers: the offsets a chance hit can take."""
        total = 0
        rows = zip(self.track.tolist(), self.lo.tolist(), self.hi.tolist(), strict=True)
        for tid, lo, hi in rows:
            if tid in tracks:
                total += max(0, min(hi, tracks[tid].frames) - max(lo, 0))
        return float(total)


@dataclass(frozen=True)
class Hits:
    """Postings that matched query keys: parallel arrays, one element per hit.

    ``key`` is the posting's whole key, given by prefix lookups (whose hits differ from the
    query in their low bits), ``None`` for exact lookups.
    """

    query_pos: np.ndarray
    track: np.ndarray
    frame: np.ndarray
    key: np.ndarray | None = None

    @property
    def size(self) -> int:
        """Number of hits."""
        return int(self.query_pos.size)


@runtime_checkable
class PostingStore(Protocol):
    """Postings ``key -> (track, frame)`` of one modality, plus the tracks they belong to."""

    def tracks(self) -> dict[int, Track]:
        """Tracks currently visible to queries."""
        ...

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
        """Store a whole track atomically, replacing any track of the same channel and source."""
        ...

    def remove_tracks(self, track_ids: list[int]) -> None:
        """Hide tracks from queries (their postings go at the next compaction)."""
        ...

    def lookup(self, keys: np.ndarray, within: FrameWindow | None = None, *, part: int = 0) -> Hits:
        """Every posting of key space ``part`` whose key is in ``keys`` (optionally only
        those ``within`` a window)."""
        ...

    def lookup_prefix(
        self,
        prefixes: np.ndarray,
        bits: int,
        within: FrameWindow | None = None,
        *,
        part: int = 0,
    ) -> Hits:
        """Every posting of key space ``part`` whose top ``bits`` key bits equal a prefix."""
        ...
