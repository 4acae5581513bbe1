"""Credentials out of URLs, messages and evidence, with the rest of the URL kept."""

from __future__ import annotations

import pytest

from fingerprinting.capture.redact import MASK, Redactor, redact_text, redact_url, url_secrets

TOKEN = "3f9a8c0e1b2d4f6a8c0e1b2d4f6a8c0e"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://host:8080/live/USER/PASS/1234.ts", "http://host:8080/live/***/***/1234.ts"),
        ("http://host:8080/live/USER/PASS/1234.m3u8", "http://host:8080/live/***/***/1234.m3u8"),
        ("http://host:8080/LIVE/USER/PASS/1234", "http://host:8080/LIVE/***/***/1234"),
        ("http://host/movie/USER/PASS/567.mkv", "http://host/movie/***/***/567.mkv"),
        ("http://host/series/USER/PASS/89.mp4", "http://host/series/***/***/89.mp4"),
        (
            "http://host/timeshift/USER/PASS/120/2024-05-01:20-00/1234.ts",
            "http://host/timeshift/***/***/120/2024-05-01:20-00/1234.ts",
        ),
        ("http://host:8080/USER/PASS/1234", "http://host:8080/***/***/1234"),
        ("http://host:8080/USER/PASS/1234.ts", "http://host:8080/***/***/1234.ts"),
        ("http://proxy/panel/live/USER/PASS/1234.ts", "http://proxy/panel/live/***/***/1234.ts"),
    ],
)
def test_xtream_paths_mask_user_and_password_but_keep_the_stream(url, expected):
    assert redact_url(url) == expected
    assert url_secrets(url) == ["PASS", "USER"]


def test_xtream_query_forms():
    assert (
        redact_url("http://host:8080/get.php?username=alice&password=s3cret&type=m3u_plus")
        == "http://host:8080/get.php?username=***&password=***&type=m3u_plus"
    )
    assert (
        redact_url("http://host/player_api.php?username=alice&password=s3cret&action=get_live")
        == "http://host/player_api.php?username=***&password=***&action=get_live"
    )
    assert url_secrets("http://h/get.php?username=alice&password=s3cret") == ["s3cret", "alice"]


def test_userinfo_is_masked():
    assert redact_url("http://u:p@host/") == "http://***:***@host/"
    assert redact_url("http://alice:s3cret@host:81/a.ts") == "http://***:***@host:81/a.ts"
    assert redact_url("http://tok3n@host/a") == "http://***@host/a"
    assert redact_url("http://alice:@host/") == "http://***:@host/"
    # The last "@" ends the userinfo, so an unencoded "@" in the password is masked too.
    assert redact_url("http://alice:p@ss@host/") == "http://***:***@host/"
    assert url_secrets("http://alice:p@ss@host/") == ["alice", "p@ss"]


def test_query_tokens_masked_names_and_order_kept():
    url = (
        "https://cdn.test/ch/index.m3u8?b=1&token=abc123&Auth=xyz789&a=2&wmsAuthSign=c2Vy"
        "&hdnts=exp%3D1~acl%3D%2F*~hmac%3Dff&e=1700000000&api_key=k3y&x_access_token=t0k"
    )
    assert redact_url(url) == (
        "https://cdn.test/ch/index.m3u8?b=1&token=***&Auth=***&a=2&wmsAuthSign=***"
        "&hdnts=***&e=1700000000&api_key=***&x_access_token=***"
    )


@pytest.mark.parametrize(
    "name",
    ["token", "KEY", "apikey", "sig", "signature", "hash", "session", "sid", "st", "hdnea",
     "pass", "pwd", "user", "uid", "mac", "md5", "client_secret", "new_password"],
)  # fmt: skip
def test_each_secret_parameter_name(name):
    assert redact_url(f"http://h/a.ts?{name}=v4lue&ch=7") == f"http://h/a.ts?{name}=***&ch=7"


def test_harmless_parameters_and_empty_values_are_kept():
    url = "http://h/a.m3u8?type=m3u_plus&output=ts&e=1700000000&token=&id=42"
    assert redact_url(url) == url


def test_percent_encoded_secrets_are_found_in_both_forms():
    url = "http://h/get.php?username=al%40ice&password=p%26ss+w%3Drd"
    assert redact_url(url) == "http://h/get.php?username=***&password=***"
    secrets = url_secrets(url)
    assert {"al%40ice", "al@ice", "p%26ss+w%3Drd", "p&ss w=rd"} <= set(secrets)
    assert secrets == sorted(secrets, key=len, reverse=True)


def test_percent_encoded_xtream_and_userinfo():
    url = "http://b%40b:p%3Ass@h/live/al%20ice/pa%2Fss/7.ts"
    assert redact_url(url) == "http://***:***@h/live/***/***/7.ts"
    assert {"b@b", "p:ss", "al ice", "pa/ss", "al%20ice"} <= set(url_secrets(url))


def test_percent_encoded_parameter_name_is_recognised():
    assert redact_url("http://h/x?pass%77ord=s3cret") == "http://h/x?pass%77ord=***"


def test_opaque_path_and_query_tokens():
    assert (
        redact_url(f"https://cdn.test/hls/{TOKEN}/index.m3u8")
        == "https://cdn.test/hls/***/index.m3u8"
    )
    assert url_secrets(f"https://cdn.test/hls/{TOKEN}/index.m3u8") == [TOKEN]
    assert redact_url(f"http://h/p?ch=2&x={TOKEN}") == "http://h/p?ch=2&x=***"
    assert redact_url(f"http://h/p?{TOKEN}") == "http://h/p?***"


@pytest.mark.parametrize(
    "segment",
    [
        "abcdefghijklmnopqrstuvwxyz",  # long but no digit
        "123456789012345678901234567",  # long but no letter
        "a1b2c3d4e5f6a7b8c9d0e1f",  # 23 chars: too short
        "channel-one-hd-2024.m3u8",  # a dot: a file name, not a token
    ],
)
def test_segments_that_are_not_opaque_tokens_are_kept(segment):
    assert redact_url(f"http://h/hls/{segment}/index.m3u8") == f"http://h/hls/{segment}/index.m3u8"


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example.com/live/channel1/index.m3u8",
        "http://host/live/stream.m3u8",
        "http://host:8080/live/channel1/index.m3u8?bitrate=3000",
        "http://host/movies/2024/trailer.mp4",
        "https://example.com/",
        "http://[2001:db8::1]:8080/live/x.ts",
    ],
)
def test_plain_urls_are_untouched(url):
    assert redact_url(url) == url
    assert url_secrets(url) == []


def test_fragment_tokens_are_masked():
    url = "http://h/player#access_token=abc123&ch=4"
    assert redact_url(url) == "http://h/player#access_token=***&ch=4"
    assert redact_url("http://h/page#section-2") == "http://h/page#section-2"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("alice:s3cret@host/live/a/b/1.ts", "***:***@host/live/***/***/1.ts"),
        ("/live/alice/s3cret/12.ts", "/live/***/***/12.ts"),
        ("host:8080/live/alice/s3cret/12.ts", "host:8080/live/***/***/12.ts"),
        ("http://[::1/live/alice/s3cret/1.ts", "http://[::1/live/***/***/1.ts"),
    ],
)
def test_urls_without_scheme_or_malformed_still_get_masked(url, expected):
    assert redact_url(url) == expected


@pytest.mark.parametrize("garbage", ["", "not a url", "\x00\xff::[", "?", "#", "http://", "://@"])
def test_garbage_never_raises(garbage):
    assert isinstance(redact_url(garbage), str)
    assert isinstance(url_secrets(garbage), list)


def test_short_secrets_are_not_returned_for_scrubbing():
    assert redact_url("http://h/live/ab/cd/1.ts") == "http://h/live/***/***/1.ts"
    assert url_secrets("http://h/live/ab/cd/1.ts") == []


def test_redact_text_longest_first():
    assert redact_text("key=abcdef, part abc", ["abc", "abcdef"]) == "key=***, part ***"
    assert redact_text("nothing here", []) == "nothing here"
    assert redact_text("a.b a+b", ["a.b", ""]) == f"{MASK} a+b"  # literal, not a regex


def test_redactor_scrubs_a_message():
    r = Redactor()
    r.add_url("http://h/live/alice/s3cret/12.ts")
    msg = "GET http://h/live/alice/s3cret/12.ts failed: 403"
    assert r.text(msg) == "GET http://h/live/***/***/12.ts failed: 403"
    assert r.text("login alice with s3cret refused") == "login *** with *** refused"


def test_redactor_redacts_urls_it_was_never_told_about():
    r = Redactor()
    assert (
        r.text("redirect to <http://x/live/bob/hunter2/5.ts>, then http://x/live/bob/hunter2/6.ts.")
        == "redirect to <http://x/live/***/***/5.ts>, then http://x/live/***/***/6.ts."
    )


def test_redactor_value_deep_copies_and_scrubs():
    r = Redactor()
    r.add_url("http://alice:s3cret@h/get.php?username=alice&password=s3cret")
    r.add_url(f"http://h/hls/{TOKEN}/index.m3u8")
    evidence = {
        "url": "http://h/live/alice/s3cret/12.ts",
        "hops": [
            {"url": f"http://h/hls/{TOKEN}/index.m3u8", "status": 302, "ok": False},
            ("Location", "http://other/seg.ts?token=zz9zz"),
        ],
        "note": "user alice denied",
        "tags": {"s3cret"},
        "http://h/live/alice/s3cret/1.ts": 1.5,
        "count": 3,
        "none": None,
    }
    got = r.value(evidence)
    assert got == {
        "url": "http://h/live/***/***/12.ts",
        "hops": [
            {"url": "http://h/hls/***/index.m3u8", "status": 302, "ok": False},
            ("Location", "http://other/seg.ts?token=***"),
        ],
        "note": "user *** denied",
        "tags": {"***"},
        "http://h/live/***/***/1.ts": 1.5,
        "count": 3,
        "none": None,
    }
    assert evidence["note"] == "user alice denied"  # the original is untouched
    assert got["hops"] is not evidence["hops"]


def test_redactor_add_url_never_raises():
    r = Redactor()
    r.add_url("\x00::[garbage")
    assert r.text("fine") == "fine"
