"""Hostile and broken servers: every capture ends inside its deadline with the right reason."""

import time

import pytest

from fingerprinting.capture import (
    CaptureError,
    CapturePlan,
    GuardedClient,
    HostLimiter,
    NetworkPolicy,
    sample,
    system_resolver,
)
from tests.fingerprinting.capture.hls_media import LiveHls, media_playlist, serve_vod
from tests.fingerprinting.capture.servers import (
    LoopbackServer,
    big_body,
    drip,
    endless_redirects,
    redirect,
    reset_after,
    static,
    status,
    truncated,
)

DEADLINE = 8.0
PLAN = CapturePlan(seconds=10, sample_rate=8000, fps=2, deadline_seconds=DEADLINE)
FAST = HostLimiter(rate=1000, burst=1000, concurrent=16)


@pytest.fixture
def client():
    with GuardedClient(NetworkPolicy.from_setting("127.0.0.0/8"), limiter=FAST) as c:
        yield c


def capture_fails(url, client, plan=PLAN):
    """The CaptureError of sampling ``url``, checked to come within the deadline."""
    started = time.monotonic()
    with pytest.raises(CaptureError) as info:
        sample(url, plan, client=client)
    elapsed = time.monotonic() - started
    assert elapsed < plan.deadline_seconds + 0.5, f"took {elapsed:.1f} s"
    assert info.value.evidence is not None
    return info.value, elapsed


def test_drip_feed_ends_at_the_deadline(server, client):
    server.route("/drip.ts", drip(total=10_000_000, bytes_per_second=2))
    plan = CapturePlan(seconds=10, deadline_seconds=3.0)
    exc, elapsed = capture_fails(server.url("/drip.ts"), client, plan)
    assert exc.reason == "timeout" and elapsed >= 2.9
    assert "3 s capture deadline" in exc.message


def test_silent_server_ends_at_the_deadline(server, client):
    # Headers, then nothing: only the deadline's watchdog ends the read.
    server.route("/silent.ts", drip(total=10_000_000, bytes_per_second=0.01))
    lazy = GuardedClient(NetworkPolicy.from_setting("127.0.0.0/8"), limiter=FAST, read_timeout=60)
    plan = CapturePlan(seconds=10, deadline_seconds=2.0)
    with lazy:
        exc, elapsed = capture_fails(server.url("/silent.ts"), lazy, plan)
    assert exc.reason == "timeout" and elapsed < 2.5


def test_endless_redirects_are_a_loop(server, client):
    endless_redirects(server)
    exc, _ = capture_fails(server.url("/loop/0"), client)
    assert exc.reason == "redirect_loop" and "more than 5 redirects" in exc.message


def test_a_redirect_back_to_a_visited_url_is_a_loop(server, client):
    server.route("/a", redirect("/b"))
    server.route("/b", redirect("/a"))
    exc, _ = capture_fails(server.url("/a"), client)
    assert exc.reason == "redirect_loop"


@pytest.fixture
def server2():
    """A server on 127.0.0.2, so that only 127.0.0.2 needs to be allow-listed."""
    with LoopbackServer(host="127.0.0.2") as s:
        yield s


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/x.ts",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/x.ts",
        "http://2130706433:{port}/x.ts",  # 127.0.0.1 written as one decimal number
        "http://0x7f.1:{port}/x.ts",
        "http://localhost:{port}/x.ts",
        "http://[::ffff:127.0.0.1]:{port}/x.ts",
    ],
)
def test_redirects_to_internal_addresses_are_refused(server2, target, ts_bytes):
    port = server2.url("/").split(":")[2].split("/")[0]
    server2.route("/go", redirect(target.format(port=port)))
    with GuardedClient(NetworkPolicy.from_setting("127.0.0.2/32"), limiter=FAST) as c:
        exc, _ = capture_fails(server2.url("/go"), c)
    assert exc.reason == "refused_address", exc.message
    assert "VIGIE_ALLOW_NETWORKS" in exc.message
    assert [r.path for r in server2.requests] == ["/go"]  # nothing else was contacted


def test_without_the_allow_list_loopback_itself_is_refused(server):
    with GuardedClient(NetworkPolicy(), limiter=FAST) as c:
        exc, _ = capture_fails(server.url("/x.ts"), c)
    assert exc.reason == "refused_address" and server.requests == []


def test_a_name_resolving_to_a_private_address_is_refused(server):
    def resolver(host, port):
        return ["10.1.2.3"] if host == "cdn.pirate.test" else system_resolver(host, port)

    port = server.url("/").split(":")[2].split("/")[0]
    server.route("/go", redirect(f"http://cdn.pirate.test:{port}/x.ts"))
    with GuardedClient(
        NetworkPolicy.from_setting("127.0.0.0/8"), limiter=FAST, resolver=resolver
    ) as c:
        exc, _ = capture_fails(server.url("/go"), c)
    assert exc.reason == "refused_address" and "10.1.2.3" in exc.message


def test_an_unknown_name_is_a_dns_failure(client):
    exc, _ = capture_fails("http://no-such-host.invalid/live.m3u8", client)
    assert exc.reason == "dns"


@pytest.mark.parametrize(
    "url", ["rtmp://x.example/live/1", "udp://239.0.0.1:1234", "file:///etc/passwd"]
)
def test_other_schemes_are_unsupported(client, url):
    exc, _ = capture_fails(url, client)
    assert exc.reason == "unsupported_scheme"


def test_a_60_mb_playlist_is_too_large_and_is_not_read_whole(server, client):
    server.route("/huge.m3u8", big_body(60 * 1024 * 1024))
    exc, elapsed = capture_fails(server.url("/huge.m3u8"), client)
    assert exc.reason == "too_large" and elapsed < 3.0


def test_a_playlist_that_never_advances_is_stalled(server, client, hls_ts_2s):
    live = LiveHls(server, hls_ts_2s, window=2, frozen=True)
    plan = CapturePlan(seconds=10, min_seconds=8, deadline_seconds=DEADLINE + 4)
    exc, elapsed = capture_fails(live.playlist_url, client, plan)
    assert exc.reason == "stalled" and elapsed >= 6.0
    assert "has not advanced" in exc.message


def test_a_stalled_live_stream_still_gives_what_it_had(server, client, hls_ts_2s):
    live = LiveHls(server, hls_ts_2s, window=3, frozen=True)
    plan = CapturePlan(seconds=10, min_seconds=2, deadline_seconds=DEADLINE + 4)
    got = sample(live.playlist_url, plan, client=client)
    assert got.stopped_by == "stalled" and 5.5 <= got.audio_seconds <= 6.5
    assert any(e["kind"] == "stopped_early" for e in got.evidence.events)


def test_a_master_that_lists_itself_is_a_loop(server, client):
    body = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000,RESOLUTION=320x180\n/self.m3u8\n"
    server.route("/self.m3u8", static(body, "application/vnd.apple.mpegurl"))
    exc, elapsed = capture_fails(server.url("/self.m3u8"), client)
    assert exc.reason == "redirect_loop" and elapsed < 2


def test_a_media_playlist_that_lists_itself_is_a_loop(server, client):
    body = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n/pl.m3u8\n#EXTINF:2,\n/pl.m3u8\n"
    server.route("/pl.m3u8", static(body, "application/vnd.apple.mpegurl"))
    exc, _ = capture_fails(server.url("/pl.m3u8"), client)
    assert exc.reason == "redirect_loop"


def _playlist_of(server, media, handler, count=6):
    text = media_playlist(media, lambda i: f"/bad/seg{i}.ts", count=count)
    server.route("/bad/index.m3u8", static(text.encode(), "application/vnd.apple.mpegurl"))
    server.route_prefix("/bad/seg", handler)
    return server.url("/bad/index.m3u8")


def test_html_served_as_a_segment_is_not_media(server, client, hls_ts_2s):
    html = static(b"<!DOCTYPE html><html><body>Subscribe now</body></html>", "video/mp2t")
    exc, _ = capture_fails(_playlist_of(server, hls_ts_2s, html), client)
    assert exc.reason == "not_media" and "<!DOCTYPE" in exc.message


def test_html_instead_of_a_stream_is_not_media(server, client):
    server.route("/live/1.ts", static(b"<html>expired</html>", "text/html"))
    exc, _ = capture_fails(server.url("/live/1.ts"), client)
    assert exc.reason == "not_media"


def test_403_on_segments_is_an_http_status(server, client, hls_ts_2s):
    exc, _ = capture_fails(_playlist_of(server, hls_ts_2s, status(403)), client)
    assert exc.reason == "http_status" and "403" in exc.message
    assert any(e["kind"] == "segment_skipped" for e in exc.evidence.events)


def test_a_connection_reset_mid_segment_is_unreachable(server, client, hls_ts_2s):
    def handler(request, responder):
        reset_after(hls_ts_2s.segments[0], 3000)(request, responder)

    exc, _ = capture_fails(_playlist_of(server, hls_ts_2s, handler), client)
    assert exc.reason == "unreachable"


def test_a_body_shorter_than_announced_is_unreachable(server, client, ts_bytes):
    server.route("/cut.ts", truncated(ts_bytes, 40_000))
    exc, _ = capture_fails(server.url("/cut.ts"), client)
    assert exc.reason == "unreachable"


def test_a_truncated_ts_with_too_little_media_is_not_media(server, client, ts_bytes):
    server.route("/short.ts", static(ts_bytes[:30_000] + b"\x47\x00", "video/mp2t"))
    exc, _ = capture_fails(server.url("/short.ts"), client)
    assert exc.reason == "not_media" and "ended after" in exc.message


def test_a_wrong_aes_key_fails_decryption(server, client, hls_ts_2s):
    url = serve_vod(server, hls_ts_2s, name="enc", key=bytes(16), iv=bytes(16))
    server.route("/keys/enc.key", static(b"\x01" * 16))  # the server hands a wrong key
    exc, _ = capture_fails(url, client)
    assert exc.reason == "decrypt_failed"


def test_the_sample_byte_cap_holds(server, client, ts_bytes):
    server.route("/s.ts", static(ts_bytes, "video/mp2t"))
    plan = CapturePlan(seconds=10, min_seconds=8, max_bytes=100_000, deadline_seconds=DEADLINE)
    exc, _ = capture_fails(server.url("/s.ts"), client, plan)
    assert exc.reason == "too_large"


@pytest.mark.parametrize("url", ["http://[::1", "http://\x00/", "http://"])
def test_malformed_urls_are_capture_errors(client, url):
    exc, _ = capture_fails(url, client)
    assert exc.reason in ("unreachable", "unsupported_scheme")


@pytest.mark.parametrize(
    "lines",
    [
        ["#EXTINF:2,", "http://[::1/seg.ts"],  # a segment URI that is no URL
        ['#EXT-X-KEY:METHOD=AES-128,URI="k",IV=0x' + "ab" * 17, "#EXTINF:2,", "s.ts"],
        ["#EXTINF:-2,", "s.ts"],
        ["#EXT-X-BYTERANGE:-100@5", "#EXTINF:2,", "s.ts"],
    ],
    ids=["bad-uri", "long-iv", "negative-duration", "negative-range"],
)
def test_malformed_media_playlists_are_not_media(server, client, lines):
    body = "\n".join(["#EXTM3U", "#EXT-X-TARGETDURATION:2", *lines, "#EXT-X-ENDLIST", ""])
    server.route("/p.m3u8", static(body.encode(), "application/vnd.apple.mpegurl"))
    exc, _ = capture_fails(server.url("/p.m3u8"), client)
    assert exc.reason == "not_media", exc.message
