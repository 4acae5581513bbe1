"""Streamed IPTV extended-M3U parsing."""

from __future__ import annotations

import time

import pytest

from fingerprinting.capture.errors import CaptureError
from fingerprinting.capture.options import StreamOptions
from fingerprinting.capture.playlists import (
    PlaylistEntry,
    PlaylistError,
    iter_m3u,
    iter_m3u_bytes,
    looks_like_hls,
)

PANEL = """#EXTM3U url-tvg="http://epg.example/guide.xml" x-tvg-url=http://epg.example/2.xml
#EXTINF:-1 tvg-id="bbc1.uk" tvg-name="BBC One" tvg-logo="http://logo.example/bbc1.png" \
group-title="UK | News",BBC One HD
#EXTVLCOPT:http-user-agent=VLC/3.0.18
#EXTVLCOPT:http-referrer=http://panel.example/
http://panel.example:8080/live/u/p/1.ts
#EXTINF:-1 tvg-id="itv1.uk" group-title="UK | Entertainment",ITV 1
http://panel.example:8080/live/u/p/2.ts|User-Agent=Kodi%2F20&Origin=http://panel.example
"""


def parse(text: str) -> list[PlaylistEntry]:
    return list(iter_m3u(text.splitlines()))


def parse_bytes(data: bytes, chunk: int | None = None, **kw) -> list[PlaylistEntry]:
    if chunk is None:
        return list(iter_m3u_bytes([data], **kw))
    return list(iter_m3u_bytes((data[i : i + chunk] for i in range(0, len(data), chunk)), **kw))


def test_panel_playlist_fields() -> None:
    first, second = parse(PANEL)
    assert first.url == "http://panel.example:8080/live/u/p/1.ts"
    assert first.name == "BBC One HD"
    assert first.duration == -1.0
    assert first.tvg_id == "bbc1.uk"
    assert first.tvg_name == "BBC One"
    assert first.tvg_logo == "http://logo.example/bbc1.png"
    assert first.group_title == "UK | News"
    assert first.catchup == {}
    assert first.options == StreamOptions(user_agent="VLC/3.0.18", referer="http://panel.example/")
    assert first.line == 5
    assert set(first.attributes) == {"tvg-id", "tvg-name", "tvg-logo", "group-title"}

    assert second.url == "http://panel.example:8080/live/u/p/2.ts"
    assert second.name == "ITV 1"
    assert second.tvg_name is None
    assert second.group_title == "UK | Entertainment"
    # EXTVLCOPT applied to the first entry only; the Kodi suffix to its own.
    assert second.options == StreamOptions(
        user_agent="Kodi/20", headers=(("Origin", "http://panel.example"),)
    )
    assert second.line == 7


@pytest.mark.parametrize(
    ("extinf", "attributes", "name"),
    [
        # Quoted values with spaces, commas and pipes; the name follows the first comma
        # outside quotes.
        (
            '#EXTINF:-1 tvg-name="News, Weather | Sport" group-title="A,B",Name, with comma',
            {"tvg-name": "News, Weather | Sport", "group-title": "A,B"},
            "Name, with comma",
        ),
        (
            "#EXTINF:-1 tvg-id='single q' tvg-logo=bare,X",
            {"tvg-id": "single q", "tvg-logo": "bare"},
            "X",
        ),
        (
            '#EXTINF:-1 TVG-ID=abc Group-Title="G" ,  Spaced  ',
            {"tvg-id": "abc", "group-title": "G"},
            "Spaced",
        ),
        # No separating space between attributes.
        ('#EXTINF:-1 tvg-id="a"tvg-name="b",N', {"tvg-id": "a", "tvg-name": "b"}, "N"),
        # Spaces around "=".
        ('#EXTINF:-1 tvg-id = "a",N', {"tvg-id": "a"}, "N"),
        # Empty value, then a bare value that is not eaten by the next attribute.
        (
            '#EXTINF:-1 tvg-logo="" tvg-id= tvg-name="b",N',
            {"tvg-logo": "", "tvg-id": "", "tvg-name": "b"},
            "N",
        ),
        # Repeated key: the first value wins.
        ('#EXTINF:-1 tvg-id="first" tvg-id="second",N', {"tvg-id": "first"}, "N"),
        # Stray words are ignored.
        ("#EXTINF:-1 junk tvg-id=a more,N", {"tvg-id": "a"}, "N"),
        # Unterminated quote: read as a bare value, the line still yields a name.
        ('#EXTINF:-1 tvg-id="abc,Name', {"tvg-id": '"abc'}, "Name"),
        ("#EXTINF:-1,Just A Name", {}, "Just A Name"),
        ("#EXTINF:-1 tvg-id=x", {"tvg-id": "x"}, ""),
        ("#EXTINF:-1,", {}, ""),
        ('#EXTINF:-1 tvg-name="Ünïcödé 台",Ünïcödé 台', {"tvg-name": "Ünïcödé 台"}, "Ünïcödé 台"),
    ],
)
def test_extinf_attributes(extinf: str, attributes: dict[str, str], name: str) -> None:
    (entry,) = parse(f"#EXTM3U\n{extinf}\nhttp://a.example/s.ts\n")
    assert entry.attributes == attributes
    assert entry.name == name


@pytest.mark.parametrize(
    ("extinf", "duration"),
    [
        ("#EXTINF:-1,N", -1.0),
        ("#EXTINF:0,N", 0.0),
        ("#EXTINF:10.5,N", 10.5),
        ("#EXTINF: 5400 tvg-id=x,N", 5400.0),
        ("#EXTINF:abc,N", -1.0),
        ("#EXTINF:nan,N", -1.0),
        ("#EXTINF:inf,N", -1.0),
        ("#EXTINF:,N", -1.0),
        ("#EXTINF:tvg-id=x,N", -1.0),
    ],
)
def test_durations(extinf: str, duration: float) -> None:
    (entry,) = parse(f"#EXTM3U\n{extinf}\nhttp://a.example/s.ts\n")
    assert entry.duration == duration
    assert entry.name == "N"


def test_attribute_looking_duration_is_an_attribute() -> None:
    (entry,) = parse('#EXTM3U\n#EXTINF:tvg-id="x" group-title="G",N\nhttp://a/s\n')
    assert entry.tvg_id == "x"
    assert entry.group_title == "G"


def test_url_without_extinf_is_an_entry() -> None:
    entries = parse("#EXTM3U\nhttp://a.example/1.ts\nrtmp://b.example/live/2\n")
    assert [e.url for e in entries] == ["http://a.example/1.ts", "rtmp://b.example/live/2"]
    assert entries[0].name == ""
    assert entries[0].duration == -1.0
    assert entries[0].attributes == {}
    assert entries[0].options == StreamOptions()


def test_schemes_and_paths_accepted_junk_skipped() -> None:
    text = (
        "#EXTM3U\n"
        "#EXTINF:-1,One\n"
        "==== join our telegram ====\n"  # junk: skipped, does not consume the #EXTINF
        "udp://@239.0.0.1:1234\n"
        "rtsp://c.example/3\n"
        "/srv/media/4.ts\n"
        "relative/5.ts\n"  # relative: not an IPTV URL, skipped
        "https://d.example/6.m3u8\n"
    )
    entries = parse(text)
    assert [e.url for e in entries] == [
        "udp://@239.0.0.1:1234",
        "rtsp://c.example/3",
        "/srv/media/4.ts",
        "https://d.example/6.m3u8",
    ]
    assert entries[0].name == "One"
    assert entries[1].name == ""


def test_later_extinf_replaces_pending_one() -> None:
    (entry,) = parse("#EXTM3U\n#EXTINF:-1,Lost\n#EXTINF:-1,Kept\nhttp://a/1\n")
    assert entry.name == "Kept"


def test_vlcopt_applies_to_next_entry_only() -> None:
    text = (
        "#EXTM3U\n"
        "#EXTINF:-1,A\n"
        "#EXTVLCOPT:http-user-agent=Special/1.0\n"
        "#EXTVLCOPT:http-referer=http://ref.example/\n"
        "#EXTVLCOPT:network-caching=1000\n"
        "http://a/1\n"
        "#EXTINF:-1,B\n"
        "http://a/2\n"
        "#EXTVLCOPT:http-user-agent=Before/2.0\n"  # before the #EXTINF: still applies
        "#EXTINF:-1,C\n"
        "http://a/3\n"
    )
    a, b, c = parse(text)
    assert a.options.request_headers() == {
        "User-Agent": "Special/1.0",
        "Referer": "http://ref.example/",
    }
    assert b.options == StreamOptions()
    assert c.options == StreamOptions(user_agent="Before/2.0")


def test_option_precedence() -> None:
    text = (
        '#EXTM3U user-agent="Playlist/1" http-referrer="http://pl/"\n'
        '#EXTINF:-1 user-agent="Attr/1",A\n'
        "#EXTVLCOPT:http-user-agent=Vlc/1\n"
        "#EXTVLCOPT:http-origin=http://vlc-origin\n"
        "http://a/1|User-Agent=Kodi/1\n"
        "#EXTINF:-1 http-user-agent=Attr/2,B\n"
        "http://a/2\n"
        "#EXTINF:-1,C\n"
        "#KODIPROP:inputstream.adaptive.stream_headers=Referer=http%3A%2F%2Fkodi%2F\n"
        "http://a/3\n"
    )
    a, b, c = parse(text)
    assert a.options == StreamOptions(
        user_agent="Kodi/1", referer="http://pl/", headers=(("Origin", "http://vlc-origin"),)
    )
    assert b.options == StreamOptions(user_agent="Attr/2", referer="http://pl/")
    assert c.options == StreamOptions(user_agent="Playlist/1", referer="http://kodi/")


def test_kodi_suffix_removed_from_url() -> None:
    (entry,) = parse(
        "#EXTM3U\n#EXTINF:-1,K\n  http://a.example/x.m3u8|user-agent=Mozilla%2F5.0%20(X11)  \n"
    )
    assert entry.url == "http://a.example/x.m3u8"
    assert entry.options.user_agent == "Mozilla/5.0 (X11)"


def test_extgrp_is_sticky_and_group_title_wins() -> None:
    text = (
        "#EXTM3U\n"
        "#EXTINF:-1,A\n"
        "http://a/1\n"
        "#EXTGRP:Sports\n"
        "#EXTINF:-1,B\n"
        "http://a/2\n"
        '#EXTINF:-1 group-title="Movies",C\n'
        "http://a/3\n"
        "#EXTINF:-1,D\n"
        "http://a/4\n"
        "#EXTGRP:News\n"
        "http://a/5\n"
    )
    assert [e.group_title for e in parse(text)] == [None, "Sports", "Movies", "Sports", "News"]


def test_catchup_attributes() -> None:
    (entry,) = parse(
        "#EXTM3U\n"
        '#EXTINF:-1 tvg-id="x" catchup="append" catchup-days="7" '
        'catchup-source="?utc={utc}&lutc={lutc}" catchup-type=flussonic timeshift="3" '
        'tvg-rec="5" tvg-shift="1",Replay TV\n'
        "http://a/1\n"
    )
    assert entry.catchup == {
        "catchup": "append",
        "catchup-days": "7",
        "catchup-source": "?utc={utc}&lutc={lutc}",
        "catchup-type": "flussonic",
        "timeshift": "3",
        "tvg-rec": "5",
    }
    assert entry.attributes["tvg-shift"] == "1"
    assert entry.name == "Replay TV"


def test_headerless_playlist_is_accepted() -> None:
    entries = parse("#EXTINF:-1,A\nhttp://a/1\n")
    assert [(e.name, e.url) for e in entries] == [("A", "http://a/1")]
    entries = parse("Welcome to our service\n#EXTINF:-1,A\nhttp://a/1\n")
    assert [e.name for e in entries] == ["A"]


def test_header_only_playlist_is_empty_not_an_error() -> None:
    assert parse("#EXTM3U\n") == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("<!DOCTYPE html>\n<html><body>403 Forbidden</body></html>\n", "HTML"),
        ("  <html>\n<head>\n", "HTML"),
        ('{"error": "expired"}\n', "JSON"),
        ("Invalid username or password\n", "Invalid username"),
        ("", "empty"),
        ("\n\n   \n", "empty"),
        ("# just a comment\n", "no #EXTM3U"),
    ],
)
def test_not_a_playlist(text: str, found: str) -> None:
    with pytest.raises(PlaylistError, match=found):
        parse(text)
    with pytest.raises(PlaylistError, match=found):
        parse_bytes(text.encode())


def test_binary_input_raises_playlist_error() -> None:
    ts_packet = bytes([0x47, 0x40, 0x00, 0x10, 0x00]) + bytes(range(183)) + b"\n"
    with pytest.raises(PlaylistError, match="binary"):
        parse_bytes(ts_packet * 3)
    with pytest.raises(PlaylistError, match="binary"):
        parse_bytes(b"\xff\xd8\xff\xe0\xc3\xa9\xfe\xfa\xfb\xfc\n")


def test_utf16_raises_playlist_error() -> None:
    with pytest.raises(PlaylistError, match="UTF-16"):
        parse_bytes("#EXTM3U\n#EXTINF:-1,A\nhttp://a/1\n".encode("utf-16"))


def test_html_is_refused_before_reading_the_rest() -> None:
    def chunks():
        yield b"<html><head><title>Suspended</title>\n"
        raise AssertionError("read past the first line")

    with pytest.raises(PlaylistError, match="Suspended"):
        list(iter_m3u_bytes(chunks()))


def test_crlf_bom_and_bare_cr() -> None:
    text = PANEL.replace("\n", "\r\n")
    data = b"\xef\xbb\xbf" + text.encode()
    expected = parse(PANEL)
    assert parse_bytes(data) == expected
    assert parse_bytes(b"\xef\xbb\xbf" + PANEL.replace("\n", "\r").encode()) == expected
    # Text lines: BOM and CRLF too.
    assert list(iter_m3u(("\ufeff" + text).splitlines(keepends=True))) == expected


def test_bom_before_headerless_content() -> None:
    (entry,) = parse_bytes(b"\xef\xbb\xbf#EXTINF:-1,A\nhttp://a/1")
    assert entry.name == "A"
    assert entry.url == "http://a/1"  # last line without a terminator


def test_latin1_bytes_do_not_crash() -> None:
    data = '#EXTM3U\n#EXTINF:-1 tvg-name="Télé Café",Télé Café ñ\nhttp://a/1\n'.encode("latin-1")
    (entry,) = parse_bytes(data)
    assert entry.name == "T\ufffdl\ufffd Caf\ufffd \ufffd"
    assert entry.tvg_name == "T\ufffdl\ufffd Caf\ufffd"
    assert entry.url == "http://a/1"


def test_headerless_latin1_first_line_is_not_binary() -> None:
    (entry,) = parse_bytes("#EXTINF:-1,Télé\nhttp://a/1\n".encode("latin-1"))
    assert entry.name == "T\ufffdl\ufffd"


def test_long_line_raises_too_large() -> None:
    data = b"#EXTM3U\n#EXTINF:-1,A\n" + b"x" * 5000 + b"\nhttp://a/1\n"
    with pytest.raises(CaptureError) as info:
        parse_bytes(data, max_line_bytes=4096)
    assert info.value.reason == "too_large"
    assert "line 3" in info.value.message
    # Same when the line arrives in small chunks.
    with pytest.raises(CaptureError) as info:
        parse_bytes(data, chunk=100, max_line_bytes=4096)
    assert info.value.reason == "too_large"
    assert "line 3" in info.value.message
    # Exactly at the cap is fine.
    ok = b"#EXTM3U\n#EXTINF:-1," + b"n" * (4096 - 11) + b"\nhttp://a/1\n"
    (entry,) = parse_bytes(ok, chunk=7, max_line_bytes=4096)
    assert len(entry.name) == 4096 - 11


def test_endless_line_stops_without_buffering_it() -> None:
    consumed = 0

    def endless():
        nonlocal consumed
        yield b"#EXTM3U\n"
        while True:
            consumed += 1
            yield b"a" * 1024

    with pytest.raises(CaptureError) as info:
        list(iter_m3u_bytes(endless(), max_line_bytes=64 * 1024))
    assert info.value.reason == "too_large"
    assert "line 2" in str(info.value)
    assert consumed <= 65


def test_chunk_boundaries_split_crlf_and_utf8() -> None:
    text = (
        "#EXTM3U\r\n"
        '#EXTINF:-1 tvg-name="Ünïcödé 台湾",Ünïcödé 台湾 €\r\n'
        "\r\n"
        "http://a/1\r\n"
        "#EXTINF:-1,Two\r"
        "http://a/2\r\n"
    )
    data = text.encode()
    whole = parse_bytes(data)
    assert [(e.name, e.url, e.line) for e in whole] == [
        ("Ünïcödé 台湾 €", "http://a/1", 4),
        ("Two", "http://a/2", 6),
    ]
    for size in range(1, 12):
        assert parse_bytes(data, chunk=size) == whole, size


def _big_playlist(n: int) -> str:
    groups = ["UK | News", "FR | Sport", "DE, Kino", "VOD | Films 4K"]
    lines = ['#EXTM3U url-tvg="http://epg.example/xmltv.php?u=a&p=b"']
    for i in range(n):
        attrs = f'tvg-id="ch{i}.example" tvg-name="Channel {i}" '
        attrs += f'tvg-logo="http://logo.example/{i}.png" group-title="{groups[i % 4]}"'
        if i % 3 == 0:
            attrs += ' catchup="default" catchup-days="3"'
        if i % 5 == 0:
            attrs += f" tvg-chno={i}"
        duration = "-1" if i % 4 != 3 else str(5400 + i)
        lines.append(f"#EXTINF:{duration} {attrs},Channel {i} HD")
        if i % 7 == 0:
            lines.append("#EXTVLCOPT:http-user-agent=VLC/3.0.18")
        url = f"http://panel.example:8080/live/user/pass/{i}.ts"
        if i % 11 == 0:
            url += "|Referer=http%3A%2F%2Fpanel.example%2F"
        lines.append(url)
    return "\n".join(lines) + "\n"


def test_ten_thousand_entries_fast() -> None:
    data = _big_playlist(10_000).encode()
    start = time.perf_counter()
    entries = parse_bytes(data, chunk=64 * 1024)
    elapsed = time.perf_counter() - start
    assert len(entries) == 10_000
    assert elapsed < 1.0, f"{elapsed:.2f} s for 10,000 entries"

    e0, e3, e7, e9999 = entries[0], entries[3], entries[7], entries[9999]
    assert e0.name == "Channel 0 HD"
    assert e0.tvg_id == "ch0.example"
    assert e0.catchup == {"catchup": "default", "catchup-days": "3"}
    assert e0.attributes["tvg-chno"] == "0"
    assert e0.options == StreamOptions(user_agent="VLC/3.0.18", referer="http://panel.example/")
    assert e0.url == "http://panel.example:8080/live/user/pass/0.ts"
    assert e3.duration == 5403.0
    assert e3.group_title == "VOD | Films 4K"
    assert e3.catchup == {"catchup": "default", "catchup-days": "3"}
    assert e3.options == StreamOptions()
    assert e7.options == StreamOptions(user_agent="VLC/3.0.18")
    assert e9999.tvg_logo == "http://logo.example/9999.png"
    assert e9999.group_title == "VOD | Films 4K"
    assert e9999.duration == 5400.0 + 9999
    assert sum(1 for e in entries if e.group_title == "DE, Kino") == 2500
    # line numbers: 1 header + 2 lines per entry + one EXTVLCOPT line every 7 entries
    assert e9999.line == 1 + 2 * 10_000 + (9999 // 7 + 1)


def test_seven_byte_chunks_match_one_chunk() -> None:
    data = _big_playlist(2_000).encode()
    assert parse_bytes(data, chunk=7) == parse_bytes(data)
    assert parse_bytes(data) == parse(data.decode())


def test_is_lazy() -> None:
    def chunks():
        yield b"#EXTM3U\n#EXTINF:-1,A\nhttp://a/1\n"
        raise AssertionError("read too far")

    first = next(iter_m3u_bytes(chunks()))
    assert first.url == "http://a/1"


MASTER = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720
720p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360
360p/index.m3u8
"""

MEDIA = """#EXTM3U
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:1042
#EXTINF:6.000,
seg1042.ts
#EXTINF:6.000,
seg1043.ts
"""


@pytest.mark.parametrize(
    "head",
    [
        MASTER,
        MEDIA,
        "\ufeff#EXTM3U\r\n#EXT-X-INDEPENDENT-SEGMENTS\r\n#EXT-X-STREAM-INF:BANDWIDTH=1\r\na.m3u8",
        "#EXT-X-STREAM-INF:BANDWIDTH=1\nhttp://cdn/a.m3u8\n",  # no #EXTM3U
        # Old-style media playlist: no EXT-X tags, relative segments.
        "#EXTM3U\n#EXTINF:10,\nsegment0.ts\n#EXTINF:10,\nsegment1.ts\n",
        # Absolute segments, with an HLS-only tag after them.
        "#EXTM3U\n#EXTINF:10,\nhttp://cdn/s0.ts\n#EXT-X-ENDLIST\n",
        # Master playlist cut off mid-line.
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=12",
    ],
)
def test_looks_like_hls_true(head: str) -> None:
    assert looks_like_hls(head) is True


@pytest.mark.parametrize(
    "head",
    [
        PANEL,
        PANEL.replace("\n", "\r\n"),
        "#EXTM3U\n#EXTINF:-1,A\nhttp://a/1\n",
        "#EXTINF:-1 tvg-id=x,A\nhttp://a/1\n",
        # VOD entries have positive durations but absolute URLs.
        "#EXTM3U\n#EXTINF:5400 tvg-id=m,Movie\nhttp://panel/movie/u/p/1.mkv\n",
        # Junk after an #EXTINF in a channel list is not a segment.
        "#EXTM3U\n#EXTINF:-1,A\n=== telegram ===\nhttp://a/1\n",
        # An #EXT-X- tag after the channels began, and not HLS-only.
        "#EXTM3U\n#EXTINF:-1,A\nhttp://a/1\n#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00Z\n",
        "",
        "<html>",
    ],
)
def test_looks_like_hls_false(head: str) -> None:
    assert looks_like_hls(head) is False
