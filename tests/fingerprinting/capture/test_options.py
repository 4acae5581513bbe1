"""Per-stream HTTP options from Kodi URL suffixes, #EXTVLCOPT and #KODIPROP lines."""

from __future__ import annotations

import httpx
import pytest

from fingerprinting.capture.options import (
    StreamOptions,
    parse_kodiprop,
    parse_vlcopt,
    split_kodi_url,
)


def test_split_kodi_url_decodes_values_and_sorts_headers() -> None:
    url, opts = split_kodi_url(
        "  http://panel.example/live/1.ts|User-Agent=VLC%2F3.0.18&Referer=http://x.example/"
        "&Origin=http%3A%2F%2Fx.example  \n"
    )
    assert url == "http://panel.example/live/1.ts"
    assert opts.user_agent == "VLC/3.0.18"
    assert opts.referer == "http://x.example/"
    assert opts.headers == (("Origin", "http://x.example"),)


def test_split_kodi_url_header_names_are_case_insensitive() -> None:
    _, opts = split_kodi_url("http://a/b|user-agent=Lavf&REFERRER=http://r/&cookie=s%3D1")
    assert opts.user_agent == "Lavf"
    assert opts.referer == "http://r/"
    assert opts.request_headers() == {
        "User-Agent": "Lavf",
        "Referer": "http://r/",
        "cookie": "s=1",
    }


def test_split_kodi_url_without_suffix() -> None:
    assert split_kodi_url(" http://a.example/x.m3u8 ") == (
        "http://a.example/x.m3u8",
        StreamOptions(),
    )


def test_split_kodi_url_skips_curl_settings_and_malformed_pairs() -> None:
    _, opts = split_kodi_url("http://a/b|verifypeer=false&seekable=0&novalue&X-Token=abc+def")
    assert opts.user_agent is None
    # "+" is kept literally (raw User-Agent strings contain it).
    assert opts.headers == (("X-Token", "abc+def"),)


def test_split_kodi_url_splits_at_first_pipe() -> None:
    url, opts = split_kodi_url("http://a/b|User-Agent=A|B")
    assert url == "http://a/b"
    assert opts.user_agent == "A|B"


@pytest.mark.parametrize(
    "suffix",
    [
        "Referer=http://x/%0d%0aX-Evil:%201",
        "Referer=http://x/%0aX-Evil:%201",
        "Referer=http://x/%0dX-Evil:%201",
        "Referer=http://x/%00",
    ],
)
def test_header_injection_values_are_dropped(suffix: str) -> None:
    url, opts = split_kodi_url(f"http://a/b|User-Agent=ok&{suffix}")
    assert url == "http://a/b"
    assert opts.referer is None
    assert opts.user_agent == "ok"
    assert opts.request_headers() == {"User-Agent": "ok"}


def test_injection_dropped_in_constructor_and_extra_headers() -> None:
    opts = StreamOptions(
        user_agent="a\r\nHost: evil",
        referer="http://r/\n",  # trailing newline is stripped, not an injection
        headers=(("Cookie", "a=1\r\nX: y"), ("Origin", "http://o"), ("Bad Name", "v")),
    )
    assert opts.user_agent is None
    assert opts.referer == "http://r/"
    assert opts.headers == (("Origin", "http://o"),)


def test_non_ascii_values() -> None:
    opts = StreamOptions(user_agent="Caf\u00e9Player", referer="http://ex.com/caf\u00e9")
    # httpx cannot send a non-ASCII header string: the User-Agent is dropped, the Referer
    # (a URL) percent-encoded.
    assert opts.user_agent is None
    assert opts.referer == "http://ex.com/caf%C3%A9"


def test_request_headers_are_accepted_by_httpx() -> None:
    _, opts = split_kodi_url("http://a/b|User-Agent=VLC&Referer=http://r/&Origin=http://o")
    request = httpx.Request("GET", "http://a/b", headers=opts.request_headers())
    assert request.headers["user-agent"] == "VLC"
    assert request.headers["referer"] == "http://r/"
    assert request.headers["origin"] == "http://o"


def test_empty_options_send_nothing() -> None:
    assert StreamOptions().request_headers() == {}
    assert not StreamOptions()
    assert StreamOptions(user_agent="  ") == StreamOptions()


def test_headers_field_normalised() -> None:
    opts = StreamOptions(headers=[("user-agent", "X"), ("origin", "a"), ("Origin", "b")])
    assert opts.user_agent == "X"
    assert opts.headers == (("Origin", "b"),)
    hash(opts)  # frozen and hashable (headers became a tuple)


def test_merged_other_wins_and_headers_combine() -> None:
    base = StreamOptions(
        user_agent="Base", referer="http://base/", headers=(("Origin", "o1"), ("Cookie", "c1"))
    )
    top = StreamOptions(user_agent="Top", headers=(("origin", "o2"), ("X-A", "1")))
    merged = base.merged(top)
    assert merged.user_agent == "Top"
    assert merged.referer == "http://base/"  # top has none: base's kept
    assert merged.request_headers() == {
        "User-Agent": "Top",
        "Referer": "http://base/",
        "Cookie": "c1",
        "origin": "o2",
        "X-A": "1",
    }
    assert base.merged(StreamOptions()) == base
    assert StreamOptions().merged(top) == top


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "#EXTVLCOPT:http-user-agent=Mozilla/5.0 (X11)",
            StreamOptions(user_agent="Mozilla/5.0 (X11)"),
        ),
        ('#EXTVLCOPT:http-user-agent="VLC/3.0"', StreamOptions(user_agent="VLC/3.0")),
        ("#EXTVLCOPT:http-referrer=http://r.example/", StreamOptions(referer="http://r.example/")),
        ("#EXTVLCOPT:http-referer=http://r.example/", StreamOptions(referer="http://r.example/")),
        ("#EXTVLCOPT:http-origin=http://o", StreamOptions(headers=(("Origin", "http://o"),))),
        ("#EXTVLCOPT:http-cookie=a=1; b=2", StreamOptions(headers=(("Cookie", "a=1; b=2"),))),
        ("#extvlcopt:HTTP-USER-AGENT=x\r\n", StreamOptions(user_agent="x")),
    ],
)
def test_parse_vlcopt(line: str, expected: StreamOptions) -> None:
    assert parse_vlcopt(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "#EXTVLCOPT:network-caching=1000",
        "#EXTVLCOPT:http-reconnect=true",
        "#EXTVLCOPT:novalue",
        "#EXTINF:-1,Name",
        "http://a/b",
    ],
)
def test_parse_vlcopt_unknown_is_none(line: str) -> None:
    assert parse_vlcopt(line) is None


def test_parse_vlcopt_injection_dropped() -> None:
    assert parse_vlcopt("#EXTVLCOPT:http-user-agent=a\rb") == StreamOptions()


def test_parse_kodiprop_stream_headers() -> None:
    opts = parse_kodiprop(
        "#KODIPROP:inputstream.adaptive.stream_headers=User-Agent=Kodi%2F20&Referer=http://r/"
    )
    assert opts == StreamOptions(user_agent="Kodi/20", referer="http://r/")
    manifest = parse_kodiprop("#KODIPROP:inputstream.adaptive.manifest_headers=Cookie=a%3D1")
    assert manifest == StreamOptions(headers=(("Cookie", "a=1"),))
    assert parse_kodiprop("#KODIPROP:inputstream=inputstream.adaptive") is None
    assert parse_kodiprop("#KODIPROP:inputstream.adaptive.license_type=clearkey") is None
    assert parse_kodiprop("#EXTVLCOPT:http-user-agent=x") is None
