"""Which addresses a capture may contact.

Vigie fetches URLs that bots hand it, so a hostile URL must not turn it into a probe of
the machine it runs on, its private network or the cloud metadata service. The rule is:
resolve the host once, refuse it if *any* of its addresses is internal, and connect only to
the addresses that were checked (resolving again would let DNS rebinding swap in an
internal address after the check). Operators who really want to capture from an internal
server (tests, a lab) list its networks in ``VIGIE_ALLOW_NETWORKS``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import CaptureError
from .redact import redact_url

__all__ = [
    "BLOCKED_NETWORKS",
    "SUPPORTED_SCHEMES",
    "IPAddress",
    "IPNetwork",
    "NetworkPolicy",
    "Resolver",
    "check_scheme",
    "embedded_ipv4",
    "resolve_checked",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Host name, port -> address strings (``socket.getaddrinfo`` in production, a fake in tests).
Resolver = Callable[[str, int], list[str]]

#: The only URL schemes a capture speaks; rtmp/rtsp/udp/file/... are refused up front.
SUPPORTED_SCHEMES = ("http", "https")

#: Environment variable holding the allow-list (see :meth:`NetworkPolicy.from_setting`).
ALLOW_ENV = "VIGIE_ALLOW_NETWORKS"

# (range, why) - the short "why" goes into the refusal message so an operator sees at a
# glance what kind of address a URL led to. Specific ranges come before the ranges that
# contain them, so the message names the most telling one.
_BLOCKED: tuple[tuple[str, str], ...] = (
    # IPv4
    ("0.0.0.0/8", "this-network"),  # "this host"; connecting to 0.0.0.0 reaches localhost
    ("10.0.0.0/8", "private"),  # RFC 1918
    ("100.64.0.0/10", "shared/CGNAT"),  # RFC 6598 carrier-grade NAT, internal to an ISP
    ("127.0.0.0/8", "loopback"),  # this machine
    ("169.254.0.0/16", "link-local/metadata"),  # incl. cloud metadata 169.254.169.254
    ("172.16.0.0/12", "private"),  # RFC 1918
    ("192.0.0.0/24", "IETF protocol assignments"),  # RFC 6890 (DS-Lite, NAT64 discovery…)
    ("192.0.2.0/24", "documentation"),  # TEST-NET-1, never a real server
    ("192.88.99.0/24", "6to4 relay anycast"),  # RFC 7526, deprecated
    ("192.168.0.0/16", "private"),  # RFC 1918, home and office LANs
    ("198.18.0.0/15", "benchmarking"),  # RFC 2544 lab networks
    ("198.51.100.0/24", "documentation"),  # TEST-NET-2
    ("203.0.113.0/24", "documentation"),  # TEST-NET-3
    ("224.0.0.0/4", "multicast"),  # not a TCP peer
    ("255.255.255.255/32", "broadcast"),  # listed before 240/4, which contains it
    ("240.0.0.0/4", "reserved"),  # class E
    # IPv6. ::ffff:0:0/96 (IPv4-mapped), 64:ff9b::/96 (NAT64) and 2002::/16 (6to4) are not
    # listed: they are judged by the IPv4 address they embed (see embedded_ipv4).
    ("::/128", "unspecified"),  # like 0.0.0.0, reaches localhost
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible (deprecated)"),  # ::a.b.c.d, RFC 4291; no real server uses it
    ("64:ff9b:1::/48", "local-use NAT64"),  # RFC 8215: translates into a private network
    ("100::/64", "discard-only"),  # RFC 6666
    # The whole IETF block, Teredo 2001::/32 included: Teredo's embedded client address is
    # obfuscated and the relay path is not ours to trust, and no IPTV server lives here.
    ("2001::/23", "IETF protocol assignments/Teredo"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),  # RFC 9637
    ("fc00::/7", "unique-local/private"),  # the IPv6 RFC 1918
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
)

_WHY: dict[IPNetwork, str] = {ipaddress.ip_network(net): why for net, why in _BLOCKED}

#: Ranges never contacted unless allow-listed (see the comments in ``_BLOCKED`` for why).
BLOCKED_NETWORKS: tuple[IPNetwork, ...] = tuple(_WHY)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is a translation of one.

    ``::ffff:127.0.0.1`` (IPv4-mapped), ``64:ff9b::7f00:1`` (NAT64) and ``2002:7f00:1::``
    (6to4) all end up at 127.0.0.1, so they must be judged as that IPv4 address, not as
    the public-looking IPv6 address they are written as.

    Parameters
    ----------
    ip : IPv4Address or IPv6Address
        Any address.

    Returns
    -------
    IPv4Address or None
        The embedded IPv4 address, or None for IPv4 addresses and plain IPv6 ones.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


@dataclass(frozen=True)
class NetworkPolicy:
    """The address policy of one capture: the block-list, minus an operator allow-list.

    Attributes
    ----------
    allow : tuple of IPv4Network or IPv6Network
        Networks that may be contacted even though they are blocked (a lab server, the
        test suite's local HTTP server). The allow-list beats the block-list.
    """

    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_setting(cls, text: str | None) -> NetworkPolicy:
        """Parse an allow-list such as ``"127.0.0.0/8, ::1/128,10.1.2.3"``.

        Parameters
        ----------
        text : str or None
            Comma-separated CIDRs or single addresses; whitespace is tolerated. Empty or
            None allows nothing.

        Returns
        -------
        NetworkPolicy

        Raises
        ------
        ValueError
            On an entry that is not a network, naming it. A CIDR with host bits set
            (``10.1.2.3/8``) is an error too rather than silently widened to
            ``10.0.0.0/8``: opening a whole /8 must be what the operator wrote.
        """
        allow: list[IPNetwork] = []
        for entry in (text or "").split(","):
            entry = entry.strip()
            if not entry:
                continue
            try:
                allow.append(ipaddress.ip_network(entry))
            except ValueError as exc:
                raise ValueError(f"{ALLOW_ENV}: bad network {entry!r}: {exc}") from None
        return cls(allow=tuple(allow))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> NetworkPolicy:
        """The policy configured by ``VIGIE_ALLOW_NETWORKS`` (unset: nothing allowed)."""
        return cls.from_setting(environ.get(ALLOW_ENV))

    def blocked_range(self, ip: IPAddress) -> IPNetwork | None:
        """The blocked range ``ip`` falls in, or None when it may be contacted.

        An IPv6 address embedding an IPv4 one (mapped, NAT64, 6to4) is blocked when the
        IPv4 address is, and allowed when an allow-list entry contains either form.
        """
        candidates = [ip]
        inner = embedded_ipv4(ip)
        if inner is not None:
            candidates.append(inner)
        if any(addr in net for addr in candidates for net in self.allow):
            return None
        for addr in candidates:
            for net in BLOCKED_NETWORKS:
                if addr in net:
                    return net
        return None

    def check(self, ip: IPAddress, *, host: str, url: str) -> None:
        """Refuse ``ip`` if it is blocked.

        Parameters
        ----------
        ip : IPv4Address or IPv6Address
            An address ``host`` resolved to.
        host : str
            The host name of the URL, for the message.
        url : str
            The URL, already redacted by the caller, for the message.

        Raises
        ------
        CaptureError
            Reason ``"refused_address"``, with a message naming the URL, the address,
            the range, why the range is blocked and how to allow it.
        """
        net = self.blocked_range(ip)
        if net is None:
            return
        why = _WHY[net]
        inner = embedded_ipv4(ip)
        if inner is not None and inner in net:
            why = f"{why}, embedded as {inner}"
        raise CaptureError(
            "refused_address",
            f"{url}: {host} resolves to {ip}, inside {net} ({why}); allow it with {ALLOW_ENV}",
        )


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with ``socket.getaddrinfo``: unique addresses in order, scope ids stripped.

    IP literals go through here too, so ``2130706433`` or ``0x7f.0.0.1`` become
    ``127.0.0.1`` exactly as the C library would read them when connecting.

    Raises
    ------
    socket.gaierror
        When the name does not resolve (turned into a ``"dns"`` failure by the caller).
    """
    seen: dict[str, None] = {}
    for family, _type, _proto, _canon, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        if family in (socket.AF_INET, socket.AF_INET6):
            seen.setdefault(str(sockaddr[0]).split("%", 1)[0], None)
    return list(seen)


def resolve_checked(
    host: str,
    port: int,
    policy: NetworkPolicy,
    *,
    url: str,
    resolver: Resolver = system_resolver,
) -> list[IPAddress]:
    """Resolve once and check every address; connect only to the addresses returned.

    The caller must connect to one of THESE addresses and never resolve the name again,
    so DNS rebinding cannot swap in an internal address between check and connect. If
    ANY address is refused the whole host is refused: an attacker mixing a public and a
    private record must not win by luck of which one gets dialled. IP literals (also
    bracketed IPv6 and the ``inet_aton`` forms ``2130706433``, ``0177.0.0.1``,
    ``0x7f.0.0.1``, ``127.1``) go through the resolver like names, so they are read the
    way the system reads them.

    Parameters
    ----------
    host : str
        Host name or IP literal from the URL (``[::1]`` brackets are accepted).
    port : int
        Port from the URL.
    policy : NetworkPolicy
        The block-list and allow-list.
    url : str
        The URL, already redacted, for error messages.
    resolver : Resolver, optional
        Name resolution (injectable for tests).

    Returns
    -------
    list of IPv4Address or IPv6Address
        Every address of ``host``, in resolver order, all allowed.

    Raises
    ------
    CaptureError
        ``"dns"`` when the host does not resolve (or resolves to nothing usable),
        ``"refused_address"`` when any address is blocked.
    """
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        raw = resolver(name, port)
        addresses = list(dict.fromkeys(ipaddress.ip_address(a.split("%", 1)[0]) for a in raw))
    except (OSError, ValueError) as exc:  # gaierror is an OSError; bad IDNA a ValueError
        raise CaptureError("dns", f"{url}: cannot resolve {host!r}: {exc}") from None
    if not addresses:
        raise CaptureError("dns", f"{url}: {host!r} resolves to no address")
    for ip in addresses:
        policy.check(ip, host=host, url=url)
    return addresses


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def check_scheme(url: str) -> None:
    """Refuse any URL that is not http or https.

    Other schemes (rtmp, rtsp, udp, file, ftp, gopher, data…) either reach things the
    address policy cannot check (local files, raw UDP) or are protocols the capture does
    not implement, so they are refused before anything else happens.

    Raises
    ------
    CaptureError
        Reason ``"unsupported_scheme"``, naming the scheme (redacted URL included).
    """
    match = _SCHEME.match(url)
    supported = ", ".join(SUPPORTED_SCHEMES)
    if match is None:
        raise CaptureError(
            "unsupported_scheme",
            f"{redact_url(url)}: no URL scheme; supported schemes are {supported}",
        )
    scheme = match.group(1).lower()
    if scheme not in SUPPORTED_SCHEMES:
        raise CaptureError(
            "unsupported_scheme",
            f"{redact_url(url)}: scheme {scheme!r} is not supported; "
            f"supported schemes are {supported}",
        )
