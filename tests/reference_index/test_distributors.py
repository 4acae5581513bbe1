"""Matching rules of authorized distributors (pure: no database)."""

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from reference_index.distributors import (
    Distributor,
    authorized,
    host_matches,
    normalise_cidr,
    normalise_host,
    normalise_host_pattern,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
_ids = iter(range(1, 10_000))


def dist(host=None, cidr=None, asn=None, valid_from=None, valid_to=None, licensee="Orange"):
    """A distributor as the catalog stores it (normalised pattern and network)."""
    return Distributor(
        id=next(_ids),
        channel_id="tf1",
        licensee=licensee,
        territory="FR",
        host_pattern=normalise_host_pattern(host) if host else None,
        cidr=normalise_cidr(cidr) if cidr else None,
        asn=asn,
        valid_from=valid_from,
        valid_to=valid_to,
        created_at=NOW,
    )


def match(d, host=None, addresses=(), when=NOW, asn=None):
    return authorized([d], host=host, addresses=addresses, when=when, asn=asn)


# -- host patterns ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("cdn.licensee.fr", True),
        ("CDN.Licensee.FR", True),
        ("cdn.licensee.fr.", True),  # fully qualified
        ("licensee.fr", False),
        ("a.cdn.licensee.fr", False),  # exact means exact
        ("cdn.licensee.fr.evil.com", False),
        ("xcdn.licensee.fr", False),
    ],
)
def test_exact_host(host, expected):
    d = dist(host="cdn.licensee.fr")
    assert (match(d, host=host) is d) is expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("licensee.fr", True),  # the domain itself
        ("cdn.licensee.fr", True),
        ("edge-3.par.cdn.licensee.fr", True),  # any depth
        ("LIVE.Licensee.Fr.", True),
        ("evil-licensee.fr", False),  # same ending, other domain
        ("xlicensee.fr", False),
        ("licensee.fr.evil.com", False),
        ("licensee.com", False),
        ("fr", False),
        ("", False),
    ],
)
def test_wildcard_host_matches_the_domain_and_its_subdomains(host, expected):
    d = dist(host="*.licensee.fr")
    assert (match(d, host=host) is d) is expected


def test_hosts_compare_in_idna_form():
    d = dist(host="*.télé.fr")
    assert d.host_pattern == "*.xn--tl-bjab.fr"
    assert match(d, host="cdn.xn--tl-bjab.fr") is d
    assert match(d, host="CDN.TÉLÉ.FR") is d
    assert match(d, host="cdn.tele.fr") is None
    assert match(dist(host="*.xn--tl-bjab.fr"), host="télé.fr") is not None


def test_no_host_or_a_garbage_host_matches_no_pattern():
    d = dist(host="*.licensee.fr")
    assert match(d, host=None) is None
    assert match(d, host="cdn_1.licensee.fr x") is None
    assert normalise_host("not a host") is None
    assert not host_matches("*.licensee.fr", "[::1]")


def test_patterns_are_strict():
    for bad in ("*", "*.fr", "cdn.*.fr", "a*.b.fr", "192.0.2.1", "cdn.fr:443", "http://a.fr"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            normalise_host_pattern(bad)


# -- networks --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cidr", "address", "expected"),
    [
        ("192.0.2.0/24", "192.0.2.200", True),
        ("192.0.2.0/24", "192.0.2.0", True),
        ("192.0.2.0/24", "192.0.3.1", False),
        ("192.0.2.77/24", "192.0.2.1", True),  # host bits normalised away
        ("192.0.2.7", "192.0.2.7", True),  # a bare address: a /32
        ("192.0.2.7", "192.0.2.8", False),
        ("2001:db8::/32", "2001:db8:1::5", True),
        ("2001:db8::/32", "2001:db9::5", False),
        ("2001:db8::/32", "[2001:db8::5]", True),  # URL-style brackets
        ("2001:db8::/32", "2001:db8::5%eth0", True),  # zone id dropped
        ("192.0.2.0/24", "::ffff:192.0.2.9", True),  # IPv4-mapped counts as IPv4
        ("192.0.2.0/24", "::ffff:192.0.3.9", False),
        ("::ffff:192.0.2.0/120", "192.0.2.9", True),  # a mapped network is stored as IPv4
        ("192.0.2.0/24", "2001:db8::c000:209", False),  # not mapped: other family
        ("2001:db8::/32", "192.0.2.9", False),
    ],
)
def test_cidr(cidr, address, expected):
    d = dist(cidr=cidr)
    assert (match(d, addresses=[address]) is d) is expected


def test_any_address_suffices():
    d = dist(cidr="198.51.100.0/24")
    assert match(d, addresses=["203.0.113.1", "198.51.100.4"]) is d
    assert match(d, addresses=[]) is None


def test_an_ip_literal_host_is_checked_against_networks():
    d = dist(cidr="198.51.100.0/24")
    assert match(d, host="198.51.100.4") is d
    assert match(dist(cidr="2001:db8::/32"), host="[2001:db8::1]") is not None
    assert match(d, host="198.51.101.4") is None


def test_a_bad_address_is_a_caller_bug():
    with pytest.raises(ValueError):
        match(dist(cidr="198.51.100.0/24"), addresses=["cdn.licensee.fr"])


def test_networks_too_wide_are_refused():
    assert normalise_cidr("10.0.0.0/8") == "10.0.0.0/8"
    assert normalise_cidr("2003::/16") == "2003::/16"
    for wide in ("0.0.0.0/0", "8.0.0.0/7", "::/0", "2000::/15"):
        with pytest.raises(ValueError, match="wider than"):
            normalise_cidr(wide)


# -- ASN -------------------------------------------------------------------------------------
def test_asn_matches_only_when_the_caller_knows_it():
    d = dist(asn=3215)
    assert match(d, asn=3215) is d
    assert match(d, asn=12322) is None
    assert match(d) is None  # no ASN lookup: never matched
    assert match(dist(cidr="192.0.2.0/24"), asn=3215) is None  # no ASN on the distributor


# -- validity window -------------------------------------------------------------------------
def test_validity_window_start_inclusive_end_exclusive():
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    d = dist(asn=3215, valid_from=start, valid_to=end)
    tiny = timedelta(microseconds=1)
    assert match(d, asn=3215, when=start) is d
    assert match(d, asn=3215, when=start - tiny) is None
    assert match(d, asn=3215, when=end - tiny) is d
    assert match(d, asn=3215, when=end) is None


def test_open_ended_windows():
    t = datetime(2025, 1, 1, tzinfo=UTC)
    since = dist(asn=1, valid_from=t)
    until = dist(asn=1, valid_to=t)
    assert match(since, asn=1, when=t + timedelta(days=3650)) is since
    assert match(since, asn=1, when=t - timedelta(seconds=1)) is None
    assert match(until, asn=1, when=datetime(1990, 1, 1, tzinfo=UTC)) is until
    assert match(until, asn=1, when=t) is None


def test_when_in_another_zone_or_naive():
    end = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    d = dist(asn=1, valid_to=end)
    paris = timezone(timedelta(hours=2))
    assert match(d, asn=1, when=datetime(2025, 6, 1, 13, 59, tzinfo=paris)) is d  # 11:59 UTC
    assert match(d, asn=1, when=datetime(2025, 6, 1, 14, 0, tzinfo=paris)) is None  # 12:00 UTC
    assert match(d, asn=1, when=datetime(2025, 6, 1, 11, 59)) is d  # naive = UTC
    assert match(d, asn=1, when=datetime(2025, 6, 1, 12, 0)) is None


def test_an_expired_licence_does_not_hide_a_valid_one():
    old = dist(host="*.licensee.fr", valid_to=datetime(2024, 1, 1, tzinfo=UTC), licensee="Old")
    new = dist(host="*.licensee.fr", valid_from=datetime(2024, 1, 1, tzinfo=UTC), licensee="New")
    got = authorized([old, new], host="cdn.licensee.fr", addresses=[], when=NOW)
    assert got is new


# -- combination and order -------------------------------------------------------------------
def test_criteria_are_alternatives():
    d = dist(host="*.licensee.fr", cidr="192.0.2.0/24", asn=3215)
    assert match(d, host="pirate.example", addresses=["192.0.2.5"]) is d
    assert match(d, host="cdn.licensee.fr", addresses=["203.0.113.5"]) is d
    assert match(d, host="pirate.example", addresses=["203.0.113.5"], asn=3215) is d
    assert match(d, host="pirate.example", addresses=["203.0.113.5"], asn=64500) is None


def test_first_match_in_the_given_order_wins():
    a, b = dist(cidr="192.0.2.0/24", licensee="A"), dist(cidr="192.0.2.0/25", licensee="B")
    assert authorized([a, b], host=None, addresses=["192.0.2.1"], when=NOW) is a
    assert authorized([b, a], host=None, addresses=["192.0.2.1"], when=NOW) is b
    assert authorized(iter([b, a]), host=None, addresses=iter(["192.0.2.200"]), when=NOW) is a


def test_no_match_is_none():
    ds = [dist(host="*.licensee.fr"), dist(cidr="192.0.2.0/24"), dist(asn=3215)]
    assert authorized(ds, host="pirate.example", addresses=["203.0.113.9"], when=NOW) is None
    assert authorized([], host="cdn.licensee.fr", addresses=["192.0.2.1"], when=NOW) is None


def test_as_dict():
    d = dist(host="*.licensee.fr", asn=3215, valid_from=datetime(2025, 1, 1, tzinfo=UTC))
    out = d.as_dict()
    assert out["host_pattern"] == "*.licensee.fr" and out["cidr"] is None
    assert out["valid_from"] == "2025-01-01T00:00:00+00:00" and out["valid_to"] is None
    assert out["asn"] == 3215 and out["licensee"] == "Orange" and out["territory"] == "FR"
    assert set(out) == {
        "id", "channel_id", "licensee", "territory", "host_pattern", "cidr", "asn",
        "valid_from", "valid_to", "created_at",
    }  # fmt: skip
