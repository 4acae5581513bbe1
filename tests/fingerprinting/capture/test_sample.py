"""`sample()` on well-behaved loopback streams: HLS (VOD, live, master, fMP4, AES-128),
MPEG-TS over HTTP, token redirects, alternate audio, and the evidence each leaves."""

import hashlib
import ssl
import time

import numpy as np
import pytest

from fingerprinting.capture import (
    CaptureError,
    CapturePlan,
    GuardedClient,
    HostLimiter,
    NetworkPolicy,
    sample,
)
from fingerprinting.decode import decode_audio
from tests.fingerprinting.capture.hls_media import (
    LiveHls,
    master_playlist,
    serve_vod,
)
from tests.fingerprinting.capture.servers import redirect, static

PLAN = CapturePlan(seconds=10, sample_rate=8000, fps=2, deadline_seconds=30)


@pytest.fixture
def client():
    policy = NetworkPolicy.from_setting("127.0.0.0/8,::1/128")
    with GuardedClient(policy, limiter=HostLimiter(rate=1000, burst=1000, concurrent=16)) as c:
        yield c


def _segment_hashes(media):
    return {hashlib.sha256(s).hexdigest() for s in media.segments}


def test_vod_hls_gives_the_programme_and_hashes_every_segment(server, client, hls_ts_2s):
    url = serve_vod(server, hls_ts_2s)
    got = sample(url, PLAN, client=client)
    assert got.kind == "hls" and got.stopped_by is None
    assert 9.5 <= got.audio_seconds <= 10.05
    assert 18 <= len(got.frames) <= 21 and got.frames.gray.shape[2] == 192
    assert np.all(np.diff(got.frames.times) > 0)
    # The sound is the programme's: the first segments decoded directly give the same PCM.
    direct = decode_audio(b"".join(hls_ts_2s.segments[:6]), 8000, max_seconds=10)
    n = min(direct.size, got.pcm.size)
    assert np.corrcoef(direct[:n], got.pcm[:n])[0, 1] > 0.99
    seg = [r for r in got.evidence.ranges if r.role == "segment"]
    assert 5 <= len(seg) <= 7 and [r.media_sequence for r in seg] == list(range(len(seg)))
    assert {r.sha256 for r in seg} <= _segment_hashes(hls_ts_2s)
    assert (
        got.evidence.playlists[0].sha256
        == hashlib.sha256(got.evidence.playlists[0].text.encode()).hexdigest()
    )
    hop = got.evidence.hops[0]
    assert hop.status == 200 and hop.resolved == ["127.0.0.1"] and hop.local_address


def test_live_hls_starts_near_the_edge_and_follows_the_playlist(server, client, hls_ts_2s):
    live = LiveHls(server, hls_ts_2s, window=8)
    time.sleep(0.1)
    got = sample(live.playlist_url, PLAN, client=client)
    assert got.kind == "hls" and 9.5 <= got.audio_seconds <= 10.05
    seqs = [r.media_sequence for r in got.evidence.ranges if r.role == "segment"]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_live_hls_waits_for_new_segments_when_the_window_is_short(server, client, hls_ts_2s):
    live = LiveHls(server, hls_ts_2s, window=3)  # 6 s now: 4 s more must be waited for
    started = time.monotonic()
    got = sample(live.playlist_url, PLAN, client=client)
    assert got.stopped_by is None and got.audio_seconds >= 9.5
    assert time.monotonic() - started >= 2.0
    assert len(got.evidence.playlists) >= 2  # reloaded, each snapshot kept


def test_master_with_three_variants_fetches_only_the_cheapest_with_video(server, client, hls_ts_2s):
    for name in ("hi", "mid", "lo"):
        serve_vod(server, hls_ts_2s, name=name)
    master = master_playlist(
        [
            {"uri": "/vod/hi/index.m3u8", "bandwidth": 3_000_000, "resolution": "1280x720"},
            {"uri": "/vod/lo/index.m3u8", "bandwidth": 400_000, "resolution": "320x180"},
            {"uri": "/vod/mid/index.m3u8", "bandwidth": 1_200_000, "resolution": "640x360"},
        ]
    )
    server.route("/master.m3u8", static(master.encode(), "application/vnd.apple.mpegurl"))
    got = sample(server.url("/master.m3u8"), PLAN, client=client)
    assert got.audio_seconds >= 9.5
    fetched = {r.path.split("/")[2] for r in server.requests if r.path.startswith("/vod/")}
    assert fetched == {"lo"}


def test_fmp4_segments_decode_after_their_init_section(server, client, hls_fmp4):
    url = serve_vod(server, hls_fmp4)
    got = sample(url, PLAN, client=client)
    assert got.audio_seconds >= 9.5 and len(got.frames) >= 18
    roles = [r.role for r in got.evidence.ranges]
    assert roles[0] == "init" and roles.count("init") == 1
    assert got.evidence.ranges[0].sha256 == hashlib.sha256(hls_fmp4.init).hexdigest()


def test_aes128_segments_are_decrypted_and_hashed_in_clear(server, client, hls_ts_2s):
    key, iv = bytes(range(16)), bytes(range(16, 32))
    url = serve_vod(server, hls_ts_2s, name="enc", key=key, iv=iv)
    got = sample(url, PLAN, client=client)
    assert got.audio_seconds >= 9.5
    seg = [r for r in got.evidence.ranges if r.role == "segment"]
    assert all(r.decrypted for r in seg)
    assert {r.sha256 for r in seg} <= _segment_hashes(hls_ts_2s)
    assert sum(1 for r in server.requests if r.path.startswith("/keys/")) == 1  # key cached


def test_mpegts_over_http_is_cut_at_the_sample_length(server, client, ts_bytes):
    server.route("/stream.ts", static(ts_bytes, "video/mp2t"))
    got = sample(server.url("/stream.ts"), PLAN, client=client)
    assert got.kind == "stream" and 9.5 <= got.audio_seconds <= 10.05
    (rng,) = got.evidence.ranges
    assert rng.role == "stream" and 0 < rng.length <= len(ts_bytes)
    assert rng.sha256 == hashlib.sha256(ts_bytes[: rng.length]).hexdigest()


def test_xtream_token_redirect_is_followed_and_credentials_are_masked(server, client, ts_bytes):
    server.route(
        "/live/alice/s3cr3tpw/1234.ts", redirect("/tok/1234.ts?token=9f8e7d6c5b4a3210ffee")
    )
    server.route("/tok/1234.ts", static(ts_bytes, "video/mp2t"))
    got = sample(server.url("/live/alice/s3cr3tpw/1234.ts"), PLAN, client=client)
    assert got.audio_seconds >= 9.5
    first, second = got.evidence.hops
    assert first.status == 302 and first.redirect_to.endswith("token=9f8e7d6c5b4a3210ffee")
    assert second.status == 200
    assert got.evidence.final_url.endswith("/tok/1234.ts?token=9f8e7d6c5b4a3210ffee")
    public = repr(got.evidence.public())
    assert "s3cr3tpw" not in public and "9f8e7d6c5b4a3210ffee" not in public
    assert "alice" not in public and "1234.ts" in public
    assert "s3cr3tpw" in repr(got.evidence.sealed())


def test_kodi_suffix_sets_user_agent_and_referer(server, client, ts_bytes):
    server.route("/s.ts", static(ts_bytes, "video/mp2t"))
    got = sample(
        server.url("/s.ts") + "|User-Agent=PirateBox%2F1.0&Referer=http://panel.example/",
        PLAN,
        client=client,
    )
    (req,) = server.requests
    assert req.headers["user-agent"] == "PirateBox/1.0"
    assert req.headers["referer"] == "http://panel.example/"
    assert got.evidence.requested_url == server.url("/s.ts")  # the suffix is not the URL


def test_secret_headers_are_masked_in_the_public_record(server, client, ts_bytes):
    server.route("/s.ts", static(ts_bytes, "video/mp2t", headers={"Set-Cookie": "sid=ZZsessZZ"}))
    got = sample(server.url("/s.ts") + "|Cookie=auth%3DC00KIEVALUE", PLAN, client=client)
    assert server.requests[0].headers["cookie"] == "auth=C00KIEVALUE"
    public, sealed = repr(got.evidence.public()), repr(got.evidence.sealed())
    assert "C00KIEVALUE" not in public and "ZZsessZZ" not in public
    assert "C00KIEVALUE" in sealed and "ZZsessZZ" in sealed


def test_alternate_audio_rendition_is_captured_beside_video_only_segments(
    server, client, hls_audio_only, hls_video_only
):
    serve_vod(server, hls_video_only, name="v")
    serve_vod(server, hls_audio_only, name="a")
    master = master_playlist(
        [
            {
                "uri": "/vod/v/index.m3u8",
                "bandwidth": 500_000,
                "resolution": "320x180",
                "codecs": "avc1.4d401e",
                "audio": "aud",
            }
        ],
        renditions=[
            {
                "type": "AUDIO",
                "group_id": "aud",
                "name": "en",
                "default": True,
                "uri": "/vod/a/index.m3u8",
            }
        ],
    )
    server.route("/m.m3u8", static(master.encode(), "application/vnd.apple.mpegurl"))
    got = sample(server.url("/m.m3u8"), PLAN, client=client)
    assert got.audio_seconds >= 9.5 and len(got.frames) >= 18


def test_https_records_the_certificate_and_verifies_the_name(https_server, tls_ca, ts_bytes):
    https_server.route("/s.ts", static(ts_bytes, "video/mp2t"))
    ctx = ssl.create_default_context()
    tls_ca.configure_trust(ctx)
    policy = NetworkPolicy.from_setting("127.0.0.0/8")
    with GuardedClient(policy, verify=ctx) as c:
        got = sample(https_server.url("/s.ts"), PLAN, client=c)
    hop = got.evidence.hops[0]
    assert hop.tls_certificate_sha256 and len(hop.tls_certificate_sha256) == 64
    assert hop.tls_version.startswith("TLS")
    # The system trust store does not know our CA.
    with GuardedClient(policy) as untrusting, pytest.raises(CaptureError) as info:
        sample(https_server.url("/s.ts"), PLAN, client=untrusting)
    assert info.value.reason == "unreachable"
    assert "certificate" in info.value.message.lower()


def test_sample_of_a_local_file_hashes_it_whole(tmp_path, ts_bytes):
    path = tmp_path / "rec.ts"
    path.write_bytes(ts_bytes)
    got = sample(str(path), CapturePlan(seconds=5, allow_local_files=True))
    assert got.kind == "file" and got.audio_seconds >= 4.9
    assert got.evidence.ranges[0].sha256 == hashlib.sha256(ts_bytes).hexdigest()


def test_progressive_mp4_with_its_index_at_the_end_is_read_whole(server, client, tmp_path):
    from service.media import synth_pictures, synth_programme, write_video

    path = write_video(
        tmp_path / "film.mp4", synth_pictures(12, 10, 3), 10, synth_programme(12, 3), 22050
    )
    data = path.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat")  # PyAV writes the index last
    server.route("/film.mp4", static(data, "video/mp4"))
    got = sample(server.url("/film.mp4"), PLAN, client=client)
    assert got.kind == "progressive" and got.audio_seconds >= 9.5 and len(got.frames) >= 18
    assert got.evidence.ranges[0].sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("suffix", [".mkv", ".ts"])
def test_other_containers_stream_as_they_arrive(server, client, tmp_path, suffix):
    from service.media import synth_pictures, synth_programme, write_video

    path = write_video(
        tmp_path / f"s{suffix}", synth_pictures(12, 10, 4), 10, synth_programme(12, 4), 22050
    )
    server.route("/s", static(path.read_bytes(), "application/octet-stream"))
    got = sample(server.url("/s"), PLAN, client=client)
    assert got.kind == "stream" and got.audio_seconds >= 9.5 and len(got.frames) >= 18


def test_the_bytes_decide_not_the_content_type(server, client, ts_bytes):
    server.route("/live.m3u8", static(ts_bytes, "application/vnd.apple.mpegurl"))
    got = sample(server.url("/live.m3u8"), PLAN, client=client)
    assert got.kind == "stream" and got.audio_seconds >= 9.5
