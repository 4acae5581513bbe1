"""``sample(url, plan) -> Sample``: a few seconds of sound and pictures from a suspect stream.

The URL's first response decides what it is — an HLS playlist, a continuous stream
(MPEG-TS, Matroska, FLV, ADTS… over HTTP, Xtream ``/live/…`` links included), or a
progressive MP4 — from its bytes, not from its extension or ``Content-Type``. Bytes go to
the detection core's decoder (:func:`fingerprinting.decode.iter_media`) from memory.

A capture that stops early (deadline, stall, lost connection) still gives a sample when
it has at least ``plan.min_seconds`` of media: it is evidence, and the stop is recorded.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..decode import DEFAULT_FRAME_WIDTH
from ..types import FrameBatch
from .errors import CaptureError
from .evidence import Evidence
from .hls import HlsLimits, Piece, choose, segments
from .http import Fetcher, GuardedClient, Opened
from .limits import ByteBudget, Deadline
from .m3u8 import MasterPlaylist, MediaPlaylist, parse_playlist
from .options import StreamOptions, split_kodi_url
from .redact import redact_url
from .runs import Decoded, decode_once, decode_pieces, merge, video_seconds
from .sniff import media_kind
from .timing import probe_live_edge

__all__ = ["CapturePlan", "Sample", "sample"]

_PLAYLIST_TYPES = ("mpegurl", "x-mpegurl", "vnd.apple.mpegurl", "audio/mpegurl")
#: Bytes looked at before deciding what a response is.
_SNIFF_BYTES = 4096


@dataclass(frozen=True)
class CapturePlan:
    """What to capture and within which budgets.

    Attributes
    ----------
    seconds : float
        Media wanted, in seconds (10 s is what the detection core is calibrated on).
    sample_rate : int or None
        Audio rate in Hz (the fingerprint rate); ``None``: no audio.
    fps : float or None
        Frames per second kept (the video query rate); ``None``: no video.
    frame_width : int
        Width of kept frames in pixels.
    min_seconds : float
        Less media than this is no sample: the capture fails with the reason it stopped.
    deadline_seconds : float
        Wall-clock budget of the whole capture, seconds.
    max_bytes : int
        Bytes the whole capture may download.
    hls : HlsLimits
        Byte caps of playlists, segments and keys.
    options : StreamOptions
        User-Agent, Referer and headers for this stream (the URL's Kodi ``|`` suffix adds
        to them).
    egress_note : str
        Our own side, for the evidence (which network, VPN exit, or monitoring account).
    allow_local_files : bool
        Accept a local path (the CLI does; the service never lets a bot name a file).
    edge_timing : bool
        After a live HLS sample, poll its playlist until the next segment appears (at most
        1.5 target durations), so the sample's airing time, and a restream's delay, are
        known to a fraction of a second (:mod:`.timing`).
    fast_video : bool
        Decode video without non-reference frames and deblocking (half the CPU); for live
        reference feeds (see :func:`fingerprinting.decode.iter_media`).
    keep_bytes : int
        Media bytes the evidence retains for an evidence bundle, in bytes (playlists are
        then kept whole as well; see :class:`~fingerprinting.capture.evidence.Evidence`).
        ``0``: hashes only, nothing held in memory beyond the decoder's needs.
    """

    seconds: float = 10.0
    sample_rate: int | None = 8000
    fps: float | None = 2.0
    frame_width: int = DEFAULT_FRAME_WIDTH
    min_seconds: float = 2.0
    deadline_seconds: float = 45.0
    max_bytes: int = 64 * 1024 * 1024
    hls: HlsLimits = field(default_factory=HlsLimits)
    options: StreamOptions = field(default_factory=StreamOptions)
    egress_note: str = ""
    allow_local_files: bool = False
    edge_timing: bool = True
    fast_video: bool = False
    keep_bytes: int = 0

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.min_seconds <= 0 or self.deadline_seconds <= 0:
            raise ValueError("seconds, min_seconds and deadline_seconds must be positive")
        if self.keep_bytes < 0:
            raise ValueError("keep_bytes must be 0 or more")
        if self.sample_rate is None and self.fps is None:
            raise ValueError("a capture plan needs audio (sample_rate), video (fps) or both")


@dataclass
class Sample:
    """Captured media and the record of how it was obtained.

    Attributes
    ----------
    pcm : ndarray of float32
        Mono audio at ``sample_rate`` Hz (empty when the stream has none or none was asked).
    frames : FrameBatch
        Grey frames, times in seconds from the start of the sample.
    started_utc, ended_utc : datetime
        Wall-clock span of the capture, UTC.
    media_started_utc : datetime or None
        ``PROGRAM-DATE-TIME`` of the first segment, when the stream states it.
    kind : str
        ``"hls"``, ``"stream"`` (continuous over HTTP), ``"progressive"`` or ``"file"``.
    stopped_by : str or None
        Reason the capture ended before ``plan.seconds`` (``None``: complete).
    """

    pcm: np.ndarray
    sample_rate: int
    frames: FrameBatch
    started_utc: datetime
    ended_utc: datetime
    kind: str
    evidence: Evidence
    media_started_utc: datetime | None = None
    stopped_by: str | None = None

    @property
    def audio_seconds(self) -> float:
        return self.pcm.size / self.sample_rate if self.sample_rate else 0.0

    @property
    def seconds(self) -> float:
        """Media captured, seconds (the longer of sound and pictures)."""
        return max(self.audio_seconds, video_seconds(self.frames))


def sample(
    url: str, plan: CapturePlan | None = None, *, client: GuardedClient | None = None
) -> Sample:
    """Capture ``plan.seconds`` of ``url``.

    Raises :class:`CaptureError` (with ``reason`` and the evidence so far) when no usable
    sample could be had.
    """
    plan = plan or CapturePlan()
    url, suffix_options = split_kodi_url(url)
    plan = replace(plan, options=plan.options.merged(suffix_options))
    started = datetime.now(UTC)
    evidence = Evidence(requested_url=url, egress_note=plan.egress_note, keep_bytes=plan.keep_bytes)
    t0 = time.monotonic()
    try:
        if "://" not in url and plan.allow_local_files:
            result = _from_file(Path(url), plan, evidence, started)
        else:
            own = client is None
            client = client or GuardedClient()
            try:
                result = _from_http(url, plan, client, evidence, started)
            finally:
                if own:
                    client.close()
    except CaptureError as exc:
        exc.evidence = evidence
        evidence.finished_utc = _iso(datetime.now(UTC))
        evidence.elapsed_seconds = round(time.monotonic() - t0, 3)
        raise
    evidence.finished_utc = _iso(result.ended_utc)
    evidence.elapsed_seconds = round(time.monotonic() - t0, 3)
    return result


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _from_file(path: Path, plan: CapturePlan, evidence: Evidence, started: datetime) -> Sample:
    if not path.is_file():
        raise CaptureError("unreachable", f"{path}: no such file")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    evidence.final_url = str(path.resolve())
    evidence.add_hashed_range(
        evidence.final_url, "file", 0, os.path.getsize(path), digest.hexdigest()
    )
    decoded = decode_once(lambda: str(path), plan, plan.sample_rate, plan.fps, evidence, str(path))
    return _finish(decoded, plan, evidence, started, "file")


def _from_http(
    url: str, plan: CapturePlan, client: GuardedClient, evidence: Evidence, started: datetime
) -> Sample:
    deadline = Deadline(plan.deadline_seconds)
    fetcher = Fetcher(
        client,
        deadline=deadline,
        budget=ByteBudget(plan.max_bytes),
        evidence=evidence,
        options=plan.options,
    )
    shown = redact_url(url)
    with fetcher.open(url, what="stream") as opened:
        head, chunks = _peek(opened)
        kind = media_kind(head)
        is_playlist = head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"#EXTM3U") or (
            kind is None
            and opened.headers.get("content-type", "").lower().endswith(_PLAYLIST_TYPES)
        )
        if is_playlist:
            body = _read_all(head, chunks, plan.hls.playlist_bytes, shown)
            evidence.add_playlist(opened.url, body)
            playlist = parse_playlist(body.decode("utf-8", "replace"), opened.url)
            final_url = opened.url
        else:
            if kind is None:
                ctype = opened.headers.get("content-type") or "no content type"
                raise CaptureError(
                    "not_media", f"{shown}: not audio or video ({ctype}, starts with {head[:32]!r})"
                )
            if kind == "mp4" and not _streamable_mp4(head):
                body = _read_all(head, chunks, plan.max_bytes, shown)
                evidence.add_range(opened.url, "progressive", body)
                decoded = decode_once(
                    lambda: body, plan, plan.sample_rate, plan.fps, evidence, shown
                )
                return _finish(decoded, plan, evidence, started, "progressive")
            pieces = _stream_pieces(head, chunks, opened, evidence)
            decoded = decode_pieces(pieces, plan, plan.sample_rate, plan.fps, evidence, shown)
            return _finish(decoded, plan, evidence, started, "stream")
    return _from_hls(final_url, playlist, plan, fetcher, started)


def _from_hls(
    url: str,
    playlist: MasterPlaylist | MediaPlaylist,
    plan: CapturePlan,
    fetcher: Fetcher,
    started: datetime,
) -> Sample:
    shown = redact_url(url)
    want_audio, want_video = plan.sample_rate is not None, plan.fps is not None
    main, audio_url = url, None
    if isinstance(playlist, MasterPlaylist):
        choice = choose(playlist, want_audio, want_video)
        fetcher.evidence.note(
            "variant_chosen",
            main=choice.main,
            audio=choice.audio,
            bandwidth=choice.variant_bandwidth,
        )
        main, audio_url = choice.main, choice.audio
        if main is None:  # only an audio rendition carries what we want
            main, audio_url, want_video = audio_url, None, False

    def follow(u: str) -> Iterator[Piece]:
        first = playlist if u == url and isinstance(playlist, MediaPlaylist) else None
        return segments(fetcher, u, plan.seconds, plan.hls, first)

    if audio_url is None:
        decoded = decode_pieces(
            follow(main),
            plan,
            plan.sample_rate if want_audio else None,
            plan.fps if want_video else None,
            fetcher.evidence,
            shown,
        )
    else:
        decoded = _beside(follow(main), follow(audio_url), plan, fetcher.evidence, shown)
    if plan.edge_timing:
        probe_live_edge(fetcher, main, plan.hls)
    media_start = next(
        (r.program_date_time for r in fetcher.evidence.ranges if r.program_date_time), None
    )
    out = _finish(decoded, plan, fetcher.evidence, started, "hls")
    out.media_started_utc = datetime.fromisoformat(media_start) if media_start else None
    return out


def _beside(
    video_pieces: Iterator[Piece],
    audio_pieces: Iterator[Piece],
    plan: CapturePlan,
    evidence: Evidence,
    shown: str,
) -> Decoded:
    """Alternate audio: the sound's own playlist and segments, decoded beside the video on
    a second thread. When one side fails, the other stops at once instead of downloading
    the rest of a sample that cannot be used."""
    cancel = threading.Event()

    def run(pieces: Iterator[Piece], rate: int | None, fps: float | None) -> Decoded:
        try:
            return decode_pieces(pieces, plan, rate, fps, evidence, shown, cancel)
        except BaseException:
            cancel.set()
            raise

    with ThreadPoolExecutor(2, thread_name_prefix="vigie-capture") as pool:
        video = pool.submit(run, video_pieces, None, plan.fps)
        sound = pool.submit(run, audio_pieces, plan.sample_rate, None)
        return merge(sound.result(), video.result())


def _peek(opened: Opened) -> tuple[bytes, Iterator[bytes]]:
    """The first bytes of a response (for sniffing) and the rest of its chunks."""
    parts, size = [], 0
    chunks = iter(opened.chunks)
    for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size >= _SNIFF_BYTES:
            break
    return b"".join(parts), chunks


def _read_all(head: bytes, chunks: Iterator[bytes], cap: int, shown: str) -> bytes:
    parts, size = [head], len(head)
    for chunk in chunks:
        size += len(chunk)
        if size > cap:
            raise CaptureError("too_large", f"{shown}: response over the {cap:,} byte cap")
        parts.append(chunk)
    if size > cap:
        raise CaptureError("too_large", f"{shown}: response over the {cap:,} byte cap")
    return b"".join(parts)


def _streamable_mp4(head: bytes) -> bool:
    """An MP4 decodes from a pipe when its index (``moov``) or a fragment comes before the
    media data; otherwise the whole file is needed."""
    pos = 0
    while pos + 8 <= len(head):
        size = int.from_bytes(head[pos : pos + 4], "big")
        box = head[pos + 4 : pos + 8]
        if box in (b"moov", b"moof"):
            return True
        if box == b"mdat" or size < 8:
            return False
        pos += size
    return False


def _stream_pieces(
    head: bytes, chunks: Iterator[bytes], opened: Opened, evidence: Evidence
) -> Iterator[Piece]:
    """A continuous response as decoder input, hashed as one byte range of the body (its
    first bytes retained, as far as the evidence's ``keep_bytes`` cap allows)."""
    digest, fed = hashlib.sha256(head), len(head)
    room = evidence.keep_room()
    kept: list[bytes] = []
    held = 0

    def hold(chunk: bytes) -> None:
        nonlocal held
        if held < room:
            kept.append(chunk[: room - held])
            held += len(kept[-1])

    try:
        hold(head)
        yield Piece(head, False)
        for chunk in chunks:
            digest.update(chunk)
            fed += len(chunk)
            hold(chunk)
            yield Piece(chunk, False)
    finally:
        evidence.add_hashed_range(
            opened.url, "stream", 0, fed, digest.hexdigest(), kept=b"".join(kept) or None
        )


def _finish(
    decoded: Decoded | None, plan: CapturePlan, evidence: Evidence, started: datetime, kind: str
) -> Sample:
    ended = datetime.now(UTC)
    out = Sample(
        pcm=decoded.pcm,
        sample_rate=plan.sample_rate or 0,
        frames=decoded.frames,
        started_utc=started,
        ended_utc=ended,
        kind=kind,
        evidence=evidence,
    )
    if out.seconds < plan.min_seconds:
        if decoded.stopped is not None:
            raise decoded.stopped
        if out.seconds == 0:
            raise CaptureError(
                "no_audio_no_video",
                f"{redact_url(evidence.requested_url)}: no decodable audio or video",
            )
        raise CaptureError(
            "not_media",
            f"{redact_url(evidence.requested_url)}: the stream ended after {out.seconds:.1f} s "
            f"of decodable media ({plan.min_seconds:g} s needed)",
        )
    if decoded.stopped is not None:
        out.stopped_by = decoded.stopped.reason
        evidence.note(
            "stopped_early",
            reason=decoded.stopped.reason,
            message=decoded.stopped.message,
            seconds=round(out.seconds, 3),
        )
    elif out.seconds < plan.seconds - 0.5:
        out.stopped_by = "ended"
    return out
