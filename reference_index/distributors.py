"""Authorized distributors: who may carry a channel, and whether a stream is one of them.

A rights holder licenses its channel to distributors (an ISP's IPTV, an OTT service, a
hotel operator...). A stream that matches the channel's fingerprints but is served by one
of them is *authorized*, not a pirate restream. Each distributor names the licensee and at
least one way to recognise its streams:

* a **host pattern**: an exact host (``cdn.licensee.fr``) or a wildcard
  (``*.licensee.fr``) that matches ``licensee.fr`` itself and every sub-domain of it, at
  any depth, but never a host that merely ends with the same letters
  (``evil-licensee.fr``). Matching is case-insensitive and on IDNA (punycode) forms, so
  ``TÉLÉ.fr`` and ``xn--tl-bjab.fr`` are the same host. No other glob syntax exists: a
  ``*`` is only allowed as the whole first label;
* a **CIDR** network (IPv4 or IPv6) that contains one of the addresses the stream was
  fetched from; an IPv4-mapped IPv6 address (``::ffff:192.0.2.7``) counts as its IPv4;
* an **ASN**, matched only when the caller knows the ASN of the stream's address (Vigie
  ships no ASN database, so it is stored and shown, and matched only if passed).

A distributor may have a validity window ``[valid_from, valid_to)`` in UTC (start
inclusive, end exclusive, either end open); outside of it, the licence does not count.

This module is pure: no database, no network, no resolution. :func:`authorized` takes the
distributors (the catalog's :meth:`~reference_index.catalog.Catalog.distributors`) and what
the capture observed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import idna

__all__ = [
    "ASN_MAX",
    "Distributor",
    "authorized",
    "host_matches",
    "normalise_cidr",
    "normalise_host",
    "normalise_host_pattern",
]

#: Largest usable AS number (4294967295 is reserved by RFC 7300; 0 by RFC 7607).
ASN_MAX = 4_294_967_294

#: Shortest prefix accepted for a distributor's network. A shorter one would whitelist a
#: large part of the Internet (``0.0.0.0/0`` would call every pirate "authorized"); no
#: single operator holds more than an IPv4 /8 or an IPv6 /16.
MIN_PREFIX = {4: 8, 6: 16}

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Distributor:
    """A licensee authorized to carry a channel.

    Attributes
    ----------
    id : int
        Catalog id.
    channel_id : str
        The channel the licence is for.
    licensee : str
        Who holds the licence (shown in reports instead of "pirate").
    territory : str or None
        Where the licence applies: an ISO 3166 code (``FR``, ``FR-IDF``) or free text.
        Informative only: streams are not geolocated.
    host_pattern : str or None
        Exact host or ``*.domain`` wildcard, lower-case IDNA (punycode) form.
    cidr : str or None
        Network in canonical form (host bits cleared).
    asn : int or None
        Autonomous system number.
    valid_from, valid_to : datetime or None
        Validity window in UTC; ``valid_to`` is exclusive; ``None`` is open-ended.
    created_at : datetime
        When it was added (UTC).
    """

    id: int
    channel_id: str
    licensee: str
    territory: str | None
    host_pattern: str | None
    cidr: str | None
    asn: int | None
    valid_from: datetime | None
    valid_to: datetime | None
    created_at: datetime

    def valid_at(self, when: datetime) -> bool:
        """Whether the licence is in force at ``when`` (naive datetimes are taken as UTC)."""
        when = _as_utc(when)
        if self.valid_from is not None and when < self.valid_from:
            return False
        return self.valid_to is None or when < self.valid_to

    def as_dict(self) -> dict:
        """JSON-ready form (datetimes in ISO 8601 UTC, absent values ``None``)."""
        return {
            "id": self.id,
            "channel_id": self.channel_id,
            "licensee": self.licensee,
            "territory": self.territory,
            "host_pattern": self.host_pattern,
            "cidr": self.cidr,
            "asn": self.asn,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
            "created_at": self.created_at.isoformat(),
        }


def _as_utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _ascii_host(name: str) -> str:
    """Lower-case IDNA form of a host name; raises ``ValueError`` if it is not one."""
    name = name.strip()
    if name.endswith("."):
        name = name[:-1]  # the root label: "cdn.licensee.fr." is "cdn.licensee.fr"
    if not name:
        raise ValueError("empty host name")
    if name.isascii():
        name = name.lower()
    else:
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(str(exc)) from None
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError("not a host name")
    if labels[-1].isdigit():
        raise ValueError("looks like an IP address")
    return name


def normalise_host_pattern(pattern: str) -> str:
    """Canonical form of a distributor's host pattern.

    Parameters
    ----------
    pattern : str
        ``cdn.licensee.fr`` (that host only) or ``*.licensee.fr`` (``licensee.fr`` and all
        its sub-domains). Case and a trailing dot are ignored; Unicode names are converted
        to punycode.

    Returns
    -------
    str
        Lower-case ASCII pattern, as stored and compared.

    Raises
    ------
    ValueError
        Not a host name, an IP address (use a CIDR), ``*`` anywhere but as the whole first
        label, or a wildcard over a single label (``*.fr`` would authorize a whole TLD).
    """
    text = pattern.strip()
    wildcard = text.startswith("*.")
    rest = text[2:] if wildcard else text
    try:
        ipaddress.ip_address(rest.strip("[]"))
    except ValueError:
        pass
    else:
        raise ValueError(f"host pattern {pattern!r} is an IP address; give it as a CIDR")
    try:
        host = _ascii_host(rest)
    except ValueError:
        raise ValueError(
            f"host pattern {pattern!r} must be a host name like cdn.licensee.fr "
            "or a wildcard like *.licensee.fr"
        ) from None
    if wildcard and "." not in host:
        raise ValueError(
            f"host pattern {pattern!r} would match a whole top-level domain; "
            "give at least two labels after '*.'"
        )
    return f"*.{host}" if wildcard else host


def normalise_host(host: str) -> str | None:
    """Lower-case IDNA form of a stream's host, or ``None`` if it is no host name.

    Never raises: a host that cannot be a host name (an IP literal, garbage) simply
    matches no host pattern.
    """
    try:
        return _ascii_host(host)
    except ValueError:
        return None


def host_matches(pattern: str, host: str) -> bool:
    """Whether ``host`` is covered by a normalised ``pattern`` (see the module rules)."""
    name = normalise_host(host)
    if name is None:
        return False
    if pattern.startswith("*."):
        domain = pattern[2:]
        return name == domain or name.endswith("." + domain)
    return name == pattern


def normalise_cidr(cidr: str) -> str:
    """Canonical form of a distributor's network.

    Host bits are cleared (``192.0.2.7/24`` -> ``192.0.2.0/24``), a bare address is a
    single-host network, and an IPv4-mapped IPv6 network (``::ffff:192.0.2.0/120``) is
    stored as its IPv4 network, since mapped addresses are matched as IPv4.

    Raises
    ------
    ValueError
        Not a network, or a prefix shorter than :data:`MIN_PREFIX` (too wide to be one
        licensee's).
    """
    try:
        net: IPNetwork = ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"CIDR {cidr!r} must be an IPv4 or IPv6 network like 192.0.2.0/24 or 2001:db8::/32"
        ) from None
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
        mapped = net.network_address.ipv4_mapped
        if mapped is not None:
            net = ipaddress.IPv4Network((mapped, net.prefixlen - 96))
    if net.prefixlen < MIN_PREFIX[net.version]:
        raise ValueError(
            f"CIDR {cidr!r} is wider than /{MIN_PREFIX[net.version]}: "
            "that is more of the Internet than any one licensee holds"
        )
    return str(net)


def _address(text: str | IPAddress) -> IPAddress:
    """An address as compared: zone id dropped, IPv4-mapped IPv6 turned into IPv4."""
    raw = str(text).strip()
    if raw.startswith("[") and raw.endswith("]"):
        raw = raw[1:-1]
    ip = ipaddress.ip_address(raw.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def authorized(
    distributors: Iterable[Distributor],
    *,
    host: str | None,
    addresses: Iterable[str],
    when: datetime,
    asn: int | None = None,
) -> Distributor | None:
    """The first distributor that carries this stream legitimately, or ``None``.

    A distributor matches when it is valid at ``when`` (``valid_from <= when < valid_to``)
    and at least one of its criteria matches: its host pattern covers ``host``, its CIDR
    contains one of ``addresses``, or its ASN equals ``asn``. Criteria are alternatives
    (any one suffices), because a licensee's CDN host and its address ranges are each
    sufficient evidence on their own.

    Parameters
    ----------
    distributors : iterable of Distributor
        Candidates, in priority order: those of the matched channel and of every channel
        of its simulcast group (HD/SD/regional variants share their licences' scope only
        if the caller passes them).
    host : str or None
        Host name of the stream URL (any case, Unicode or punycode). An IP literal is also
        checked against the CIDRs, as if it were in ``addresses``.
    addresses : iterable of str
        Addresses the stream was fetched from (the capture's resolved/connected addresses).
    when : datetime
        Time of the observation; naive datetimes are taken as UTC.
    asn : int or None
        AS number of the stream's address, if the caller looked it up; without it, ASN
        criteria never match.

    Returns
    -------
    Distributor or None
        The first matching distributor in the given order.

    Raises
    ------
    ValueError
        An entry of ``addresses`` is not an IP address (a caller bug, not a pirate).
    """
    ips = [_address(a) for a in addresses]
    if host is not None:
        with contextlib.suppress(ValueError):  # a host name, not an IP literal
            ips.append(_address(host))
    when = _as_utc(when)
    for d in distributors:
        if not d.valid_at(when):
            continue
        if d.host_pattern and host is not None and host_matches(d.host_pattern, host):
            return d
        if d.cidr and ips:
            net = ipaddress.ip_network(d.cidr)
            if any(ip.version == net.version and ip in net for ip in ips):
                return d
        if d.asn is not None and asn is not None and d.asn == asn:
            return d
    return None
