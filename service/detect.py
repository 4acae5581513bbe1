"""Sample a source, query the index by sound and by picture, fuse, decide: the core of a scan."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from fingerprinting import audio, video
from fingerprinting.capture import (
    CapturePlan,
    GuardedClient,
    Sample,
    live_edge_start,
    redact_url,
    sample,
)
from fingerprinting.decode import FrameBatch, iter_media
from reference_index.index import Candidate, Index

__all__ = [
    "Match",
    "ScanResult",
    "best_per_channel",
    "fisher",
    "fuse",
    "scan_media",
    "scan_source",
    "sample_airing",
    "scan_url",
]

#: Audio and video alignments of one channel agree when their sample offsets are this close
#: (seconds): a video frame is 0.2 s, and audio/video sync drifts in restreams.
AGREE_SECONDS = 1.0
#: A modality's best alignment counts as evidence when its calibrated chance probability is
#: under this: above the bulk (90 %) of chance alignments measured on negatives. Weaker ones
#: are what any sample finds somewhere, and are not reported.
EVIDENCE_P_VALUE = 0.1


@dataclass(frozen=True)
class Match:
    """One channel the sample may restream, with the evidence of each modality.

    Attributes
    ----------
    channel_id : str
    confidence : float
        Fused calibrated confidence (see :func:`fuse`).
    offset_seconds, speed : float
        From the modality with the stronger evidence.
    audio, video : Candidate or None
        The channel's best alignment in each modality (``None``: none found).
    modalities_agree : bool or None
        Both modalities aligned on this channel at the same place (``None``: only one did).
    reference : str
        ``"live"``: aligned with a live feed (``offset_seconds`` is then the UTC epoch at
        which the channel aired the sample's start); ``"asset"``: with a recording
        (seconds into it).
    delay_seconds : float or None
        For live matches of a dated sample: how far the suspect runs behind the channel.
    """

    channel_id: str
    confidence: float
    offset_seconds: float
    speed: float
    audio: Candidate | None
    video: Candidate | None
    modalities_agree: bool | None
    reference: str = "asset"
    delay_seconds: float | None = None

    def as_dict(self) -> dict:
        """JSON shape of one entry of ``matches``."""
        return {
            "channel_id": self.channel_id,
            "confidence": round(self.confidence, 6),
            "offset_seconds": round(self.offset_seconds, 3),
            "speed": round(self.speed, 4),
            "audio": _evidence_dict(self.audio, "votes"),
            "video": _evidence_dict(self.video, "frames_matched"),
            "modalities_agree": self.modalities_agree,
            "reference": self.reference,
            "delay_seconds": None if self.delay_seconds is None else round(self.delay_seconds, 2),
        }


def _evidence_dict(c: Candidate | None, count_name: str) -> dict | None:
    """One modality's evidence in the JSON shape (``count_name``: what its votes are)."""
    if c is None:
        return None
    out = {
        count_name: c.votes,
        "score": round(c.score, 2),
        "confidence": round(c.confidence, 6),
        "offset_seconds": round(c.offset_seconds, 3),
    }
    if c.modality == "audio":
        out["peaks_found"], out["peaks_checked"] = c.peaks_found, c.peaks_checked
    return out


@dataclass(frozen=True)
class ScanResult:
    """Outcome of scanning one source."""

    verdict: str
    matches: list[Match]
    sample_seconds: float
    source: str
    elapsed_seconds: float
    audio_seconds: float = 0.0
    video_frames: int = 0
    disagreement: bool = False
    aired_utc: float | None = None
    aired_basis: str | None = None
    coverage: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The public JSON shape of ``vigie scan --json``."""
        return {
            "verdict": self.verdict,
            "matches": [m.as_dict() for m in self.matches],
            "sample": {
                "seconds": round(self.sample_seconds, 3),
                "source": self.source,
                "audio_seconds": round(self.audio_seconds, 3),
                "video_frames": self.video_frames,
                "aired_utc": self.aired_utc,
                "aired_basis": self.aired_basis,
            },
            "live_coverage": {k: round(v, 3) for k, v in sorted(self.coverage.items())},
            "disagreement": self.disagreement,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
        }


def best_per_channel(candidates: list[Candidate]) -> list[Candidate]:
    """Keep each channel's strongest candidate, strongest first."""
    best: dict[str, Candidate] = {}
    for c in candidates:
        if c.channel_id not in best or c.score > best[c.channel_id].score:
            best[c.channel_id] = c
    return sorted(best.values(), key=lambda c: -c.score)


def fisher(p1: float, p2: float) -> float:
    """Fisher's combination of two independent p-values: ``P[chi2_4 >= -2 ln(p1 p2)]``.

    In closed form ``q (1 - ln q)`` with ``q = p1 p2``. Sound and picture are fingerprinted
    and searched independently, so their chance alignments are independent.
    """
    q = max(p1 * p2, 1e-300)
    return min(1.0, q * (1.0 - math.log(q)))


def fuse(audio_cands: list[Candidate], video_cands: list[Candidate]) -> list[Match]:
    """One :class:`Match` per channel found by either modality, most confident first.

    Only alignments that are evidence (``p_value < EVIDENCE_P_VALUE``) take part. Where
    both modalities align on a channel at the same sample offset, their p-values are
    combined (:func:`fisher`); where they align at different places, the stronger one
    stands alone and the disagreement is reported, not hidden.
    """
    best_a = {c.channel_id: c for c in _evidence(audio_cands)}
    best_v = {c.channel_id: c for c in _evidence(video_cands)}
    matches = []
    for ch in best_a.keys() | best_v.keys():
        a, v = best_a.get(ch), best_v.get(ch)
        agree = None
        if a is not None and v is not None:
            agree = abs(a.offset_seconds - v.offset_seconds) <= AGREE_SECONDS
            p = fisher(a.p_value, v.p_value) if agree else min(a.p_value, v.p_value)
        else:
            p = (a or v).p_value
        lead = min((c for c in (a, v) if c is not None), key=lambda c: c.p_value)
        matches.append(Match(ch, 1.0 - p, lead.offset_seconds, lead.speed, a, v, agree))
    return sorted(matches, key=lambda m: (-m.confidence, m.channel_id))


def _evidence(candidates: list[Candidate]) -> list[Candidate]:
    return best_per_channel([c for c in candidates if c.p_value < EVIDENCE_P_VALUE])


def scan_source(
    source: str,
    index: Index,
    seconds: float,
    min_confidence: float,
    modalities: tuple[str, ...] = ("audio", "video"),
) -> ScanResult:
    """Decode up to ``seconds`` of a local file (or anything FFmpeg opens) once, align its
    sound and its pictures, and give the verdict. A source with only one of the two is
    scanned with that one.

    Raises :class:`fingerprinting.decode.DecodeError` for unreadable input.
    """
    started = time.perf_counter()
    pa, pv = index.audio_params, index.video_params
    chunks: list[np.ndarray] = []
    batches: list[FrameBatch] = []
    for item in iter_media(
        source,
        sample_rate=pa.sample_rate if "audio" in modalities else None,
        fps=pv.query_fps if "video" in modalities else None,
        width=pv.frame_width,
        max_seconds=seconds,
    ):
        (batches if isinstance(item, FrameBatch) else chunks).append(item)
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return scan_media(pcm, FrameBatch.concat(batches), index, min_confidence, source, started)


def scan_url(
    url: str,
    index: Index,
    seconds: float,
    min_confidence: float,
    modalities: tuple[str, ...] = ("audio", "video"),
    *,
    client: GuardedClient | None = None,
    deadline_seconds: float = 45.0,
    egress_note: str = "",
) -> tuple[ScanResult, Sample]:
    """Capture ``seconds`` of a stream URL through the guarded capture layer and scan it.

    Raises :class:`fingerprinting.capture.CaptureError` (with its ``reason`` and the
    evidence) when no usable sample could be captured.
    """
    started = time.perf_counter()
    pa, pv = index.audio_params, index.video_params
    plan = CapturePlan(
        seconds=seconds,
        sample_rate=pa.sample_rate if "audio" in modalities else None,
        fps=pv.query_fps if "video" in modalities else None,
        frame_width=pv.frame_width,
        deadline_seconds=deadline_seconds,
        egress_note=egress_note,
    )
    got = sample(url, plan, client=client)
    shown = redact_url(got.evidence.requested_url)  # without the Kodi |header suffix
    aired, basis = sample_airing(got)
    result = scan_media(
        got.pcm, got.frames, index, min_confidence, shown, started, aired=aired, basis=basis
    )
    return result, got


def sample_airing(got: Sample) -> tuple[float, str]:
    """When the sample's first media aired at the suspect (UTC epoch) and how that is known.

    ``"live_edge"``: bounded from the live playlist's reloads (see
    :mod:`fingerprinting.capture.timing`); otherwise ``"capture_start"``, the wall clock
    when the capture began (for a continuous stream, its media is what was sent then).
    """
    edge = live_edge_start(got.evidence)
    if edge is not None:
        return edge.timestamp(), "live_edge"
    return got.started_utc.timestamp(), "capture_start"


def scan_media(
    pcm: np.ndarray,
    frames: FrameBatch,
    index: Index,
    min_confidence: float,
    source: str,
    started: float,
    *,
    aired: float | None = None,
    basis: str | None = None,
) -> ScanResult:
    """Align decoded sound (mono float32 at the index's rate) and frames (at its query
    rate) with the index, fuse the modalities and decide. ``started``: perf_counter at
    the start of the scan, for its elapsed time.

    ``aired`` (UTC epoch seconds, how it is known in ``basis``): when the sample's media
    aired at the suspect. Live references are then searched only in the default window
    before it (a live restream shows what the channel aired shortly before), and live
    matches get their delay; without it (files), live references are searched whole.
    Recordings are always searched whole.
    """
    pa, pv = index.audio_params, index.video_params
    found = index.query(
        audio.query_peaks(pcm, pa) if pcm.size else None,
        video.video_query(frames, pv) if len(frames) else None,
        around=aired,
    )
    audio_cands, video_cands = found.audio, found.video
    matches = [
        _live(m, aired) for m in fuse(audio_cands, video_cands) if m.confidence >= min_confidence
    ]
    audio_seconds = pcm.size / pa.sample_rate
    video_seconds = len(frames) / pv.query_fps
    return ScanResult(
        verdict="match" if matches else "no_match",
        matches=matches,
        sample_seconds=max(audio_seconds, video_seconds),
        source=source,
        elapsed_seconds=time.perf_counter() - started,
        audio_seconds=audio_seconds,
        video_frames=len(frames),
        disagreement=_disagree(audio_cands, video_cands, min_confidence),
        aired_utc=aired,
        aired_basis=basis,
        coverage=found.coverage,
    )


def _live(m: Match, aired: float | None) -> Match:
    """Say whether ``m`` aligned with a live feed, and its delay when the sample is dated."""
    lead = min((c for c in (m.audio, m.video) if c is not None), key=lambda c: c.p_value)
    if lead.track.kind != "live":
        return m
    delay = None if aired is None else aired - lead.offset_seconds
    return replace(m, reference="live", delay_seconds=delay)


def _disagree(audio_cands: list[Candidate], video_cands: list[Candidate], floor: float) -> bool:
    """Sound and picture each confidently name a channel, and not the same one."""
    a = [c for c in audio_cands if c.confidence >= floor]
    v = [c for c in video_cands if c.confidence >= floor]
    return bool(a and v and best_per_channel(a)[0].channel_id != best_per_channel(v)[0].channel_id)
