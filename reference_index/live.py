"""Live ingestion of one reference feed: follow it, fingerprint it, index it in UTC, for ever.

A pirate restream of live TV is recognisable only against what the channel aired in the
last minutes, so each enabled feed of the catalog gets a :class:`FeedLoop`:

* :func:`fingerprinting.capture.follow` reads the feed in chunks of whole segments, each
  stamped in UTC (the stream's ``PROGRAM-DATE-TIME`` when it has one);
* audio goes through one :class:`~fingerprinting.stream.AudioStream` per continuous run, so
  the hashes are those a recording of the run would give, chunk boundaries or not; a
  discontinuity, or a chunk stamped more than :data:`MAX_CLOCK_JUMP` away from where the
  run's samples say it should be, starts a new run on the feed's time axis;
* pictures are hashed per chunk at the reference rate, and a few of them kept as reference
  thumbnails (:mod:`.thumbs`, 0.5 per second by default: the analyst's evidence);
* postings go to a :class:`LiveWriter`, shared by the feeds of a process, which flushes
  them every few seconds together with the UTC intervals they cover: outside those
  intervals the reference was blind, and the index says so (``Index.coverage``);
* failures (capture errors, stalls, a feed that ended) are counted in the feed's
  :class:`FeedHealth` and retried after an exponential backoff with jitter.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from fingerprinting import video
from fingerprinting.capture import CaptureError, CapturePlan, GuardedClient, LiveChunk, follow
from fingerprinting.capture.redact import redact_text, url_secrets
from fingerprinting.peaks import LIVE_BLOCK_FRAMES
from fingerprinting.stream import AudioStream
from fingerprinting.types import AudioPrint, VideoPrint

from .catalog_records import Feed, FeedStatus
from .index import Index
from .store.base import Track
from .thumbs import Thumbs, ThumbSampler

__all__ = ["MAX_CLOCK_JUMP", "FeedHealth", "FeedLoop", "IngestPlan", "LiveWriter", "feed_source"]

log = logging.getLogger(__name__)

#: A chunk stamped this far (seconds) from where the run's samples put it starts a new run.
MAX_CLOCK_JUMP = 1.0


def feed_source(feed_id: int) -> str:
    """Track source of a feed's live postings (one track per feed and modality)."""
    return f"feed:{feed_id}"


@dataclass(frozen=True)
class IngestPlan:
    """How live feeds are followed and written.

    Attributes
    ----------
    chunk_seconds : float
        Media per chunk read from a feed (whole segments: at least this much).
    flush_seconds : float
        Postings are written (and become visible to queries in other processes) at least
        this often, in seconds; what a crash can lose.
    stall_seconds : float
        A feed that publishes nothing new for this long is ``stalled`` and reconnected.
    backoff_seconds, max_backoff_seconds : float
        First and largest wait before reconnecting; doubled per failure in a row, with up
        to 25 % jitter so that feeds of one failed CDN do not reconnect in step.
    frame_width : int
        Width frames are decoded at (pixels).
    max_chunk_bytes : int
        Byte cap of one chunk's requests.
    egress_note : str
        Recorded in every chunk's evidence.
    fast_video : bool
        Decode feeds without non-reference frames and deblocking: about half the CPU of
        broadcast H.264, for frame hashes measured to agree with full decoding (see
        ``fingerprinting/VIDEO.md``).
    """

    chunk_seconds: float = 6.0
    flush_seconds: float = 10.0
    stall_seconds: float = 60.0
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 120.0
    frame_width: int = 192
    max_chunk_bytes: int = 64 * 1024 * 1024
    egress_note: str = ""
    fast_video: bool = True


def _utc(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


@dataclass
class FeedHealth:
    """What an operator needs to know about one feed, updated by its loop (thread-safe
    enough: the loop writes, a reporter reads a :meth:`snapshot`)."""

    feed_id: int
    ingester: str
    state: str = "starting"
    last_posting_utc: float | None = None  # UTC epoch of the end of the media indexed last
    lag_seconds: float | None = None  # wall clock minus that, when it was indexed
    chunks: int = 0
    errors: int = 0
    reconnects: int = 0
    last_error_reason: str | None = None
    last_error_message: str | None = None
    last_error_utc: float | None = None

    def snapshot(self, now: float | None = None) -> FeedStatus:
        """The catalog record of this health."""
        return FeedStatus(
            feed_id=self.feed_id,
            state=self.state,
            ingester=self.ingester,
            last_posting_utc=_utc(self.last_posting_utc),
            lag_seconds=self.lag_seconds,
            chunks=self.chunks,
            errors=self.errors,
            reconnects=self.reconnects,
            last_error_reason=self.last_error_reason,
            last_error_message=self.last_error_message,
            last_error_utc=_utc(self.last_error_utc),
            updated_utc=_utc(time.time() if now is None else now),
        )


class LiveWriter:
    """Postings of the feeds of one process, written to the index every ``flush_seconds``.

    Feed threads :meth:`add` postings and :meth:`cover` intervals; :meth:`flush` writes both
    in one commit per modality, so the index never claims coverage it lost in a crash.
    """

    def __init__(self, index: Index):
        self.index = index
        self._lock = threading.Lock()
        self._covered: dict[str, dict[int, list[tuple[float, float]]]] = {"audio": {}, "video": {}}
        self._tracks: dict[tuple[str, int], Track] = {}
        self.flushed_utc: float | None = None

    def track(self, modality: str, feed: Feed, start: float) -> Track:
        """The feed's live track of ``modality`` in the current generation of the index
        (created at UTC ``start`` if missing)."""
        with self._lock:
            return self._track(modality, feed, start)

    def _track(self, modality: str, feed: Feed, start: float) -> Track:
        key = (modality, feed.id)
        if key not in self._tracks:
            self._tracks[key] = self.index.live_track(
                modality, feed.channel_id, feed_source(feed.id), float(np.floor(start))
            )
        return self._tracks[key]

    def add(
        self, modality: str, feed: Feed, prints: AudioPrint | VideoPrint, utc_start: float
    ) -> None:
        """Queue a feed's postings whose frame 0 aired at UTC ``utc_start``. The track is
        resolved here, under the lock, so a generation swap between calls cannot send
        postings to a track of the old generation."""
        with self._lock:
            self.index.append_live(self._track(modality, feed, utc_start), prints, utc_start)

    def add_thumbnails(self, feed: Feed, thumbs: Thumbs, utc_start: float) -> None:
        """Queue a feed's reference thumbnails (times in UTC epoch seconds; encoded by the
        caller, outside the lock) on its live video track, written at the next flush."""
        if len(thumbs):
            with self._lock:
                track = self._track("video", feed, utc_start)
                self.index.append_live_thumbnails(track, thumbs)

    def cover(self, modality: str, feed: Feed, start: float, end: float) -> None:
        """Record that the feed's ``modality`` has every posting of UTC ``[start, end)``
        queued."""
        if end > start:
            with self._lock:
                track = self._track(modality, feed, start)
                self._covered[modality].setdefault(track.id, []).append((start, end))

    def flush(self) -> dict:
        """Write everything queued (one segment per key space and modality, one pack of
        thumbnails).

        Returns what was committed: ``{"segments": {modality: [names]}, "covered_until":
        {modality: {track_id: UTC epoch}}}``, for logs (and crash tests) to hold it to.
        """
        with self._lock:
            covered, self._covered = self._covered, {"audio": {}, "video": {}}
            written = self.index.flush_live(covered)
            self.flushed_utc = time.time()
            if self.index.swapped():  # `vigie reindex --all` made a new generation current
                old = self.index
                self.index = Index(old.root, old.audio_params, old.video_params)
                self._tracks.clear()
                log.info("index generation %s -> %s", old.generation, self.index.generation)
        until = {
            m: {tid: max(end for _, end in spans) for tid, spans in per.items()}
            for m, per in covered.items()
            if per
        }
        return {"segments": {m: n for m, n in written.items() if n}, "covered_until": until}


@dataclass
class _Run:
    """A continuous stretch of a feed's audio: one fingerprint stream on one clock."""

    utc_start: float
    stream: AudioStream
    covered_until: float = field(default=0.0)

    def expected_utc(self) -> float:
        return self.utc_start + self.stream.seconds


class FeedLoop:
    """Follows one feed until ``stop`` is set, reconnecting after failures.

    Parameters
    ----------
    feed : Feed
        The catalog's feed (its raw URL, credentials included, is used; only redacted
        text leaves this object).
    writer : LiveWriter
    plan : IngestPlan
    client_factory : callable
        Makes the guarded HTTP client of each connection (each feed has its own, so that
        per-host request limits apply per feed: a rights holder's hundred channels often
        share one CDN host).
    health : FeedHealth
    stop : threading.Event
    """

    def __init__(
        self,
        feed: Feed,
        writer: LiveWriter,
        plan: IngestPlan,
        client_factory: Callable[[], GuardedClient],
        health: FeedHealth,
        stop: threading.Event,
    ):
        self.feed = feed
        self.writer = writer
        self.plan = plan
        self.client_factory = client_factory
        self.health = health
        self.stop = stop
        index = writer.index
        self.audio_params = index.audio_params
        self.video_params = index.video_params
        self._run: _Run | None = None
        self._thumbs = ThumbSampler(index.thumb_params)

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        """Follow the feed until stopped; never raises."""
        failures = 0
        while not self.stop.is_set():
            chunks_before = self.health.chunks
            try:
                self._follow_once()
                if not self.stop.is_set():
                    self._failed("ended", "the feed's playlist ended (ENDLIST)")
            except CaptureError as exc:
                self._failed(exc.reason, str(exc))
            except Exception as exc:  # noqa: BLE001 - a feed loop must outlive any bug
                log.exception("feed %s: unexpected error", self.feed.id)
                self._failed("internal", f"{type(exc).__name__}: {exc}")
            self.end_run()
            if self.stop.is_set():
                break
            # A connection that delivered media resets the backoff.
            failures = 1 if self.health.chunks > chunks_before else failures + 1
            self.health.state = "reconnecting"
            self.health.reconnects += 1
            delay = min(
                self.plan.max_backoff_seconds, self.plan.backoff_seconds * 2 ** (failures - 1)
            )
            self.stop.wait(delay * (1.0 + 0.25 * random.random()))
        self.end_run()
        self.health.state = "stopped"

    def _follow_once(self) -> None:
        capture = CapturePlan(
            seconds=self.plan.chunk_seconds,
            sample_rate=self.audio_params.sample_rate,
            fps=self.video_params.ref_fps,
            frame_width=self.plan.frame_width,
            max_bytes=self.plan.max_chunk_bytes,
            egress_note=self.plan.egress_note,
            fast_video=self.plan.fast_video,
        )
        with self.client_factory() as client:
            chunks = follow(
                self.feed.url,
                capture,
                client=client,
                stop=self.stop,
                stall_seconds=self.plan.stall_seconds,
            )
            try:
                for chunk in chunks:
                    self.ingest(chunk)
            finally:
                chunks.close()

    def _failed(self, reason: str, message: str) -> None:
        self.health.errors += 1
        self.health.last_error_reason = reason
        self.health.last_error_message = redact_text(message, url_secrets(self.feed.url))
        self.health.last_error_utc = time.time()
        log.warning("feed %s: %s: %s", self.feed.id, reason, self.health.last_error_message)

    # -- one chunk ------------------------------------------------------------------------
    def ingest(self, chunk: LiveChunk) -> None:
        """Fingerprint one chunk and queue its postings and coverage."""
        start = chunk.utc_start.timestamp()
        end = start + chunk.seconds
        events = chunk.evidence.events
        missed = sum(int(e.get("missed", 0)) for e in events if e["kind"] == "segments_expired")
        if missed:  # the coverage has the gap; the operator must hear of it too
            self._failed(
                "fell_behind",
                f"{missed} segments left the live playlist before they were fetched "
                "(the ingester is behind: add workers or cores)",
            )
        if chunk.pcm.size:
            self._ingest_audio(chunk, start)
        if len(chunk.frames):
            frames = chunk.frames
            vp = video.fingerprint_frames([frames], self.video_params)
            self.writer.add("video", self.feed, vp, start)
            self.writer.add_thumbnails(self.feed, self._thumbs.take(frames, start), start)
            self.writer.cover(
                "video", self.feed, start, start + float(frames.times[-1]) + vp.hop_seconds
            )
        self.health.chunks += 1
        self.health.state = "live"
        self.health.last_posting_utc = end
        self.health.lag_seconds = time.time() - end

    def _ingest_audio(self, chunk: LiveChunk, start: float) -> None:
        run = self._run
        if run is None or chunk.discontinuity or abs(run.expected_utc() - start) > MAX_CLOCK_JUMP:
            self.end_run()
            stream = AudioStream(self.audio_params, block_frames=LIVE_BLOCK_FRAMES)
            run = self._run = _Run(start, stream, start)
        self.writer.add("audio", self.feed, run.stream.push(chunk.pcm), run.utc_start)
        final = run.utc_start + run.stream.final_frame * self.audio_params.hop_seconds
        self.writer.cover("audio", self.feed, run.covered_until, final)
        run.covered_until = max(run.covered_until, final)

    def end_run(self) -> None:
        """Hash the tail of the current audio run (its last anchors had no more context to
        wait for) and cover it."""
        run, self._run = self._run, None
        if run is None:
            return
        self.writer.add("audio", self.feed, run.stream.finish(), run.utc_start)
        self.writer.cover("audio", self.feed, run.covered_until, run.expected_utc())
