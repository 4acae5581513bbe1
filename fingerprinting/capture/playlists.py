"""Streamed parser for IPTV "extended M3U" channel lists.

Pirate panels hand out playlists of thousands of channels (up to ~50 MB), one entry per
``#EXTINF`` line and URL line::

    #EXTM3U url-tvg="http://epg.example/guide.xml"
    #EXTINF:-1 tvg-id="bbc1.uk" tvg-name="BBC One" group-title="UK | News",BBC One HD
    #EXTVLCOPT:http-user-agent=VLC/3.0
    http://panel.example:8080/live/user/pass/1234.ts|Referer=http://panel.example/

The parser is a line-at-a-time state machine, so a playlist is read incrementally and
never held whole: :func:`iter_m3u_bytes` keeps only the line being read (capped by
``max_line_bytes``, so a hostile server streaming one endless line cannot exhaust
memory) and :func:`iter_m3u` reads any iterable of text lines.

Leniency follows the players (VLC, Kodi's IPTV Simple client, TiviMate): a missing
``#EXTM3U`` header, unknown ``#`` tags, stray text lines, garbage durations and broken
quoting are all tolerated, because a capture that gives up on a playlist a player accepts
misses a pirate. What is refused (:class:`PlaylistError`) is content that is clearly no
playlist at all: an HTML error page, JSON, binary media, or text without a single entry.

This module does not tell an IPTV channel list from an HLS playlist (which also starts
with ``#EXTM3U`` and has ``#EXTINF`` lines, but lists segments or variants of *one*
stream): call :func:`looks_like_hls` on the head of the response first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .errors import CaptureError
from .extinf import parse_extinf, scan_attributes
from .options import StreamOptions, parse_kodiprop, parse_vlcopt, split_kodi_url

__all__ = ["PlaylistEntry", "PlaylistError", "iter_m3u", "iter_m3u_bytes", "looks_like_hls"]


@dataclass(frozen=True)
class PlaylistEntry:
    """One channel (or VOD item) of an IPTV playlist.

    Attributes
    ----------
    url : str
        The stream URL, whitespace and any Kodi ``|`` suffix removed.
    name : str
        Display name: the text after the first comma outside quotes of ``#EXTINF``,
        stripped; ``""`` when there is none.
    duration : float
        ``#EXTINF`` duration in seconds; -1 for live channels, and when the duration is
        missing or not a finite number.
    tvg_id, tvg_name, tvg_logo : str or None
        The ``tvg-id`` / ``tvg-name`` / ``tvg-logo`` attributes; None when absent or empty.
    group_title : str or None
        ``group-title`` attribute, else the latest ``#EXTGRP`` line (which, per the
        extended-M3U convention, opens a group that lasts until the next ``#EXTGRP``).
    catchup : dict of str to str
        The catch-up (replay) attributes present: every ``catchup*`` attribute
        (``catchup``, ``catchup-days``, ``catchup-source``, ``catchup-type``...),
        ``timeshift`` and ``tvg-rec``.
    attributes : dict of str to str
        Every attribute of the ``#EXTINF`` line, keys lower-cased; when a key repeats the
        first value is kept (as the players' attribute searches do).
    options : StreamOptions
        HTTP options for this stream, each source overriding the previous: playlist-wide
        ``#EXTM3U`` attributes (``user-agent``, ``http-user-agent``, ``referer``,
        ``http-referrer``...), the same attributes on the ``#EXTINF`` line, the
        ``#EXTVLCOPT`` / ``#KODIPROP`` lines before the URL, and the Kodi ``|`` suffix.
    line : int
        1-based line number of the URL line, for error messages.
    """

    url: str
    name: str
    duration: float
    tvg_id: str | None
    tvg_name: str | None
    tvg_logo: str | None
    group_title: str | None
    catchup: dict[str, str]
    attributes: dict[str, str]
    options: StreamOptions
    line: int


class PlaylistError(ValueError):
    """The content is not an M3U playlist at all (an HTML page, JSON, binary media...)."""


# A line that can be a stream: ``scheme://...`` (any scheme: unsupported ones are the
# capture's to refuse, with its own reason) or an absolute path.
_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://|/")

_UA_KEYS = ("user-agent", "http-user-agent")
_REFERER_KEYS = ("referer", "referrer", "http-referrer", "http-referer")
_CATCHUP_EXTRA = frozenset({"timeshift", "tvg-rec"})
_NO_OPTIONS = StreamOptions()

# Tags only HLS media/master playlists use (never seen in IPTV channel lists).
_HLS_ONLY_TAGS = (
    "#EXT-X-TARGETDURATION",
    "#EXT-X-MEDIA-SEQUENCE",
    "#EXT-X-DISCONTINUITY-SEQUENCE",
    "#EXT-X-STREAM-INF",
    "#EXT-X-I-FRAME-STREAM-INF",
    "#EXT-X-ENDLIST",
    "#EXT-X-PLAYLIST-TYPE",
    "#EXT-X-MAP",
    "#EXT-X-KEY",
    "#EXT-X-PART-INF",
    "#EXT-X-SERVER-CONTROL",
)


def _attribute_options(attrs: dict[str, str]) -> StreamOptions:
    """User-Agent / Referer given as playlist attributes (TiviMate, OTT Navigator style)."""
    user_agent = next((attrs[k] for k in _UA_KEYS if attrs.get(k)), None)
    referer = next((attrs[k] for k in _REFERER_KEYS if attrs.get(k)), None)
    if user_agent is None and referer is None:
        return _NO_OPTIONS
    return StreamOptions(user_agent=user_agent, referer=referer)


def _describe(text: str) -> str:
    """A short, printable description of unexpected content for an error message."""
    return repr(text[:60]) + ("..." if len(text) > 60 else "")


def _is_binary(text: str) -> bool:
    """True for decoded binary data: control characters, or mostly undecodable bytes."""
    if any(c < " " and c != "\t" for c in text[:512]):
        return True
    return text.count("\ufffd") * 4 > len(text)


class _Parser:
    """Line-at-a-time state machine shared by :func:`iter_m3u` and :func:`iter_m3u_bytes`."""

    def __init__(self) -> None:
        self.started = False  # a non-empty line was seen
        self.header = False  # an #EXTM3U line was seen
        self.entries = 0
        self.first_junk: str | None = None  # first line, when it was neither tag nor URL
        self.playlist_options = _NO_OPTIONS
        self.group: str | None = None  # latest #EXTGRP, sticky
        self.extinf: tuple[float, dict[str, str], str] | None = None  # pending, for next URL
        self.options = _NO_OPTIONS  # pending #EXTVLCOPT / #KODIPROP, for next URL

    def _first_line(self, text: str) -> None:
        """Check the first non-empty line: refuse what is clearly not a playlist."""
        self.started = True
        if text[0] == "#" or _URL_START.match(text):
            return
        if _is_binary(text):
            raise PlaylistError(f"not an M3U playlist: binary data ({_describe(text)})")
        if text[0] == "<":
            raise PlaylistError(f"not an M3U playlist: HTML/XML markup ({_describe(text)})")
        if text[0] in "{[":
            raise PlaylistError(f"not an M3U playlist: JSON ({_describe(text)})")
        # Plain text (a panel's "Invalid user" message, or junk before the entries):
        # tolerated for now; finish() refuses it if no entry follows.
        self.first_junk = text

    def feed(self, raw: str, lineno: int) -> PlaylistEntry | None:
        """Consume one line; return the entry it completes, if any."""
        text = raw.strip()
        if not self.started:
            text = text.lstrip("\ufeff").strip()
            if not text:
                return None
            self._first_line(text)
        elif not text:
            return None
        if text[0] == "#":
            self._tag(text)
            return None
        if not _URL_START.match(text):
            # Stray text (an ad, a wrapped name...): skipped, and it does NOT consume the
            # pending #EXTINF -- dropping a channel over a junk line loses more than the
            # rare mis-attribution risks, and the next #EXTINF replaces the pending one.
            return None
        return self._entry(text, lineno)

    def _tag(self, text: str) -> None:
        tag = text[:11].upper()
        if tag.startswith("#EXTINF:"):
            self.extinf = parse_extinf(text[8:])
        elif tag.startswith("#EXTVLCOPT"):
            opts = parse_vlcopt(text)
            if opts is not None:
                self.options = self.options.merged(opts)
        elif tag.startswith("#KODIPROP"):
            opts = parse_kodiprop(text)
            if opts is not None:
                self.options = self.options.merged(opts)
        elif tag.startswith("#EXTGRP:"):
            self.group = text[8:].strip() or None
        elif tag.startswith("#EXTM3U"):
            # A later #EXTM3U (concatenated playlists) starts over with its own defaults.
            self.header = True
            attrs, _ = scan_attributes(text, 7, stop_at_comma=False)
            self.playlist_options = _attribute_options(attrs)
            self.extinf = None
            self.options = _NO_OPTIONS
        # Anything else (#EXT-X-..., #EXTIMG, plain comments) is skipped.

    def _entry(self, text: str, lineno: int) -> PlaylistEntry:
        url, suffix = split_kodi_url(text)
        if self.extinf is None:
            duration, attrs, name = -1.0, {}, ""
            attr_options = _NO_OPTIONS
        else:
            duration, attrs, name = self.extinf
            attr_options = _attribute_options(attrs)
        options = self.playlist_options.merged(attr_options).merged(self.options).merged(suffix)
        catchup = {k: v for k, v in attrs.items() if k.startswith("catchup") or k in _CATCHUP_EXTRA}
        self.extinf = None
        self.options = _NO_OPTIONS
        self.entries += 1
        return PlaylistEntry(
            url=url,
            name=name,
            duration=duration,
            tvg_id=attrs.get("tvg-id") or None,
            tvg_name=attrs.get("tvg-name") or None,
            tvg_logo=attrs.get("tvg-logo") or None,
            group_title=attrs.get("group-title") or self.group,
            catchup=catchup,
            attributes=attrs,
            options=options,
            line=lineno,
        )

    def finish(self) -> None:
        """At the end of input: refuse text that held no playlist at all."""
        if self.entries or self.header:
            return
        if not self.started:
            raise PlaylistError("not an M3U playlist: the content is empty")
        if self.first_junk is not None:
            raise PlaylistError(
                "not an M3U playlist: no #EXTM3U header and no entries; first line "
                + _describe(self.first_junk)
            )
        raise PlaylistError("not an M3U playlist: no #EXTM3U header and no entries")


def iter_m3u(lines: Iterable[str]) -> Iterator[PlaylistEntry]:
    """Parse an extended M3U playlist given as text lines, one entry at a time.

    Parameters
    ----------
    lines : iterable of str
        One line per item, with or without its line terminator (a text file, or
        ``text.splitlines()``). Line numbers in the entries count these items from 1.

    Yields
    ------
    PlaylistEntry
        Each stream, in playlist order. An ``#EXTINF`` and the ``#EXTVLCOPT`` /
        ``#KODIPROP`` lines around it apply to the next URL line only; a URL without
        ``#EXTINF`` is still an entry (name ``""``, duration -1).

    Raises
    ------
    PlaylistError
        When the first non-empty line is HTML/XML, JSON or binary data (at once), or when
        the input ends with neither an ``#EXTM3U`` header nor a single entry (so a
        header-less list of entries, as players accept, passes).
    """
    parser = _Parser()
    for lineno, text in enumerate(lines, 1):
        entry = parser.feed(text, lineno)
        if entry is not None:
            yield entry
    parser.finish()


_EOL = re.compile(rb"\r\n|\r|\n")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def iter_m3u_bytes(
    chunks: Iterable[bytes], *, max_line_bytes: int = 64 * 1024
) -> Iterator[PlaylistEntry]:
    """Parse an extended M3U playlist from raw bytes as they arrive (e.g. an HTTP body).

    Lines end with ``\\n``, ``\\r\\n`` or ``\\r`` and are split on the bytes: CR and LF
    never occur inside a multi-byte UTF-8 sequence, so each complete line is decoded on
    its own (UTF-8, a leading byte-order mark dropped, invalid bytes -- e.g. a Latin-1
    playlist -- replaced by U+FFFD). Chunk boundaries may fall anywhere, including inside
    a CRLF pair or a character. Memory held is one line (at most ``max_line_bytes``) plus
    the current chunk.

    Parameters
    ----------
    chunks : iterable of bytes
        The body, in chunks of any size (e.g. ``response.iter_bytes()``).
    max_line_bytes : int, optional
        Longest line accepted, in bytes, terminator excluded. Real lines are well under
        a few kB (long ``#EXTINF`` lines with logos and catch-up templates reach ~2 kB);
        the default 64 KiB leaves ample margin while bounding what a server streaming
        one endless line can make us buffer.

    Yields
    ------
    PlaylistEntry
        As :func:`iter_m3u`; ``line`` counts lines of the byte stream from 1.

    Raises
    ------
    CaptureError
        ``reason="too_large"`` as soon as a line passes ``max_line_bytes``, naming its
        line number (before the line is complete: nothing more is buffered).
    PlaylistError
        As :func:`iter_m3u`, and for UTF-16 text (byte-order mark ``FF FE`` / ``FE FF``),
        which panels do not serve and which would otherwise be misread.
    """
    parser = _Parser()
    pending = bytearray()  # the incomplete line carried over from previous chunks
    skip_lf = False  # the previous chunk ended with CR: a leading LF completes a CRLF
    lineno = 0

    def line_entry(line: bytes) -> PlaylistEntry | None:
        if lineno == 1 and line.startswith(_UTF16_BOMS):
            raise PlaylistError(
                "not an M3U playlist: UTF-16 text (byte-order mark "
                f"{line[:2].hex(' ').upper()}); only UTF-8 playlists are read"
            )
        return parser.feed(line.decode("utf-8", "replace"), lineno)

    def too_long() -> CaptureError:
        return CaptureError(
            "too_large",
            f"playlist line {lineno + 1} is longer than {max_line_bytes} bytes",
        )

    for chunk in chunks:
        if not chunk:
            continue
        start = 0
        if skip_lf:
            skip_lf = False
            if chunk[0] == 0x0A:
                start = 1
        for eol in _EOL.finditer(chunk, start):
            piece = chunk[start : eol.start()]
            if pending:
                if len(pending) + len(piece) > max_line_bytes:
                    raise too_long()
                pending += piece
                line = bytes(pending)
                pending.clear()
            else:
                if len(piece) > max_line_bytes:
                    raise too_long()
                line = piece
            lineno += 1
            entry = line_entry(line)
            if entry is not None:
                yield entry
            start = eol.end()
        if start < len(chunk):
            if len(pending) + len(chunk) - start > max_line_bytes:
                raise too_long()
            pending += chunk[start:]
        elif chunk[-1] == 0x0D:
            skip_lf = True
    if pending:
        lineno += 1
        entry = line_entry(bytes(pending))
        if entry is not None:
            yield entry
    parser.finish()


def looks_like_hls(head: str) -> bool:
    """Tell an HLS media/master playlist from an IPTV channel list by its first lines.

    Both start with ``#EXTM3U``; an HLS playlist describes *one* stream (its segments or
    its variants) and must be captured as such, not expanded into "channels".

    Parameters
    ----------
    head : str
        The start of the response (a few kB are plenty; a cut-off last line is fine).

    Returns
    -------
    bool
        True when an ``#EXT-X-`` tag comes before the first entry (``#EXT-X-VERSION``,
        ``#EXT-X-TARGETDURATION``, ``#EXT-X-STREAM-INF``...), when a tag only HLS uses
        (``#EXT-X-TARGETDURATION``, ``#EXT-X-MEDIA-SEQUENCE``, ``#EXT-X-ENDLIST``...)
        appears anywhere in ``head``, or when an ``#EXTINF`` with a positive duration is
        followed by a relative URI (an old-style, tag-less media playlist: channel lists
        always give absolute URLs). False otherwise, including for empty text.
    """
    seen_entry = False
    segment_pending = False  # the last #EXTINF had a positive duration
    for raw in head.splitlines():
        text = raw.strip().lstrip("\ufeff")
        if not text:
            continue
        upper = text.upper()
        if upper.startswith("#EXT-X-"):
            if not seen_entry or upper.startswith(_HLS_ONLY_TAGS):
                return True
        elif upper.startswith("#EXTINF:"):
            seen_entry = True
            duration, _, _ = parse_extinf(text[8:])
            segment_pending = duration > 0
        elif text[0] != "#":
            if segment_pending and not _URL_START.match(text) and " " not in text:
                return True
            seen_entry = True
            segment_pending = False
    return False
