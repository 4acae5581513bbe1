"""Media sniffing: the first bytes decide whether a response is audio or video."""

import pytest

from fingerprinting.capture.sniff import media_kind

TS = (b"\x47" + bytes(187)) * 6


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (TS, "mpegts"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x05" + b"XXXXX" + TS, "mpegts"),
        (b"\x00\x00\x00\x18ftypiso5" + bytes(16), "mp4"),
        (b"\x00\x00\x00\x18stypmsdh" + bytes(16), "mp4"),
        (b"\x00\x00\x00\x10moof" + bytes(8), "mp4"),
        (b"\x1aE\xdf\xa3" + bytes(20), "matroska"),
        (b"FLV\x01\x05" + bytes(20), "flv"),
        (b"\xff\xf1\x50\x80" + bytes(20), "adts"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90" + bytes(20), "mp3"),
    ],
)
def test_media_is_recognised(data, kind):
    assert media_kind(data) == kind


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE html><html><body>Access denied</body></html>",
        b"#EXTM3U\n#EXTINF:2,\nseg.ts\n",
        b'{"error": "token expired"}',
        b"\x47" + bytes(187) + b"\x00" + bytes(187),  # one sync byte is luck, not MPEG-TS
        b"",
    ],
)
def test_anything_else_is_not_media(data):
    assert media_kind(data) is None
