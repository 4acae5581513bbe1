"""HLS media made at test time: segmented A/V, playlists, AES-128, live and VOD channels.

:func:`make_source` encodes a synthetic programme (``service.media``) with a keyframe every
``keyframe_seconds``; :func:`segment` stream-copies it through FFmpeg's ``hls`` muxer into
MPEG-TS or fMP4 segments; :func:`serve_vod` and :class:`LiveHls` put the result on a
:class:`~.servers.LoopbackServer`.
"""

from __future__ import annotations

import bisect
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from service.media import synth_pictures, synth_programme, write_hls, write_video

from .servers import LoopbackServer, Request, Responder

__all__ = [
    "PLAYLIST_TYPE",
    "HlsMedia",
    "LiveHls",
    "encrypt_aes128",
    "make_source",
    "master_playlist",
    "media_playlist",
    "segment",
    "serve_vod",
]

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
_SEGMENT = {"mpegts": (".ts", "video/mp2t"), "fmp4": (".m4s", "video/iso.segment")}


@dataclass(frozen=True)
class HlsMedia:
    """Segments of one programme, as an HLS packager cut them."""

    segments: list[bytes]  # media segment bytes, in order
    durations: list[float]  # seconds each (from the packager's playlist)
    init: bytes | None  # fMP4 init section (EXT-X-MAP), None for MPEG-TS
    kind: str  # "mpegts" | "fmp4"
    pcm: np.ndarray  # the programme's sound, mono float32 at ``sr`` (empty without audio)
    sr: int

    @property
    def extension(self) -> str:
        """The usual file suffix of a segment: ``.ts`` or ``.m4s``."""
        return _SEGMENT[self.kind][0]

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` a server sends for a segment."""
        return _SEGMENT[self.kind][1]

    @property
    def seconds(self) -> float:
        """The total duration of the segments."""
        return float(sum(self.durations))


# -- making media -------------------------------------------------------------------------


def make_source(
    path: Path,
    seconds: float,
    seed: int,
    *,
    video: bool = True,
    audio: bool = True,
    fps: float = 25,
    size: tuple[int, int] = (320, 180),
    sr: int = 22050,
    keyframe_seconds: float = 1.0,
    preset: str = "ultrafast",
) -> Path:
    """Write ``seconds`` of synthetic programme (H.264 ``size`` = (width, height) at ``fps``
    and/or mono AAC at ``sr``) to ``path`` (.ts, .mp4, .mkv), with a keyframe exactly every
    ``keyframe_seconds`` (no scene-cut keyframes), so HLS segments of any multiple of it cut
    where asked. x264 ``ultrafast``: this is test material, not a picture-quality test."""
    if not (video or audio):
        raise ValueError("a source needs video, audio or both")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = synth_pictures(seconds, fps, seed, size[0], size[1]) if video else None
    pcm = synth_programme(seconds, seed, sr=sr) if audio else None
    write_video(path, frames, fps, pcm, sr, keyframe_seconds=keyframe_seconds, preset=preset)
    return path


def _decode_pcm(source: Path) -> tuple[np.ndarray, int]:
    """The source's first audio stream decoded to mono float32, and its rate."""
    with av.open(str(source)) as c:
        if not c.streams.audio:
            return np.zeros(0, np.float32), 22050
        stream = c.streams.audio[0]
        sr = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        parts = []
        for frame in c.decode(stream):
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)).astype(np.float32), sr


_EXTINF = re.compile(r"#EXTINF:([0-9.]+)")
_MAP = re.compile(r'#EXT-X-MAP:.*URI="([^"]+)"')


def segment(
    source: Path,
    out_dir: Path,
    segment_seconds: float,
    kind: str = "mpegts",
    *,
    audio: bool = True,
    video: bool = True,
) -> HlsMedia:
    """Cut ``source`` into HLS segments with FFmpeg's ``hls`` muxer (stream copy, no
    re-encoding) in ``out_dir``; ``kind`` "mpegts" or "fmp4"; ``audio=False`` keeps only
    the video, ``video=False`` only the sound. Segments cut at the first keyframe after
    each ``segment_seconds`` (see :func:`make_source`); durations are the muxer's own.

    ``pcm`` is the source's sound as decoded (after its AAC encoding), i.e. exactly what a
    perfect capture of the whole stream decodes to."""
    if kind not in _SEGMENT:
        raise ValueError(f"kind must be one of {sorted(_SEGMENT)}, not {kind!r}")
    out_dir = Path(out_dir)
    index = write_hls(source, out_dir, segment_seconds, kind, audio=audio, video=video)
    segments, durations, init, pending = [], [], None, None
    for line in index.read_text().splitlines():
        if m := _EXTINF.match(line):
            pending = float(m.group(1))
        elif m := _MAP.match(line):
            init = (out_dir / m.group(1)).read_bytes()
        elif line and not line.startswith("#"):
            segments.append((out_dir / line).read_bytes())
            durations.append(pending if pending is not None else float(segment_seconds))
            pending = None
    if audio:
        pcm, sr = _decode_pcm(Path(source))
    else:
        pcm, sr = np.zeros(0, np.float32), 22050
    return HlsMedia(segments, durations, init, kind, pcm, sr)


def encrypt_aes128(data: bytes, key: bytes, iv: bytes) -> bytes:
    """AES-128-CBC with PKCS#7 padding, as HLS ``METHOD=AES-128`` segments are."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def _sequence_iv(sequence: int) -> bytes:
    """The IV a segment without an ``IV`` attribute uses: its media sequence number."""
    return sequence.to_bytes(16, "big")


# -- playlists ----------------------------------------------------------------------------


def _pdt(when: datetime) -> str:
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def media_playlist(
    media: HlsMedia,
    uri: Callable[[int], str],
    *,
    first: int = 0,
    count: int | None = None,
    media_sequence: int | None = None,
    endlist: bool = True,
    target: int | None = None,
    key: tuple[str, bytes | None] | None = None,
    map_uri: str | None = None,
    program_date_time: datetime | None = None,
    discontinuity_at: set[int] | frozenset[int] = frozenset(),
    discontinuity_sequence: int | None = None,
) -> str:
    """A media playlist of segments ``first`` .. ``first + count - 1`` (all the rest by
    default; indexes past the end loop round the media), segment ``i`` at ``uri(i)``.

    ``media_sequence`` defaults to ``first``; ``target`` to the ceiling of the longest
    duration of the media; ``key`` = (URI, IV or None) adds ``#EXT-X-KEY:METHOD=AES-128``
    (without an IV each segment's IV is its media sequence number); ``map_uri`` adds
    ``#EXT-X-MAP`` (placed before the key, so the init section is in clear);
    ``program_date_time`` dates the first segment; ``discontinuity_at`` holds the segment
    indexes preceded by ``#EXT-X-DISCONTINUITY``."""
    n = len(media.segments)
    if count is None:
        count = n - first
    sequence = first if media_sequence is None else media_sequence
    if target is None:
        target = max(1, math.ceil(round(max(media.durations), 3)))
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{7 if media.kind == 'fmp4' else 3}",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-MEDIA-SEQUENCE:{sequence}",
    ]
    if discontinuity_sequence is not None:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
    if map_uri is not None:
        lines.append(f'#EXT-X-MAP:URI="{map_uri}"')
    if key is not None:
        key_uri, iv = key
        attrs = f'METHOD=AES-128,URI="{key_uri}"'
        if iv is not None:
            attrs += f",IV=0x{iv.hex().upper()}"
        lines.append(f"#EXT-X-KEY:{attrs}")
    for i in range(first, first + count):
        if i in discontinuity_at:
            lines.append("#EXT-X-DISCONTINUITY")
        if i == first and program_date_time is not None:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(program_date_time)}")
        lines.append(f"#EXTINF:{media.durations[i % n]:.3f},")
        lines.append(uri(i))
    if endlist:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


_VARIANT_KEYS = {
    "uri",
    "bandwidth",
    "average_bandwidth",
    "resolution",
    "codecs",
    "audio",
    "frame_rate",
}
_RENDITION_KEYS = {"type", "group_id", "name", "uri", "default", "autoselect", "language"}


def master_playlist(variants: list[dict], renditions: list[dict] | None = None) -> str:
    """A master playlist: ``#EXT-X-MEDIA`` for each rendition (keys type, group_id, name,
    uri, default, autoselect, language), then ``#EXT-X-STREAM-INF`` + URI for each variant
    (keys uri, bandwidth, average_bandwidth, resolution "WxH", codecs, audio group id,
    frame_rate). Unknown keys raise ``ValueError`` (a typo would silently test nothing)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:4"]
    for r in renditions or []:
        if unknown := set(r) - _RENDITION_KEYS:
            raise ValueError(f"unknown rendition keys {sorted(unknown)}")
        attrs = [
            f"TYPE={r.get('type', 'AUDIO')}",
            f'GROUP-ID="{r["group_id"]}"',
            f'NAME="{r.get("name", r["group_id"])}"',
        ]
        if "language" in r:
            attrs.append(f'LANGUAGE="{r["language"]}"')
        default = bool(r.get("default", False))
        attrs.append(f"DEFAULT={'YES' if default else 'NO'}")
        attrs.append(f"AUTOSELECT={'YES' if r.get('autoselect', default) else 'NO'}")
        if r.get("uri"):
            attrs.append(f'URI="{r["uri"]}"')
        lines.append("#EXT-X-MEDIA:" + ",".join(attrs))
    for v in variants:
        if unknown := set(v) - _VARIANT_KEYS:
            raise ValueError(f"unknown variant keys {sorted(unknown)}")
        attrs = [f"BANDWIDTH={int(v['bandwidth'])}"]
        if "average_bandwidth" in v:
            attrs.append(f"AVERAGE-BANDWIDTH={int(v['average_bandwidth'])}")
        if v.get("resolution"):
            attrs.append(f"RESOLUTION={v['resolution']}")
        if v.get("frame_rate"):
            attrs.append(f"FRAME-RATE={float(v['frame_rate']):.3f}")
        if v.get("codecs"):
            attrs.append(f'CODECS="{v["codecs"]}"')
        if v.get("audio"):
            attrs.append(f'AUDIO="{v["audio"]}"')
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(v["uri"])
    return "\n".join(lines) + "\n"


# -- serving ------------------------------------------------------------------------------


def serve_vod(
    server: LoopbackServer,
    media: HlsMedia,
    name: str = "vod",
    *,
    key: bytes | None = None,
    iv: bytes | None = None,
) -> str:
    """Serve ``media`` as a VOD playlist at ``/vod/{name}/index.m3u8`` (segments
    ``seg{i}.ts``/``.m4s`` and ``init.mp4`` beside it, referenced relatively); return its URL.

    With ``key`` the segments are AES-128 encrypted, the key is served at
    ``/keys/{name}.key`` (path-absolute in the playlist) and the IV is ``iv`` (stated in
    the playlist) or, without one, each segment's media sequence number (not stated)."""
    base = f"/vod/{name}/"
    ext = media.extension
    key_tag = None
    bodies = list(media.segments)
    if key is not None:
        key_uri = f"/keys/{name}.key"
        server.route(key_uri, _static(key, "application/octet-stream"))
        key_tag = (key_uri, iv)
        bodies = [encrypt_aes128(b, key, iv or _sequence_iv(i)) for i, b in enumerate(bodies)]
    map_uri = None
    if media.init is not None:
        map_uri = "init.mp4"
        server.route(base + map_uri, _static(media.init, "video/mp4"))
    for i, body in enumerate(bodies):
        server.route(f"{base}seg{i}{ext}", _static(body, media.content_type))
    text = media_playlist(media, lambda i: f"seg{i}{ext}", key=key_tag, map_uri=map_uri)
    server.route(base + "index.m3u8", _static(text.encode(), PLAYLIST_TYPE))
    return server.url(base + "index.m3u8")


def _static(body: bytes, content_type: str) -> Callable[[Request, Responder], None]:
    def handler(request: Request, r: Responder) -> None:
        r.send(200, body, content_type=content_type)

    return handler


class LiveHls:
    """A live HLS channel: a sliding window of ``window`` segments advancing in real time.

    At construction ``window`` segments are already out (the channel has been running);
    then one more is published each time its duration has passed on ``clock``, and the
    oldest leaves the window (media sequence + 1). Segment ``i`` (``/live/{name}/seg{i}.ts``
    or ``.m4s``, relative in the playlist) serves ``media.segments[i % n]``, with
    ``#EXT-X-DISCONTINUITY`` (and ``#EXT-X-DISCONTINUITY-SEQUENCE``) at each loop, so it
    never ends; segments not yet published are 404. The playlist at
    ``/live/{name}/index.m3u8`` is computed from the clock on every request and dates its
    first segment (``#EXT-X-PROGRAM-DATE-TIME``). ``frozen``: it never advances (a stalled
    channel); :meth:`freeze` stalls it later.
    """

    def __init__(
        self,
        server: LoopbackServer,
        media: HlsMedia,
        name: str = "ch1",
        *,
        window: int = 5,
        clock: Callable[[], float] = time.monotonic,
        frozen: bool = False,
    ) -> None:
        if window < 1 or not media.segments:
            raise ValueError("a live channel needs segments and a window of at least 1")
        self.server, self.media, self.name, self.window = server, media, name, window
        self.clock = clock
        self._n = len(media.segments)
        self._prefix = [0.0, *np.cumsum(media.durations).tolist()]
        self._cycle = self._prefix[-1]
        self._start = clock()
        self._edge_at = datetime.now(UTC)  # when the first `window` segments were complete
        self._pinned: int | None = window if frozen else None
        self.base = f"/live/{name}/"
        server.route_prefix(self.base, self._handle)
        self.playlist_url: str = server.url(self.base + "index.m3u8")

    @property
    def frozen(self) -> bool:
        return self._pinned is not None

    def freeze(self) -> None:
        """Stop advancing from now on: the playlist stays as it is."""
        if self._pinned is None:
            self._pinned = self.published()

    def _seconds_before(self, m: int) -> float:
        """Total duration of segments ``0 .. m-1`` (looped)."""
        q, r = divmod(m, self._n)
        return q * self._cycle + self._prefix[r]

    def published(self) -> int:
        """How many segments are out so far (the newest is ``published() - 1``)."""
        if self._pinned is not None:
            return self._pinned
        elapsed = max(0.0, self.clock() - self._start)
        target = elapsed + self._seconds_before(self.window) + 1e-9
        q = int(target // self._cycle)
        r = bisect.bisect_right(self._prefix, target - q * self._cycle) - 1
        return max(self.window, q * self._n + r)

    def media_sequence(self) -> int:
        """The media sequence number the playlist shows now."""
        return self.published() - self.window

    def segment_url(self, i: int) -> str:
        return self.server.url(f"{self.base}seg{i}{self.media.extension}")

    def playlist(self) -> str:
        """The media playlist as it is now."""
        end = self.published()
        first = end - self.window
        n = self._n
        started = self._edge_at - timedelta(seconds=self._seconds_before(self.window))
        return media_playlist(
            self.media,
            lambda i: f"seg{i}{self.media.extension}",
            first=first,
            count=self.window,
            endlist=False,
            map_uri="init.mp4" if self.media.init is not None else None,
            program_date_time=started + timedelta(seconds=self._seconds_before(first)),
            discontinuity_at={i for i in range(first, end) if i > 0 and i % n == 0},
            discontinuity_sequence=(first - 1) // n if first > 0 else 0,
        )

    def _handle(self, request: Request, r: Responder) -> None:
        tail = request.path[len(self.base) :]
        if tail == "index.m3u8":
            headers = {"Cache-Control": "no-cache"}
            r.send(200, self.playlist().encode(), content_type=PLAYLIST_TYPE, headers=headers)
            return
        if tail == "init.mp4" and self.media.init is not None:
            r.send(200, self.media.init, content_type="video/mp4")
            return
        m = re.fullmatch(rf"seg(\d+){re.escape(self.media.extension)}", tail)
        if m and int(m.group(1)) < self.published():
            body = self.media.segments[int(m.group(1)) % self._n]
            r.send(200, body, content_type=self.media.content_type)
            return
        r.send(404, b"not found\n", content_type="text/plain")
