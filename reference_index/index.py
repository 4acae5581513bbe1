"""The Index facade: add reference fingerprints, query suspect samples, name channels.

Owns one posting store per modality under ``<data_dir>/index/`` (``audio/``: triplet
hashes; ``video/``: frame hashes in four multi-index key spaces), the reference thumbnails
beside them (``thumbs/``, keyed by video track: :mod:`.thumbs`), the reference audio
peaks that verify alignments (``peaks/``, keyed by audio track: :mod:`.peakstore`), the
null calibration of each modality that turns vote scores into confidences, and the mapping
from tracks back to channels and reference times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fingerprinting import audio
from fingerprinting.align import Alignment, NullCalibration, vote
from fingerprinting.params import AudioParams, VideoParams
from fingerprinting.types import AudioPrint, Peaks, VideoPrint, VideoQuery

from .generations import current_generation
from .mih import chunk_keys, distinct_rows, near_hashes
from .peakstore import PeakStore
from .store.base import FrameWindow, PostingStore, Track
from .store.embedded import EmbeddedStore
from .store.postgres import PostgresStore
from .thumbs import DEFAULT_MAX_GAP_SECONDS, ThumbParams, Thumbs, ThumbStore

__all__ = [
    "DEFAULT_LIVE_WINDOW",
    "DEFAULT_RETENTION_SECONDS",
    "MODALITIES",
    "Candidate",
    "Candidates",
    "Index",
    "default_calibration",
]

MODALITIES = ("audio", "video")

#: Where a live sample's start may lie in the reference, relative to its capture time
#: (seconds): restreams lag by seconds to minutes; the clocks of the capture and of the
#: reference feed may disagree by a few seconds the other way.
DEFAULT_LIVE_WINDOW = (-600.0, 30.0)

#: How long live postings are kept when the feed says nothing else (seconds).
DEFAULT_RETENTION_SECONDS = 48 * 3600.0


def default_calibration(modality: str = "audio") -> NullCalibration:
    """Null calibration shipped with Vigie for ``modality``, measured by ``python -m bench``
    (see README)."""
    ref = resources.files("reference_index").joinpath(f"calibration_{modality}.json")
    with resources.as_file(ref) as path:
        return NullCalibration.load(path)


@dataclass(frozen=True)
class Candidate:
    """A channel the sample may come from, with where and how strongly it aligned.

    Attributes
    ----------
    channel_id : str
    modality : str
        ``"audio"`` or ``"video"``.
    track : Track
        The reference track that aligned best.
    offset_seconds : float
        Reference time of the sample's start: seconds into the recording for assets, UTC
        epoch seconds for live tracks.
    speed : float
        Suspect speed relative to the reference (1.04 = 4 % fast).
    votes : int
        Query triplets (audio) or sample frames (video) agreeing on the offset and speed.
    score : float
        ``-log10`` chance probability under the Poisson model (uncalibrated).
    p_value : float
        Calibrated probability that an alignment this strong arises by chance.
    confidence : float
        ``1 - p_value``.
    pairs : tuple of ndarray or None
        ``(query_seconds, reference_seconds)`` -- float32 seconds into the sample, float64
        reference times on the track's axis (seconds into the recording for assets, UTC
        epoch seconds for live tracks) -- of the hashes (audio) or frames (video) that voted
        for this alignment, distinct and sorted by query time, at most
        :data:`~fingerprinting.align.MAX_PAIRS` (evenly subsampled): the points of the
        alignment plot. ``None`` for a candidate made without them. Not compared.
    peaks_found, peaks_checked : int
        Audio: the reference's peaks found in the sample along the alignment, of those on
        its span (:mod:`fingerprinting.verify`); 0 and 0 where none were checked.
    """

    channel_id: str
    modality: str
    track: Track
    offset_seconds: float
    speed: float
    votes: int
    score: float
    p_value: float
    confidence: float
    pairs: tuple[np.ndarray, np.ndarray] | None = field(default=None, compare=False, repr=False)
    peaks_found: int = 0
    peaks_checked: int = 0


class Candidates(NamedTuple):
    """What :meth:`Index.query` found: candidates per modality, best first, and the fraction
    of the searched window each live channel's reference covered (by channel id)."""

    audio: list[Candidate]
    video: list[Candidate]
    coverage: dict[str, float]


class Index:
    """Reference index of one Vigie data folder.

    Parameters
    ----------
    root : Path
        Index folder (``<VIGIE_DATA_DIR>/index``).
    audio_params, video_params : AudioParams, VideoParams
        Fingerprint parameters; those that shape postings must equal the ones the index
        was built with.
    calibrations : dict or None
        Null-score tail per modality; a missing one is loaded from
        ``<root>/<modality>/calibration.json`` if present, else the one shipped with Vigie.
    generation : str or None
        Generation folder to open (``None``: the current one).
    thumb_params : ThumbParams
        How live ingestion and re-indexing make reference thumbnails (not recorded: they
        may change without a re-index).
    postings_url : str or None
        PostgreSQL URL (``postgresql+psycopg://...``): keep both modalities' postings in
        :class:`~.store.postgres.PostgresStore` schemas instead of the embedded stores
        (thumbnails and calibrations stay under ``root``). ``None``: embedded.
    postings_schema : str
        Prefix of the PostgreSQL schemas: ``<prefix>_audio`` and ``<prefix>_video``, with
        the generation in between for a generation other than ``"."``.
    """

    def __init__(
        self,
        root: Path,
        audio_params: AudioParams = AudioParams(),
        video_params: VideoParams = VideoParams(),
        calibrations: dict[str, NullCalibration] | None = None,
        *,
        generation: str | None = None,
        thumb_params: ThumbParams = ThumbParams(),
        postings_url: str | None = None,
        postings_schema: str = "vigie",
    ):
        self.root = Path(root)
        self.generation = generation or current_generation(self.root)
        self.home = self.root / self.generation
        self.audio_params = audio_params
        self.video_params = video_params
        self.thumb_params = thumb_params
        self.thumbs = ThumbStore(self.home / "thumbs")
        lo_bin, hi_bin = audio_params.bin_range
        self.peaks = PeakStore(self.home / "peaks", hi_bin - lo_bin)
        self.postings_url = postings_url
        if postings_url is None:
            self.audio: PostingStore = EmbeddedStore(
                self.home / "audio", audio_params.index_dict(), np.dtype(np.uint32)
            )
            self.video: PostingStore = EmbeddedStore(
                self.home / "video",
                video_params.index_dict(),
                np.dtype(np.uint64),
                parts=video_params.chunks,
                prefix_bits=video_params.chunk_bits,
            )
        else:
            gen = "" if self.generation == "." else self.generation.replace("-", "_") + "_"
            self.audio = PostgresStore(
                postings_url,
                audio_params.index_dict(),
                np.dtype(np.uint32),
                schema=f"{postings_schema}_{gen}audio",
            )
            self.video = PostgresStore(
                postings_url,
                video_params.index_dict(),
                np.dtype(np.uint64),
                parts=video_params.chunks,
                prefix_bits=video_params.chunk_bits,
                schema=f"{postings_schema}_{gen}video",
            )
        self.calibrations = dict(calibrations or {})
        for modality in MODALITIES:
            if modality not in self.calibrations:
                own = self.home / modality / "calibration.json"
                self.calibrations[modality] = (
                    NullCalibration.load(own) if own.exists() else default_calibration(modality)
                )

    def swapped(self) -> bool:
        """Another generation became current since this index was opened (reopen it)."""
        return current_generation(self.root) != self.generation

    @property
    def params(self) -> dict:
        """The fingerprint parameters postings are made with (what a generation records)."""
        return {"audio": self.audio_params.index_dict(), "video": self.video_params.index_dict()}

    @property
    def calibration(self) -> NullCalibration:
        """The audio calibration (kept for callers that predate video)."""
        return self.calibrations["audio"]

    def store(self, modality: str) -> PostingStore:
        """The posting store of ``"audio"`` or ``"video"``."""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, not {modality!r}")
        return self.audio if modality == "audio" else self.video

    # -- writing ---------------------------------------------------------------------------
    def add_recording(
        self,
        channel_id: str,
        source: str,
        prints: AudioPrint | VideoPrint,
        *,
        kind: str = "asset",
        start: float = 0.0,
        stamp: str = "",
        job: str | None = None,
    ) -> Track:
        """Store a recording's fingerprint of one modality as one track, replacing an earlier
        copy of it (same channel, source and modality); with ``job``, staged until
        :meth:`publish` (see :mod:`.store.staging`)."""
        is_video = isinstance(prints, VideoPrint)
        keys = (
            chunk_keys(prints.hashes, self.video_params.chunk_bits) if is_video else prints.hashes
        )
        track = self.store("video" if is_video else "audio").add_track(
            channel_id,
            source,
            keys,
            prints.frames,
            hop_seconds=prints.hop_seconds,
            kind=kind,
            start=start,
            length_frames=int(np.ceil(prints.duration_seconds / prints.hop_seconds)),
            stamp=stamp,
            job=job,
        )
        if isinstance(prints, AudioPrint) and prints.peaks is not None:
            self.peaks.add(track.id, prints.peaks, track.start, kind=track.kind)
        return track

    def add_thumbnails(self, track: Track, thumbs: Thumbs) -> None:
        """Store a recording's reference thumbnails for its video ``track`` (staged or
        visible) now; they are shown once the track is visible (see :mod:`.thumbs`)."""
        self.thumbs.add(track.id, thumbs, kind=track.kind)

    def publish(self, job: str) -> None:
        """Swap in every track ``job`` staged, video then audio (each store in one commit)."""
        for modality in ("video", "audio"):
            self.store(modality).publish(job)

    def live_track(self, modality: str, channel_id: str, source: str, start: float) -> Track:
        """The live track of one feed and modality (created at UTC ``start`` if missing)."""
        hop = (
            self.audio_params.hop_seconds if modality == "audio" else self.video_params.hop_seconds
        )
        return self.store(modality).live_track(channel_id, source, start=start, hop_seconds=hop)

    def append_live(self, track: Track, prints: AudioPrint | VideoPrint, utc_start: float) -> None:
        """Queue the postings of ``prints``, whose frame 0 aired at UTC ``utc_start`` (epoch
        seconds), on a live track; they are written at the next :meth:`flush_live`."""
        is_video = isinstance(prints, VideoPrint)
        if not len(prints):
            return
        keys = (
            chunk_keys(prints.hashes, self.video_params.chunk_bits) if is_video else prints.hashes
        )
        shift = int(round((utc_start - track.start) / track.hop_seconds))
        frames = prints.frames.astype(np.int64) + shift
        keep = frames >= 0  # a feed stamped before its track began: nothing to place it on
        self.store("video" if is_video else "audio").append(track.id, keys[..., keep], frames[keep])
        pk = None if is_video else prints.peaks
        if pk is not None and len(pk):
            on = pk.frames + shift >= 0
            shifted = Peaks(pk.frames[on] + shift, pk.bins[on], pk.levels[on], pk.hop_seconds)
            self.peaks.append(track.id, shifted, track.start)

    def append_live_thumbnails(self, track: Track, thumbs: Thumbs) -> None:
        """Queue reference thumbnails of a live video ``track`` (times in UTC epoch
        seconds); they are written at the next :meth:`flush_live`."""
        self.thumbs.append(track.id, thumbs)

    def flush_live(
        self, covered: Mapping[str, Mapping[int, list[tuple[float, float]]]]
    ) -> dict[str, list[str]]:
        """Write queued live thumbnails and reference peaks (one pack each), then queued live
        postings with the UTC intervals each track covered, keyed by modality then track id
        (see :meth:`EmbeddedStore.flush`): a sample that matches flushed postings finds their
        thumbnails and peaks already there. Returns the segments written per modality."""
        self.thumbs.flush()
        self.peaks.flush()
        return {
            modality: self.store(modality).flush(dict(covered.get(modality, {})))
            for modality in MODALITIES
        }

    def retain(
        self,
        now_utc: float,
        retention_seconds: Mapping[str, float] | None = None,
        default_seconds: float = DEFAULT_RETENTION_SECONDS,
    ) -> int:
        """Drop live postings older than their feed's retention and merge settled live
        segments; the same for reference thumbnails, whose packs also go with the tracks
        they belong to. ``retention_seconds`` maps a live track's source to its window.
        Returns the number of posting segment files dropped."""
        retention_seconds = retention_seconds or {}
        dropped = 0
        cutoffs: dict[str, dict[int, float]] = {}
        for modality in MODALITIES:
            store = self.store(modality)
            cutoffs[modality] = {
                t.id: now_utc - retention_seconds.get(t.source, default_seconds)
                for t in store.tracks().values()
                if t.kind == "live"
            }
            dropped += store.retain(cutoffs[modality])
            store.merge_live(now_utc)
        self.thumbs.retain(cutoffs["video"], self.thumbnail_tracks)
        self.thumbs.merge_live(now_utc)
        self.peaks.retain(cutoffs["audio"], self.peak_tracks)
        self.peaks.merge_live(now_utc)
        return dropped

    def _kept_tracks(self, modality: str) -> set[int]:
        """Ids of the tracks of ``modality`` whose packs must be kept: visible ones, and
        those staged by unfinished re-index jobs."""
        store = self.store(modality)
        ids = set(store.tracks())
        for job in store.jobs():
            ids |= {t.id for t in store.staged(job).values()}
        return ids

    def thumbnail_tracks(self) -> set[int]:
        """Ids of the video tracks whose thumbnails must be kept."""
        return self._kept_tracks("video")

    def peak_tracks(self) -> set[int]:
        """Ids of the audio tracks whose reference peaks must be kept."""
        return self._kept_tracks("audio")

    def drop_stale_packs(self) -> int:
        """Delete the thumbnail and peak packs of tracks the stores no longer keep (replaced
        or removed recordings); returns the packs deleted. :meth:`retain` does it too."""
        return self.thumbs.retain({}, self.thumbnail_tracks) + self.peaks.retain(
            {}, self.peak_tracks
        )

    def coverage(self, modality: str, track: Track, start: float, end: float) -> float:
        """Fraction of the UTC interval ``[start, end]`` a live track covered (1.0 for an
        asset track: a recording is never blind)."""
        if track.kind != "live" or end <= start:
            return 1.0
        seen = sum(
            max(0.0, min(b, end) - max(a, start))
            for a, b in self.store(modality).coverage(track.id)
        )
        return min(1.0, seen / (end - start))

    def _tracks(self, modality: str, channels: set[str] | None) -> dict[int, Track]:
        tracks = self.store(modality).tracks()
        if channels is not None:
            tracks = {k: t for k, t in tracks.items() if t.channel_id in channels}
        return tracks

    def _window(
        self,
        tracks: dict[int, Track],
        around: float | None,
        window: tuple[float, float],
        sample_seconds: float,
    ) -> FrameWindow:
        """Frames searched: assets whole; live tracks, with ``around`` (the sample's capture
        UTC), only where the sample's start may lie and the sample's length after it."""
        whole = FrameWindow.whole(np.fromiter(tracks, np.int64))
        if around is None:
            return whole
        lo, hi = whole.lo.copy(), whole.hi.copy()
        for i, tid in enumerate(whole.track.tolist()):
            t = tracks[tid]
            if t.kind == "live":
                lo[i] = int(np.floor((around + window[0] - t.start) / t.hop_seconds))
                reach = around + window[1] + 1.1 * sample_seconds  # a copy may run 5 % slow
                hi[i] = int(np.ceil((reach - t.start) / t.hop_seconds)) + 1
        return FrameWindow(whole.track, lo, hi)

    # -- reading ---------------------------------------------------------------------------
    def query_audio(
        self,
        pk: Peaks,
        *,
        channels: set[str] | None = None,
        top: int = 5,
        around: float | None = None,
        window: tuple[float, float] = DEFAULT_LIVE_WINDOW,
    ) -> list[Candidate]:
        """Channels whose reference audio aligns with the sample's peaks, best first.

        ``pk`` are the sample's peaks (:func:`fingerprinting.audio.query_peaks`). With
        ``around`` (UTC epoch seconds of the sample's capture), live tracks are searched only
        for a start within ``around + window`` (seconds); assets are searched whole.
        """
        p = self.audio_params
        tracks = self._tracks("audio", channels)
        qp = audio.query_print(pk, p)
        if not tracks or len(qp) == 0:
            return []
        within = self._window(tracks, around, window, qp.duration_seconds)
        hits = self.audio.lookup(qp.hashes, within)
        aligned = vote(
            qp.triplet[hits.query_pos],
            qp.anchor_frames[hits.query_pos],
            hits.track,
            hits.frame,
            within.searched_frames(tracks),
            max_speed_change=p.max_speed_change,
            speed_step=p.speed_step,
            top=max(top, p.verify_candidates),
            candidates=max(top, p.verify_candidates),  # one refined offset bin per line kept
            background_frames=p.background_frames,
        )
        n_frames = int(round(qp.duration_seconds / p.hop_seconds))
        checked = self.peaks.check_lines(aligned[: p.verify_candidates], pk, n_frames, tracks, p)
        best = sorted(checked + aligned[p.verify_candidates :], key=lambda a: (-a.score, -a.votes))
        return [self._candidate("audio", a, tracks[a.track]) for a in best[:top]]

    def query_video(
        self,
        vq: VideoQuery,
        *,
        channels: set[str] | None = None,
        top: int = 5,
        around: float | None = None,
        window: tuple[float, float] = DEFAULT_LIVE_WINDOW,
    ) -> list[Candidate]:
        """Channels whose reference pictures align in time with the sample's, best first.

        ``vq`` holds the sample's probe hashes (:func:`fingerprinting.video.video_query`).
        A reference frame near any probe of a sample frame is a hit of that frame; the
        votes are the sample's distinct pictures (:attr:`VideoQuery.voter`) on one line
        ``t_ref = offset + speed x t_sample``. ``around`` and ``window``: as for
        :meth:`query_audio`.
        """
        p = self.video_params
        tracks = self._tracks("video", channels)
        if not tracks or len(vq) == 0:
            return []
        within = self._window(tracks, around, window, float(vq.times.max()) + p.hop_seconds)
        near = near_hashes(
            self.video,
            vq.hashes,
            max_distance=p.max_distance,
            chunk_bits=p.chunk_bits,
            radius=p.probe_radius,
            within=within,
        )
        # A sample frame that finds one reference frame through several probes: one hit.
        q = near.query_pos
        _, track, frame, voter, t_sample = distinct_rows(
            vq.frame[q], near.track, near.frame, vq.voter[q], vq.times[q]
        )
        aligned = vote(
            voter,
            t_sample / p.hop_seconds,
            track,
            frame,
            within.searched_frames(tracks),
            max_speed_change=p.max_speed_change,
            speed_step=p.speed_step,
            coarse_frames=p.coarse_frames,
            top=top,
        )
        return [self._candidate("video", a, tracks[a.track]) for a in aligned]

    def query(
        self,
        audio_peaks: Peaks | None = None,
        video_query: VideoQuery | None = None,
        *,
        around: float | None = None,
        window: tuple[float, float] = DEFAULT_LIVE_WINDOW,
        channels: set[str] | None = None,
        top: int = 5,
    ) -> Candidates:
        """Both modalities of one sample, searched in the same window (see
        :meth:`query_audio`), with how much of that window each live channel's reference
        covered: a "no match" where the reference was blind proves nothing."""
        kw = {"channels": channels, "top": top, "around": around, "window": window}
        found_audio = self.query_audio(audio_peaks, **kw) if audio_peaks is not None else []
        found_video = (
            self.query_video(video_query, **kw)
            if video_query is not None and len(video_query)
            else []
        )
        covered: dict[str, float] = {}
        if around is not None:
            for modality in MODALITIES:
                for t in self._tracks(modality, channels).values():
                    if t.kind == "live":
                        c = self.coverage(modality, t, around + window[0], around + window[1])
                        covered[t.channel_id] = max(covered.get(t.channel_id, 0.0), c)
        return Candidates(found_audio, found_video, covered)

    def _candidate(self, modality: str, a: Alignment, track: Track) -> Candidate:
        p_value = self.calibrations[modality].p_value(a.score)
        pairs = None
        if a.pairs is not None:  # frames of the track's hop on both sides (see query_*)
            q, r = a.pairs
            pairs = (
                (q * track.hop_seconds).astype(np.float32),
                track.start + r.astype(np.float64) * track.hop_seconds,
            )
        return Candidate(
            channel_id=track.channel_id,
            modality=modality,
            track=track,
            offset_seconds=track.start + a.offset_frames * track.hop_seconds,
            speed=a.speed,
            votes=a.votes,
            score=a.score,
            p_value=p_value,
            confidence=1.0 - p_value,
            pairs=pairs,
            peaks_found=a.peaks_found,
            peaks_checked=a.peaks_checked,
        )

    def thumbnails(
        self,
        candidate: Candidate,
        query_seconds: Sequence[float] | np.ndarray,
        *,
        max_gap_seconds: float = DEFAULT_MAX_GAP_SECONDS,
    ) -> list[tuple[float, float, bytes]]:
        """Reference thumbnails at a candidate's alignment, for the evidence of a match.

        For each sample time ``q`` (seconds into the sample), the stored thumbnail of the
        candidate's reference nearest to ``candidate.offset_seconds + q * candidate.speed``
        (asset seconds, or UTC epoch seconds for live tracks). An audio candidate is shown
        the pictures of the same recording or feed (its video track).

        Returns
        -------
        list of (float, float, bytes)
            ``(q, reference time of the thumbnail, JPEG bytes)``, in the order of
            ``query_seconds``; a ``q`` without a thumbnail within ``max_gap_seconds`` is
            left out (a recording without video, a feed that was down, thumbnails made
            with ``rate_hz=0``).
        """
        q = np.asarray(query_seconds, np.float64).reshape(-1)
        track = self._video_track(candidate)
        if track is None or not q.size:
            return []
        wanted = candidate.offset_seconds + q * candidate.speed
        found = self.thumbs.nearest(track.id, wanted, max_gap_seconds)
        return [(float(q[i]), t, jpeg) for i, t, jpeg in found]

    def _video_track(self, candidate: Candidate) -> Track | None:
        """The video track holding the thumbnails of a candidate's reference."""
        t = candidate.track
        if candidate.modality == "video":
            return t
        for v in self.video.tracks().values():
            if (v.channel_id, v.source, v.kind) == (t.channel_id, t.source, t.kind):
                return v
        return None

    def stats(self, modality: str = "audio") -> dict:
        """Size figures of one modality for reports: tracks, hours, postings, bytes."""
        store = self.store(modality)
        tracks = store.tracks()
        seconds = sum(t.seconds for t in tracks.values())
        return {
            "tracks": len(tracks),
            "hours": seconds / 3600.0,
            "postings": store.posting_count(),
            "bytes": store.disk_bytes(),
        }
