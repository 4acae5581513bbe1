"""The address policy: what a capture refuses to contact, and how it says so."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from fingerprinting.capture.errors import CaptureError
from fingerprinting.capture.netguard import (
    BLOCKED_NETWORKS,
    NetworkPolicy,
    check_scheme,
    embedded_ipv4,
    resolve_checked,
    system_resolver,
)

ip = ipaddress.ip_address
net = ipaddress.ip_network
URL = "http://example.test/live/***/***/1.ts"

# One address inside each blocked range, the range it must be reported in, and the word.
BLOCKED_CASES = [
    ("0.0.0.0", "0.0.0.0/8", "this-network"),
    ("10.20.30.40", "10.0.0.0/8", "private"),
    ("100.64.0.1", "100.64.0.0/10", "CGNAT"),
    ("100.127.255.254", "100.64.0.0/10", "CGNAT"),
    ("127.0.0.1", "127.0.0.0/8", "loopback"),
    ("127.255.0.9", "127.0.0.0/8", "loopback"),
    ("169.254.169.254", "169.254.0.0/16", "metadata"),
    ("172.16.0.1", "172.16.0.0/12", "private"),
    ("172.31.255.255", "172.16.0.0/12", "private"),
    ("192.0.0.8", "192.0.0.0/24", "IETF"),
    ("192.0.2.1", "192.0.2.0/24", "documentation"),
    ("192.88.99.1", "192.88.99.0/24", "6to4"),
    ("192.168.1.1", "192.168.0.0/16", "private"),
    ("198.19.0.1", "198.18.0.0/15", "benchmarking"),
    ("198.51.100.7", "198.51.100.0/24", "documentation"),
    ("203.0.113.9", "203.0.113.0/24", "documentation"),
    ("224.0.0.251", "224.0.0.0/4", "multicast"),
    ("239.255.255.250", "224.0.0.0/4", "multicast"),
    ("240.0.0.1", "240.0.0.0/4", "reserved"),
    ("255.255.255.255", "255.255.255.255/32", "broadcast"),
    ("::", "::/128", "unspecified"),
    ("::1", "::1/128", "loopback"),
    ("::7f00:1", "::/96", "IPv4-compatible"),
    ("64:ff9b:1::1", "64:ff9b:1::/48", "NAT64"),
    ("100::1", "100::/64", "discard"),
    ("2001::1", "2001::/23", "Teredo"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::/23", "Teredo"),
    ("2001:db8::1", "2001:db8::/32", "documentation"),
    ("3fff::1", "3fff::/20", "documentation"),
    ("fc00::1", "fc00::/7", "unique-local"),
    ("fd12:3456::1", "fc00::/7", "unique-local"),
    ("fe80::1", "fe80::/10", "link-local"),
    ("fec0::1", "fec0::/10", "site-local"),
    ("ff02::1", "ff00::/8", "multicast"),
]

PUBLIC = ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "2606:4700:4700::1111", "93.184.216.34"]


def fake(records: dict[str, list[str]]):
    """A resolver answering from ``records`` and remembering what it was asked."""

    def resolve(host: str, port: int) -> list[str]:
        resolve.calls.append((host, port))
        return list(records[host])

    resolve.calls = []
    return resolve


def refusal(policy: NetworkPolicy, address: str) -> CaptureError:
    with pytest.raises(CaptureError) as info:
        policy.check(ip(address), host="evil.test", url=URL)
    return info.value


@pytest.mark.parametrize(("address", "cidr", "word"), BLOCKED_CASES)
def test_each_blocked_range_is_refused_with_its_reason(address, cidr, word):
    policy = NetworkPolicy()
    assert policy.blocked_range(ip(address)) == net(cidr)
    err = refusal(policy, address)
    assert err.reason == "refused_address"
    assert err.message.startswith(f"{URL}: evil.test resolves to {address}, inside {cidr} (")
    assert word in err.message
    assert err.message.endswith("; allow it with VIGIE_ALLOW_NETWORKS")


def test_every_blocked_network_has_a_case():
    assert {net(c) for _, c, _ in BLOCKED_CASES} == set(BLOCKED_NETWORKS)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_accepted(address):
    policy = NetworkPolicy()
    assert policy.blocked_range(ip(address)) is None
    assert policy.check(ip(address), host="cdn.test", url=URL) is None


@pytest.mark.parametrize(
    ("address", "inner", "cidr"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1", "127.0.0.0/8"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "169.254.169.254", "169.254.0.0/16"),
        ("2002:7f00:1::", "127.0.0.1", "127.0.0.0/8"),  # 6to4
        ("2002:c0a8:101::1", "192.168.1.1", "192.168.0.0/16"),
        ("64:ff9b::a00:1", "10.0.0.1", "10.0.0.0/8"),  # NAT64
        ("64:ff9b::a9fe:a9fe", "169.254.169.254", "169.254.0.0/16"),
    ],
)
def test_ipv6_wrapping_an_internal_ipv4_is_refused(address, inner, cidr):
    assert embedded_ipv4(ip(address)) == ip(inner)
    assert NetworkPolicy().blocked_range(ip(address)) == net(cidr)
    assert f"embedded as {inner}" in refusal(NetworkPolicy(), address).message


@pytest.mark.parametrize("address", ["::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808"])
def test_ipv6_wrapping_a_public_ipv4_is_accepted(address):
    assert embedded_ipv4(ip(address)) == ip("8.8.8.8")
    assert NetworkPolicy().blocked_range(ip(address)) is None


def test_embedded_ipv4_of_plain_addresses_is_none():
    assert embedded_ipv4(ip("127.0.0.1")) is None
    assert embedded_ipv4(ip("2001:4860:4860::8888")) is None


def test_allow_list_beats_block_list_only_inside_its_networks():
    policy = NetworkPolicy.from_setting("127.0.0.0/8")
    assert policy.blocked_range(ip("127.0.0.1")) is None
    assert policy.blocked_range(ip("::ffff:127.0.0.1")) is None  # same address, mapped
    assert policy.blocked_range(ip("10.0.0.1")) == net("10.0.0.0/8")
    assert policy.blocked_range(ip("::1")) == net("::1/128")  # IPv6 loopback not listed
    assert refusal(policy, "10.0.0.1").reason == "refused_address"


def test_from_setting_parses_cidrs_and_single_addresses():
    policy = NetworkPolicy.from_setting(" 127.0.0.0/8, ::1/128,10.1.2.3 ,, ")
    assert policy.allow == (net("127.0.0.0/8"), net("::1/128"), net("10.1.2.3/32"))
    assert policy.blocked_range(ip("10.1.2.3")) is None
    assert policy.blocked_range(ip("10.1.2.4")) == net("10.0.0.0/8")


@pytest.mark.parametrize("text", [None, "", "  ", " , "])
def test_from_setting_empty_allows_nothing(text):
    assert NetworkPolicy.from_setting(text).allow == ()


@pytest.mark.parametrize("bad", ["localhost", "10.0.0.0/33", "10.1.2.3/8", "300.1.1.1", "::g"])
def test_from_setting_names_the_bad_entry(bad):
    with pytest.raises(ValueError) as info:
        NetworkPolicy.from_setting(f"127.0.0.0/8, {bad}")
    assert repr(bad) in str(info.value)
    assert "VIGIE_ALLOW_NETWORKS" in str(info.value)


def test_from_env_reads_vigie_allow_networks():
    policy = NetworkPolicy.from_env({"VIGIE_ALLOW_NETWORKS": "192.168.0.0/16"})
    assert policy.allow == (net("192.168.0.0/16"),)
    assert NetworkPolicy.from_env({}).allow == ()


def test_resolve_checked_returns_the_checked_addresses_in_order():
    resolver = fake({"cdn.test": ["8.8.8.8", "2001:4860:4860::8888", "8.8.8.8"]})
    got = resolve_checked("cdn.test", 8080, NetworkPolicy(), url=URL, resolver=resolver)
    assert got == [ip("8.8.8.8"), ip("2001:4860:4860::8888")]
    assert resolver.calls == [("cdn.test", 8080)]  # resolved once


@pytest.mark.parametrize("order", [["8.8.8.8", "10.0.0.5"], ["10.0.0.5", "8.8.8.8"]])
def test_one_private_record_refuses_the_whole_host(order):
    resolver = fake({"mixed.test": order})
    with pytest.raises(CaptureError) as info:
        resolve_checked("mixed.test", 80, NetworkPolicy(), url=URL, resolver=resolver)
    assert info.value.reason == "refused_address"
    assert "mixed.test resolves to 10.0.0.5, inside 10.0.0.0/8 (private)" in info.value.message


def test_bracketed_ipv6_literal_goes_through_the_resolver():
    resolver = fake({"::1": ["::1"]})
    with pytest.raises(CaptureError) as info:
        resolve_checked("[::1]", 80, NetworkPolicy(), url=URL, resolver=resolver)
    assert resolver.calls == [("::1", 80)]
    assert "inside ::1/128 (loopback)" in info.value.message


def test_scope_ids_from_a_resolver_are_stripped():
    resolver = fake({"ll.test": ["fe80::1%eth0"]})
    policy = NetworkPolicy.from_setting("fe80::/10")
    assert resolve_checked("ll.test", 80, policy, url=URL, resolver=resolver) == [ip("fe80::1")]


def test_gaierror_becomes_dns_naming_the_host():
    def broken(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(CaptureError) as info:
        resolve_checked("nowhere.test", 80, NetworkPolicy(), url=URL, resolver=broken)
    assert info.value.reason == "dns"
    assert "'nowhere.test'" in info.value.message
    assert info.value.message.startswith(URL)


def test_empty_resolution_becomes_dns():
    with pytest.raises(CaptureError) as info:
        resolve_checked("void.test", 80, NetworkPolicy(), url=URL, resolver=fake({"void.test": []}))
    assert info.value.reason == "dns"
    assert "'void.test' resolves to no address" in info.value.message


def test_unparsable_resolver_answer_becomes_dns():
    resolver = fake({"odd.test": ["not-an-ip"]})
    with pytest.raises(CaptureError) as info:
        resolve_checked("odd.test", 80, NetworkPolicy(), url=URL, resolver=resolver)
    assert info.value.reason == "dns"


@pytest.mark.parametrize("literal", ["2130706433", "0177.0.0.1", "0x7f.0.0.1", "127.1"])
def test_system_resolver_reads_inet_aton_forms_and_they_are_refused(literal):
    assert system_resolver(literal, 80) == ["127.0.0.1"]
    with pytest.raises(CaptureError) as info:
        resolve_checked(literal, 80, NetworkPolicy(), url=URL)
    assert info.value.reason == "refused_address"
    assert f"{literal} resolves to 127.0.0.1, inside 127.0.0.0/8 (loopback)" in info.value.message


def test_localhost_via_system_resolver_is_refused():
    assert set(system_resolver("localhost", 80)) <= {"127.0.0.1", "::1"}
    with pytest.raises(CaptureError) as info:
        resolve_checked("localhost", 80, NetworkPolicy(), url=URL)
    assert info.value.reason == "refused_address"
    assert "loopback" in info.value.message


def test_localhost_allowed_when_loopback_is_allow_listed():
    policy = NetworkPolicy.from_setting("127.0.0.0/8, ::1/128")
    got = resolve_checked("localhost", 80, policy, url=URL)
    assert got and all(a.is_loopback for a in got)


def test_system_resolver_unknown_name_is_dns():
    with pytest.raises(CaptureError) as info:
        resolve_checked("no-such-host.invalid", 80, NetworkPolicy(), url=URL)
    assert info.value.reason == "dns"


@pytest.mark.parametrize(
    "url", ["http://example.com/a.ts", "https://example.com/", "HTTPS://Example.com/x"]
)
def test_http_and_https_are_supported(url):
    assert check_scheme(url) is None


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("rtmp://example.com/live/stream", "rtmp"),
        ("rtsp://example.com/ch1", "rtsp"),
        ("udp://@239.0.0.1:1234", "udp"),
        ("file:///etc/passwd", "file"),
        ("ftp://example.com/a.ts", "ftp"),
        ("gopher://127.0.0.1:6379/_INFO", "gopher"),
        ("data:video/mp2t;base64,AAAA", "data"),
        ("javascript:alert(1)", "javascript"),
    ],
)
def test_other_schemes_are_refused_by_name(url, scheme):
    with pytest.raises(CaptureError) as info:
        check_scheme(url)
    assert info.value.reason == "unsupported_scheme"
    assert f"scheme {scheme!r} is not supported" in info.value.message
    assert "supported schemes are http, https" in info.value.message


@pytest.mark.parametrize("url", ["example.com/live/a.ts", "//example.com/a.ts", "", " http://x/"])
def test_missing_scheme_is_refused(url):
    with pytest.raises(CaptureError) as info:
        check_scheme(url)
    assert info.value.reason == "unsupported_scheme"
    assert "no URL scheme" in info.value.message


def test_scheme_refusal_does_not_leak_credentials():
    with pytest.raises(CaptureError) as info:
        check_scheme("rtmp://alice:s3cret@example.com/live/alice/s3cret/12.ts")
    assert "s3cret" not in info.value.message
    assert "alice" not in info.value.message
