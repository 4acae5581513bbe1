"""`CapturePlan.keep_bytes`: a capture made for an evidence bundle retains what it received
(playlists whole, media up to the cap, the range crossing it truncated) and says so in the
record; the default keeps hashes only."""

import hashlib
from dataclasses import replace

import pytest

from fingerprinting.capture import CapturePlan, GuardedClient, HostLimiter, NetworkPolicy, sample
from fingerprinting.capture.evidence import Evidence
from tests.fingerprinting.capture.hls_media import serve_vod
from tests.fingerprinting.capture.servers import static

PLAN = CapturePlan(seconds=6, sample_rate=8000, fps=2, deadline_seconds=30)


@pytest.fixture
def client():
    policy = NetworkPolicy.from_setting("127.0.0.0/8,::1/128")
    with GuardedClient(policy, limiter=HostLimiter(rate=1000, burst=1000, concurrent=16)) as c:
        yield c


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_default_plan_keeps_hashes_only(server, client, hls_ts_2s):
    got = sample(serve_vod(server, hls_ts_2s), PLAN, client=client)
    ev = got.evidence
    assert ev.kept_playlists() == [] and ev.kept_ranges() == []
    assert ev.keep_room() == 0
    assert all(r.kept_bytes == 0 and r.kept_sha256 is None for r in ev.ranges)
    assert not any(p.kept for p in ev.playlists)


def test_everything_is_kept_under_a_large_cap(server, client, hls_ts_2s):
    got = sample(serve_vod(server, hls_ts_2s), replace(PLAN, keep_bytes=64 << 20), client=client)
    ev = got.evidence
    playlists = ev.kept_playlists()
    assert [i for i, _, _ in playlists] == list(range(len(ev.playlists)))
    for _, snap, body in playlists:
        assert snap.kept and _sha(body) == snap.sha256 and len(body) == snap.bytes
    ranges = ev.kept_ranges()
    assert len(ranges) == len(ev.ranges) >= 3
    for i, rng, data in ranges:
        assert ev.ranges[i] is rng
        assert rng.kept_bytes == rng.length == len(data)
        assert rng.kept_sha256 == rng.sha256 == _sha(data)
        assert data == hls_ts_2s.segments[rng.media_sequence]  # the bytes as served
    # the sealed record says what was kept, and carries no bytes
    sealed = ev.sealed()
    assert sealed["keep_bytes"] == 64 << 20
    assert all(r["kept_bytes"] == r["length"] for r in sealed["ranges"])
    assert "_range_bytes" not in sealed and "_playlist_bodies" not in sealed


def test_media_is_kept_until_the_cap_and_the_range_crossing_it_is_truncated(
    server, client, hls_ts_2s
):
    first = len(hls_ts_2s.segments[0])
    cap = first + len(hls_ts_2s.segments[1]) // 2
    got = sample(serve_vod(server, hls_ts_2s), replace(PLAN, keep_bytes=cap), client=client)
    ev = got.evidence
    segs = ev.ranges
    assert len(segs) >= 3
    assert segs[0].kept_bytes == segs[0].length == first  # whole
    assert segs[1].kept_bytes == cap - first < segs[1].length  # truncated
    assert segs[1].kept_sha256 == _sha(hls_ts_2s.segments[1][: cap - first])
    assert segs[1].kept_sha256 != segs[1].sha256
    assert all(r.kept_bytes == 0 and r.kept_sha256 is None for r in segs[2:])  # not kept
    kept = ev.kept_ranges()
    assert [i for i, _, _ in kept] == [0, 1]
    assert sum(len(d) for _, _, d in kept) == cap and ev.keep_room() == 0
    assert kept[1][2] == hls_ts_2s.segments[1][: cap - first]
    assert all(p.kept for p in ev.playlists)  # playlists are not counted against the cap


def test_an_init_section_is_kept_with_the_fmp4_segments(server, client, hls_fmp4):
    got = sample(serve_vod(server, hls_fmp4), replace(PLAN, keep_bytes=64 << 20), client=client)
    (index, rng, data), *rest = got.evidence.kept_ranges()
    assert index == 0 and rng.role == "init" and data == hls_fmp4.init
    assert rest and all(r.role == "segment" for _, r, _ in rest)


def test_a_continuous_stream_keeps_its_first_bytes(server, client, ts_bytes):
    server.route("/stream.ts", static(ts_bytes, "video/mp2t"))
    cap = 100_000
    got = sample(server.url("/stream.ts"), replace(PLAN, keep_bytes=cap), client=client)
    ((_, rng, data),) = got.evidence.kept_ranges()
    assert rng.role == "stream" and rng.length > cap
    assert rng.kept_bytes == cap and data == ts_bytes[:cap]
    assert rng.kept_sha256 == _sha(ts_bytes[:cap])
    assert rng.sha256 == _sha(ts_bytes[: rng.length])


def test_the_cap_is_shared_by_ranges_added_directly():
    ev = Evidence(requested_url="http://x.example/", keep_bytes=10)
    ev.add_range("http://x.example/a", "segment", b"abcdef")
    ev.add_hashed_range("http://x.example/b", "stream", 0, 8, _sha(b"ghijklmn"), kept=b"ghijklmn")
    ev.add_range("http://x.example/c", "segment", b"zz")
    assert [r.kept_bytes for r in ev.ranges] == [6, 4, 0]
    assert [d for _, _, d in ev.kept_ranges()] == [b"abcdef", b"ghij"]
    assert ev.ranges[1].kept_sha256 == _sha(b"ghij")
    with pytest.raises(ValueError, match="keep_bytes"):
        CapturePlan(keep_bytes=-1)
