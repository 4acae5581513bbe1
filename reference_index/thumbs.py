"""Reference thumbnails: small JPEGs of the frames the video fingerprinter decodes anyway.

An analyst judging a match wants the suspect's pictures beside the channel's at the matched
offsets. The reference pictures are gone once hashed (live feeds are not recorded; an asset
may be re-encoded or moved), so a thumbnail of what the fingerprinter saw is kept at
indexing time, beside the postings: the grey frames :func:`fingerprinting.decode.iter_media`
already made for hashing (192 px wide, see :class:`~fingerprinting.types.FrameBatch`),
sampled at :attr:`ThumbParams.rate_hz` on the track's time axis and JPEG-encoded.

Size and cost, at the defaults (0.5 per second, quality 70). Measured on the real clips of
``../shared/media/video`` decoded at 192 x 108: 1.5-4.3 kB per thumbnail (3 kB typical), so
about **5.4 MB per channel-hour** (2.6-7.8 MB) -- four times the posting index (1.35 MiB per
channel-hour, ``bench/results/live.md``); 100 channels kept 48 h take about 26 GB. One
thumbnail every 2 s is what the evidence needs: a 10 s sample is shown with a handful of
reference frames, and on a 2 s grid every aligned instant has a thumbnail within 1 s (the
tolerance of :meth:`ThumbStore.nearest`). Every reference frame (5 per second) would be
ten times the disk for pictures no one could tell apart. Encoding one thumbnail with
OpenCV costs 0.04-0.05 ms (Pillow: 0.1-0.15 ms), so 25 us of CPU per channel-second
against the 16.7 ms that ingestion costs (0.15 %).

Storage follows the posting store's habits (:mod:`.store.embedded`), in ``<generation>/
thumbs/``: immutable pack files (:mod:`.store.thumbpack`) written atomically (temp, fsync,
rename), so a process killed at any moment leaves the last good state; a leftover temporary
file is swept once it is older than any write takes. Thumbnails are keyed by the **video
track id** of the posting store, which gives them the postings' rules for free:

* a re-index stages new tracks (new ids) and writes their packs before publishing; queries
  only ever name visible tracks, so the new thumbnails appear with the new postings, and
  the packs of tracks no manifest names any more are swept (:meth:`ThumbStore.retain`);
* live ingestion writes one pack per flush (all feeds of the process), merged by the time
  bucket of its newest thumbnail like live segments (10 minutes while the hour runs, then
  one per hour: :mod:`.store.upkeep`), and a pack goes when all it holds is older than its
  feed's retention -- whole files, never rewritten;
* a generation is a folder: a rebuilt one has its own thumbnails, and old generations are
  deleted with theirs (:mod:`.generations`).

Writers need no lock (each pack has a unique name); merges and retention, which delete
packs, hold the folder's ``LOCK``. Readers list the folder, cache each pack's header (the
file never changes), retry if a pack they listed was merged away meanwhile, and see a
pack's thumbnails twice at most (a merge killed before deleting its inputs), which the
nearest-frame lookup does not mind.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fingerprinting.types import FrameBatch

from .store.manifest import locked
from .store.segment import fsync_dir
from .store.thumbpack import PACK_SUFFIX, Pack, PackError, merge_packs, write_pack
from .store.upkeep import CLOSED_BUCKET_SECONDS, RUNNING_BUCKET_SECONDS, SETTLE_SECONDS

__all__ = [
    "DEFAULT_MAX_GAP_SECONDS",
    "ThumbParams",
    "ThumbSampler",
    "ThumbStore",
    "Thumbs",
    "encode_jpeg",
]

#: A reference time farther than this from every thumbnail gets none (seconds).
DEFAULT_MAX_GAP_SECONDS = 1.0
#: A temporary file older than this is a dead writer's (seconds): a flush's pack takes
#: milliseconds, an hour's merge seconds. (Not the pid in its name: writers in other
#: containers sharing the folder have pids this process cannot see.)
_STALE_TMP_SECONDS = 600.0
_names = itertools.count()


@dataclass(frozen=True)
class ThumbParams:
    """How reference thumbnails are made.

    Attributes
    ----------
    rate_hz : float
        Thumbnails per second of reference (one on each ``1 / rate_hz`` s cell of the
        track's time axis); 0 makes none. See the module docstring for the size.
    quality : int
        JPEG quality (0-100); 70 keeps a 192 px picture legible at 3 kB.
    """

    rate_hz: float = 0.5
    quality: int = 70

    def __post_init__(self) -> None:
        if self.rate_hz < 0:
            raise ValueError(f"rate_hz must be >= 0, not {self.rate_hz}")
        if not 0 <= self.quality <= 100:
            raise ValueError(f"quality must be in [0, 100], not {self.quality}")


@dataclass(frozen=True)
class Thumbs:
    """Thumbnails of one track: reference times (seconds on the track's axis: asset
    seconds, or UTC epoch seconds for live tracks) and their JPEG bytes."""

    times: np.ndarray
    jpegs: tuple[bytes, ...]

    def __len__(self) -> int:
        return int(self.times.size)

    @classmethod
    def empty(cls) -> Thumbs:
        """No thumbnails."""
        return cls(np.empty(0, np.float64), ())

    @classmethod
    def concat(cls, parts: Sequence[Thumbs]) -> Thumbs:
        """Join thumbnails of one track, in order."""
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.times for p in parts]).astype(np.float64),
            tuple(j for p in parts for j in p.jpegs),
        )


def encode_jpeg(gray: np.ndarray, quality: int = 70) -> bytes:
    """JPEG bytes of a grey picture (``uint8``, shape ``(h, w)``) at ``quality``."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(gray), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode a {gray.shape} {gray.dtype} picture as JPEG")
    return buf.tobytes()


class ThumbSampler:
    """Picks the first frame of each ``1 / rate_hz`` s cell of a track's time axis, across
    the batches of one stream, and encodes it. One sampler per stream (a recording, or a
    live feed for as long as it is followed): a cell split between two batches (a live
    chunk boundary) gets one thumbnail, from the first."""

    def __init__(self, params: ThumbParams = ThumbParams()):
        self.params = params
        self._last_cell: int | None = None

    def take(self, batch: FrameBatch, t0: float = 0.0) -> Thumbs:
        """Thumbnails of ``batch``, whose frame times are seconds after ``t0`` on the
        track's axis (0 for a recording, the chunk's UTC start for a live feed)."""
        rate = self.params.rate_hz
        if rate <= 0 or not len(batch):
            return Thumbs.empty()
        t = t0 + np.asarray(batch.times, np.float64)
        cell = np.floor(t * rate + 1e-6).astype(np.int64)
        first = np.flatnonzero(np.concatenate([[True], cell[1:] != cell[:-1]]))
        if self._last_cell is not None and cell[first[0]] == self._last_cell:
            first = first[1:]
        self._last_cell = int(cell[-1])
        q = self.params.quality
        return Thumbs(t[first], tuple(encode_jpeg(batch.gray[i], q) for i in first.tolist()))


class ThumbStore:
    """The thumbnail packs of one generation's folder, plus an in-memory head of live
    thumbnails waiting for the next flush (lost if the process dies, like the postings'
    head: the ingester flushes both every few seconds).

    Parameters
    ----------
    root : Path
        Folder of the packs (``<generation>/thumbs``; created if missing).
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._packs: dict[str, Pack] = {}
        self._head: dict[int, list[Thumbs]] = {}

    # -- writing ---------------------------------------------------------------------------
    def add(self, track_id: int, thumbs: Thumbs, *, kind: str = "asset") -> str | None:
        """Write one track's thumbnails as a pack now (a recording's); returns its name."""
        if not len(thumbs):
            return None
        return self._write({track_id: [thumbs]}, kind)

    def append(self, track_id: int, thumbs: Thumbs) -> None:
        """Queue a live track's thumbnails for the next :meth:`flush`."""
        if len(thumbs):
            self._head.setdefault(int(track_id), []).append(thumbs)

    @property
    def head_size(self) -> int:
        """Thumbnails waiting for the next flush."""
        return sum(len(t) for parts in self._head.values() for t in parts)

    def flush(self) -> str | None:
        """Write the queued live thumbnails of every track as one pack; returns its name."""
        if not self._head:
            return None
        name = self._write(self._head, "live")
        self._head = {}
        return name

    def _write(self, per_track: Mapping[int, list[Thumbs]], kind: str) -> str:
        joined = {tid: Thumbs.concat(parts) for tid, parts in per_track.items()}
        tids = np.concatenate([np.full(len(t), tid, np.int64) for tid, t in joined.items()])
        times = np.concatenate([t.times for t in joined.values()])
        jpegs = [j for t in joined.values() for j in t.jpegs]
        name = _new_name(kind)
        write_pack(self.root / name, tids, times, jpegs, kind=kind)
        return name

    # -- reading ---------------------------------------------------------------------------
    def refresh(self) -> dict[str, Pack]:
        """The packs in the folder now (headers cached by name: a pack never changes)."""
        names = {
            n for n in os.listdir(self.root) if n.startswith("th-") and n.endswith(PACK_SUFFIX)
        }
        for gone in set(self._packs) - names:
            del self._packs[gone]
        for name in sorted(names - set(self._packs)):
            try:
                self._packs[name] = Pack.open(self.root / name)
            except (FileNotFoundError, PackError):
                continue  # merged or expired since the listing (PackError: not ours)
        return dict(self._packs)

    def count(self, track_id: int | None = None) -> int:
        """Thumbnails stored (of one track, or of all), queued ones excluded."""
        packs = self.refresh().values()
        if track_id is None:
            return sum(p.n for p in packs)
        rows = [p.tracks[track_id] for p in packs if track_id in p.tracks]
        return sum(hi - lo for lo, hi, _, _ in rows)

    def disk_bytes(self) -> int:
        """Bytes of the pack files."""
        total = 0
        for pack in self.refresh().values():
            with contextlib.suppress(FileNotFoundError):  # merged away meanwhile
                total += pack.path.stat().st_size
        return total

    def nearest(
        self,
        track_id: int,
        times: np.ndarray,
        max_gap: float = DEFAULT_MAX_GAP_SECONDS,
    ) -> list[tuple[int, float, bytes]]:
        """The thumbnail of ``track_id`` nearest each of ``times`` (seconds on the track's
        axis), if one lies within ``max_gap`` seconds.

        Returns ``(i, thumbnail time, JPEG bytes)`` for each ``times[i]`` that has one, in
        the order of ``times``. Flushed packs and this process's queued thumbnails are
        searched; a pack merged away while it is read is looked up again.
        """
        times = np.asarray(times, np.float64).reshape(-1)
        ok = np.isfinite(times)
        if not ok.any():
            return []
        lo, hi = float(times[ok].min()) - max_gap, float(times[ok].max()) + max_gap
        for attempt in range(5):
            try:
                return self._nearest(int(track_id), times, ok, lo, hi, max_gap)
            except FileNotFoundError:
                if attempt == 4:
                    raise
        return []  # pragma: no cover - the loop returns or raises

    def _nearest(
        self,
        track_id: int,
        times: np.ndarray,
        ok: np.ndarray,
        lo: float,
        hi: float,
        max_gap: float,
    ) -> list[tuple[int, float, bytes]]:
        sources: list[Pack | Thumbs] = []
        ts, src, ent = [], [], []
        for pack in self.refresh().values():
            row = pack.tracks.get(track_id)
            if row is None or row[3] < lo or row[2] > hi:
                continue
            t = pack.times(track_id)
            sel = np.flatnonzero((t >= lo) & (t <= hi))
            ts.append(t[sel])
            ent.append(row[0] + sel)
            src.append(np.full(sel.size, len(sources)))
            sources.append(pack)
        for queued in self._head.get(track_id, []):
            sel = np.flatnonzero((queued.times >= lo) & (queued.times <= hi))
            ts.append(queued.times[sel])
            ent.append(sel)
            src.append(np.full(sel.size, len(sources)))
            sources.append(queued)
        if not ts or not sum(t.size for t in ts):
            return []
        t_all, s_all, e_all = np.concatenate(ts), np.concatenate(src), np.concatenate(ent)
        order = np.argsort(t_all, kind="stable")
        t_all, s_all, e_all = t_all[order], s_all[order], e_all[order]
        pos = np.searchsorted(t_all, np.where(ok, times, 0.0))
        left = np.clip(pos - 1, 0, t_all.size - 1)
        right = np.clip(pos, 0, t_all.size - 1)
        pick = np.where(np.abs(t_all[left] - times) <= np.abs(t_all[right] - times), left, right)
        found = np.flatnonzero(ok & (np.abs(t_all[pick] - times) <= max_gap))
        blobs: dict[int, bytes] = {}
        for k in np.unique(s_all[pick[found]]).tolist():
            wanted = np.unique(pick[found][s_all[pick[found]] == k])
            source = sources[k]
            if isinstance(source, Pack):
                data = source.jpegs(e_all[wanted])
            else:
                data = [source.jpegs[int(e)] for e in e_all[wanted]]
            blobs.update(zip(wanted.tolist(), data, strict=True))
        return [(int(i), float(t_all[pick[i]]), blobs[int(pick[i])]) for i in found]

    def entries(self, wanted: Sequence[tuple[int, float, float]]) -> list[Thumbs]:
        """For each ``(track_id, lo, hi)``, every entry of the track with a time in
        ``[lo, hi]`` (seconds on the track's axis), flushed or queued, sorted by time. The
        folder is listed once; a pack merged away while it is read is looked up again."""
        for attempt in range(5):
            try:
                packs = list(self.refresh().values())
                return [self._entries(packs, int(t), lo, hi) for t, lo, hi in wanted]
            except FileNotFoundError:
                if attempt == 4:
                    raise
        return []  # pragma: no cover - the loop returns or raises

    def _entries(self, packs: list[Pack], track_id: int, lo: float, hi: float) -> Thumbs:
        parts = []
        for pack in packs:
            row = pack.tracks.get(track_id)
            if row is None or row[3] < lo or row[2] > hi:
                continue
            t = pack.times(track_id)
            first = int(np.searchsorted(t, lo, side="left"))
            last = int(np.searchsorted(t, hi, side="right"))
            if last > first:
                span = pack.span(row[0] + first, row[0] + last)
                parts.append(Thumbs(t[first:last], tuple(span)))
        for queued in self._head.get(track_id, []):
            sel = np.flatnonzero((queued.times >= lo) & (queued.times <= hi))
            if sel.size:
                parts.append(Thumbs(queued.times[sel], tuple(queued.jpegs[i] for i in sel)))
        found = Thumbs.concat(parts)
        order = np.argsort(found.times, kind="stable")
        return Thumbs(found.times[order], tuple(found.jpegs[i] for i in order.tolist()))

    # -- upkeep ----------------------------------------------------------------------------
    def retain(self, cutoffs: Mapping[int, float], alive: Callable[[], Collection[int]]) -> int:
        """Delete the packs whose every thumbnail is of a track no longer in the posting
        store, or of a live track before its cutoff (``cutoffs``: UTC epoch seconds per
        track id), and temporary files of killed writers. Returns the packs deleted.

        ``alive`` gives the ids of the tracks the posting store keeps (visible and staged);
        it is called *after* the folder is listed, so a pack written for a track created
        meanwhile is never taken for a dead one's.
        """
        with locked(self.root):
            packs = self.refresh()
            keep = set(alive())
            gone = [
                name
                for name, pack in packs.items()
                if all(
                    tid not in keep or (tid in cutoffs and row[3] < cutoffs[tid])
                    for tid, row in pack.tracks.items()
                )
            ]
            for name in gone:
                (self.root / name).unlink(missing_ok=True)
            swept = self._sweep_tmp()
            if gone or swept:
                fsync_dir(self.root)
            self.refresh()
        return len(gone)

    def _sweep_tmp(self) -> int:
        """Delete temporary files left by killed writers (older than any write takes)."""
        swept = 0
        now = time.time()
        for path in self.root.iterdir():
            if ".tmp-" not in path.name:
                continue
            try:
                old = now - path.stat().st_mtime > _STALE_TMP_SECONDS
            except FileNotFoundError:
                continue  # renamed into place meanwhile
            if old:
                path.unlink(missing_ok=True)
                swept += 1
        return swept

    def merge_live(self, now_utc: float) -> int:
        """Merge settled buckets of live packs (10 minutes of the running hour, or a
        finished hour, by the UTC of their newest thumbnail: the buckets of live posting
        segments, :mod:`.store.upkeep`). Returns the merges done."""
        with locked(self.root):
            groups: dict[float, list[Pack]] = {}
            for pack in self.refresh().values():
                newest = pack.newest
                if pack.kind != "live" or not np.isfinite(newest):
                    continue
                hour_end = (np.floor(newest / CLOSED_BUCKET_SECONDS) + 1) * CLOSED_BUCKET_SECONDS
                running = hour_end + SETTLE_SECONDS > now_utc
                size = RUNNING_BUCKET_SECONDS if running else CLOSED_BUCKET_SECONDS
                bucket_end = float((np.floor(newest / size) + 1) * size)
                if bucket_end + SETTLE_SECONDS <= now_utc:
                    groups.setdefault(bucket_end, []).append(pack)
            merges = 0
            for _, packs in sorted(groups.items()):
                if len(packs) < 2:
                    continue
                packs.sort(key=lambda p: p.path.name)
                try:
                    merge_packs(self.root / _new_name("live"), packs, kind="live")
                except FileNotFoundError:
                    continue  # an input went meanwhile (only a foreign deleter could)
                for pack in packs:  # killed here: the next merge folds the leftovers in
                    pack.path.unlink(missing_ok=True)
                fsync_dir(self.root)
                merges += 1
            self.refresh()
        return merges


def _new_name(kind: str) -> str:
    """A pack name no other writer (process or thread) can take."""
    return f"th-{kind}-{time.time_ns():016x}-{os.getpid():x}-{next(_names):x}{PACK_SUFFIX}"
