"""Plain data passed between fingerprinting, the index and the service (no behaviour)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AudioPrint", "Peaks", "SpeedHypotheses"]


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
    """Reference landmarks of one recording.

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
class SpeedHypotheses:
    """Playback speeds searched on the query side.

    ``speeds[k]`` is the suspect's speed relative to the reference (1.04 = 4 % fast);
    ``pitch_follows[k]`` says whether frequencies scaled with it (resampling) or not (tempo).
    """

    speeds: np.ndarray
    pitch_follows: np.ndarray

    def __len__(self) -> int:
        return int(self.speeds.size)
