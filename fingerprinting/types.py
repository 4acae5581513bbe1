"""Plain data passed between fingerprinting, the index and the service (no behaviour)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AudioPrint", "Peaks", "QueryPrint"]


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
class AudioPrint:
    """Reference fingerprint of one recording: triplet hashes and their anchor times.

    Attributes
    ----------
    hashes : ndarray of uint32
        Landmark hashes, sorted by ``frames``.
    frames : ndarray of uint32
        Anchor time of each hash, in frames of ``hop_seconds`` from the recording's start.
    hop_seconds : float
        Seconds per frame.
    duration_seconds : float
        Length of the audio that was fingerprinted.
    """

    hashes: np.ndarray
    frames: np.ndarray
    hop_seconds: float
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
