"""What the catalog hands out: frozen records of channels, feeds and assets.

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

from .catalog_schema import AssetRow, ChannelRow, DistributorRow, FeedRow
from .distributors import Distributor

__all__ = [
    "Asset",
    "CatalogError",
    "Channel",
    "Feed",
    "as_utc",
    "check_datetime",
    "check_source",
    "check_text",
    "to_asset",
    "to_channel",
    "to_distributor",
    "to_feed",
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
