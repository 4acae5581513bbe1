"""Per-stream HTTP request options that IPTV playlists attach to a URL.

Pirate panels often refuse a stream unless the request carries the player's
``User-Agent``, a ``Referer`` from their web site, or a cookie. Playlists say so in
three dialects, all read here into one :class:`StreamOptions`:

* Kodi: a ``|`` suffix on the URL, ``URL|User-Agent=VLC%2F3.0&Referer=http://x/``
  (:func:`split_kodi_url`);
* VLC: ``#EXTVLCOPT:http-user-agent=...`` lines before the URL (:func:`parse_vlcopt`);
* Kodi inputstream.adaptive: ``#KODIPROP:inputstream.adaptive.stream_headers=...``
  (:func:`parse_kodiprop`).

Every value ends up in an HTTP request header, and it comes from an untrusted playlist:
a value with CR, LF or another control character could smuggle extra headers or a
second request into the connection (httpx 0.28 passes CR/LF through unchecked), so such
values are dropped -- silently, because one bad option must not cost the whole channel.
Values that are not ASCII are dropped too (httpx encodes header strings as ASCII and
would raise mid-capture), except ``Referer``, a URL, whose non-ASCII characters are
percent-encoded as a browser would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

__all__ = ["StreamOptions", "parse_kodiprop", "parse_vlcopt", "split_kodi_url"]

# RFC 9110 token: the characters a header name may have.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# Anything a header value must not contain once it is ASCII: C0 controls except HTAB, DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# Kodi ``|`` options that configure curl rather than name a request header (Kodi's
# CCurlFile::ParseAndCorrectUrl): they are not sent, so they are not kept.
_KODI_NON_HEADERS = frozenset(
    {
        "acceptencoding",
        "active-remote",
        "auth",
        "connection-timeout",
        "customrequest",
        "encoding",
        "failonerror",
        "noshout",
        "postdata",
        "redirect-limit",
        "seekable",
        "sslcipherlist",
        "verifypeer",
    }
)

# ``#EXTVLCOPT`` keys that map to a request header; other VLC options are not ours.
_VLC_HEADERS = {
    "http-user-agent": "User-Agent",
    "http-referrer": "Referer",
    "http-referer": "Referer",
    "http-origin": "Origin",
    "http-cookie": "Cookie",
}

# ``#KODIPROP`` keys whose value is a Kodi-style ``Name=value&...`` header list.
_KODIPROP_HEADER_KEYS = frozenset(
    {"inputstream.adaptive.stream_headers", "inputstream.adaptive.manifest_headers"}
)


def _clean_value(value: str | None, *, url: bool = False) -> str | None:
    """Return ``value`` stripped, or None when empty or unsafe to send as a header value.

    ``url=True`` (for ``Referer``) percent-encodes non-ASCII characters instead of
    dropping the value, the way a browser turns an IRI into a URI.
    """
    if value is None:
        return None
    value = value.strip()
    if not value or _CONTROL.search(value):
        return None
    if not value.isascii():
        if not url:
            return None
        value = quote(value, safe="".join(chr(c) for c in range(0x21, 0x7F)))
    return value


def _canonical(name: str) -> str | None:
    """Which field a header name belongs to: ``"user_agent"``, ``"referer"`` or None."""
    low = name.lower()
    if low == "user-agent":
        return "user_agent"
    if low in ("referer", "referrer"):
        return "referer"
    return None


@dataclass(frozen=True)
class StreamOptions:
    """HTTP request options a playlist gives one stream (pirate panels often require them).

    Construction normalises the values, so every instance is safe to send: values are
    stripped; empty values and values with CR/LF/control characters are dropped (header
    injection); ``User-Agent`` / ``Referer`` / ``Referrer`` given in ``headers`` move to
    their own fields (unless the field is already set); header names that are not valid
    HTTP tokens are dropped; a header name given twice keeps its last value
    (names compared case-insensitively).

    Attributes
    ----------
    user_agent : str or None
        ``User-Agent`` to send, None for the client's default.
    referer : str or None
        ``Referer`` to send (the playlist dialects spell it both ways).
    headers : tuple of (str, str)
        Other request headers, e.g. ``Origin``, ``Cookie``, in playlist order.
    """

    user_agent: str | None = None
    referer: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        user_agent = _clean_value(self.user_agent)
        referer = _clean_value(self.referer, url=True)
        extra: dict[str, tuple[str, str]] = {}
        for name, raw in self.headers:
            name = name.strip()
            value = _clean_value(raw)
            if not _TOKEN.match(name):
                continue
            field = _canonical(name)
            if field == "user_agent":
                user_agent = user_agent or value
            elif field == "referer":
                referer = referer or _clean_value(raw, url=True)
            elif value is not None:
                extra.pop(name.lower(), None)  # re-insert: the header sits where it was last given
                extra[name.lower()] = (name, value)
        object.__setattr__(self, "user_agent", user_agent)
        object.__setattr__(self, "referer", referer)
        object.__setattr__(self, "headers", tuple(extra.values()))

    def __bool__(self) -> bool:
        """True when there is anything to send."""
        return bool(self.user_agent or self.referer or self.headers)

    def merged(self, other: StreamOptions) -> StreamOptions:
        """Combine with the options of a more specific source.

        Parameters
        ----------
        other : StreamOptions
            The more specific options (e.g. the Kodi suffix of the URL over the
            ``#EXTVLCOPT`` lines, those over playlist-wide ones).

        Returns
        -------
        StreamOptions
            ``other``'s non-empty ``user_agent`` / ``referer`` win; headers are the union,
            ``other``'s value replacing one of the same name (case-insensitive).
        """
        if not other:
            return self
        if not self:
            return other
        combined: dict[str, tuple[str, str]] = {n.lower(): (n, v) for n, v in self.headers}
        for name, value in other.headers:
            combined.pop(name.lower(), None)
            combined[name.lower()] = (name, value)
        return StreamOptions(
            user_agent=other.user_agent or self.user_agent,
            referer=other.referer or self.referer,
            headers=tuple(combined.values()),
        )

    def request_headers(self) -> dict[str, str]:
        """The headers to add to the request, as a dict for ``httpx``.

        Returns
        -------
        dict of str to str
            ``User-Agent`` and ``Referer`` when set, then the other headers; empty when
            the playlist asked for nothing (the client's defaults apply).
        """
        out: dict[str, str] = {}
        if self.user_agent:
            out["User-Agent"] = self.user_agent
        if self.referer:
            out["Referer"] = self.referer
        for name, value in self.headers:
            out[name] = value
        return out


def _parse_header_list(text: str) -> StreamOptions:
    """Parse Kodi's ``Name=value&Name2=value2`` (values percent-encoded) into options.

    Pairs without ``=`` and Kodi's curl settings (``verifypeer``, ``seekable``...) are
    skipped. ``+`` is kept literally, not read as a space: raw, unencoded User-Agent
    strings in the wild contain ``+`` far more often than encoders use it for spaces.
    """
    headers: list[tuple[str, str]] = []
    for pair in text.split("&"):
        name, sep, value = pair.partition("=")
        name = unquote(name).strip()
        if not sep or not name or name.lower() in _KODI_NON_HEADERS:
            continue
        headers.append((name, unquote(value)))
    return StreamOptions(headers=tuple(headers))


def split_kodi_url(url: str) -> tuple[str, StreamOptions]:
    """Split a Kodi-style ``URL|User-Agent=VLC%2F3.0&Referer=http://x/`` into URL and options.

    Parameters
    ----------
    url : str
        The URL line of a playlist, possibly with a Kodi ``|`` suffix.

    Returns
    -------
    url : str
        The URL before the first ``|``, whitespace stripped (Kodi splits at the first
        ``|`` too; a ``|`` inside a real URL must be percent-encoded).
    options : StreamOptions
        The headers of the suffix: values percent-decoded, names matched
        case-insensitively (``user-agent`` is ``User-Agent``); ``StreamOptions()`` when
        there is no suffix.
    """
    url = url.strip()
    base, sep, suffix = url.partition("|")
    if not sep:
        return url, StreamOptions()
    return base.strip(), _parse_header_list(suffix)


def _option_value(line: str, prefix: str) -> tuple[str, str] | None:
    """``(key lower-cased, value)`` of a ``#PREFIX:key=value`` line, None if not one."""
    text = line.strip()
    if text[: len(prefix)].upper() != prefix:
        return None
    key, sep, value = text[len(prefix) :].partition("=")
    if not sep:
        return None
    return key.strip().lower(), value.strip()


def parse_vlcopt(line: str) -> StreamOptions | None:
    """Read an ``#EXTVLCOPT:`` line that sets a request header.

    Parameters
    ----------
    line : str
        One playlist line, e.g. ``#EXTVLCOPT:http-user-agent=Mozilla/5.0``.

    Returns
    -------
    StreamOptions or None
        The option for ``http-user-agent``, ``http-referrer`` / ``http-referer``,
        ``http-origin`` or ``http-cookie`` (values taken literally, as VLC does, except
        that one pair of enclosing double quotes is removed: playlists write
        ``http-user-agent="..."`` and no real User-Agent starts with a quote). None for any
        other line or EXTVLCOPT key (``network-caching``, ``http-reconnect``...), which
        do not change the request.
    """
    parsed = _option_value(line, "#EXTVLCOPT:")
    if parsed is None:
        return None
    key, value = parsed
    header = _VLC_HEADERS.get(key.lstrip(":"))
    if header is None:
        return None
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return StreamOptions(headers=((header, value),))


def parse_kodiprop(line: str) -> StreamOptions | None:
    """Read a ``#KODIPROP:inputstream.adaptive.stream_headers=...`` line.

    Parameters
    ----------
    line : str
        One playlist line, e.g.
        ``#KODIPROP:inputstream.adaptive.stream_headers=User-Agent=VLC&Referer=http://x/``.

    Returns
    -------
    StreamOptions or None
        The headers (same ``Name=value&...`` percent-encoded syntax as the Kodi URL
        suffix) of ``stream_headers`` or ``manifest_headers``; None for other KODIPROP
        keys (``inputstream``, licence keys...) and other lines.
    """
    parsed = _option_value(line, "#KODIPROP:")
    if parsed is None or parsed[0] not in _KODIPROP_HEADER_KEYS:
        return None
    return _parse_header_list(parsed[1])
