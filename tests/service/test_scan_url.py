"""`vigie scan URL` and `vigie sample URL`: the capture layer behind the CLI, on loopback."""

import json

import pytest

from tests.fingerprinting.capture.hls_media import LiveHls, make_source, segment
from tests.fingerprinting.capture.servers import LoopbackServer, redirect, static


@pytest.fixture(scope="module")
def channel(vigie, tmp_path_factory):
    """One A/V channel indexed from a 40 s recording, and that recording cut into 2 s HLS
    segments, as a pirate's restreaming box remuxes a live channel."""
    root = tmp_path_factory.mktemp("scan-url")
    data = root / "data"
    recording = make_source(root / "tv1.ts", 40.0, seed=77)
    vigie(data, "channels", "add", "tv1", "--name", "TV One")
    vigie(data, "reindex", "tv1", str(recording))
    return data, recording, segment(recording, root / "hls", 2.0)


@pytest.fixture
def allow_loopback(monkeypatch):
    monkeypatch.setenv("VIGIE_ALLOW_NETWORKS", "127.0.0.0/8")


def test_a_live_hls_restream_is_named(vigie, channel, allow_loopback):
    data, _, media = channel
    with LoopbackServer() as server:
        live = LiveHls(server, media, window=8)
        out = json.loads(vigie(data, "scan", live.playlist_url, "--json").stdout)
    assert out["verdict"] == "match" and out["matches"][0]["channel_id"] == "tv1"
    best = out["matches"][0]
    assert best["audio"] and best["video"] and best["modalities_agree"] is True
    capture = out["capture"]
    assert capture["kind"] == "hls" and capture["stopped_by"] is None
    assert capture["media_started_utc"]  # the playlist's PROGRAM-DATE-TIME
    segments = [r for r in capture["evidence"]["ranges"] if r["role"] == "segment"]
    assert len(segments) >= 5 and all(len(r["sha256"]) == 64 for r in segments)


def test_xtream_credentials_never_reach_the_output(vigie, channel, allow_loopback):
    data, recording, _ = channel
    with LoopbackServer() as server:
        server.route("/live/bob/hunter2/77.ts", redirect("/t/77.ts?token=a1b2c3d4e5f6a7b8c9d0"))
        server.route("/t/77.ts", static(recording.read_bytes(), "video/mp2t"))
        url = server.url("/live/bob/hunter2/77.ts") + "|Cookie=sess%3DCOOKIESECRET"
        done = vigie(data, "scan", url, "--json")
    out = json.loads(done.stdout)
    assert out["verdict"] == "match"
    assert "hunter2" not in done.stdout and "a1b2c3d4e5f6a7b8c9d0" not in done.stdout
    assert "COOKIESECRET" not in done.stdout
    assert "/live/***/***/77.ts" in out["sample"]["source"]


def test_an_unreachable_stream_is_a_verdict_with_its_reason(vigie, channel, monkeypatch):
    data, _, _ = channel
    monkeypatch.setenv("VIGIE_EGRESS_NOTE", "monitoring VPN, exit Paris")
    with LoopbackServer() as server:  # loopback is not allow-listed here
        done = vigie(data, "scan", server.url("/live.m3u8"), "--json", check=False)
        assert server.requests == []
    assert done.returncode == 2
    out = json.loads(done.stdout)
    assert out["verdict"] == "unreachable" and out["reason"] == "refused_address"
    assert "127.0.0.1" in out["message"] and out["evidence"]["requested_url"]
    assert out["evidence"]["egress_note"] == "monitoring VPN, exit Paris"


def test_an_unsupported_scheme_is_unreachable_too(vigie, channel):
    data, _, _ = channel
    done = vigie(data, "scan", "rtmp://pirate.example/live/1", "--json", check=False)
    out = json.loads(done.stdout)
    assert done.returncode == 2 and out["reason"] == "unsupported_scheme"
    plain = vigie(data, "scan", "rtmp://pirate.example/live/1", check=False)
    assert plain.returncode == 2 and plain.stderr.startswith("error: unsupported_scheme")


def test_sample_writes_sound_frames_and_evidence(vigie, channel, allow_loopback, tmp_path):
    data, _, media = channel
    out_dir = tmp_path / "sample"
    with LoopbackServer() as server:
        live = LiveHls(server, media, window=8)
        done = vigie(data, "sample", live.playlist_url, "--out", str(out_dir), "--seconds", "6")
    assert "captured 6.0 s (hls)" in done.stdout
    assert (out_dir / "sample.wav").stat().st_size > 6 * 8000 * 2
    frames = sorted((out_dir / "frames").glob("*.png"))
    assert 11 <= len(frames) <= 13
    record = json.loads((out_dir / "evidence.json").read_text())
    assert record["kind"] == "hls" and record["evidence"]["playlists"]
