"""HLS capture: choose what to fetch from a master playlist, then follow a media playlist.

Live playlists (no ``EXT-X-ENDLIST``) are joined near the live edge and reloaded every
target duration, as RFC 8216 asks. A live playlist that stops advancing looks like the end
of the file to a decoder, so stalls are detected here: no new segment for
``STALL_TARGETS`` target durations is ``stalled``. Segments are fetched whole (bounded),
decrypted (AES-128), checked to be media, hashed into the evidence and handed on as
:class:`Piece` objects; a discontinuity, a new init section or a gap starts a new run
(the decoder restarts, timestamps may jump).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import CaptureError
from .http import Fetcher
from .m3u8 import Key, MasterPlaylist, MediaPlaylist, Segment, parse_playlist
from .redact import redact_url
from .sniff import media_kind

__all__ = ["STALL_TARGETS", "Choice", "HlsLimits", "Piece", "choose", "fetch_playlist", "segments"]

#: Target durations without a new segment after which a live playlist is ``stalled``.
#: RFC 8216 (6.3.4) lets a client give up on a playlist unchanged for this long.
STALL_TARGETS = 3.0


@dataclass(frozen=True)
class HlsLimits:
    """Byte caps of HLS responses (bytes)."""

    playlist_bytes: int = 4 * 1024 * 1024
    segment_bytes: int = 32 * 1024 * 1024
    key_bytes: int = 1024


@dataclass(frozen=True)
class Piece:
    """Bytes for the decoder. ``new_run``: restart decoding here (discontinuity, new init
    section or a gap); ``seconds``: media duration the playlist announces for them."""

    data: bytes
    new_run: bool
    seconds: float = 0.0


@dataclass(frozen=True)
class Choice:
    """Media playlists to read: ``main`` (video, or everything when muxed), and ``audio``
    when the sound is an alternate rendition of its own."""

    main: str | None
    audio: str | None
    variant_bandwidth: int | None = None


def choose(master: MasterPlaylist, want_audio: bool, want_video: bool) -> Choice:
    """The cheapest way to the wanted media: the lowest-bandwidth variant with video (when
    video is wanted), its alternate audio rendition when the sound is not muxed in, or the
    cheapest audio-only variant or rendition when only sound is wanted. Fingerprints look
    at 192-pixel-wide grey frames and 8 kHz sound: a higher bit rate buys nothing."""
    variants = sorted(master.variants, key=lambda v: v.bandwidth)
    if not variants:
        raise CaptureError(
            "not_media", f"{redact_url(master.url)}: master playlist lists no variant"
        )
    audio_renditions = [r for r in master.renditions if r.type == "AUDIO" and r.uri]

    def rendition_of(group: str | None) -> str | None:
        group_items = [r for r in audio_renditions if r.group_id == group]
        group_items.sort(key=lambda r: not r.default)
        return group_items[0].uri if group_items else None

    if want_video:
        video = [v for v in variants if v.has_video and v.resolution] or [
            v for v in variants if v.has_video
        ]
        if video:
            v = video[0]
            audio = rendition_of(v.audio_group) if want_audio and v.audio_group else None
            return Choice(v.uri, audio, v.bandwidth)
    if want_audio:
        audio_only = [v for v in variants if v.has_audio and not v.has_video]
        if audio_only:
            return Choice(audio_only[0].uri, None, audio_only[0].bandwidth)
        if audio_renditions:
            default = sorted(audio_renditions, key=lambda r: not r.default)[0]
            return Choice(None, default.uri)
    return Choice(variants[0].uri, None, variants[0].bandwidth)


def fetch_playlist(fetcher: Fetcher, url: str, limits: HlsLimits) -> MasterPlaylist | MediaPlaylist:
    """GET and parse a playlist, snapshotting it into the evidence."""
    got = fetcher.get(url, max_bytes=limits.playlist_bytes, what="playlist")
    fetcher.evidence.add_playlist(got.url, got.body)
    return parse_playlist(got.body.decode("utf-8", "replace"), got.url)


def media_playlist(fetcher: Fetcher, url: str, limits: HlsLimits) -> MediaPlaylist:
    """Fetch ``url`` as a media playlist; a master where a media playlist was expected
    (a variant pointing at a master, or at itself) is a loop."""
    playlist = fetch_playlist(fetcher, url, limits)
    if isinstance(playlist, MasterPlaylist):
        raise CaptureError(
            "redirect_loop",
            f"{redact_url(url)}: a variant playlist is a master playlist again "
            "(the playlists reference each other)",
            fetcher.evidence,
        )
    return playlist


def _start_index(playlist: MediaPlaylist, seconds: float) -> int:
    """Where to join a live playlist: far enough back from the live edge for a whole
    sample to be there now (so capture takes download time, not real time), and never
    closer to the edge than three target durations (RFC 8216, 6.3.3)."""
    if playlist.endlist:
        return 0
    need = max(seconds + playlist.target_duration, 3 * playlist.target_duration)
    total, index = 0.0, len(playlist.segments)
    while index > 0 and total < need:
        index -= 1
        total += playlist.segments[index].duration
    return index


def segments(
    fetcher: Fetcher,
    url: str,
    seconds: float,
    limits: HlsLimits,
    first: MediaPlaylist | None = None,
) -> Iterator[Piece]:
    """Follow the media playlist at ``url``, yielding decoder input until the consumer
    stops pulling (it has ``seconds`` of media), the playlist ends, or a failure.
    ``first``: the playlist as already fetched, if it was (it is not fetched again).

    Two consecutive segments that fail to download end the capture with that failure;
    one is skipped (a CDN edge missing one segment is common) and recorded.
    """
    playlist = first or media_playlist(fetcher, url, limits)
    loaded = time.monotonic()
    next_seq = playlist.media_sequence + _start_index(playlist, seconds)
    last_new = time.monotonic()
    init_uri = None
    keys: dict[str, bytes] = {}
    new_run = False
    failures = 0
    while True:
        fresh = [s for s in playlist.segments if s.sequence >= next_seq]
        for seg in fresh:
            if seg.uri == playlist.url:
                raise CaptureError(
                    "redirect_loop",
                    f"{redact_url(url)}: the playlist lists itself as a segment",
                    fetcher.evidence,
                )
            pieces = []
            run = new_run or seg.discontinuity
            try:
                if seg.init is not None and (run or seg.init != init_uri):
                    pieces.append(_init_section(fetcher, seg, limits))
                    run = run or init_uri is not None
                    init_uri = seg.init
                data = _segment_bytes(fetcher, seg, keys, limits)
            except CaptureError as exc:
                failures += 1
                if failures >= 2 or exc.reason in ("decrypt_failed", "too_large", "not_media"):
                    raise
                fetcher.evidence.note("segment_skipped", sequence=seg.sequence, reason=exc.reason)
                next_seq, new_run = seg.sequence + 1, True
                continue
            failures = 0
            fetcher.evidence.add_range(
                seg.uri,
                "segment",
                data,
                offset=seg.byterange[1] if seg.byterange else 0,
                media_sequence=seg.sequence,
                duration_seconds=seg.duration,
                program_date_time=_iso(seg),
                discontinuity=run,
                decrypted=seg.key is not None,
            )
            next_seq, new_run = seg.sequence + 1, False
            for k, piece in enumerate(pieces + [data]):
                yield Piece(piece, run and k == 0, seg.duration if piece is data else 0.0)
        if playlist.endlist:
            return
        if fresh:
            last_new = time.monotonic()
        elif time.monotonic() - last_new > STALL_TARGETS * playlist.target_duration:
            raise CaptureError(
                "stalled",
                f"{redact_url(url)}: live playlist has not advanced for "
                f"{time.monotonic() - last_new:.1f} s (target duration "
                f"{playlist.target_duration:g} s)",
                fetcher.evidence,
            )
        # Reload a target duration after the last load, or half of one when nothing new
        # came (RFC 8216, 6.3.4).
        wait = playlist.target_duration * (1.0 if fresh else 0.5)
        fetcher.deadline.sleep(
            max(0.0, loaded + wait - time.monotonic()), f"live playlist {redact_url(url)}"
        )
        playlist = media_playlist(fetcher, url, limits)
        loaded = time.monotonic()
        if playlist.media_sequence > next_seq:
            fetcher.evidence.note(
                "segments_expired", missed=playlist.media_sequence - next_seq, at=next_seq
            )
            next_seq, new_run = playlist.media_sequence, True
        elif playlist.next_sequence < next_seq - 1:
            # The sequence went backwards: the server restarted the stream.
            fetcher.evidence.note("sequence_restarted", was=next_seq, now=playlist.media_sequence)
            next_seq = playlist.media_sequence + _start_index(playlist, seconds)
            new_run = True


def _iso(seg: Segment) -> str | None:
    pdt = seg.program_date_time
    return pdt.isoformat(timespec="milliseconds") if pdt else None


def _range_headers(byterange: tuple[int, int] | None) -> dict[str, str] | None:
    if byterange is None:
        return None
    length, offset = byterange
    return {"Range": f"bytes={offset}-{offset + length - 1}"}


def _init_section(fetcher: Fetcher, seg: Segment, limits: HlsLimits) -> bytes:
    uri, byterange = seg.init
    got = fetcher.get(
        uri, max_bytes=limits.segment_bytes, what="init section", headers=_range_headers(byterange)
    )
    data = _slice(got.body, byterange, got.status)
    fetcher.evidence.add_range(uri, "init", data, offset=byterange[1] if byterange else 0)
    return data


def _slice(body: bytes, byterange: tuple[int, int] | None, status: int) -> bytes:
    """The byte range of a body: servers that ignore ``Range`` answer 200 with it all."""
    if byterange is None or status == 206:
        return body
    length, offset = byterange
    return body[offset : offset + length]


def _segment_bytes(
    fetcher: Fetcher, seg: Segment, keys: dict[str, bytes], limits: HlsLimits
) -> bytes:
    got = fetcher.get(
        seg.uri,
        max_bytes=limits.segment_bytes,
        what="segment",
        headers=_range_headers(seg.byterange),
    )
    data = _slice(got.body, seg.byterange, got.status)
    if seg.key is not None:
        data = _decrypt(fetcher, seg, data, keys, limits)
    if media_kind(data) is None:
        head = data[:32]
        raise CaptureError(
            "not_media",
            f"segment {redact_url(seg.uri)}: not audio or video "
            f"({got.content_type or 'no content type'}, starts with {head!r})",
            fetcher.evidence,
        )
    return data


def _decrypt(
    fetcher: Fetcher, seg: Segment, data: bytes, keys: dict[str, bytes], limits: HlsLimits
) -> bytes:
    key: Key = seg.key
    shown = redact_url(seg.uri)
    if key.method != "AES-128":
        raise CaptureError(
            "decrypt_failed",
            f"segment {shown}: encryption {key.method} is not supported (AES-128 only; "
            "SAMPLE-AES is DRM)",
            fetcher.evidence,
        )
    if key.uri is None:
        raise CaptureError("decrypt_failed", f"segment {shown}: AES-128 key has no URI")
    if key.uri not in keys:
        got = fetcher.get(key.uri, max_bytes=limits.key_bytes, what="key")
        if len(got.body) != 16:
            raise CaptureError(
                "decrypt_failed",
                f"key {redact_url(key.uri)}: {len(got.body)} bytes, an AES-128 key is 16",
                fetcher.evidence,
            )
        keys[key.uri] = got.body
    iv = key.iv or seg.sequence.to_bytes(16, "big")
    if len(data) % 16:
        raise CaptureError(
            "decrypt_failed",
            f"segment {shown}: {len(data)} bytes is not a whole number of AES blocks",
            fetcher.evidence,
        )
    decryptor = Cipher(algorithms.AES(keys[key.uri]), modes.CBC(iv)).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(plain) + unpadder.finalize()
    except ValueError:
        raise CaptureError(
            "decrypt_failed", f"segment {shown}: wrong key or IV (bad padding)", fetcher.evidence
        ) from None
