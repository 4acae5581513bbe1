"""The Index facade: add reference fingerprints, query suspect samples, name channels.

Owns one posting store per modality (audio for now) under ``<data_dir>/index/``, the null
calibration that turns vote scores into confidences, and the mapping from tracks back to
channels and reference times.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from fingerprinting import audio
from fingerprinting.align import Alignment, NullCalibration, vote
from fingerprinting.params import AudioParams
from fingerprinting.types import AudioPrint, Peaks

from .store.base import PostingStore, Track
from .store.embedded import EmbeddedStore

__all__ = ["Candidate", "Index", "default_calibration"]


def default_calibration() -> NullCalibration:
    """Null calibration shipped with Vigie, measured by ``python -m bench`` (see README)."""
    ref = resources.files("reference_index").joinpath("calibration_audio.json")
    with resources.as_file(ref) as path:
        return NullCalibration.load(path)


@dataclass(frozen=True)
class Candidate:
    """A channel the sample may come from, with where and how strongly it aligned.

    Attributes
    ----------
    channel_id : str
    track : Track
        The reference track that aligned best.
    offset_seconds : float
        Reference time of the sample's start: seconds into the recording for assets, UTC
        epoch seconds for live tracks.
    speed : float
        Suspect speed relative to the reference (1.04 = 4 % fast).
    votes : int
        Query triplets agreeing on the offset and speed.
    score : float
        ``-log10`` chance probability under the Poisson model (uncalibrated).
    p_value : float
        Calibrated probability that an alignment this strong arises by chance.
    confidence : float
        ``1 - p_value``.
    """

    channel_id: str
    track: Track
    offset_seconds: float
    speed: float
    votes: int
    score: float
    p_value: float
    confidence: float


class Index:
    """Reference index of one Vigie data folder.

    Parameters
    ----------
    root : Path
        Index folder (``<VIGIE_DATA_DIR>/index``).
    audio_params : AudioParams
        Landmark parameters; must equal those the index was built with.
    calibration : NullCalibration or None
        Null-score tail; ``None`` loads ``<root>/audio/calibration.json`` if present, else
        the calibration shipped with Vigie.
    """

    def __init__(
        self,
        root: Path,
        audio_params: AudioParams = AudioParams(),
        calibration: NullCalibration | None = None,
    ):
        self.root = Path(root)
        self.audio_params = audio_params
        self.audio: PostingStore = EmbeddedStore(
            self.root / "audio", audio_params.as_dict(), np.dtype(np.uint32)
        )
        if calibration is None:
            own = self.root / "audio" / "calibration.json"
            calibration = NullCalibration.load(own) if own.exists() else default_calibration()
        self.calibration = calibration

    # -- writing ---------------------------------------------------------------------------
    def add_recording(
        self,
        channel_id: str,
        source: str,
        prints: AudioPrint,
        *,
        kind: str = "asset",
        start: float = 0.0,
    ) -> Track:
        """Store a recording's fingerprint as one track, replacing an earlier copy of it."""
        return self.audio.add_track(
            channel_id,
            source,
            prints.hashes,
            prints.frames,
            hop_seconds=prints.hop_seconds,
            kind=kind,
            start=start,
            length_frames=int(np.ceil(prints.duration_seconds / prints.hop_seconds)),
        )

    # -- reading ---------------------------------------------------------------------------
    def query_audio(
        self,
        pk: Peaks,
        *,
        channels: set[str] | None = None,
        top: int = 5,
    ) -> list[Candidate]:
        """Channels whose reference audio aligns with the sample's peaks, best first.

        ``pk`` are the sample's peaks (:func:`fingerprinting.audio.query_peaks`).
        """
        p = self.audio_params
        tracks = self.audio.tracks()
        if channels is not None:
            tracks = {k: t for k, t in tracks.items() if t.channel_id in channels}
        qp = audio.query_print(pk, p)
        if not tracks or len(qp) == 0:
            return []
        hits = self.audio.lookup(qp.hashes, np.fromiter(tracks, np.int64))
        aligned = vote(
            qp.triplet[hits.query_pos],
            qp.anchor_frames[hits.query_pos],
            hits.track,
            hits.frame,
            float(sum(t.frames for t in tracks.values())),
            max_speed_change=p.max_speed_change,
            speed_step=p.speed_step,
            top=top,
        )
        return [self._candidate(a, tracks[a.track]) for a in aligned]

    def _candidate(self, a: Alignment, track: Track) -> Candidate:
        p_value = self.calibration.p_value(a.score)
        return Candidate(
            channel_id=track.channel_id,
            track=track,
            offset_seconds=track.start + a.offset_frames * track.hop_seconds,
            speed=a.speed,
            votes=a.votes,
            score=a.score,
            p_value=p_value,
            confidence=1.0 - p_value,
        )

    def stats(self) -> dict:
        """Size figures for reports: tracks, hours, postings, bytes."""
        tracks = self.audio.tracks()
        seconds = sum(t.seconds for t in tracks.values())
        return {
            "tracks": len(tracks),
            "hours": seconds / 3600.0,
            "postings": self.audio.posting_count(),
            "bytes": self.audio.disk_bytes(),
        }
