"""Live tracks of an embedded store: appends to the head, flushes with coverage, retention.

A live feed keeps one track per modality on one UTC time axis (frame ``n`` aired at
``start + n * hop``). Its postings are appended to the in-memory head (:mod:`.head`) and
flushed every few seconds as segments, each flush recording in the same manifest commit
the UTC intervals it covers, so the index knows where the reference was blind. Retention
drops whole segments and settled segments are merged by time bucket (:mod:`.upkeep`).
"""

from __future__ import annotations

import numpy as np

from .base import Track
from .manifest import existing_tracks
from .upkeep import Spans, merge_intervals

__all__ = ["LiveTracks"]


class LiveTracks:
    """Mixin of :class:`~.embedded.EmbeddedStore` (uses its manifest, head and segments)."""

    def coverage(self, track_id: int) -> list[tuple[float, float]]:
        """UTC intervals ``(start, end)`` (epoch seconds) a live track's feed was followed
        and flushed: outside them the reference was blind."""
        self.refresh()
        return [tuple(iv) for iv in self._manifest.get("coverage", {}).get(str(track_id), [])]

    def live_track(
        self, channel_id: str, source: str, *, start: float, hop_seconds: float
    ) -> Track:
        """The live track of ``source`` (a feed), created empty at UTC ``start`` if missing.

        A feed keeps one time axis for as long as it exists, whatever its outages: frame
        ``n`` is UTC ``start + n * hop_seconds``, so a restarted ingester appends where the
        last one stopped and gaps are simply frames without postings.
        """
        for track in self.tracks().values():
            if track.channel_id == channel_id and track.source == source and track.kind == "live":
                return track
        with self._transaction() as manifest:
            for rec in manifest["tracks"].values():  # created meanwhile by another process
                if (rec["channel_id"], rec["source"], rec["kind"]) == (channel_id, source, "live"):
                    return Track(**rec)
            tid = manifest["next_track"]
            manifest["next_track"] += 1
            track = Track(tid, channel_id, source, "live", float(start), 0, hop_seconds)
            manifest["tracks"][str(tid)] = track.as_dict()
        return track

    def append(self, track_id: int, keys: np.ndarray, frames: np.ndarray) -> None:
        """Add postings of an existing track to the in-memory head (live ingestion)."""
        if track_id not in self._tracks:
            self.refresh()
            if track_id not in self._tracks:
                raise KeyError(f"no track {track_id}")
        self._head.add(track_id, self._as_parts(keys), frames)

    @property
    def head_size(self) -> int:
        """Postings waiting in the head for the next flush."""
        return self._head.size

    def flush(self, covered: dict[int, list[tuple[float, float]]] | None = None) -> list[str]:
        """Write the head as one segment per part, extend its tracks' lengths, and record
        the UTC intervals ``covered`` per track (what was followed, postings or not).

        Coverage is committed with the postings it covers, in one manifest: after a crash
        the index never claims to have seen what it lost. Returns the new segments' names.
        """
        if not self._head and not covered:
            return []
        keys, tracks, frames = self._head.postings()
        written: list[str] = []
        with self._transaction() as manifest:
            if tracks.size:
                for part, part_keys in enumerate(keys):
                    written.append(self._new_segment(manifest, part_keys, tracks, frames, part))
                manifest["segments"].extend(written)
                ends = np.zeros(int(tracks.max()) + 1, np.int64)
                np.maximum.at(ends, tracks, frames + 1)
                for tid in np.unique(tracks).tolist():
                    rec = manifest["tracks"].get(str(tid))
                    if rec is not None:
                        rec["frames"] = max(rec["frames"], int(ends[tid]))
            coverage = manifest.setdefault("coverage", {})
            for tid, intervals in (covered or {}).items():
                if str(tid) in manifest["tracks"]:
                    old = [tuple(iv) for iv in coverage.get(str(tid), [])]
                    coverage[str(tid)] = merge_intervals(old + list(intervals))
        self._head.clear()
        return written

    def retain(self, cutoff_utc: dict[int, float]) -> int:
        """Drop the segments whose postings are all older than their live track's cutoff
        (UTC epoch seconds) or belong to removed tracks, and trim coverage to what is left.

        Whole segments go: nothing is rewritten (see :mod:`.upkeep`). Returns how many
        segment files were dropped.
        """
        self.refresh()
        cut_frames = {}
        for tid, cutoff in cutoff_utc.items():
            track = self._tracks.get(tid)
            if track is not None and track.kind == "live":
                cut_frames[tid] = int(np.floor((cutoff - track.start) / track.hop_seconds))
        if not self._spans.expired(existing_tracks(self._manifest), cut_frames):
            return 0  # nothing to drop: no commit (retain runs every minute)
        with self._transaction() as manifest:
            tracks = existing_tracks(manifest)
            gone = set(Spans.of(manifest["segments"], self._segments).expired(tracks, cut_frames))
            manifest["segments"] = [n for n in manifest["segments"] if n not in gone]
            # Coverage starts where the oldest posting still searchable does: times between
            # the cutoff and the end of the oldest kept segment can still be matched.
            left = Spans.of(manifest["segments"], self._segments)
            coverage = manifest.setdefault("coverage", {})
            for key in list(coverage):
                tid = int(key)
                if tid not in tracks:
                    del coverage[key]
                elif tid in cut_frames:
                    firsts = left.first[left.track == tid]
                    since = cutoff_utc[tid]
                    if firsts.size:
                        t = tracks[tid]
                        since = min(since, t.start + int(firsts.min()) * t.hop_seconds)
                    coverage[key] = [(max(a, since), b) for a, b in coverage[key] if b > since]
        return len(gone)

    def merge_live(self, now_utc: float) -> int:
        """Merge settled buckets of live segments (see :mod:`.upkeep`); returns merges done."""
        self.refresh()
        if not self._spans.live_merges(self._tracks, now_utc):
            return 0
        with self._transaction() as manifest:
            tracks = {int(k): Track(**v) for k, v in manifest["tracks"].items()}
            spans = Spans.of(manifest["segments"], self._segments)
            groups = spans.live_merges(tracks, now_utc)
            for names in groups:
                part = self._segments[names[0]].part
                merged = self._merge(manifest, names, 2**31, part)
                at = manifest["segments"].index(names[0])
                rest = [n for n in manifest["segments"] if n not in set(names)]
                manifest["segments"] = rest[:at] + merged + rest[at:]
        return len(groups)
