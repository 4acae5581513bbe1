"""Parameters of the audio fingerprint, with their units and the reasons for their values."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["AudioParams"]


@dataclass(frozen=True)
class AudioParams:
    """Fingerprint parameters. Changing any of them needs a full re-index.

    Attributes
    ----------
    sample_rate : int
        Analysis rate in Hz. 8 kHz keeps 0-4 kHz, where speech, music fundamentals and their
        strongest harmonics live, and which survives telephone-band filtering and low-bitrate
        AAC/MP3 (which cut the top end first).
    n_fft : int
        FFT size in samples (64 ms at 8 kHz): 15.6 Hz bins resolve harmonics of music and
        voices while staying stable over the frame.
    hop_length : int
        Frame step in samples (32 ms): the time resolution of offsets.
    fmin_hz, fmax_hz : float
        Band of frequencies where peaks are picked (Hz). 250-3500 Hz lies inside the
        300-3400 Hz telephone band edges' roll-off, so band-passed copies keep their peaks.
    peak_time_radius, peak_freq_radius : int
        A peak is the maximum of a (2r+1)-frame x (2r+1)-bin neighbourhood (+-128 ms,
        +-94 Hz). With ``range_db`` these set the density.
    whiten_frames, whiten_bins : int
        Size of the local-mean box subtracted from the log spectrogram before the prominence
        test, so that loud passages and equalisation do not decide where peaks go.
    min_prominence_db : float
        A peak must stand this many dB above its local mean; rejects peaks made of noise.
        (A stricter test on the query side alone changed nothing measurable: the
        ``range_db`` test already keeps only peaks well above the local mean.)
    floor_db : float
        Absolute level (dBFS) under which nothing is a peak: digital silence and dither.
    range_db, range_frames : float, int
        A reference peak must be within ``range_db`` dB of the loudest bin of the
        surrounding ``range_frames`` frames (~1 s). Only strong components survive added
        noise and low bitrates, so the reference spends its hashes on them: at 0 dB SNR
        69 % of such peaks are found again, against 49 % of all peaks (bench media).
    query_range_db : float
        The same test on the suspect sample, slightly wider: noise and overdubs raise the
        local maximum, and a reference peak must still be kept. Wider still (15-17 dB) only
        added chance hits: the null scores rose and recall did not (bench tuning set).
    fanout, query_fanout : int
        Each anchor takes the loudest ``fanout`` peaks of its target zone (the query: more)
        and makes a triplet of every two of them: C(3, 2) = 3 per reference anchor
        (about 30 hashes/s, 0.9 MB per channel-hour), C(4, 2) = 6 per query anchor. Noise
        adds weak peaks; it rarely outshines the programme's strong ones, so a noisy copy
        still picks the reference's targets among its own ``query_fanout`` loudest.
    zone_peaks : int
        Peaks after the anchor examined for its target zone.
    max_dt : int
        Largest anchor-to-target time step, in frames (63 -> 2 s).
    min_dt : int
        Smallest anchor-to-last-target step (frames), so the time ratio is meaningful.
    max_dq : float
        Largest anchor-to-target frequency step, in octaves (either direction).
    dq_step : float
        Quantisation of frequency steps, in octaves (1/24 = 2.9 %, about the precision of
        a refined peak at 300 Hz). Frequency *ratios* do not change when a copy is played
        faster, so this component needs no speed search.
    ratio_steps : int
        Quantisation of the time ratio ``(t_b - t_a) / (t_c - t_a)`` in [0, 1]: unchanged
        by speed and tempo changes.
    anchor_step : float
        Coarse anchor frequency (octaves). A +-5 % pitch change moves it by <= 0.07 octave:
        the query probes the one or two bins that covers.
    dt_step : float
        Coarse ``log2`` of the anchor-to-last-target step; a +-5 % tempo change moves it by
        <= 0.07, probed the same way.
    probe_margin : float
        A fine component within this fraction of a bin from its edge is probed on both
        sides, so that quantisation does not lose a triplet whose peaks moved slightly.
    max_speed_change : float
        Largest relative speed change searched (0.05 = +-5 %), with or without pitch change.
    speed_step : float
        Step of the slope search when aligning (0.25 %: 0.8 frame over a 10 s sample).
    """

    sample_rate: int = 8000
    n_fft: int = 512
    hop_length: int = 256
    fmin_hz: float = 250.0
    fmax_hz: float = 3500.0
    peak_time_radius: int = 4
    peak_freq_radius: int = 6
    whiten_frames: int = 31
    whiten_bins: int = 25
    min_prominence_db: float = 6.0
    floor_db: float = -80.0
    range_db: float = 12.0
    query_range_db: float = 13.5
    range_frames: int = 31
    fanout: int = 3
    query_fanout: int = 4
    zone_peaks: int = 24
    max_dt: int = 63
    min_dt: int = 2
    max_dq: float = 1.0
    dq_step: float = 1 / 24
    ratio_steps: int = 32
    anchor_step: float = 1 / 6
    dt_step: float = 0.25
    probe_margin: float = 0.15
    max_speed_change: float = 0.05
    speed_step: float = 0.0025

    @property
    def hop_seconds(self) -> float:
        """Seconds per frame."""
        return self.hop_length / self.sample_rate

    @property
    def bin_range(self) -> tuple[int, int]:
        """FFT bins ``[lo, hi)`` of the analysed band."""
        hz_per_bin = self.sample_rate / self.n_fft
        lo = int(np.ceil(self.fmin_hz / hz_per_bin))
        hi = min(int(np.floor(self.fmax_hz / hz_per_bin)) + 1, self.n_fft // 2 + 1)
        return lo, hi

    @property
    def context_frames(self) -> int:
        """Frames of spectrogram needed on each side of a frame to decide its peaks."""
        return max(self.whiten_frames // 2, self.peak_time_radius, self.range_frames // 2) + 1

    @property
    def hash_fields(self) -> tuple[tuple[str, int], ...]:
        """Bit width of each hash component, from its quantisation (27 bits by default)."""

        def bits(levels: float) -> int:
            return max(1, int(np.ceil(np.log2(levels))))

        dq = bits(2 * self.max_dq / self.dq_step + 1)
        return (
            ("dq_ab", dq),
            ("dq_ac", dq),
            ("ratio", bits(self.ratio_steps)),
            ("anchor", bits(np.log2(self.fmax_hz / self.fmin_hz) / self.anchor_step + 1)),
            ("dt", bits(np.log2(self.max_dt) / self.dt_step + 1)),
        )

    def __post_init__(self) -> None:
        total = sum(b for _, b in self.hash_fields)
        if total > 32:
            raise ValueError(f"hash components need {total} bits, over 32")

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict, recorded by the index so it can refuse mixed parameters."""
        return asdict(self)
