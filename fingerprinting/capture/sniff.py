"""Is this audio or video? A look at the first bytes, before a decoder is trusted with them.

Servers lie in ``Content-Type`` (segments as ``text/plain``, HTML error pages as
``video/mp2t``), so the bytes decide.
"""

from __future__ import annotations

__all__ = ["media_kind"]

#: ISO BMFF box types that may open an MP4 file or an fMP4 segment.
_MP4_BOXES = {b"ftyp", b"styp", b"moof", b"sidx", b"moov", b"emsg", b"prft", b"free", b"mdat"}
_TS_PACKET = 188


def _ts(data: bytes) -> bool:
    """MPEG-TS: sync byte 0x47 every 188 bytes (checked on the first few packets)."""
    if not data or data[0] != 0x47:
        return False
    packets = min(len(data) // _TS_PACKET, 5)
    return all(data[k * _TS_PACKET] == 0x47 for k in range(packets))


def _id3_size(data: bytes) -> int:
    """Length of a leading ID3v2 tag (HLS packed audio and MP3 start with one), else 0."""
    if len(data) < 10 or data[:3] != b"ID3":
        return 0
    size = 0
    for b in data[6:10]:
        size = (size << 7) | (b & 0x7F)
    return 10 + size + (10 if data[5] & 0x10 else 0)


def media_kind(data: bytes) -> str | None:
    """``"mpegts"``, ``"mp4"``, ``"adts"``, ``"mp3"``, ``"ac3"``, ``"matroska"``, ``"flv"``,
    ``"ogg"`` or ``None`` for anything else (HTML, a playlist, JSON, garbage)."""
    body = data[_id3_size(data) :]
    if _ts(body):
        return "mpegts"
    if len(body) >= 8 and body[4:8] in _MP4_BOXES:
        return "mp4"
    if body[:4] == b"\x1aE\xdf\xa3":
        return "matroska"
    if body[:3] == b"FLV":
        return "flv"
    if body[:4] == b"OggS":
        return "ogg"
    if len(body) >= 2 and body[0] == 0xFF and body[1] & 0xF6 == 0xF0:
        return "adts"
    if len(body) >= 2 and body[0] == 0xFF and body[1] & 0xE0 == 0xE0:
        return "mp3"
    if body[:2] == b"\x0b\x77":
        return "ac3"
    return None
