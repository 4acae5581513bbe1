"""Measure the null distribution of alignment scores on audio known not to be indexed.

The Poisson model behind :func:`fingerprinting.align.model_score` assumes chance hits are
independent; real audio repeats itself (sustained notes, beats, keys shared across pieces),
so real negatives score higher than the model says. The measured tail of best-candidate
scores on negatives calibrates confidences (:class:`fingerprinting.align.NullCalibration`).
"""

from __future__ import annotations

import numpy as np

from fingerprinting import audio
from fingerprinting.decode import decode_audio

from .index import Index

__all__ = ["measure_null_scores"]


def measure_null_scores(
    index: Index,
    sources: list[str],
    *,
    seconds: float = 10.0,
    n_queries: int = 300,
    seed: int = 0,
) -> np.ndarray:
    """Best-candidate model scores of ``n_queries`` cuts of ``sources`` (not in the index).

    Cuts of ``seconds`` are spread evenly over the sources (each source's audio is cut at
    random starts, seeded for repeatability).
    """
    if not sources:
        raise ValueError("no negative audio given")
    p = index.audio_params
    rng = np.random.default_rng(seed)
    pcm = [decode_audio(s, p.sample_rate) for s in sources]
    usable = [y for y in pcm if y.size >= seconds * p.sample_rate]
    if not usable:
        raise ValueError(f"no negative source is at least {seconds} s long")
    n = int(seconds * p.sample_rate)
    scores = []
    for i in range(n_queries):
        y = usable[i % len(usable)]
        start = int(rng.integers(0, y.size - n + 1))
        cands = index.query_audio(audio.query_peaks(y[start : start + n], p), top=1)
        scores.append(cands[0].score if cands else 0.0)
    return np.asarray(scores)
