"""Parameters of the audio fingerprint, with their units and the reasons for their values."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["AudioParams", "VideoParams"]


@dataclass(frozen=True)
class AudioParams:
    """Fingerprint parameters. Changing one that shapes what is stored (:meth:`index_dict`)
    needs a full re-index; the query-side ones (``query_*``, ``probe_margin``, the speed
    search, ``background_frames``, ``verify_*``) may change freely, but the null calibration
    is measured with them (``vigie calibrate``).

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
    zone_peaks, query_zone_peaks : int
        Peaks after the anchor examined for its target zone (a bound on the work: the zone
        is the next ``max_dt`` frames). A reference has about 12 peaks per second, so 24
        cover the zone; noise multiplies a suspect sample's peaks (five-fold at 0 dB SNR),
        and 24 of them would cover 0.5 s of it: the reference's targets further away
        would never be paired. 128 keep the whole zone at that density (the true triplets
        of the worst tenth of 0 dB queries rose from 5 to 17, for 4 % more probes).
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
    background_frames : int
        A line is scored against the chance hits of its own track within this many frames
        of its offset (94: +-3 s) when they are denser than the index's average
        (:func:`fingerprinting.align.vote`): music in the key and tempo of a reference
        track hits it densely by chance, and a line through those hits is no evidence.
    verify_candidates : int
        Tracks whose best line is checked against the reference's stored peaks
        (:mod:`fingerprinting.verify`). Of the 48 bench queries that voting alone missed
        (5 s, 0 dB noise, tempo +5 %, commentary...), 36 had their true track among the
        first 10 (7 more between 12th and 40th); every line checked raises the null's best
        score a little.
    verify_frames, verify_bins : int
        A reference peak is found when the sample has a peak within this many frames
        (+-32 ms) and bins (+-15.6 Hz) of its mapped place: the rounding of both positions
        and a 0.25 % error of the speed over 10 s stay inside it.
    verify_search_votes : int
        A checked line with fewer votes than this is searched for by its peaks too, through
        each of its hits at each speed (:meth:`fingerprinting.verify.PeakGrid.search`):
        a few votes do not fix a line's speed. Lines with more are fixed by their votes,
        and searching them would cost ~40 checks a hit. On the bench (5 s samples), the
        search took 0 dB noise from 92.5 to 97.5 % recall and a 5 % tempo change from
        92.5 to 97.5 %, with the null calibration unchanged.
    verify_search_lines : int
        Only the first this many checked lines (best vote score first) are searched: each
        line searched is ~80 more chances for a negative, and no bench copy was found by
        searching the third to tenth. Searching the first 2 instead of all 10 gave the same
        recall in every bench cell, a null threshold of 1.91 instead of 1.94, and 12.9
        instead of 13.7 ms per 10 s query (medians, interleaved in one process).
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
    query_zone_peaks: int = 128
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
    background_frames: int = 94
    verify_candidates: int = 10
    verify_frames: int = 1
    verify_bins: int = 1
    verify_search_votes: int = 8
    verify_search_lines: int = 2

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
        """Plain dict of every parameter."""
        return asdict(self)

    def index_dict(self) -> dict[str, float | int]:
        """The parameters that decide what is stored (postings and reference peaks):
        recorded by the index, which refuses to mix postings made with other ones."""
        query_side = {
            "query_range_db",
            "query_fanout",
            "query_zone_peaks",
            "probe_margin",
            "max_speed_change",
            "speed_step",
            "background_frames",
            "verify_candidates",
            "verify_frames",
            "verify_bins",
            "verify_search_votes",
            "verify_search_lines",
        }
        return {k: v for k, v in asdict(self).items() if k not in query_side}


@dataclass(frozen=True)
class VideoParams:
    """Video fingerprint parameters. Changing the hashing ones needs a full re-index.

    Attributes
    ----------
    ref_fps, query_fps : float
        Frames per second hashed in references (dense: every 0.2 s has a posting, so a query
        frame is never more than 0.1 s from one) and in suspect samples (sparse: 20 frames
        in a 10 s sample are plenty of independent votes).
    frame_width : int
        Width of decoded frames, in pixels (see :data:`fingerprinting.decode.DEFAULT_FRAME_WIDTH`).
    canonical_size : int
        Side of the square, bar-free picture that is hashed (pixels): the hashes resample
        to 32 x 32 (pHash) or 9 x 8 (dHash); 64 leaves them an anti-aliasing margin.
    frame_hash : str
        ``"dhash"`` or ``"phash"`` (imagehash's definitions, 64 bits). dHash, measured over
        Vigie's query probes (``bench/results/video_hashes.md``): 97.9 % of true frames
        found at a chance rate of 1e-3 per frame pair, against 93.9 % for pHash (crop 10 %:
        99.5 against 71.5 %; pillarbox: 86 against 75 %), at 10 us per picture against
        24 us. PDQ (256 bits) found 98.8 %, at 92 us and four times the index.
    black_level : float
        Luma at most this is black (video black is 16; low bitrate encoders add noise and
        ringing).
    bar_dark_fraction : float
        A row or column is bar when at least this fraction of its pixels is black: logos
        and pirate watermarks are often drawn over the bars.
    bar_max_fraction : float
        Largest fraction of a side taken as bars; the rest is picture even if dark.
    bar_window : int
        Bars are the narrowest seen over this many neighbouring frames: bars are static,
        and a dark shot next to a bar must not widen it.
    flat_std : float
        A canonical picture with less spread than this (grey levels) is black, a fade or a
        flat card: it never votes.
    stripes_ratio : float
        A picture whose vertical detail is under this fraction of its horizontal detail is
        made of vertical stripes (colour bars, test cards): it never votes.
    logo_box : tuple of float
        (width, height) of each corner box, as fractions of the picture, filled with the
        picture's mean before hashing: channel logos, pirate watermarks and blurred-out
        logos live there, and must weigh nothing in the hash.
    ticker_band : float
        Height of the bottom band (fraction of the picture) filled the same way: news
        tickers and pirates' scrolling banners run there.
    chunk_bits : int
        Multi-index hashing: the 64-bit hash is split into 64 / chunk_bits chunks; two
        hashes within distance ``d`` share a chunk within ``d // chunks`` bits.
    probe_radius : int
        Bits flipped in each chunk when probing (1: 17 probes per chunk), so every reference
        frame within ``(probe_radius + 1) * chunks - 1`` bits is found exactly (7 bits).
    max_distance : int
        Hamming distance (bits of 64) up to which a reference frame counts as the same
        picture; within the 7 bits that multi-index hashing finds exactly. Measured on the
        quick video bench (dHash, 20 channel-hours): 6 bits found 100 % of the 10 s and
        98.5 % of the 5 s queries, with the highest null score at 8.1; 4, 5, 8 and 10 bits
        found 96.2/82.3, 100/92.3, 98.5/93.1 and 97.7/90.0 %. Fewer bits leave fewer chance
        hits, so the model expects fewer and chance lines score higher; more bits let chance
        hits crowd the true line.
    crop_probes : tuple of float
        Total crops (fraction of each dimension) a query is zoomed back out for (edges
        replicated), since pirates crop away logos and borders.
    aspect_probes : tuple of float
        Crops of one dimension only (fraction of it) undone the same way: a 16:9 channel
        cut to 4:3 for a pillarboxed restream loses 25 % of its width, a 4:3 one cut to
        16:9 25 % of its height.
    pip_edge_level : float
        Picture-in-picture windows are found from their borders: straight edges that stay
        in place while the pictures on both sides move. A pixel is on an edge in a frame
        when the luma step across it exceeds this (grey levels) and is the local maximum.
    pip_lines : int
        Candidate border rows and columns kept (the strongest persistent lines of each).
    pip_scale : tuple of float
        Smallest and largest window side, as a fraction of the frame side.
    pip_aspect_tolerance : float
        A window keeps the frame's aspect ratio within this relative tolerance (insets are
        scaled, not stretched).
    pip_min_side, pip_min_border : float
        Each side of a window must be an edge in at least ``pip_min_side`` of its length
        and frames on average, and the four sides together ``pip_min_border``.
    pip_windows : int
        Windows probed at most (the best-bordered ones).
    group_distance : int
        Consecutive sample frames whose pictures are within this many bits of the first
        frame of their group are one picture and vote once (a frozen stream repeats one
        frame). Merging near-identical pictures too (2 or 4 bits) was measured: it took
        the 10 s recall from 98.5 % to 92.3 % (2 bits, pHash) for no fewer false matches,
        since slow scenes change by a few bits a frame.
    max_speed_change : float
        Largest relative speed change searched (0.05 = +-5 %).
    speed_step : float
        Step of the slope search (1 %: 0.1 s over a 10 s sample, half a reference frame).
    coarse_frames : int
        First-stage offset bin of the voting, in reference frames (1.6 s > 5 % of 10 s).
    """

    ref_fps: float = 5.0
    query_fps: float = 2.0
    frame_width: int = 192
    canonical_size: int = 64
    frame_hash: str = "dhash"
    black_level: float = 40.0
    bar_dark_fraction: float = 0.75
    bar_max_fraction: float = 0.3
    bar_window: int = 25
    flat_std: float = 6.0
    stripes_ratio: float = 0.15
    logo_box: tuple[float, float] = (0.22, 0.18)
    ticker_band: float = 0.12
    chunk_bits: int = 16
    probe_radius: int = 1
    max_distance: int = 6
    crop_probes: tuple[float, ...] = (0.05, 0.10)
    aspect_probes: tuple[float, ...] = (0.25,)
    pip_edge_level: float = 6.0
    pip_lines: int = 10
    pip_scale: tuple[float, float] = (0.3, 0.9)
    pip_aspect_tolerance: float = 0.12
    pip_min_side: float = 0.3
    pip_min_border: float = 0.55
    pip_windows: int = 4
    group_distance: int = 0
    max_speed_change: float = 0.05
    speed_step: float = 0.01
    coarse_frames: int = 8

    @property
    def hop_seconds(self) -> float:
        """Seconds per reference frame (the time unit of video postings)."""
        return 1.0 / self.ref_fps

    def __post_init__(self) -> None:
        if self.frame_hash not in ("dhash", "phash"):
            raise ValueError(f"frame_hash must be 'dhash' or 'phash', not {self.frame_hash!r}")
        if 64 % self.chunk_bits:
            raise ValueError(f"chunk_bits must divide 64, not {self.chunk_bits}")

    @property
    def chunks(self) -> int:
        """Chunks (key spaces) of the multi-index hash."""
        return 64 // self.chunk_bits

    def index_dict(self) -> dict:
        """The parameters that decide what is stored: recorded by the index, which refuses
        to mix postings made with other ones. (Query-side ones may change freely.)"""
        keys = (
            "ref_fps",
            "frame_width",
            "canonical_size",
            "frame_hash",
            "black_level",
            "bar_dark_fraction",
            "bar_max_fraction",
            "bar_window",
            "flat_std",
            "stripes_ratio",
            "logo_box",
            "ticker_band",
            "chunk_bits",
        )
        d = asdict(self)
        return {k: list(d[k]) if isinstance(d[k], tuple) else d[k] for k in keys}
