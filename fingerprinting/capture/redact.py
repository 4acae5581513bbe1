"""Keep credentials out of everything a capture shows to people.

Pirate panel URLs carry the subscriber's credentials (Xtream-Codes puts the user name and
password in the path, ``get.php`` in the query, CDNs sign URLs with tokens). Reports, logs
and error messages must still say which server and which channel a URL points at, so the
secrets are replaced by :data:`MASK` and everything else is kept as written.

What counts as a secret:

* userinfo: ``http://USER:PASS@host/`` (both parts);
* Xtream-Codes paths: ``/live/U/P/ID.ext``, ``/movie/U/P/ID.ext``, ``/series/U/P/ID.ext``,
  ``/timeshift/U/P/DURATION/START/ID.ext`` (anywhere in the path, as long as ``ID`` is
  the last segment) and the short form ``/U/P/ID`` (exactly three segments); ``ID`` is
  digits with an optional extension and is kept, it names the channel;
* query (and ``#fragment``) values whose parameter name is in :data:`SECRET_PARAMS`, or
  contains one of :data:`SECRET_PARAM_PARTS` (case-insensitive, percent-decoded);
* opaque tokens: a whole path segment or parameter value of at least 24 characters of
  ``[A-Za-z0-9_=-]`` mixing letters and digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, unquote_plus

__all__ = [
    "MASK",
    "SECRET_PARAMS",
    "SECRET_PARAM_PARTS",
    "Redactor",
    "redact_text",
    "redact_url",
    "url_secrets",
]

#: What a secret is replaced with.
MASK = "***"

#: Query parameter names whose value is a secret (compared lower-cased). ``e``/``exp``/
#: ``expires`` are deliberately absent: expiry times are not secret and help an analyst
#: tell a stale link from a refused one.
SECRET_PARAMS = frozenset(
    {
        # credentials (Xtream get.php / player_api.php, generic panels)
        "username", "user", "login", "uid", "password", "pass", "passwd", "pwd",
        # Stalker/MAG portals: the set-top box MAC address is the subscription
        "mac",
        # tokens and signatures (Wowza, Akamai, nginx secure_link, CloudFront, generic)
        "token", "auth", "key", "api_key", "apikey", "secret", "sig", "signature", "hash",
        "md5", "session", "sessionid", "session_id", "sid", "st", "wmsauthsign", "hdnts",
        "hdnea", "policy", "key-pair-id", "jwt",
    }
)  # fmt: skip

#: Substrings that make any parameter name secret (``access_token``, ``x-auth``,
#: ``wowzatokenhash``, ``client_secret``, ``new_password``…).
SECRET_PARAM_PARTS = ("token", "auth", "secret", "passw")

# RFC 3986 appendix B: matches every string, so parsing never fails.
_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*:)?(?P<auth>//[^/?#]*)?(?P<path>[^?#]*)"
    r"(?P<query>\?[^#]*)?(?P<frag>#.*)?",
    re.DOTALL,
)
_HAS_AUTHORITY = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*:)?//")
_STREAM_ID = re.compile(r"\d+(\.[A-Za-z0-9]{1,5})?")
_OPAQUE = re.compile(r"(?=[^/]*[A-Za-z])(?=[^/]*\d)[A-Za-z0-9_=-]{24,}")
_XTREAM = {"live": 3, "movie": 3, "series": 3, "timeshift": 5}  # keyword -> segments to ID
# A URL inside free text; trailing punctuation is split off before redacting it.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s<>\"'`]+")
_TRAILING = ".,;:!?)]}"


def _is_secret_name(name: str) -> bool:
    name = unquote_plus(name).strip().lower()
    return name in SECRET_PARAMS or any(part in name for part in SECRET_PARAM_PARTS)


def _path(path: str, found: list[str]) -> str:
    segs = path.split("/")
    secret: set[int] = set()
    last = len(segs) - 1
    if _STREAM_ID.fullmatch(segs[last]):
        for i, seg in enumerate(segs):
            to_id = _XTREAM.get(seg.lower())
            if to_id is not None and i + to_id == last:
                secret.update((i + 1, i + 2))
        if last == 3 and segs[0] == "" and all(segs[1:3]):  # short form /U/P/ID
            secret.update((1, 2))
    secret.update(i for i, seg in enumerate(segs) if _OPAQUE.fullmatch(seg))
    for i in sorted(secret):
        if segs[i]:
            found.append(segs[i])
            segs[i] = MASK
    return "/".join(segs)


def _params(query: str, found: list[str]) -> str:
    out = []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if not eq and _OPAQUE.fullmatch(name):  # ?<token>
            found.append(name)
            part = MASK
        elif value and (_is_secret_name(name) or _OPAQUE.fullmatch(value)):
            found.append(value)
            part = f"{name}={MASK}"
        out.append(part)
    return "&".join(out)


def _scan(url: str) -> tuple[str, list[str]]:
    """Redact ``url``; also return the raw secret substrings that were masked."""
    found: list[str] = []
    if not _HAS_AUTHORITY.match(url):  # "user:pass@host/…", "host:8080/live/…", "/live/…"
        redacted, found = _scan("//" + url)
        return redacted[2:], found
    m = _URL.fullmatch(url)
    if m is None:  # cannot happen (the pattern matches every string); fail closed anyway
        return MASK, []
    scheme, auth, path, query, frag = m.group("scheme", "auth", "path", "query", "frag")
    out = [scheme or ""]
    if auth:
        userinfo, at, hostport = auth[2:].rpartition("@")
        if at:
            user, colon, password = userinfo.partition(":")
            found += [s for s in (user, password) if s]
            userinfo = (MASK if user else "") + colon + (MASK if password else "")
        out.append("//" + userinfo + at + hostport)
    out.append(_path(path, found))
    if query is not None:
        out.append("?" + _params(query[1:], found))
    if frag is not None:
        out.append("#" + (_params(frag[1:], found) if "=" in frag else frag[1:]))
    return "".join(out), found


def redact_url(url: str) -> str:
    """The URL with every secret replaced by :data:`MASK`, its structure kept.

    Scheme, host, port, the shape of the path, parameter names and their order, and the
    Xtream stream id with its extension all survive, so an analyst still sees which
    server and which channel the URL is about.

    Parameters
    ----------
    url : str
        Any string; garbage is handled too (it only gets its obvious secrets masked).

    Returns
    -------
    str
        The redacted URL. Never raises: if redaction itself failed, the whole URL is
        masked rather than shown.
    """
    try:
        return _scan(url)[0]
    except Exception:  # fail closed: showing nothing beats leaking a password
        return MASK


def url_secrets(url: str) -> list[str]:
    """The secret substrings of ``url``, so a log filter can scrub them from any text.

    Both the raw form and the percent-decoded forms (``%40`` -> ``@``, and ``+`` -> space
    for query values) are returned, because either may show up in a message. Secrets
    shorter than 3 characters are left out: scrubbing ``"a"`` from every message would
    destroy the messages (:func:`redact_url` still masks them inside the URL).

    Returns
    -------
    list of str
        Unique secrets, longest first.
    """
    try:
        found = _scan(url)[1]
    except Exception:  # a log filter must never break a capture
        return []
    forms = {form for raw in found for form in (raw, unquote(raw), unquote_plus(raw))}
    return sorted((s for s in forms if len(s) >= 3 and s != MASK), key=lambda s: (-len(s), s))


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret in ``text`` by :data:`MASK`.

    One pass with the longest secrets tried first, so a secret that contains another is
    masked whole rather than leaving its remainder visible.
    """
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not ordered:
        return text
    return re.sub("|".join(map(re.escape, ordered)), MASK, text)


def _redact_match(match: re.Match[str]) -> str:
    url = match.group(0)
    stripped = url.rstrip(_TRAILING)
    return redact_url(stripped) + url[len(stripped) :]


class Redactor:
    """Collects the secrets of every URL a capture touches and scrubs what it reports.

    A capture follows redirects and playlists, so secrets come from many URLs and turn up
    in exception texts, headers and evidence dicts. Each URL is registered with
    :meth:`add_url`; :meth:`text` and :meth:`value` then scrub anything before it is
    shown. URLs inside the text are redacted too, even ones never registered.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add_url(self, url: str) -> None:
        """Remember the secrets of ``url`` (never raises)."""
        self._secrets.update(url_secrets(url))

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Remember raw secret values (header values), ignoring ones under 3 characters."""
        self._secrets.update(x for x in secrets if len(x) >= 3)

    def text(self, text: str) -> str:
        """``text`` with embedded URLs redacted and every known secret masked."""
        return redact_text(_URL_IN_TEXT.sub(_redact_match, text), self._secrets)

    def value(self, obj: object) -> object:
        """A scrubbed deep copy of ``obj``.

        Dicts (keys too), lists, tuples, sets and strings are copied with every string
        passed through :meth:`text`; any other object is returned as is.
        """
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.value(k): self.value(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.value(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self.value(v) for v in obj)
        if isinstance(obj, set | frozenset):
            return type(obj)(self.value(v) for v in obj)
        return obj
