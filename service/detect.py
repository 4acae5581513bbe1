"""Sample a source, query the index, decide match / no match: the core of a scan."""

from __future__ import annotations

import time
from dataclasses import dataclass

from fingerprinting import audio
from fingerprinting.decode import decode_audio
from reference_index.index import Candidate, Index

__all__ = ["ScanResult", "best_per_channel", "scan_source"]


@dataclass(frozen=True)
class ScanResult:
    """Outcome of scanning one source."""

    verdict: str
    matches: list[Candidate]
    sample_seconds: float
    source: str
    elapsed_seconds: float

    def as_dict(self) -> dict:
        """The public JSON shape of ``vigie scan --json``."""
        return {
            "verdict": self.verdict,
            "matches": [
                {
                    "channel_id": c.channel_id,
                    "confidence": round(c.confidence, 6),
                    "offset_seconds": round(c.offset_seconds, 3),
                    "speed": round(c.speed, 4),
                    "audio": {"votes": c.votes, "score": round(c.score, 2)},
                }
                for c in self.matches
            ],
            "sample": {"seconds": round(self.sample_seconds, 3), "source": self.source},
            "elapsed_seconds": round(self.elapsed_seconds, 3),
        }


def best_per_channel(candidates: list[Candidate]) -> list[Candidate]:
    """Keep each channel's strongest candidate, strongest first."""
    best: dict[str, Candidate] = {}
    for c in candidates:
        if c.channel_id not in best or c.score > best[c.channel_id].score:
            best[c.channel_id] = c
    return sorted(best.values(), key=lambda c: -c.score)


def scan_source(source: str, index: Index, seconds: float, min_confidence: float) -> ScanResult:
    """Decode up to ``seconds`` of ``source``, align it, and give the verdict.

    Raises :class:`fingerprinting.decode.DecodeError` for unreadable input.
    """
    started = time.perf_counter()
    p = index.audio_params
    pcm = decode_audio(source, p.sample_rate, max_seconds=seconds)
    candidates = best_per_channel(index.query_audio(audio.query_peaks(pcm, p)))
    matches = [c for c in candidates if c.confidence >= min_confidence]
    return ScanResult(
        verdict="match" if matches else "no_match",
        matches=matches,
        sample_seconds=pcm.size / p.sample_rate,
        source=source,
        elapsed_seconds=time.perf_counter() - started,
    )
