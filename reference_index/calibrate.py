"""Measure the null distribution of alignment scores on media known not to be indexed.

The Poisson model behind :func:`fingerprinting.align.model_score` assumes chance hits are
independent; real media repeats itself (sustained notes, beats, keys shared across pieces;
static shots, similar framing), so real negatives score higher than the model says. The
measured tail of best-candidate scores on negatives calibrates confidences
(:class:`fingerprinting.align.NullCalibration`), one calibration per modality.
"""

from __future__ import annotations

import numpy as np

from fingerprinting import audio, video
from fingerprinting.decode import FrameBatch, decode_audio, decode_frames

from .index import MODALITIES, Index

__all__ = ["measure_null_scores"]


def measure_null_scores(
    index: Index,
    sources: list[str],
    *,
    seconds: float = 10.0,
    n_queries: int = 300,
    seed: int = 0,
    modality: str = "audio",
) -> np.ndarray:
    """Best-candidate model scores of ``n_queries`` cuts of ``sources`` (not in the index).

    Cuts of ``seconds`` are spread evenly over the sources (each source is cut at random
    starts, seeded for repeatability). ``modality`` is ``"audio"`` or ``"video"``.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, not {modality!r}")
    if not sources:
        raise ValueError(f"no negative {modality} given")
    rng = np.random.default_rng(seed)
    if modality == "audio":
        cuts = _AudioCuts(index, sources, seconds)
    else:
        cuts = _VideoCuts(index, sources, seconds)
    scores = []
    for i in range(n_queries):
        cands = cuts.query(i % cuts.n_sources, rng)
        scores.append(cands[0].score if cands else 0.0)
    return np.asarray(scores)


class _AudioCuts:
    def __init__(self, index: Index, sources: list[str], seconds: float):
        p = self.p = index.audio_params
        self.index = index
        self.n = int(seconds * p.sample_rate)
        pcm = [decode_audio(s, p.sample_rate) for s in sources]
        self.usable = [y for y in pcm if y.size >= self.n]
        if not self.usable:
            raise ValueError(f"no negative source is at least {seconds} s long")
        self.n_sources = len(self.usable)

    def query(self, k: int, rng: np.random.Generator) -> list:
        y = self.usable[k]
        start = int(rng.integers(0, y.size - self.n + 1))
        return self.index.query_audio(audio.query_peaks(y[start : start + self.n], self.p), top=1)


class _VideoCuts:
    def __init__(self, index: Index, sources: list[str], seconds: float):
        p = self.p = index.video_params
        self.index = index
        self.seconds = seconds
        frames = [decode_frames(s, p.query_fps, width=p.frame_width) for s in sources]
        self.usable = [f for f in frames if len(f) and f.times[-1] - f.times[0] >= seconds]
        if not self.usable:
            raise ValueError(f"no negative source has at least {seconds} s of video")
        self.n_sources = len(self.usable)

    def query(self, k: int, rng: np.random.Generator) -> list:
        f = self.usable[k]
        start = float(rng.uniform(f.times[0], f.times[-1] - self.seconds))
        sel = (f.times >= start) & (f.times < start + self.seconds)
        cut = FrameBatch(f.times[sel] - start, f.gray[sel])
        return self.index.query_video(video.video_query(cut, self.p), top=1)
