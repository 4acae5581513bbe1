"""HLS playlist parsing: what a capture reads from master and media playlists."""

from datetime import UTC, datetime

import pytest

from fingerprinting.capture import CaptureError
from fingerprinting.capture.hls import choose
from fingerprinting.capture.m3u8 import MasterPlaylist, MediaPlaylist, parse_playlist

BASE = "https://cdn.example.com/live/ch1/index.m3u8?token=abc123secret"

MASTER = """#EXTM3U
#EXT-X-VERSION:4
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",DEFAULT=YES,URI="audio/en.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="French",LANGUAGE="fr",DEFAULT=NO,URI="audio/fr.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2"
hi/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2"
mid/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS="mp4a.40.2"
audio-only/index.m3u8
"""


def test_master_variants_are_absolute_and_typed():
    pl = parse_playlist(MASTER, BASE)
    assert isinstance(pl, MasterPlaylist)
    assert [v.bandwidth for v in pl.variants] == [2500000, 800000, 64000]
    assert pl.variants[1].uri == "https://cdn.example.com/live/ch1/mid/index.m3u8"
    assert pl.variants[1].resolution == (640, 360)
    assert pl.variants[2].has_audio and not pl.variants[2].has_video
    assert [r.language for r in pl.renditions] == ["en", "fr"]
    assert pl.renditions[0].default and not pl.renditions[1].default


def test_choice_is_the_cheapest_variant_with_the_wanted_media():
    pl = parse_playlist(MASTER, BASE)
    av = choose(pl, want_audio=True, want_video=True)
    assert av.main.endswith("/mid/index.m3u8") and av.audio is None
    audio = choose(pl, want_audio=True, want_video=False)
    assert audio.main.endswith("/audio-only/index.m3u8")


def test_alternate_audio_rendition_is_fetched_beside_the_video():
    text = MASTER.replace('CODECS="avc1.4d401e,mp4a.40.2"', 'CODECS="avc1.4d401e",AUDIO="aud"')
    pl = parse_playlist(text, BASE)
    av = choose(pl, want_audio=True, want_video=True)
    assert av.main.endswith("/mid/index.m3u8")
    assert av.audio == "https://cdn.example.com/live/ch1/audio/en.m3u8"  # the DEFAULT one


def test_audio_only_master_falls_back_to_its_rendition():
    text = """#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="main",DEFAULT=YES,URI="a.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360,CODECS="avc1.4d401e",AUDIO="a"
v.m3u8
"""
    got = choose(parse_playlist(text, BASE), want_audio=True, want_video=False)
    assert got.main is None and got.audio.endswith("/a.m3u8")


MEDIA = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:1041
#EXT-X-KEY:METHOD=AES-128,URI="https://keys.example.com/k?id=9",IV=0x000102030405060708090a0b0c0d0e0f
#EXT-X-MAP:URI="init.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-12-01T20:00:00.000Z
#EXTINF:6.000,
seg1041.m4s
#EXTINF:5.960,
seg1042.m4s
#EXT-X-DISCONTINUITY
#EXT-X-KEY:METHOD=NONE
#EXT-X-BYTERANGE:1000@200
#EXTINF:4.5,
big.ts
#EXT-X-BYTERANGE:500
#EXTINF:4.5,
big.ts
"""


def test_media_playlist_segments_carry_sequence_key_map_and_dates():
    pl = parse_playlist(MEDIA, BASE)
    assert isinstance(pl, MediaPlaylist) and not pl.endlist
    assert pl.target_duration == 6 and pl.media_sequence == 1041 and pl.next_sequence == 1045
    s = pl.segments
    assert [x.sequence for x in s] == [1041, 1042, 1043, 1044]
    assert [x.duration for x in s] == [6.0, 5.96, 4.5, 4.5]
    assert s[0].key.method == "AES-128" and s[0].key.iv == bytes(range(16))
    assert s[0].key.uri == "https://keys.example.com/k?id=9"
    assert s[0].init == ("https://cdn.example.com/live/ch1/init.mp4", None)
    assert s[0].program_date_time == datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
    # Dates continue from the last stated one.
    assert s[1].program_date_time == datetime(2026, 12, 1, 20, 0, 6, tzinfo=UTC)
    assert s[2].discontinuity and not s[3].discontinuity and s[2].key is None
    assert s[2].byterange == (1000, 200) and s[3].byterange == (500, 1200)


@pytest.mark.parametrize(
    "text",
    ["<html><body>404</body></html>", "", '{"error": "expired"}'],
)
def test_non_playlists_are_not_media(text):
    with pytest.raises(CaptureError) as info:
        parse_playlist(text, BASE)
    assert info.value.reason == "not_media" and "abc123secret" not in info.value.message


def test_an_iptv_channel_list_is_not_an_hls_stream():
    text = '#EXTM3U\n#EXTINF:-1 tvg-id="a",A\nhttp://x/1.ts\n#EXTINF:-1,B\nhttp://x/2.ts\n'
    with pytest.raises(CaptureError) as info:
        parse_playlist(text, BASE)
    assert info.value.reason == "not_media" and "playlist" in info.value.message


def test_malformed_numbers_are_not_media():
    with pytest.raises(CaptureError) as info:
        parse_playlist("#EXTM3U\n#EXT-X-TARGETDURATION:six\n#EXTINF:6,\na.ts\n", BASE)
    assert info.value.reason == "not_media" and "malformed" in info.value.message
