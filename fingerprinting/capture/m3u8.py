"""HLS playlists (RFC 8216): master and media playlists parsed into plain records.

Only what a capture needs is kept — variants and renditions to choose from; segments with
their duration (seconds), media sequence, discontinuities, keys, init sections, byte ranges
and ``PROGRAM-DATE-TIME`` — and unknown tags are ignored, as players do. Relative URIs are
resolved against the playlist's own URL here, so every later request is absolute.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from .errors import CaptureError
from .redact import redact_url

__all__ = [
    "Key",
    "MasterPlaylist",
    "MediaPlaylist",
    "Rendition",
    "Segment",
    "Variant",
    "parse_attributes",
    "parse_playlist",
]

_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
_VIDEO_CODECS = ("avc1", "avc3", "hvc1", "hev1", "dvh1", "vp09", "vp8", "av01", "mp4v")
_AUDIO_CODECS = ("mp4a", "ac-3", "ec-3", "opus", "mp3", "flac", "alac", "vorbis")


def parse_attributes(text: str) -> dict[str, str]:
    """``KEY=VALUE,KEY="quoted, value"`` → dict (quotes removed)."""
    return {k: v[1:-1] if v.startswith('"') else v.strip() for k, v in _ATTR.findall(text)}


@dataclass(frozen=True)
class Variant:
    """One ``EXT-X-STREAM-INF`` entry: a rendition of the programme at one bit rate."""

    uri: str
    bandwidth: int
    codecs: tuple[str, ...] = ()
    resolution: tuple[int, int] | None = None
    audio_group: str | None = None

    @property
    def has_video(self) -> bool:
        """A resolution or a video codec is announced (no CODECS: assume yes)."""
        if self.resolution is not None:
            return True
        if not self.codecs:
            return True
        return any(c.startswith(_VIDEO_CODECS) for c in self.codecs)

    @property
    def has_audio(self) -> bool:
        """Audio is muxed into this variant (no CODECS: assume yes)."""
        return not self.codecs or any(c.startswith(_AUDIO_CODECS) for c in self.codecs)


@dataclass(frozen=True)
class Rendition:
    """One ``EXT-X-MEDIA`` entry (alternate audio, mostly). ``uri`` None: muxed in."""

    type: str
    group_id: str
    name: str
    uri: str | None
    default: bool
    language: str | None


@dataclass(frozen=True)
class MasterPlaylist:
    url: str
    variants: tuple[Variant, ...]
    renditions: tuple[Rendition, ...]


@dataclass(frozen=True)
class Key:
    """``EXT-X-KEY``: ``method`` NONE, AES-128 or SAMPLE-AES; ``iv`` 16 bytes or None (then
    the media sequence number is the IV, RFC 8216 section 5.2)."""

    method: str
    uri: str | None
    iv: bytes | None


@dataclass(frozen=True)
class Segment:
    """A media segment. ``byterange`` is ``(length, offset)`` in bytes; ``init`` the
    ``EXT-X-MAP`` init section as ``(uri, byterange)``."""

    uri: str
    duration: float
    sequence: int
    discontinuity: bool = False
    key: Key | None = None
    init: tuple[str, tuple[int, int] | None] | None = None
    byterange: tuple[int, int] | None = None
    program_date_time: datetime | None = None


@dataclass(frozen=True)
class MediaPlaylist:
    url: str
    target_duration: float
    media_sequence: int
    segments: tuple[Segment, ...]
    endlist: bool
    playlist_type: str | None

    @property
    def next_sequence(self) -> int:
        """Media sequence number the next new segment will have."""
        return self.media_sequence + len(self.segments)


def _byterange(text: str, previous_end: int) -> tuple[int, int]:
    """``n[@o]`` → (length, offset), both whole numbers of bytes (ValueError otherwise)."""
    m = re.fullmatch(r"\s*(\d+)(?:@(\d+))?\s*", text)
    if m is None or int(m[1]) == 0:
        raise ValueError(f"bad byte range {text!r}")
    return int(m[1]), int(m[2]) if m[2] else previous_end


def _seconds(text: str, what: str) -> float:
    """A duration in seconds: finite and not negative (ValueError otherwise)."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"bad {what} {text!r}")
    return value


def _iv(text: str) -> bytes:
    """``0x`` + 32 hex digits → 16 bytes (RFC 8216 4.3.2.4)."""
    if not re.fullmatch(r"0[xX][0-9a-fA-F]{1,32}", text):
        raise ValueError(f"bad AES-128 IV {text!r} (0x and up to 32 hex digits)")
    return bytes.fromhex(text[2:].rjust(32, "0"))


def _date(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_playlist(text: str, url: str) -> MasterPlaylist | MediaPlaylist:
    """Parse an HLS playlist fetched from ``url``.

    Raises ``CaptureError("not_media")`` when the text is not an HLS playlist (no
    ``#EXTM3U``, or an IPTV channel list with no HLS tags).
    """
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    shown = redact_url(url)
    if not lines or not lines[0].lstrip("\ufeff").startswith("#EXTM3U"):
        head = (lines[0] if lines else "")[:40]
        raise CaptureError("not_media", f"{shown}: not an HLS playlist (starts with {head!r})")
    base = httpx.URL(url)

    def absolute(uri: str) -> str:
        try:
            return str(base.join(uri.strip()))
        except (httpx.InvalidURL, ValueError) as exc:
            raise CaptureError(
                "not_media", f"{shown}: malformed URI {uri[:80]!r} in the playlist ({exc})"
            ) from None

    if any(ln.startswith("#EXT-X-STREAM-INF") for ln in lines):
        return _parse_master(lines, url, absolute)
    if not any(ln.startswith("#EXT-X-") for ln in lines):
        raise CaptureError(
            "not_media",
            f"{shown}: an IPTV channel list, not a stream; submit it as a playlist to scan "
            "each of its channels",
        )
    return _parse_media(lines, url, absolute, shown)


def _parse_master(lines: list[str], url: str, absolute: object) -> MasterPlaylist:
    variants, renditions = [], []
    pending: dict[str, str] | None = None
    for ln in lines:
        if ln.startswith("#EXT-X-STREAM-INF:"):
            pending = parse_attributes(ln.partition(":")[2])
        elif ln.startswith("#EXT-X-MEDIA:"):
            a = parse_attributes(ln.partition(":")[2])
            renditions.append(
                Rendition(
                    type=a.get("TYPE", "").upper(),
                    group_id=a.get("GROUP-ID", ""),
                    name=a.get("NAME", ""),
                    uri=absolute(a["URI"]) if a.get("URI") else None,
                    default=a.get("DEFAULT", "NO").upper() == "YES",
                    language=a.get("LANGUAGE"),
                )
            )
        elif not ln.startswith("#") and pending is not None:
            res = re.fullmatch(r"(\d+)x(\d+)", pending.get("RESOLUTION", ""))
            bandwidth = pending.get("BANDWIDTH", "0")
            variants.append(
                Variant(
                    uri=absolute(ln),
                    bandwidth=int(bandwidth) if bandwidth.isdigit() else 0,
                    codecs=tuple(c.strip() for c in pending.get("CODECS", "").split(",") if c),
                    resolution=(int(res[1]), int(res[2])) if res else None,
                    audio_group=pending.get("AUDIO"),
                )
            )
            pending = None
    return MasterPlaylist(url, tuple(variants), tuple(renditions))


def _parse_media(lines: list[str], url: str, absolute: object, shown: str) -> MediaPlaylist:
    target = 0.0
    first_sequence = sequence = 0
    segments: list[Segment] = []
    endlist = False
    playlist_type = None
    key: Key | None = None
    init = None
    duration: float | None = None
    discontinuity = False
    byterange = None
    range_end = 0
    pdt: datetime | None = None
    try:
        for ln in lines:
            tag, _, value = ln.partition(":")
            if tag == "#EXT-X-TARGETDURATION":
                target = _seconds(value, "target duration")
            elif tag == "#EXT-X-MEDIA-SEQUENCE":
                first_sequence = sequence = int(value)
                if not 0 <= sequence < 2**63:
                    raise ValueError(f"bad media sequence {value!r}")
            elif tag == "#EXTINF":
                duration = _seconds(value.split(",")[0] or "0", "segment duration")
            elif tag == "#EXT-X-DISCONTINUITY":
                discontinuity = True
            elif tag == "#EXT-X-BYTERANGE":
                byterange = _byterange(value, range_end)
            elif tag == "#EXT-X-PROGRAM-DATE-TIME":
                pdt = _date(value)
            elif tag == "#EXT-X-KEY":
                a = parse_attributes(value)
                method = a.get("METHOD", "NONE").upper()
                iv = a.get("IV")
                key = (
                    None
                    if method == "NONE"
                    else Key(
                        method,
                        absolute(a["URI"]) if a.get("URI") else None,
                        _iv(iv) if iv else None,
                    )
                )
            elif tag == "#EXT-X-MAP":
                a = parse_attributes(value)
                rng = _byterange(a["BYTERANGE"], 0) if a.get("BYTERANGE") else None
                init = (absolute(a["URI"]), rng)
            elif tag == "#EXT-X-ENDLIST":
                endlist = True
            elif tag == "#EXT-X-PLAYLIST-TYPE":
                playlist_type = value.upper()
            elif not ln.startswith("#"):
                if pdt is None and segments and segments[-1].program_date_time is not None:
                    last = segments[-1]
                    pdt = last.program_date_time + timedelta(seconds=last.duration)
                segments.append(
                    Segment(
                        uri=absolute(ln),
                        duration=duration if duration is not None else target,
                        sequence=sequence,
                        discontinuity=discontinuity,
                        key=key,
                        init=init,
                        byterange=byterange,
                        program_date_time=pdt,
                    )
                )
                if byterange is not None:
                    range_end = byterange[1] + byterange[0]
                sequence += 1
                duration, discontinuity, byterange, pdt = None, False, None, None
    except (ValueError, KeyError) as exc:
        raise CaptureError("not_media", f"{shown}: malformed HLS playlist ({exc})") from None
    if not target:
        # No target stated: the longest segment, or, for an empty live playlist at start-up,
        # the 6 s Apple recommends, so that reloads and stall detection keep a sane pace.
        target = max((s.duration for s in segments), default=0.0) or 6.0
    return MediaPlaylist(url, target, first_sequence, tuple(segments), endlist, playlist_type)
