"""What the catalog hands out: frozen records of channels, feeds, their ingestion health
and assets.

Feed URLs may carry credentials (Xtream user and password, tokens): every printed form of
a record masks them (:func:`fingerprinting.capture.redact_url`); the raw URL stays on the
record for ingestion.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from fingerprinting.capture import redact_url

from .catalog_schema import (
    FEED_STATES,
    AssetRow,
    ChannelRow,
    DistributorRow,
    FeedRow,
    FeedStatusRow,
)
from .distributors import Distributor

__all__ = [
    "FEED_STATES",
    "Asset",
    "CatalogError",
    "Channel",
    "Feed",
    "FeedStatus",
    "as_utc",
    "check_datetime",
    "check_source",
    "check_text",
    "to_asset",
    "to_channel",
    "to_distributor",
    "to_feed",
    "to_feed_status",
]


@dataclass(frozen=True)
class Channel:
    """A channel as the rest of Vigie sees it."""

    id: str
    name: str
    owner: str | None
    simulcast_group: str | None
    created_at: datetime

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "simulcast_group": self.simulcast_group or self.id,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, repr=False)
class Feed:
    """A reference feed of a channel.

    ``url`` is the raw URL, credentials included, for ingestion only: anything shown to
    people (``repr``, :meth:`as_dict`, the CLI) carries :attr:`redacted_url` instead.
    ``retention_hours`` is how long its recordings and postings are kept, in hours.
    """

    id: int
    channel_id: str
    url: str
    enabled: bool
    retention_hours: float
    label: str | None
    created_at: datetime

    @property
    def redacted_url(self) -> str:
        """The URL with its credentials masked (:func:`fingerprinting.capture.redact_url`)."""
        return redact_url(self.url)

    def __repr__(self) -> str:
        return (
            f"Feed(id={self.id}, channel_id={self.channel_id!r}, url={self.redacted_url!r}, "
            f"enabled={self.enabled}, retention_hours={self.retention_hours}, "
            f"label={self.label!r})"
        )

    def as_dict(self) -> dict:
        """JSON-ready form, URL redacted."""
        return {
            "id": self.id,
            "channel_id": self.channel_id,
            "url": self.redacted_url,
            "enabled": self.enabled,
            "retention_hours": self.retention_hours,
            "label": self.label,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, kw_only=True)
class FeedStatus:
    """Health of one feed's live ingestion, as its ingester reports it (keyword-only).

    Attributes
    ----------
    feed_id : int
        The feed (:attr:`Feed.id`).
    state : str
        One of :data:`FEED_STATES`: ``starting``, ``live``, ``reconnecting``, ``stopped``.
    ingester : str
        Who owns the feed, e.g. ``"host:pid"``: tells two ingesters of one feed apart.
    last_posting_utc : datetime or None
        UTC end of the media most recently indexed (``None``: nothing indexed yet).
    lag_seconds : float or None
        Wall clock minus ``last_posting_utc`` when that media was indexed, in seconds: how
        far behind live the index is (a restream can only be matched once indexed).
    chunks, errors, reconnects : int
        Chunks indexed, failures and reconnections since the ingester started the feed.
    last_error_reason, last_error_message : str or None
        Short machine reason (``"timeout"``) and human message of the latest failure; the
        message is redacted by the caller (feed URLs carry credentials).
    last_error_utc : datetime or None
        When that failure happened, UTC.
    updated_utc : datetime
        When the ingester made this report, UTC (its own clock): an old value means the
        ingester is gone or stuck (:meth:`age_seconds`).
    """

    feed_id: int
    state: str
    ingester: str
    last_posting_utc: datetime | None = None
    lag_seconds: float | None = None
    chunks: int = 0
    errors: int = 0
    reconnects: int = 0
    last_error_reason: str | None = None
    last_error_message: str | None = None
    last_error_utc: datetime | None = None
    updated_utc: datetime

    def age_seconds(self, now: datetime | None = None) -> float:
        """Seconds from :attr:`updated_utc` to ``now`` (default: the current UTC time;
        naive values are UTC), to tell a stale report from a fresh one."""
        when = datetime.now(UTC) if now is None else as_utc(now)
        return (when - as_utc(self.updated_utc)).total_seconds()

    def as_dict(self) -> dict:
        """JSON-ready form, times as ISO 8601 strings (``None`` stays ``None``)."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "feed_id": self.feed_id,
            "state": self.state,
            "ingester": self.ingester,
            "last_posting_utc": iso(self.last_posting_utc),
            "lag_seconds": self.lag_seconds,
            "chunks": self.chunks,
            "errors": self.errors,
            "reconnects": self.reconnects,
            "last_error_reason": self.last_error_reason,
            "last_error_message": self.last_error_message,
            "last_error_utc": iso(self.last_error_utc),
            "updated_utc": iso(self.updated_utc),
        }


@dataclass(frozen=True, repr=False)
class Asset:
    """A VOD/catch-up recording of a channel; ``source`` is a path or URL (raw, for
    indexing; :meth:`as_dict` and ``repr`` redact it, since URLs may carry tokens)."""

    id: int
    channel_id: str
    title: str
    source: str
    created_at: datetime

    def __repr__(self) -> str:
        return (
            f"Asset(id={self.id}, channel_id={self.channel_id!r}, title={self.title!r}, "
            f"source={redact_url(self.source)!r})"
        )

    def as_dict(self) -> dict:
        """JSON-ready form, source redacted."""
        return {
            "id": self.id,
            "channel_id": self.channel_id,
            "title": self.title,
            "source": redact_url(self.source),
            "created_at": self.created_at.isoformat(),
        }


def as_utc(value: datetime) -> datetime:
    """Aware UTC datetime; naive values (SQLite returns those) are taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_channel(row: ChannelRow) -> Channel:
    return Channel(row.id, row.name, row.owner, row.simulcast_group, as_utc(row.created_at))


def to_feed(row: FeedRow) -> Feed:
    return Feed(
        row.id,
        row.channel_id,
        row.url,
        bool(row.enabled),
        float(row.retention_hours),
        row.label,
        as_utc(row.created_at),
    )


def to_feed_status(row: FeedStatusRow) -> FeedStatus:
    def utc(value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None

    return FeedStatus(
        feed_id=row.feed_id,
        state=row.state,
        ingester=row.ingester,
        last_posting_utc=utc(row.last_posting_utc),
        lag_seconds=row.lag_seconds,
        chunks=row.chunks,
        errors=row.errors,
        reconnects=row.reconnects,
        last_error_reason=row.last_error_reason,
        last_error_message=row.last_error_message,
        last_error_utc=utc(row.last_error_utc),
        updated_utc=as_utc(row.updated_utc),
    )


def to_asset(row: AssetRow) -> Asset:
    return Asset(row.id, row.channel_id, row.title, row.source, as_utc(row.created_at))


def to_distributor(row: DistributorRow) -> Distributor:
    return Distributor(
        id=row.id,
        channel_id=row.channel_id,
        licensee=row.licensee,
        territory=row.territory,
        host_pattern=row.host_pattern,
        cidr=row.cidr,
        asn=row.asn,
        valid_from=as_utc(row.valid_from) if row.valid_from else None,
        valid_to=as_utc(row.valid_to) if row.valid_to else None,
        created_at=as_utc(row.created_at),
    )


class CatalogError(Exception):
    """A catalog operation was refused (bad id, duplicate, unknown channel)."""


def check_source(value: str, what: str) -> str:
    """An http(s) URL with a host, or an absolute local path; raises :class:`CatalogError`.

    Error messages show the value redacted: feed URLs carry subscriber credentials.
    """
    text = value.strip() if isinstance(value, str) else ""
    shown = redact_url(text)
    if not text or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
        raise CatalogError(
            f"{what} {shown!r} must be an http(s) URL or an absolute path, without spaces"
        )
    if "://" in text:
        try:
            parts = urlsplit(text)
            host, _port = parts.hostname, parts.port  # .port raises on a bad port
        except ValueError:
            raise CatalogError(f"{what} {shown!r} is not a valid URL") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise CatalogError(f"{what} {shown!r} must use http or https, not {parts.scheme!r}")
        if not host:
            raise CatalogError(f"{what} {shown!r} has no host")
        return text
    if not Path(text).is_absolute():
        raise CatalogError(f"{what} {shown!r} must be an http(s) URL or an absolute path")
    return text


def check_datetime(value: datetime | None, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise CatalogError(f"{what} {value!r} must be a datetime")
    return as_utc(value)


def check_text(value: str | None, what: str, limit: int = 200) -> str | None:
    """Stripped text, ``None`` if empty; raises :class:`CatalogError` above ``limit`` chars."""
    if value is None:
        return None
    text = value.strip()
    if len(text) > limit:
        raise CatalogError(f"{what} {text[:40]!r}... is longer than {limit} characters")
    return text or None
