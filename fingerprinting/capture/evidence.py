"""What a capture saw, recorded as it happens, so a takedown can stand after the URL is gone.

The record is sealed: it keeps URLs with their credentials (a court may need to see exactly
what was requested). Anything shown to users goes through :meth:`Evidence.public`, which
masks every credential any URL of the capture carried (see :mod:`.redact`).

By default only hashes of what was received are kept. A capture made for evidence
(``Evidence(keep_bytes=N)``, from :attr:`CapturePlan.keep_bytes`) also retains the bytes
themselves: every playlist body in full, and media byte ranges in the order they arrive
until ``N`` bytes of media are held (the range that crosses the cap is kept truncated,
later ones not at all). Each record says what was kept (``PlaylistSnapshot.kept``,
``ByteRange.kept_bytes`` and ``kept_sha256``), and :meth:`Evidence.kept_playlists` and
:meth:`Evidence.kept_ranges` give the bytes. Live reference ingestion keeps nothing: it
runs around the clock and must not hold media in memory.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import UTC, datetime

from .redact import MASK, Redactor

__all__ = ["ByteRange", "Evidence", "Hop", "PlaylistSnapshot", "utc_now"]

#: Header names whose values are credentials, masked in the public record.
_SECRET_HEADER = re.compile(r"cookie|authori[sz]ation|token|secret|api[-_]?key|session", re.I)
#: Playlist text kept in the record (characters); the hash always covers the whole body.
SNAPSHOT_CHARS = 256 * 1024


def utc_now() -> str:
    """The current time in UTC, ISO 8601 with milliseconds and ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Hop:
    """One HTTP request and its response (redirects are hops of their own).

    ``resolved`` are all addresses the host name gave (each checked), ``address`` the one we
    connected to, ``local_address`` our side of the connection (the egress as seen from us),
    ``tls_certificate_sha256`` the SHA-256 of the server's DER certificate for https.
    ``bytes`` and ``sha256`` cover the body as received (``None`` when not read).
    """

    url: str
    method: str
    started_utc: str
    resolved: list[str] = field(default_factory=list)
    address: str | None = None
    local_address: str | None = None
    status: int | None = None
    http_version: str | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    request_headers: list[tuple[str, str]] = field(default_factory=list)
    tls_version: str | None = None
    tls_certificate_sha256: str | None = None
    redirect_to: str | None = None
    elapsed_seconds: float | None = None
    bytes: int | None = None
    sha256: str | None = None
    error: str | None = None


@dataclass
class PlaylistSnapshot:
    """A playlist body as fetched (live playlists are snapshotted at every reload).

    ``text`` is capped (:data:`SNAPSHOT_CHARS`, ``truncated`` says so); ``kept``: the
    capture retained the whole body as received (see :meth:`Evidence.kept_playlists`).
    """

    url: str
    fetched_utc: str
    bytes: int
    sha256: str
    text: str
    truncated: bool
    kept: bool = False


@dataclass
class ByteRange:
    """Bytes handed to the decoder: a segment, an init section, or a stretch of a stream.

    ``offset`` and ``length`` are bytes within the response body of ``url`` (after AES
    decryption when ``decrypted``); ``sha256`` is of exactly those bytes.
    ``kept_bytes``: how many of them, from the start, the capture retained (``length``:
    all, fewer: truncated at the evidence cap, ``0``: not kept); ``kept_sha256`` is the
    SHA-256 of the retained bytes (``None`` when nothing was kept).
    """

    url: str
    role: str
    offset: int
    length: int
    sha256: str
    fed_utc: str
    media_sequence: int | None = None
    duration_seconds: float | None = None
    program_date_time: str | None = None
    discontinuity: bool = False
    decrypted: bool = False
    kept_bytes: int = 0
    kept_sha256: str | None = None


@dataclass
class Evidence:
    """The sealed record of one capture. Append-only while the capture runs (thread-safe:
    alternate audio renditions are fetched beside the video).

    ``keep_bytes``: media bytes (segments, init sections, streams) the capture retains
    for an evidence bundle, in bytes; ``0`` (the default) keeps only hashes. Playlist
    bodies are retained whole whenever it is positive (they are small and capped by
    :class:`~fingerprinting.capture.hls.HlsLimits`).
    """

    requested_url: str
    started_utc: str = field(default_factory=utc_now)
    final_url: str | None = None
    egress_note: str = ""
    user_agent: str | None = None
    hops: list[Hop] = field(default_factory=list)
    playlists: list[PlaylistSnapshot] = field(default_factory=list)
    ranges: list[ByteRange] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    finished_utc: str | None = None
    first_media_seconds: float | None = None
    elapsed_seconds: float | None = None
    keep_bytes: int = 0
    _playlist_bodies: dict[int, bytes] = field(default_factory=dict, repr=False, compare=False)
    _range_bytes: dict[int, bytes] = field(default_factory=dict, repr=False, compare=False)
    _kept_total: int = field(default=0, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _t0: float = field(default_factory=time.monotonic, repr=False, compare=False)

    def __getstate__(self) -> dict:
        # Crosses processes with the sample (service.capture_process): a lock cannot.
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def add_hop(self, hop: Hop) -> Hop:
        with self._lock:
            self.hops.append(hop)
        return hop

    def add_playlist(self, url: str, body: bytes) -> PlaylistSnapshot:
        """Snapshot a playlist body (the text is capped, the hash is of every byte; the
        body itself is retained when ``keep_bytes`` is positive)."""
        text = body[: SNAPSHOT_CHARS * 4].decode("utf-8", "replace")
        snap = PlaylistSnapshot(
            url=url,
            fetched_utc=utc_now(),
            bytes=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            text=text[:SNAPSHOT_CHARS],
            truncated=len(text) > SNAPSHOT_CHARS or len(body) > SNAPSHOT_CHARS * 4,
            kept=self.keep_bytes > 0,
        )
        with self._lock:
            if snap.kept:
                self._playlist_bodies[len(self.playlists)] = bytes(body)
            self.playlists.append(snap)
        return snap

    def add_range(self, url: str, role: str, data: bytes, offset: int = 0, **info: object) -> None:
        """Record bytes fed to the decoder (hashed here; retained up to ``keep_bytes``)."""
        digest = hashlib.sha256(data).hexdigest()
        self.add_hashed_range(url, role, offset, len(data), digest, kept=data, **info)

    def add_hashed_range(
        self,
        url: str,
        role: str,
        offset: int,
        length: int,
        sha256: str,
        *,
        kept: bytes | None = None,
        **info: object,
    ) -> None:
        """Record a byte range hashed by the caller (a stream hashed as it flows).

        ``kept``: leading bytes of the range the caller held on to (at most
        :meth:`keep_room` of them are worth holding); they are retained while the
        ``keep_bytes`` cap allows, and the record says how many were.
        """
        rng = ByteRange(url, role, offset, length, sha256, utc_now(), **info)
        with self._lock:
            room = self.keep_bytes - self._kept_total
            if kept and room > 0:
                take = bytes(kept[: min(room, length)])
                rng.kept_bytes = len(take)
                whole = len(take) == length
                rng.kept_sha256 = sha256 if whole else hashlib.sha256(take).hexdigest()
                self._range_bytes[len(self.ranges)] = take
                self._kept_total += len(take)
            self.ranges.append(rng)

    def keep_room(self) -> int:
        """Media bytes the capture may still retain (``0`` once the cap is reached, or
        when it keeps none), for callers that collect a stream's bytes as it flows."""
        with self._lock:
            return max(0, self.keep_bytes - self._kept_total)

    def kept_playlists(self) -> list[tuple[int, PlaylistSnapshot, bytes]]:
        """``(index in playlists, snapshot, body)`` of every retained playlist, in order."""
        with self._lock:
            return [(i, self.playlists[i], b) for i, b in sorted(self._playlist_bodies.items())]

    def kept_ranges(self) -> list[tuple[int, ByteRange, bytes]]:
        """``(index in ranges, record, bytes)`` of every retained media range (whole or
        truncated, see ``ByteRange.kept_bytes``), in the order they were fed."""
        with self._lock:
            return [(i, self.ranges[i], b) for i, b in sorted(self._range_bytes.items())]

    def mark_first_media(self) -> None:
        """Note when the decoder first produced media (seconds since the capture began)."""
        if self.first_media_seconds is None:
            self.first_media_seconds = round(time.monotonic() - self._t0, 3)

    def note(self, kind: str, **info: object) -> None:
        """An event worth keeping: a stall, a discontinuity, a skipped segment, a reconnect."""
        with self._lock:
            self.events.append({"kind": kind, "utc": utc_now(), **info})

    def urls(self) -> list[str]:
        """Every URL the capture touched (for the redactor)."""
        with self._lock:
            seen = [self.requested_url, self.final_url or ""]
            seen += [h.url for h in self.hops] + [h.redirect_to or "" for h in self.hops]
            seen += [p.url for p in self.playlists] + [r.url for r in self.ranges]
        return [u for u in dict.fromkeys(seen) if u]

    def sealed(self) -> dict:
        """The complete record, credentials included (for the signed evidence bundle)."""
        with self._lock:
            return {
                f.name: _plain(getattr(self, f.name))
                for f in fields(self)
                if not f.name.startswith("_")
            }

    def public(self) -> dict:
        """The record with every credential masked, for logs, API responses and the UI.
        Playlist texts are scrubbed too: a master playlist repeats the tokens of its URL.
        Secret header values (cookies, authorisations, API keys, tokens) are masked
        wherever they appear."""
        redactor = Redactor()
        for url in self.urls():
            redactor.add_url(url)
        data = self.sealed()
        secrets = set()
        for hop in data["hops"]:
            for pairs in (hop["request_headers"], hop["response_headers"]):
                for pair in pairs:
                    if _SECRET_HEADER.search(pair[0]) and len(pair[1]) >= 3:
                        secrets.add(pair[1])
                        pair[1] = MASK
        redactor.add_secrets(secrets)
        return redactor.value(data)


def _plain(value: object) -> object:
    """JSON-ready copy: records to dicts, tuples to lists."""
    if is_dataclass(value):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
