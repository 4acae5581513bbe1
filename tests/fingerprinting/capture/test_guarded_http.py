"""The guarded client itself: one resolution per hop, the checked address is the one used,
per-host limits, and channel lists read as they stream."""

import threading
import time

import pytest

from fingerprinting.capture import (
    ByteBudget,
    CaptureError,
    Deadline,
    Evidence,
    Fetcher,
    GuardedClient,
    HostLimiter,
    NetworkPolicy,
    read_channel_list,
    split_kodi_url,
)
from tests.fingerprinting.capture.servers import static

LOOPBACK = NetworkPolicy.from_setting("127.0.0.0/8")
FAST = HostLimiter(rate=1000, burst=1000, concurrent=16)


def fetcher(client, seconds=5.0):
    return Fetcher(
        client,
        deadline=Deadline(seconds),
        budget=ByteBudget(10_000_000),
        evidence=Evidence(requested_url="test"),
    )


def test_a_rebinding_name_is_resolved_once_and_the_checked_address_is_used(server):
    calls = []

    def rebinding(host, port):
        # A rebinding DNS server answers the check with a public-looking address and the
        # connection with an internal one; here: first 127.0.0.1 (allowed), then 10.0.0.1.
        calls.append(host)
        return ["127.0.0.1"] if len(calls) == 1 else ["10.0.0.1"]

    port = server.port
    server.route("/x", static(b"hello"))
    with GuardedClient(LOOPBACK, limiter=FAST, resolver=rebinding) as client:
        f = fetcher(client)
        got = f.get(f"http://rebind.test:{port}/x", max_bytes=100, what="test")
    assert got.body == b"hello" and calls == ["rebind.test"]
    (req,) = server.requests
    assert req.headers["host"] == f"rebind.test:{port}"  # the name, not the address
    assert f.evidence.hops[0].address == f"127.0.0.1:{port}"


def test_http_errors_name_the_status(server):
    server.route("/gone", static(b"no", status=410))
    with GuardedClient(LOOPBACK, limiter=FAST) as client, pytest.raises(CaptureError) as info:
        fetcher(client).get(server.url("/gone"), max_bytes=100, what="segment")
    assert info.value.reason == "http_status" and "HTTP 410" in info.value.message


def test_an_announced_length_over_the_cap_is_refused_before_reading(server):
    server.route("/big", static(b"x" * 5000))
    with GuardedClient(LOOPBACK, limiter=FAST) as client, pytest.raises(CaptureError) as info:
        fetcher(client).get(server.url("/big"), max_bytes=1000, what="key")
    assert info.value.reason == "too_large" and "5,000 bytes" in info.value.message


def test_host_limiter_spaces_requests_at_its_rate():
    limiter = HostLimiter(rate=20.0, burst=1, concurrent=4)
    deadline = Deadline(10)
    started = time.monotonic()
    for _ in range(6):
        with limiter.slot("a.example", deadline, "test"):
            pass
    # 1 from the burst, then 5 at 20 per second: at least 0.25 s.
    assert time.monotonic() - started >= 0.24
    other = time.monotonic()
    with limiter.slot("b.example", deadline, "test"):  # another host has its own bucket
        pass
    assert time.monotonic() - other < 0.05


def test_host_limiter_caps_concurrency_and_gives_up_at_the_deadline():
    limiter = HostLimiter(rate=1000, burst=1000, concurrent=1)
    held = threading.Event()
    release = threading.Event()

    def hold():
        with limiter.slot("a.example", Deadline(10), "holder"):
            held.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(5)
    with pytest.raises(CaptureError) as info, limiter.slot("a.example", Deadline(0.3), "waiter"):
        pass
    release.set()
    t.join()
    assert info.value.reason == "timeout"


def _channel_list(n):
    lines = ['#EXTM3U url-tvg="http://epg.example/guide.xml"']
    for i in range(n):
        lines.append(
            f'#EXTINF:-1 tvg-id="ch{i}.fr" tvg-name="Channel {i}" tvg-logo="http://l/{i}.png" '
            f'group-title="Group {i % 40}" catchup="default" catchup-days="7",Channel {i} HD'
        )
        if i % 100 == 0:
            lines.append("#EXTVLCOPT:http-user-agent=Panel/2.0")
        lines.append(f"http://panel.example:8080/live/user/pass/{i}.ts")
    return ("\n".join(lines) + "\n").encode()


def test_a_channel_list_of_10000_entries_streams_through_the_guarded_client(server):
    body = _channel_list(10_000)
    server.route("/get.php", static(body, "audio/x-mpegurl"))
    with GuardedClient(LOOPBACK, limiter=FAST) as client:
        url = server.url("/get.php?username=u&password=p")
        entries = list(read_channel_list(url, client=client))
    assert len(entries) == 10_000
    e = entries[4200]
    assert e.tvg_id == "ch4200.fr" and e.group_title == "Group 0" and e.name == "Channel 4200 HD"
    assert e.catchup["catchup-days"] == "7" and e.url.endswith("/live/user/pass/4200.ts")
    assert entries[300].options.user_agent == "Panel/2.0"
    assert entries[301].options.user_agent is None


def test_a_channel_list_over_its_cap_is_too_large(server):
    server.route("/get.php", static(_channel_list(2000), "audio/x-mpegurl"))
    with GuardedClient(LOOPBACK, limiter=FAST) as client, pytest.raises(CaptureError) as info:
        list(read_channel_list(server.url("/get.php"), client=client, max_bytes=50_000))
    assert info.value.reason == "too_large"


def test_a_slow_resolver_cannot_outlast_the_deadline(server):
    def slow(host, port):
        time.sleep(3)
        return ["127.0.0.1"]

    with GuardedClient(LOOPBACK, limiter=FAST, resolver=slow) as client:
        started = time.monotonic()
        with pytest.raises(CaptureError) as info:
            fetcher(client, seconds=0.5).get("http://slow.test/x", max_bytes=10, what="test")
    assert info.value.reason == "timeout" and time.monotonic() - started < 1.0
    assert "resolving slow.test" in info.value.message


def test_every_name_gets_its_certificate_checked_even_on_one_address(https_server, tls_ca):
    """A connection verified for one name must not carry another name on the same address."""
    import ssl

    https_server.route("/a", static(b"first"))
    https_server.route("/b", static(b"second"))
    ctx = ssl.create_default_context()
    tls_ca.configure_trust(ctx)

    def resolver(host, port):
        return ["127.0.0.1"]

    port = https_server.port
    with GuardedClient(LOOPBACK, limiter=FAST, resolver=resolver, verify=ctx) as client:
        f = fetcher(client)
        assert f.get(f"https://localhost:{port}/a", max_bytes=100, what="t").body == b"first"
        with pytest.raises(CaptureError) as info:
            f.get(f"https://not-in-cert.example:{port}/b", max_bytes=100, what="t")
    assert info.value.reason == "unreachable" and "certificate" in info.value.message.lower()


def test_a_stream_cannot_set_the_host_header(server):
    server.route("/x", static(b"ok"))
    with GuardedClient(LOOPBACK, limiter=FAST) as client:
        f = Fetcher(
            client,
            deadline=Deadline(5),
            budget=ByteBudget(1000),
            evidence=Evidence(requested_url="t"),
            options=split_kodi_url("http://x/|Host=evil.example&User-Agent=UA")[1],
        )
        assert f.get(server.url("/x"), max_bytes=10, what="t").body == b"ok"
    (req,) = server.requests
    assert req.headers["host"] == f"127.0.0.1:{server.port}" and req.headers["user-agent"] == "UA"


def test_host_limiter_forgets_idle_hosts():
    limiter = HostLimiter(rate=1000, burst=1, concurrent=1)
    limiter.MAX_HOSTS = 10
    for i in range(25):
        with limiter.slot(f"h{i}.example", Deadline(5), "test"):
            pass
        time.sleep(0.002)  # longer than burst / rate: each host is idle when the next comes
    assert len(limiter._buckets) <= 10
