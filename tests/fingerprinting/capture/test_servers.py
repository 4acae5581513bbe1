"""The capture tests' own infrastructure: the loopback server, its hostile handlers and the
HLS media, checked with plain ``http.client``/``urllib`` and PyAV (not the client under
test)."""

from __future__ import annotations

import http.client
import io
import re
import socket
import ssl
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import av
import numpy as np
import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.fingerprinting.capture.hls_media import (
    LiveHls,
    encrypt_aes128,
    master_playlist,
    media_playlist,
    serve_vod,
)
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

# -- helpers ------------------------------------------------------------------------------


def get(url, timeout=10, context=None):
    with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
        return resp.read()


def connect(server, timeout=10):
    return http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)


def playlist_uris(text, base):
    """(init URI or None, key URI or None, segment URIs), absolute."""
    init = key = None
    segments = []
    for line in text.splitlines():
        if m := re.match(r'#EXT-X-MAP:URI="([^"]+)"', line):
            init = urljoin(base, m.group(1))
        elif m := re.match(r'#EXT-X-KEY:.*URI="([^"]+)"', line):
            key = urljoin(base, m.group(1))
        elif line and not line.startswith("#"):
            segments.append(urljoin(base, line))
    return init, key, segments


def decode(data):
    """(audio seconds, video frames, codec names) of media bytes, decoded by PyAV."""
    with av.open(io.BytesIO(data)) as c:
        names = sorted(s.codec_context.name for s in c.streams if s.type in ("audio", "video"))
        samples, sr, frames = 0, 1, 0
        for frame in c.decode(*[s for s in c.streams if s.type in ("audio", "video")]):
            if isinstance(frame, av.AudioFrame):
                samples, sr = samples + frame.samples, frame.sample_rate
            else:
                frames += 1
    return samples / sr, frames, names


def decode_pcm(data):
    with av.open(io.BytesIO(data)) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=22050)
        parts = [
            f.to_ndarray().reshape(-1) for fr in c.decode(audio=0) for f in resampler.resample(fr)
        ]
    return np.concatenate(parts)


def fetch_vod(url):
    text = get(url).decode()
    init, key, uris = playlist_uris(text, url)
    return text, (get(init) if init else None), (get(key) if key else None), [get(u) for u in uris]


def aes_decrypt(data, key, iv):
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def sequence_of(text):
    return int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))


# -- the media ----------------------------------------------------------------------------


@pytest.mark.parametrize(("fixture", "count"), [("hls_ts_2s", 15), ("hls_ts_6s", 5)])
def test_vod_ts_segments_concatenated_decode_to_30_s_of_sound_and_pictures(
    request, server, fixture, count
):
    media = request.getfixturevalue(fixture)
    url = serve_vod(server, media)
    text, init, key, segments = fetch_vod(url)
    assert init is None and key is None and media.kind == "mpegts"
    assert segments == media.segments and len(segments) == count
    assert text.startswith("#EXTM3U\n") and text.rstrip().endswith("#EXT-X-ENDLIST")
    seconds, frames, names = decode(b"".join(segments))
    assert names == ["aac", "h264"]
    assert 29.9 <= seconds <= 30.2 and frames == 750
    assert all(s[:1] == b"\x47" and len(s) % 188 == 0 for s in segments)


@pytest.mark.parametrize(("fixture", "seconds"), [("hls_ts_2s", 2.0), ("hls_ts_6s", 6.0)])
def test_segments_cut_where_asked_each_on_a_keyframe(request, fixture, seconds):
    media = request.getfixturevalue(fixture)
    assert media.durations == pytest.approx([seconds] * len(media.durations), abs=1e-3)
    for seg in media.segments:
        with av.open(io.BytesIO(seg)) as c:
            first = next(p for p in c.demux(c.streams.video[0]) if p.size)
            assert first.is_keyframe


def test_fmp4_init_and_segments_decode(server, hls_fmp4):
    url = serve_vod(server, hls_fmp4)
    text, init, _, segments = fetch_vod(url)
    assert "#EXT-X-VERSION:7" in text and '#EXT-X-MAP:URI="init.mp4"' in text
    assert init == hls_fmp4.init and init[4:8] == b"ftyp"
    assert segments == hls_fmp4.segments and len(segments) == 15
    assert all(s[4:8] in (b"styp", b"moof") and b"moof" in s[:1024] for s in segments)
    seconds, frames, names = decode(init + b"".join(segments))
    assert names == ["aac", "h264"] and 29.9 <= seconds <= 30.2 and frames == 750
    # the init section alone holds no media, a segment alone does not decode without it
    assert decode(init)[:2] == (0, 0)


def test_audio_only_and_video_only_segments(hls_audio_only, hls_video_only):
    seconds, frames, names = decode(b"".join(hls_audio_only.segments))
    assert names == ["aac"] and frames == 0 and 29.9 <= seconds <= 30.2
    assert 29.9 <= hls_audio_only.seconds <= 30.2
    seconds, frames, names = decode(b"".join(hls_video_only.segments))
    assert names == ["h264"] and seconds == 0 and frames == 750
    assert hls_video_only.pcm.size == 0


def test_pcm_is_the_sound_the_segments_decode_to(hls_ts_2s):
    assert hls_ts_2s.sr == 22050 and hls_ts_2s.pcm.dtype == np.float32
    decoded = decode_pcm(b"".join(hls_ts_2s.segments))
    n = min(decoded.size, hls_ts_2s.pcm.size)
    assert n > 29 * 22050
    assert np.corrcoef(decoded[:n], hls_ts_2s.pcm[:n])[0, 1] > 0.99
    assert np.abs(hls_ts_2s.pcm).max() > 0.1  # not silence


def test_ts_bytes_is_one_mpegts_file_of_the_programme(ts_bytes):
    assert ts_bytes[:1] == b"\x47" and ts_bytes[188:189] == b"\x47"
    seconds, frames, names = decode(ts_bytes)
    assert names == ["aac", "h264"] and 29.9 <= seconds <= 30.2 and frames == 750


def test_generation_stays_fast(
    hls_generation, hls_ts_2s, hls_ts_6s, hls_fmp4, hls_audio_only, hls_video_only, ts_bytes
):
    assert set(hls_generation) == {"source", "ts_2s", "ts_6s", "fmp4", "audio_only", "video_only"}
    total = sum(hls_generation.values())
    each = {k: round(v, 2) for k, v in hls_generation.items()}
    print(f"HLS fixture generation: {total:.2f} s", each)
    assert total < 20, hls_generation


# -- AES-128 ------------------------------------------------------------------------------


def test_aes_segments_decrypt_back_to_the_plain_bytes(server, hls_ts_2s):
    key, iv = bytes(range(16)), bytes(range(100, 116))
    url = serve_vod(server, hls_ts_2s, name="enc", key=key, iv=iv)
    text, _, got_key, segments = fetch_vod(url)
    assert f'#EXT-X-KEY:METHOD=AES-128,URI="/keys/enc.key",IV=0x{iv.hex().upper()}' in text
    assert got_key == key
    pairs = zip(segments, hls_ts_2s.segments, strict=True)
    assert all(s != p and len(s) % 16 == 0 for s, p in pairs)
    assert [aes_decrypt(s, key, iv) for s in segments] == hls_ts_2s.segments


def test_aes_without_iv_uses_the_media_sequence_number(server, hls_ts_2s):
    key = b"k" * 16
    url = serve_vod(server, hls_ts_2s, name="seq", key=key)
    text, _, _, segments = fetch_vod(url)
    assert "IV=" not in text
    plain = [aes_decrypt(s, key, i.to_bytes(16, "big")) for i, s in enumerate(segments)]
    assert plain == hls_ts_2s.segments


def test_encrypt_aes128_pads_even_a_whole_block():
    key, iv = bytes(16), bytes(16)
    assert len(encrypt_aes128(b"x" * 16, key, iv)) == 32
    assert aes_decrypt(encrypt_aes128(b"hello", key, iv), key, iv) == b"hello"


# -- playlists ----------------------------------------------------------------------------


def test_media_playlist_tags(hls_ts_2s):
    when = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    text = media_playlist(
        hls_ts_2s,
        lambda i: f"s/{i}.ts",
        first=3,
        count=3,
        media_sequence=40,
        endlist=False,
        key=("k.bin", b"\x01" * 16),
        map_uri="init.mp4",
        program_date_time=when,
        discontinuity_at={4},
    )
    assert text.splitlines() == [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-MEDIA-SEQUENCE:40",
        '#EXT-X-MAP:URI="init.mp4"',
        '#EXT-X-KEY:METHOD=AES-128,URI="k.bin",IV=0x' + "01" * 16,
        "#EXT-X-PROGRAM-DATE-TIME:2024-05-06T07:08:09.123Z",
        "#EXTINF:2.000,",
        "s/3.ts",
        "#EXT-X-DISCONTINUITY",
        "#EXTINF:2.000,",
        "s/4.ts",
        "#EXTINF:2.000,",
        "s/5.ts",
    ]


def test_media_playlist_defaults_list_everything(hls_ts_6s, hls_audio_only):
    text = media_playlist(hls_ts_6s, str)
    assert "#EXT-X-TARGETDURATION:6" in text and "#EXT-X-MEDIA-SEQUENCE:0" in text
    assert text.count("#EXTINF:6.000,") == 5 and text.endswith("#EXT-X-ENDLIST\n")
    # durations of 2.043 s round the target up
    assert "#EXT-X-TARGETDURATION:3" in media_playlist(hls_audio_only, str)


def test_master_playlist_variants_and_renditions():
    text = master_playlist(
        [
            {
                "uri": "v/lo.m3u8",
                "bandwidth": 400_000,
                "resolution": "320x180",
                "codecs": "avc1.42c00d,mp4a.40.2",
                "audio": "aud",
            },
            {"uri": "v/hi.m3u8", "bandwidth": 3_000_000},
        ],
        renditions=[
            {"type": "AUDIO", "group_id": "aud", "name": "en", "default": True, "uri": "a/en.m3u8"}
        ],
    )
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    assert lines[2] == (
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",DEFAULT=YES,AUTOSELECT=YES,'
        'URI="a/en.m3u8"'
    )
    assert lines[3:] == [
        "#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180,"
        'CODECS="avc1.42c00d,mp4a.40.2",AUDIO="aud"',
        "v/lo.m3u8",
        "#EXT-X-STREAM-INF:BANDWIDTH=3000000",
        "v/hi.m3u8",
    ]
    with pytest.raises(ValueError, match="bandwith"):
        master_playlist([{"uri": "x", "bandwith": 1}])


# -- live ---------------------------------------------------------------------------------


def test_live_window_advances_with_the_clock(server, hls_ts_2s):
    clock = FakeClock()
    live = LiveHls(server, hls_ts_2s, window=5, clock=clock)
    text = get(live.playlist_url).decode()
    assert sequence_of(text) == 0 and "#EXT-X-ENDLIST" not in text
    assert text.count("#EXTINF:") == 5 and "seg4.ts" in text and "seg5.ts" not in text
    assert "#EXT-X-PROGRAM-DATE-TIME:" in text
    clock.now += 1.99
    assert sequence_of(get(live.playlist_url).decode()) == 0
    clock.now += 0.02
    assert sequence_of(get(live.playlist_url).decode()) == 1
    clock.now += 8.0
    text = get(live.playlist_url).decode()
    assert sequence_of(text) == 5 and "seg9.ts" in text and "seg10.ts" not in text
    # published segments are served, the next one is not out yet
    assert get(server.url("/live/ch1/seg9.ts")) == hls_ts_2s.segments[9]
    with pytest.raises(urllib.error.HTTPError) as info:
        get(server.url("/live/ch1/seg10.ts"))
    assert info.value.code == 404


def test_live_loops_the_media_with_discontinuities(server, hls_ts_2s):
    clock = FakeClock()
    live = LiveHls(server, hls_ts_2s, "loop", window=4, clock=clock)
    clock.now += 30.0  # one whole loop (15 segments of 2 s) later
    text = get(live.playlist_url).decode()
    assert sequence_of(text) == 15
    _, _, uris = playlist_uris(text, live.playlist_url)
    assert [u.rsplit("/", 1)[1] for u in uris] == ["seg15.ts", "seg16.ts", "seg17.ts", "seg18.ts"]
    assert text.index("#EXT-X-DISCONTINUITY\n") < text.index("seg15.ts")
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:0" in text
    assert get(uris[1]) == hls_ts_2s.segments[1]
    clock.now += 1000 * 30.0  # far on: arithmetic, not a loop over every segment
    assert live.media_sequence() == 15 * 1001
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1000" in live.playlist()


def test_frozen_live_never_advances(server, hls_ts_2s):
    clock = FakeClock()
    live = LiveHls(server, hls_ts_2s, "stuck", window=3, clock=clock, frozen=True)
    first = get(live.playlist_url).decode()
    clock.now += 600.0
    assert get(live.playlist_url).decode() == first and sequence_of(first) == 0


def test_freeze_stalls_a_running_channel(server, hls_ts_2s):
    clock = FakeClock()
    live = LiveHls(server, hls_ts_2s, window=3, clock=clock)
    clock.now += 6.0
    live.freeze()
    clock.now += 60.0
    assert live.frozen and live.media_sequence() == 3


def test_live_fmp4_serves_its_init_section(server, hls_fmp4):
    live = LiveHls(server, hls_fmp4, "f", window=3)
    text = get(live.playlist_url).decode()
    init, _, uris = playlist_uris(text, live.playlist_url)
    assert get(init) == hls_fmp4.init and uris[0].endswith("/live/f/seg0.m4s")
    assert decode(get(init) + b"".join(get(u) for u in uris))[1] == 150  # 3 x 2 s x 25 fps


def test_live_real_clock_advances(server, hls_ts_2s):
    live = LiveHls(server, hls_ts_2s, "rt", window=2)
    assert live.media_sequence() == 0
    time.sleep(2.05)
    assert live.media_sequence() == 1


# -- the server ---------------------------------------------------------------------------


def test_routes_404_and_what_the_server_saw(server):
    server.route("/a.m3u8", static(b"exact", "text/plain", headers={"X-Test": "1"}))
    server.route_prefix("/p/", static(b"short prefix"))
    server.route_prefix("/p/deeper/", static(b"long prefix"))
    conn = connect(server)
    conn.request("GET", "/a.m3u8?token=abc&x=", headers={"User-Agent": "Kodi/20", "X-A": "b"})
    resp = conn.getresponse()
    assert (resp.status, resp.read(), resp.getheader("x-test")) == (200, b"exact", "1")
    sock = conn.sock
    for path, body in [("/p/x", b"short prefix"), ("/p/deeper/y", b"long prefix")]:
        conn.request("GET", path)
        resp = conn.getresponse()
        assert resp.read() == body
    assert conn.sock is sock  # one kept-alive connection for the three requests
    conn.request("GET", "/nothing-here")
    resp = conn.getresponse()
    assert resp.status == 404 and resp.read()
    conn.close()
    first = server.requests[0]
    assert first.method == "GET" and first.path == "/a.m3u8"
    assert first.query == {"token": "abc", "x": ""} and first.target == "/a.m3u8?token=abc&x="
    assert first.headers["user-agent"] == "Kodi/20" and first.headers["x-a"] == "b"
    assert server.paths() == ["/a.m3u8", "/p/x", "/p/deeper/y", "/nothing-here"]


def test_redirect_status_and_head(server):
    server.route("/r", redirect("/final", 301))
    server.route("/final", static(b"here", "text/plain"))
    server.route("/gone", status(410, b"gone"))
    assert get(server.url("/r")) == b"here"
    assert [r.path for r in server.requests] == ["/r", "/final"]
    with pytest.raises(urllib.error.HTTPError) as info:
        get(server.url("/gone"))
    assert info.value.code == 410 and info.value.read() == b"gone"
    conn = connect(server)
    conn.request("HEAD", "/final")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("content-length") == "4" and resp.read() == b""
    conn.close()


def test_chunked_and_close_delimited_bodies(server):
    def chunked(request, r):
        r.start(200, content_type="video/mp2t", chunked=True)
        for _ in range(3):
            r.write(b"x" * 1000)

    def unsized(request, r):
        r.start(200, content_type="video/mp2t")
        r.write(b"y" * 5000)

    server.route("/chunked", chunked)
    server.route("/unsized", unsized)
    conn = connect(server)
    conn.request("GET", "/chunked")
    resp = conn.getresponse()
    assert resp.getheader("transfer-encoding") == "chunked" and resp.read() == b"x" * 3000
    conn.request("GET", "/unsized")  # still the same connection
    resp = conn.getresponse()
    assert resp.getheader("content-length") is None and resp.read() == b"y" * 5000
    conn.close()


def test_a_handler_bug_is_a_500_and_is_kept(server, capfd):
    def broken(request, r):
        raise KeyError("oops")

    server.route("/bug", broken)
    with pytest.raises(urllib.error.HTTPError) as info:
        get(server.url("/bug"))
    assert info.value.code == 500 and isinstance(server.errors[0], KeyError)
    assert "KeyError" in capfd.readouterr().err  # a real bug is shown, unlike disconnects


def test_drip_sends_at_the_rate(server):
    server.route("/drip.ts", drip(total=40, bytes_per_second=100))
    conn = connect(server)
    conn.request("GET", "/drip.ts")
    resp = conn.getresponse()
    assert resp.getheader("content-length") == "40"
    started = time.monotonic()
    arrivals = []
    while len(arrivals) < 40:
        chunk = resp.read1(40)
        assert chunk, "the drip ended early"
        arrivals += [time.monotonic() - started] * len(chunk)
    conn.close()
    assert arrivals[0] >= 0.005  # the first byte too waits its turn
    assert 0.35 <= arrivals[-1] <= 1.0  # 40 bytes at 10 ms each
    assert arrivals[9] < arrivals[-1] / 2  # steady, not all at the end


def test_close_is_prompt_while_a_drip_is_sleeping(capfd):
    server = LoopbackServer()
    server.route("/slow.ts", drip(total=1000, bytes_per_second=0.2))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/slow.ts")
    resp = conn.getresponse()  # headers now, the first byte in 5 s
    time.sleep(0.05)
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 1.0
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        resp.read()
    conn.close()
    time.sleep(0.1)
    assert capfd.readouterr().err == ""


def test_reset_after_raises_connection_reset_in_the_client(server):
    body = bytes(range(256)) * 400
    server.route("/seg.ts", reset_after(body, 3000))
    conn = connect(server)
    conn.request("GET", "/seg.ts")
    resp = conn.getresponse()
    assert resp.getheader("content-length") == str(len(body))
    assert resp.read(3000) == body[:3000]
    with pytest.raises(ConnectionResetError):
        resp.read()
    conn.close()


def test_reset_after_a_large_part_still_delivers_it_first(server, ts_bytes):
    server.route("/big.ts", reset_after(ts_bytes, 500_000))
    conn = connect(server)
    conn.request("GET", "/big.ts")
    resp = conn.getresponse()
    time.sleep(0.3)  # the server is blocked on a full socket buffer meanwhile
    assert resp.read(500_000) == ts_bytes[:500_000]
    with pytest.raises(ConnectionResetError):
        resp.read()
    conn.close()


def test_truncated_closes_cleanly_short_of_the_length(server):
    body = b"z" * 10_000
    server.route("/cut.ts", truncated(body, 4000))
    conn = connect(server)
    conn.request("GET", "/cut.ts")
    resp = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead) as info:
        resp.read()
    assert len(info.value.partial) == 4000 and info.value.expected == 6000
    conn.close()


def test_endless_redirects_chain(server):
    endless_redirects(server)
    conn = connect(server)
    path = "/loop/0"
    for n in range(1, 26):
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 302
        path = resp.getheader("location")
        assert path == f"/loop/{n}"
    conn.close()
    assert server.paths() == [f"/loop/{n}" for n in range(25)]
    with pytest.raises(urllib.error.HTTPError, match="infinite loop"):
        get(server.url("/loop/0"))


def test_big_body_streams_60_mb_without_holding_it(server, capfd):
    size = 60 * 1024 * 1024
    server.route("/huge.m3u8", big_body(size))
    tracemalloc.start()
    try:
        conn = connect(server)
        conn.request("GET", "/huge.m3u8")
        resp = conn.getresponse()
        assert resp.getheader("content-length") == str(size)
        got = bytearray()
        while len(got) < 1024 * 1024:
            got += resp.read1(65536)
        conn.close()  # hang up 1 MB in
        time.sleep(0.2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got.startswith(b"#EXTM3U\n#EXTINF:2,\nseg.ts\n#EXTINF:2,\n")
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    server.close()
    assert capfd.readouterr().err == ""  # the hang-up left no traceback


def test_big_body_is_exactly_its_size(server):
    server.route("/b", big_body(1_000_003, line=b"abc\n"))
    body = get(server.url("/b"))
    assert len(body) == 1_000_003 and body.startswith(b"#EXTM3U\nabc\nabc\n")


def test_client_hangups_print_nothing(server, capfd):
    server.route("/slow.ts", drip(total=10_000, bytes_per_second=1000))
    server.route("/seg.ts", reset_after(b"x" * 100_000, 10))
    for path in ("/slow.ts", "/seg.ts"):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.recv(100)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # the client resets
    half = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    half.sendall(b"GET /slow.ts HTTP/1.1\r\n")  # and one never finishes its request
    time.sleep(0.3)
    server.close()
    half.close()
    time.sleep(0.1)
    assert capfd.readouterr().err == ""


# -- TLS and IPv6 -------------------------------------------------------------------------


def test_https_with_the_test_ca(https_server, tls_ca):
    https_server.route("/s.ts", static(b"secret segment", "video/mp2t"))
    url = https_server.url("/s.ts")
    assert url.startswith("https://127.0.0.1:")
    ctx = ssl.create_default_context()
    tls_ca.configure_trust(ctx)
    assert get(url, context=ctx) == b"secret segment"
    port = urlsplit(url).port
    assert get(f"https://localhost:{port}/s.ts", context=ctx) == b"secret segment"
    with pytest.raises(urllib.error.URLError) as info:
        get(url, context=ssl.create_default_context())  # system trust: our CA is unknown
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)
    assert get(url, context=ctx) == b"secret segment"  # a refused handshake harmed nothing


def _has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_server():
    with LoopbackServer(host="::1") as server:
        server.route("/v6", static(b"six"))
        assert server.url("/v6") == f"http://[::1]:{server.port}/v6"
        assert get(server.url("/v6")) == b"six"


def test_threads_serve_concurrently(server):
    server.route("/slow.ts", drip(total=20, bytes_per_second=40))
    server.route("/fast", static(b"ok"))
    slow = threading.Thread(target=get, args=(server.url("/slow.ts"),))
    slow.start()
    time.sleep(0.05)
    started = time.monotonic()
    assert get(server.url("/fast")) == b"ok"
    assert time.monotonic() - started < 0.2
    slow.join(5)
