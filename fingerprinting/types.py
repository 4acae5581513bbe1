"""Plain data passed between fingerprinting, the index and the service (no behaviour)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "AudioPrint",
    "Fingerprint",
    "FrameBatch",
    "Peaks",
    "QueryPrint",
    "VideoPrint",
    "VideoQuery",
]


@dataclass(frozen=True)
class Peaks:
    """Spectral peaks: positions in frames and band-relative FFT bins (float, sub-bin), and
    levels in dB."""

    frames: np.ndarray
    bins: np.ndarray
    levels: np.ndarray
    hop_seconds: float

    @classmethod
    def concat(cls, parts: list[Peaks], hop_seconds: float) -> Peaks:
        """Join peak blocks of one stream, in order."""
        if not parts:
            empty = np.empty(0, np.float64)
            return cls(empty, empty, empty, hop_seconds)
        return cls(
            np.concatenate([p.frames for p in parts]),
            np.concatenate([p.bins for p in parts]),
            np.concatenate([p.levels for p in parts]),
            hop_seconds,
        )

    def __len__(self) -> int:
        return int(self.frames.size)


@dataclass(frozen=True)
class Fingerprint:
    """Reference fingerprint of one recording: hashes and the time of each.

    Attributes
    ----------
    hashes : ndarray of uint32 (audio triplets) or uint64 (video frames)
        Hashes, sorted by ``frames``.
    frames : ndarray of uint32
        Time of each hash, in frames of ``hop_seconds`` from the recording's start.
    hop_seconds : float
        Seconds per frame.
    duration_seconds : float
        Length of the media that was fingerprinted.
    """

    hashes: np.ndarray
    frames: np.ndarray
    hop_seconds: float
    duration_seconds: float

    def __len__(self) -> int:
        return int(self.hashes.size)


@dataclass(frozen=True)
class AudioPrint(Fingerprint):
    """Audio fingerprint: uint32 triplet hashes at their anchor peak's frame (32 ms), and
    the reference peaks they were made of (``peaks``, frames on the same axis; ``None``
    where not kept), which the index stores to verify alignments
    (:mod:`fingerprinting.verify`)."""

    peaks: Peaks | None = field(default=None, compare=False, repr=False)


class VideoPrint(Fingerprint):
    """Video fingerprint: uint64 perceptual hashes of informative frames (0.2 s frames)."""


@dataclass(frozen=True)
class VideoQuery:
    """What a suspect sample's frames look up: one hash per frame and probe.

    Attributes
    ----------
    hashes : ndarray of uint64
        Perceptual hash of each (frame, probe) that is informative.
    frame : ndarray of int64
        Sample frame each hash comes from.
    voter : ndarray of int64
        Picture group of that frame (consecutive frames showing the same picture): a group
        votes once per alignment line.
    times : ndarray of float64
        That frame's time in the sample, in seconds.
    probe : ndarray of int64
        Index into ``probe_names`` of the view hashed (whole, mirrored, zoomed out, a
        picture-in-picture window).
    probe_names : tuple of str
    n_frames : int
        Frames sampled, informative or not.
    duration_seconds : float
        Length of the sample.
    """

    hashes: np.ndarray
    frame: np.ndarray
    voter: np.ndarray
    times: np.ndarray
    probe: np.ndarray
    probe_names: tuple[str, ...]
    n_frames: int
    duration_seconds: float

    def __len__(self) -> int:
        return int(self.hashes.size)


@dataclass(frozen=True)
class QueryPrint:
    """What a suspect sample looks up: hashes with the triplet and time each came from.

    Attributes
    ----------
    hashes : ndarray of uint32
        Hash values to look up (several probes per triplet).
    triplet : ndarray of int64
        Index of the query triplet each probe belongs to (one vote per triplet).
    anchor_frames : ndarray of float64
        The probing triplet's anchor time in the sample, in frames.
    n_triplets : int
        Triplets in the sample.
    duration_seconds : float
        Length of the sample that produced the peaks.
    """

    hashes: np.ndarray
    triplet: np.ndarray
    anchor_frames: np.ndarray
    n_triplets: int
    duration_seconds: float

    def __len__(self) -> int:
        return int(self.hashes.size)


@dataclass(frozen=True)
class FrameBatch:
    """Decoded video frames, downscaled and grey.

    Attributes
    ----------
    times : ndarray of float64, shape (n,)
        Presentation time of each frame, in seconds from the start of the source.
    gray : ndarray of uint8, shape (n, height, width)
        Luma, scaled so that the display aspect ratio is kept.
    """

    times: np.ndarray
    gray: np.ndarray

    def __len__(self) -> int:
        return int(self.times.size)

    @classmethod
    def concat(cls, parts: list[FrameBatch]) -> FrameBatch:
        """Join batches of one stream (all of one frame size), in order."""
        if not parts:
            return cls(np.empty(0), np.empty((0, 0, 0), np.uint8))
        return cls(
            np.concatenate([p.times for p in parts]), np.concatenate([p.gray for p in parts])
        )
