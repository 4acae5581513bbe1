"""Follow a live HLS feed without end, in chunks stamped in UTC: the reference side of capture.

Rights holders' live channels are fingerprinted continuously (``reference_index.live``).
:func:`follow` reads one feed through the same guarded client and HLS loop as
:func:`~.sample.sample`, cut into chunks of whole segments (so each chunk decodes on its
own and a lost one loses nothing else), each with its UTC start, its media sequence range
and its own evidence (a feed followed for days must not grow one record without bound).

Failures end the iteration with a :class:`~.errors.CaptureError` (``stalled`` when the
feed stops advancing for ``stall_seconds``): reconnecting, with backoff, and recording
the gap is the caller's job, which knows the channel.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from ..types import FrameBatch
from .errors import CaptureError
from .evidence import Evidence
from .hls import Piece, choose, fetch_playlist, segments
from .http import Fetcher, GuardedClient
from .limits import ByteBudget, Deadline
from .m3u8 import MasterPlaylist
from .options import split_kodi_url
from .redact import redact_url
from .runs import decode_pieces
from .sample import CapturePlan

__all__ = ["LiveChunk", "follow"]


@dataclass
class LiveChunk:
    """Decoded media of consecutive segments of a live feed.

    Attributes
    ----------
    utc_start : datetime
        UTC of the chunk's first sample: the segment's ``PROGRAM-DATE-TIME`` when the feed
        states it, else the previous chunk's end, else the fetch time less the segment's
        duration (a live segment is published once it is complete).
    pcm : ndarray of float32
        Mono audio at ``plan.sample_rate`` Hz.
    frames : FrameBatch
        Frames at ``plan.fps``, times in seconds from ``utc_start``.
    seconds : float
        Media duration the playlist announces for the chunk's segments.
    sequences : tuple of int
        First and last media sequence numbers.
    discontinuity : bool
        The chunk's start is not the previous chunk's end: it is the first chunk, or it
        comes after a gap, an HLS discontinuity or a restart.
    evidence : Evidence
        The requests and byte ranges of this chunk.
    """

    utc_start: datetime
    pcm: np.ndarray
    frames: FrameBatch
    seconds: float
    sequences: tuple[int, int]
    discontinuity: bool
    evidence: Evidence


class _RollingDeadline(Deadline):
    """A deadline pushed back whenever the feed makes progress: a stall trips it, a feed
    that keeps delivering never does."""

    def extend(self) -> None:
        self.ends = time.monotonic() + self.seconds


def follow(
    url: str,
    plan: CapturePlan,
    *,
    client: GuardedClient,
    stop: threading.Event | None = None,
    stall_seconds: float = 60.0,
) -> Iterator[LiveChunk]:
    """Yield chunks of about ``plan.seconds`` (whole segments) of the live feed at ``url``
    until ``stop`` is set or the feed fails.

    Parameters
    ----------
    url : str
        Master or media playlist (a Kodi ``|`` header suffix is honoured).
    plan : CapturePlan
        Media wanted (``sample_rate``, ``fps``, ``frame_width``), chunk length
        (``seconds``), and per-chunk byte cap (``max_bytes``).
    client : GuardedClient
    stop : threading.Event or None
        Set it to end the iteration after the current chunk.
    stall_seconds : float
        Seconds without a new segment before the feed is ``stalled``.
    """
    url, suffix = split_kodi_url(url)
    plan = replace(plan, options=plan.options.merged(suffix))
    deadline = _RollingDeadline(stall_seconds)
    fetcher = Fetcher(
        client,
        deadline=deadline,
        budget=ByteBudget(plan.max_bytes),
        evidence=Evidence(requested_url=url, egress_note=plan.egress_note),
        options=plan.options,
    )
    playlist = fetch_playlist(fetcher, url, plan.hls)
    media_url = url
    if isinstance(playlist, MasterPlaylist):
        media_url = choose(playlist, plan.sample_rate is not None, plan.fps is not None).main
        if media_url is None:
            raise CaptureError("not_media", f"{redact_url(url)}: no variant carries the media")
    pieces = segments(fetcher, media_url, plan.seconds, plan.hls)
    init: Piece | None = None
    previous: LiveChunk | None = None
    try:
        while stop is None or not stop.is_set():
            batch, seconds = [], 0.0
            for piece in pieces:
                deadline.extend()
                if piece.seconds == 0.0:  # an init section: kept for every later chunk
                    init = piece
                batch.append(piece)
                seconds += piece.seconds
                if seconds >= plan.seconds:
                    break
            if seconds == 0.0:
                return  # the playlist ended (ENDLIST): a live feed turned VOD
            chunk = _chunk(batch, init, seconds, plan, fetcher.evidence, previous)
            fetcher.evidence = Evidence(requested_url=url, egress_note=plan.egress_note)
            fetcher.budget = ByteBudget(plan.max_bytes)
            fetcher.forget_addresses()
            previous = chunk
            yield chunk
    finally:
        pieces.close()


def _chunk(
    batch: list[Piece],
    init: Piece | None,
    seconds: float,
    plan: CapturePlan,
    evidence: Evidence,
    previous: LiveChunk | None,
) -> LiveChunk:
    """Decode one chunk's pieces as a run of its own and stamp it."""
    discontinuity = any(p.new_run for p in batch) or previous is None
    if init is not None and batch[0] is not init:
        batch = [init, *batch]  # fMP4: the chunk's decoder needs the init section first
    whole = replace(plan, seconds=seconds + 1.0)
    pieces = [Piece(p.data, False, p.seconds) for p in batch]  # one run: one decoder
    decoded = decode_pieces(iter(pieces), whole, plan.sample_rate, plan.fps, evidence, "chunk")
    ranges = [r for r in evidence.ranges if r.role == "segment"]
    first = ranges[0]
    if first.program_date_time:
        start = datetime.fromisoformat(first.program_date_time).astimezone(UTC)
    elif previous is not None and not discontinuity:
        start = previous.utc_start + timedelta(seconds=previous.seconds)
    else:
        fed = datetime.fromisoformat(first.fed_utc.replace("Z", "+00:00"))
        start = fed - timedelta(seconds=first.duration_seconds or 0.0)
    return LiveChunk(
        utc_start=start,
        pcm=decoded.pcm,
        frames=decoded.frames,
        seconds=seconds,
        sequences=(ranges[0].media_sequence, ranges[-1].media_sequence),
        discontinuity=discontinuity,
        evidence=evidence,
    )
