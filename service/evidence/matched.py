"""What a scan's matches add to its artefacts: ``alignment.json`` (the matched points of
each channel) and ``reference/<channel>/`` (the reference's pictures at the matched
offsets, beside the suspect frames they correspond to).

The points come from ``Candidate.pairs`` (hashes and frames that voted for the winning
alignment); the pictures from :meth:`reference_index.index.Index.thumbnails`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fingerprinting.capture import Sample

from .files import pretty_json, write_new

if TYPE_CHECKING:
    from reference_index.index import Candidate

    from ..detect import Match

__all__ = ["MAX_REFERENCE_FRAMES", "Thumbnails", "jpeg", "millis", "write_matched"]

log = logging.getLogger("vigie.evidence")
#: Reference frames kept per matched channel at most (evenly spread over the sample):
#: enough to compare the pictures side by side, without storing a second video.
MAX_REFERENCE_FRAMES = 120
#: JPEG quality of the frames (OpenCV's scale, 0-100).
JPEG_QUALITY = 90
#: Sample time step of the reference frames of a sample without pictures, seconds.
AUDIO_ONLY_STEP_SECONDS = 1.0

#: ``(candidate, query seconds) -> [(query s, reference s, JPEG bytes)]``:
#: :meth:`reference_index.index.Index.thumbnails` of the index the scan matched against.
Thumbnails = Callable[["Candidate", np.ndarray], list[tuple[float, float, bytes]]]


def write_matched(
    folder: Path, sample: Sample, matches: Sequence[Match], thumbnails: Thumbnails | None
) -> None:
    alignment = {}
    for m in matches:
        entry = {"audio": _pairs(m.audio), "video": _pairs(m.video)}
        if entry["audio"] or entry["video"]:
            alignment[m.channel_id] = entry
    write_new(folder / "alignment.json", pretty_json(alignment))
    if thumbnails is None:
        return
    wanted = _reference_times(sample)
    for m in matches:
        lead = m.video or m.audio
        if lead is None or not wanted.size:
            continue
        try:
            found = thumbnails(lead, wanted)
        except Exception:  # reference frames illustrate a match; they never undo its verdict
            log.exception("reference frames of %s could not be read", m.channel_id)
            continue
        listed, seen = [], set()
        for q, ref, jpeg in _closest(lead, found):
            ms = millis(q)
            if ms in seen:
                continue
            seen.add(ms)
            rel = f"reference/{m.channel_id}/r_{ms}.jpg"
            write_new(folder / rel, jpeg)
            listed.append(
                {"query_seconds": round(q, 3), "reference_seconds": round(ref, 3), "path": rel}
            )
        if listed:
            write_new(folder / "reference" / m.channel_id / "frames.json", pretty_json(listed))


def _closest(
    candidate: Candidate, found: list[tuple[float, float, bytes]]
) -> list[tuple[float, float, bytes]]:
    """One sample time per reference thumbnail: the one it is nearest to. References keep
    thumbnails sparser than the sample's frames; the nearest stored one serves several
    sample times, and showing it beside a suspect frame a second away would look like a
    mismatch."""
    best: dict[float, tuple[float, float, bytes]] = {}
    for q, ref, jpeg in found:
        gap = abs(candidate.offset_seconds + q * candidate.speed - ref)
        kept = best.get(ref)
        if kept is None or gap < abs(candidate.offset_seconds + kept[0] * candidate.speed - ref):
            best[ref] = (q, ref, jpeg)
    return sorted(best.values(), key=lambda item: item[0])


def _pairs(candidate: Candidate | None) -> dict | None:
    if candidate is None or candidate.pairs is None:
        return None
    q, r = candidate.pairs
    return {
        "query_seconds": [round(float(x), 4) for x in q],
        "reference_seconds": [round(float(x), 4) for x in r],
    }


def _reference_times(sample: Sample) -> np.ndarray:
    """Sample times to show the reference at: the suspect frames' (so each reference
    frame has its suspect beside it), or one a second for a sample without pictures;
    evenly thinned to :data:`MAX_REFERENCE_FRAMES`."""
    times = np.asarray(sample.frames.times, np.float64)
    if not times.size:
        times = np.arange(0.0, sample.audio_seconds, AUDIO_ONLY_STEP_SECONDS)
    if times.size > MAX_REFERENCE_FRAMES:
        pick = np.linspace(0, times.size - 1, MAX_REFERENCE_FRAMES).round().astype(int)
        times = times[np.unique(pick)]
    return times


def millis(seconds: float) -> int:
    """A sample time as the whole milliseconds of an artefact's name."""
    return max(0, int(round(float(seconds) * 1000.0)))


def jpeg(gray: np.ndarray) -> bytes:
    """A grey frame as JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("a frame could not be encoded as JPEG")
    return buf.tobytes()
