"""Reference spectral peaks, kept beside the audio postings for verifying alignments.

What for: :mod:`fingerprinting.verify` looks a candidate's reference peaks up in the suspect
sample, one by one, which finds weak restreams that triplet votes alone cannot tell from
chance. Hashes cannot give the peaks back (a triplet's hash keeps frequency *steps* and a
coarse anchor), so the peaks the fingerprinter found anyway are stored, per audio track.

Format: peaks in blocks of at most 32 frames (1 s), one entry of a pack per block. The
entry's time is its first peak's time in seconds on the track's axis (asset seconds, or UTC
epoch seconds for live tracks) and its payload two bytes a peak: the frame after the first
peak in eighths of a frame (uint8), and the band-relative FFT bin rounded (uint8). About 10
peaks a second: **0.13 MB per channel-hour** (measured on the bench's hour of music: 2 x 10
bytes of peaks and 16 of entry a second), a seventh of the postings' 0.95 MB. Rounding
moves a peak by at most 1/8 frame and 1/2 bin, inside the lookup tolerance (a whole frame
and bin).

Storage is the thumbnail packs' (:mod:`.thumbs`, :mod:`.store.thumbpack`), in
``<generation>/peaks/``, keyed by the **audio track id**: written atomically, staged tracks'
peaks written before they are published, live peaks flushed with the postings, merged by
time bucket, expired with their feed's retention and swept with their tracks. Entry times
are unique (no peak is emitted twice), so the packs' (track, time) de-duplication only ever
drops the copy a killed merge left behind.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from fingerprinting.align import Alignment, speed_grid
from fingerprinting.params import AudioParams
from fingerprinting.types import Peaks
from fingerprinting.verify import PeakGrid, line_score

from .store.base import Track
from .thumbs import Thumbs, ThumbStore

__all__ = ["BLOCK_FRAMES", "PeakStore"]

#: Most frames a block spans after its first peak: offsets in eighths fit a uint8.
BLOCK_FRAMES = 32
_EIGHTHS = 8


class PeakStore:
    """The peak packs of one generation's folder, plus the live peaks queued for the next
    flush.

    Parameters
    ----------
    root : Path
        Folder of the packs (``<generation>/peaks``; created if missing).
    n_bins : int
        Bins of the analysed band (at most 256: a bin is stored in one byte).
    """

    def __init__(self, root: Path, n_bins: int):
        if not 0 < n_bins <= 256:
            raise ValueError(f"a peak store keeps bins in one byte: n_bins={n_bins} is over 256")
        self.n_bins = n_bins
        self.packs = ThumbStore(root)

    # -- writing ---------------------------------------------------------------------------
    def add(self, track_id: int, pk: Peaks, start: float, *, kind: str = "asset") -> None:
        """Write a recording's peaks (frames on the track's axis) as one pack now."""
        self.packs.add(track_id, self._blocks(pk, start), kind=kind)

    def append(self, track_id: int, pk: Peaks, start: float) -> None:
        """Queue a live track's peaks (frames on the track's axis, which begins at UTC
        ``start``) for the next :meth:`flush`."""
        self.packs.append(track_id, self._blocks(pk, start))

    def flush(self) -> None:
        """Write the queued live peaks of every track as one pack."""
        self.packs.flush()

    def _blocks(self, pk: Peaks, start: float) -> Thumbs:
        """Encode peaks as pack entries (see the module docstring)."""
        if not len(pk):
            return Thumbs.empty()
        order = np.argsort(pk.frames, kind="stable")
        frames = np.asarray(pk.frames, np.float64)[order]
        bins = np.clip(np.floor(np.asarray(pk.bins)[order] + 0.5), 0, self.n_bins - 1)
        block = np.floor(frames / BLOCK_FRAMES).astype(np.int64)
        first = np.flatnonzero(np.concatenate([[True], block[1:] != block[:-1]]))
        ends = np.append(first[1:], frames.size)
        f0 = np.repeat(frames[first], ends - first)
        eighths = np.clip(np.floor((frames - f0) * _EIGHTHS), 0, 255).astype(np.uint8)
        bins8 = bins.astype(np.uint8)
        payloads = tuple(
            eighths[a:b].tobytes() + bins8[a:b].tobytes()
            for a, b in zip(first.tolist(), ends.tolist(), strict=True)
        )
        return Thumbs(start + frames[first] * pk.hop_seconds, payloads)

    # -- reading ---------------------------------------------------------------------------
    def window(
        self, track_id: int, lo: float, hi: float, start: float, hop_seconds: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Peaks of a track with frames in ``[lo, hi)`` (frames on the track's axis, which
        begins at ``start`` seconds): ``(frames, bins)`` as float64, sorted by frame."""
        return self.windows([(track_id, lo, hi, start, hop_seconds)])[0]

    def windows(
        self, wanted: list[tuple[int, float, float, float, float]]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`window` for each ``(track_id, lo, hi, start, hop_seconds)``, listing the
        folder once."""
        spans = [
            (tid, start + (lo - BLOCK_FRAMES) * hop, start + hi * hop)
            for tid, lo, hi, start, hop in wanted
        ]
        found = self.packs.entries(spans)
        return [
            self._decode(entries, lo, hi, start, hop)
            for entries, (_, lo, hi, start, hop) in zip(found, wanted, strict=True)
        ]

    @staticmethod
    def _decode(
        entries: Thumbs, lo: float, hi: float, start: float, hop_seconds: float
    ) -> tuple[np.ndarray, np.ndarray]:
        if not len(entries):
            empty = np.empty(0, np.float64)
            return empty, empty
        f0 = (entries.times - start) / hop_seconds
        sizes = np.fromiter((len(b) // 2 for b in entries.jpegs), np.int64, len(entries))
        raw = [np.frombuffer(b, np.uint8).reshape(2, -1) for b in entries.jpegs]
        both = np.concatenate(raw, axis=1).astype(np.float64)
        frames = np.repeat(f0, sizes) + both[0] / _EIGHTHS
        keep = (frames >= lo) & (frames < hi)
        order = np.argsort(frames[keep], kind="stable")
        return frames[keep][order], both[1][keep][order]

    def check_lines(
        self,
        aligned: list[Alignment],
        pk: Peaks,
        n_frames: int,
        tracks: Mapping[int, Track],
        p: AudioParams,
    ) -> list[Alignment]:
        """Each alignment of a sample (peaks ``pk``, ``n_frames`` long) rescored by its votes
        and its track's reference peaks found along it together
        (:func:`fingerprinting.verify.line_score`; the calibration is measured through that
        score). A track without stored peaks keeps its vote score.

        Of the first ``p.verify_search_lines`` alignments (the order given: best votes first),
        a line of fewer than ``p.verify_search_votes`` votes is also searched for through
        each of its hits at every speed (:meth:`PeakGrid.search`); where that line's peaks
        alone score higher, it replaces the voted one (offset, speed, score, and the voting
        hits kept as :attr:`Alignment.pairs` are those on it, so a plot shows the line
        through them); the votes stay the voted line's."""
        if not aligned:
            return []
        grid = PeakGrid(pk, n_frames, p)
        drift = p.max_speed_change * n_frames
        wanted = [
            (
                a.track,
                a.offset_frames - 2.0 - drift,
                a.offset_frames + (a.speed + p.max_speed_change) * n_frames + 2.0,
                tracks[a.track].start,
                tracks[a.track].hop_seconds,
            )
            for a in aligned
        ]
        speeds = speed_grid(p.max_speed_change, p.speed_step)
        out = []
        for rank, (a, (frames, bins)) in enumerate(zip(aligned, self.windows(wanted), strict=True)):
            check = grid.check(frames, bins, a.offset_frames, a.speed)
            score = line_score(a.score, check)
            line = a
            weak = a.votes < p.verify_search_votes
            if rank < p.verify_search_lines and weak and a.pairs is not None:
                found, offset, speed = grid.search(frames, bins, a.pairs, speeds, check.dispersion)
                if found.score > score:
                    check, score = found, found.score
                    q, r = a.pairs
                    on = np.abs(r - speed * q - offset) <= 1.0  # the hits the new line keeps
                    line = replace(a, offset_frames=offset, speed=speed, pairs=(q[on], r[on]))
            out.append(
                replace(line, score=score, peaks_found=check.found, peaks_checked=check.checked)
            )
        return out

    # -- upkeep ----------------------------------------------------------------------------
    def retain(self, cutoffs: Mapping[int, float], alive: Callable[[], Collection[int]]) -> int:
        """Delete packs of tracks gone or of live peaks older than their cutoff (UTC epoch
        seconds per track id); see :meth:`ThumbStore.retain`."""
        return self.packs.retain(cutoffs, alive)

    def merge_live(self, now_utc: float) -> int:
        """Merge settled buckets of live packs; see :meth:`ThumbStore.merge_live`."""
        return self.packs.merge_live(now_utc)

    def disk_bytes(self) -> int:
        """Bytes of the pack files."""
        return self.packs.disk_bytes()
