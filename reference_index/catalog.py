"""Channel catalog: who owns which channel, and which channels are one simulcast group.

Per channel, the catalog also holds its reference feeds (live streams Vigie records and
indexes, with how long to keep them), its VOD/catch-up assets, and its authorized
distributors (see :mod:`reference_index.distributors`), so that a match on a licensee's
stream is reported as authorized rather than pirate.

SQLAlchemy 2 over SQLite (WAL, busy timeout, foreign keys enforced) by default, PostgreSQL
by URL; the schema is created and upgraded by Alembic (``reference_index/migrations``) when
the catalog opens.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import create_engine, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fingerprinting.capture import redact_url

from . import catalog_health
from .catalog_records import (
    Asset,
    CatalogError,
    Channel,
    Feed,
    FeedStatus,
    check_datetime,
    check_source,
    check_text,
    to_asset,
    to_channel,
    to_distributor,
    to_feed,
)
from .catalog_schema import (
    AssetRow,
    Base,
    ChannelRow,
    DistributorRow,
    FeedRow,
    FeedStatusRow,
    migrate,
    sqlite_pragmas,
    sqlite_url,
)
from .distributors import ASN_MAX, Distributor, normalise_cidr, normalise_host_pattern

__all__ = [
    "MAX_RETENTION_HOURS",
    "Base",
    "Asset",
    "AssetRow",
    "Catalog",
    "CatalogError",
    "Channel",
    "ChannelRow",
    "Distributor",
    "DistributorRow",
    "Feed",
    "FeedRow",
    "FeedStatus",
    "FeedStatusRow",
    "sqlite_url",
]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: Longest a reference feed's recordings may be kept, in hours (one year).
MAX_RETENTION_HOURS = 24.0 * 365
_TERRITORY_CODE = re.compile(r"^[A-Za-z]{2}(?:-[A-Za-z0-9]{1,3})?$")


class Catalog:
    """Channels of the rights holders.

    Parameters
    ----------
    url : str
        SQLAlchemy database URL (``sqlite:///...`` or ``postgresql+psycopg://...``).
    """

    def __init__(self, url: str):
        # pre-ping: a pooled PostgreSQL connection may have been closed by a server restart
        self.engine = create_engine(url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            sqlite_pragmas(self.engine)
        migrate(self.engine)

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    def add_channel(
        self,
        channel_id: str,
        name: str,
        owner: str | None = None,
        simulcast_group: str | None = None,
    ) -> Channel:
        """Register a channel; raises :class:`CatalogError` on a bad or duplicate id."""
        if not _ID.match(channel_id):
            raise CatalogError(
                f"channel id {channel_id!r} must be 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if not name.strip():
            raise CatalogError("channel name must not be empty")
        # The column widths: PostgreSQL refuses longer values (SQLite would keep them).
        check_text(name, "channel name")
        check_text(owner, "owner")
        check_text(simulcast_group, "simulcast group", 64)
        row = ChannelRow(
            id=channel_id,
            name=name.strip(),
            owner=owner,
            simulcast_group=simulcast_group,
            created_at=datetime.now(UTC),
        )
        try:
            with Session(self.engine) as s, s.begin():
                s.add(row)
        except IntegrityError:
            raise CatalogError(f"channel {channel_id!r} already exists") from None
        return self.get(channel_id)  # type: ignore[return-value]

    def get(self, channel_id: str) -> Channel | None:
        """The channel with this id, or ``None``."""
        with Session(self.engine) as s:
            row = s.get(ChannelRow, channel_id)
            return to_channel(row) if row else None

    def require(self, channel_id: str) -> Channel:
        """The channel with this id; raises :class:`CatalogError` if unknown."""
        ch = self.get(channel_id)
        if ch is None:
            raise CatalogError(f"no channel {channel_id!r}; add it with `vigie channels add`")
        return ch

    def channels(self) -> list[Channel]:
        """All channels, by id."""
        with Session(self.engine) as s:
            return [to_channel(r) for r in s.scalars(select(ChannelRow).order_by(ChannelRow.id))]

    def remove(self, channel_id: str) -> None:
        """Delete a channel from the catalog with its feeds, assets and distributors (the
        database cascades); its postings in the index are removed by the caller."""
        with Session(self.engine) as s, s.begin():
            row = s.get(ChannelRow, channel_id)
            if row is None:
                raise CatalogError(f"no channel {channel_id!r}")
            s.delete(row)

    # -- simulcast groups -------------------------------------------------------------------
    def group_of(self, channel_id: str) -> str:
        """The simulcast group of a channel: its ``simulcast_group``, or its own id.

        HD/SD and regional variants of one channel share a group so that a match on any of
        them is reported once, for the group.
        """
        ch = self.require(channel_id)
        return ch.simulcast_group or ch.id

    def group_members(self, group: str) -> list[Channel]:
        """Channels of a simulcast group, by id (empty for an unknown group).

        A channel without a ``simulcast_group`` is the only member of the group named by
        its id, unless other channels name that id as their group.
        """
        with Session(self.engine) as s:
            query = (
                select(ChannelRow)
                .where(
                    or_(
                        ChannelRow.simulcast_group == group,
                        (ChannelRow.simulcast_group.is_(None)) & (ChannelRow.id == group),
                    )
                )
                .order_by(ChannelRow.id)
            )
            return [to_channel(r) for r in s.scalars(query)]

    def _channel_row(self, s: Session, channel_id: str) -> ChannelRow:
        row = s.get(ChannelRow, channel_id)
        if row is None:
            raise CatalogError(f"no channel {channel_id!r}; add it with `vigie channels add`")
        return row

    # -- reference feeds ---------------------------------------------------------------------
    def add_feed(
        self,
        channel_id: str,
        url: str,
        *,
        retention_hours: float = 48.0,
        label: str | None = None,
        enabled: bool = True,
    ) -> Feed:
        """Register a live reference stream of a channel.

        Parameters
        ----------
        channel_id : str
            An existing channel.
        url : str
            ``http``/``https`` URL (credentials allowed: stored as given, never shown
            unredacted) or an absolute local path (a capture card's named pipe, a file).
        retention_hours : float
            How long recordings and postings of this feed are kept, in hours: more than 0,
            at most :data:`MAX_RETENTION_HOURS` (a restream lags the live feed by seconds
            to hours, so a rolling window suffices and bounds the index size).
        label : str, optional
            Free text shown in listings (``"TNT multiplex R1"``).
        enabled : bool
            Disabled feeds are kept but not ingested.

        Raises
        ------
        CatalogError
            Unknown channel, bad URL or retention, or the same URL already registered for
            this channel.
        """
        url = check_source(url, "feed URL")
        hours = self._retention(retention_hours)
        row = FeedRow(
            channel_id=channel_id,
            url=url,
            enabled=bool(enabled),
            retention_hours=hours,
            label=check_text(label, "feed label"),
            created_at=datetime.now(UTC),
        )
        try:
            with Session(self.engine) as s, s.begin():
                self._channel_row(s, channel_id)
                s.add(row)
                s.flush()
                return to_feed(row)
        except IntegrityError:
            raise CatalogError(
                f"feed {redact_url(url)!r} already exists for channel {channel_id!r}"
            ) from None

    @staticmethod
    def _retention(hours: float) -> float:
        try:
            value = float(hours)
        except (TypeError, ValueError):
            raise CatalogError(f"retention {hours!r} must be a number of hours") from None
        if not (math.isfinite(value) and 0 < value <= MAX_RETENTION_HOURS):
            raise CatalogError(
                f"retention {hours!r} h must be more than 0 and at most "
                f"{MAX_RETENTION_HOURS:g} h (one year)"
            )
        return value

    def feed(self, feed_id: int) -> Feed:
        """The feed with this id; raises :class:`CatalogError` if unknown."""
        with Session(self.engine) as s:
            row = s.get(FeedRow, feed_id)
            if row is None:
                raise CatalogError(f"no feed {feed_id!r}")
            return to_feed(row)

    def feeds(self, channel_id: str | None = None, *, enabled_only: bool = False) -> list[Feed]:
        """Feeds of one channel (unknown channel: :class:`CatalogError`) or of all, by
        channel then id; ``enabled_only`` leaves out disabled ones."""
        with Session(self.engine) as s:
            query = select(FeedRow).order_by(FeedRow.channel_id, FeedRow.id)
            if channel_id is not None:
                self._channel_row(s, channel_id)
                query = query.where(FeedRow.channel_id == channel_id)
            if enabled_only:
                query = query.where(FeedRow.enabled.is_(True))
            return [to_feed(r) for r in s.scalars(query)]

    def set_feed_enabled(self, feed_id: int, enabled: bool) -> Feed:
        """Enable or disable a feed (kept either way); returns it as it now is."""
        with Session(self.engine) as s, s.begin():
            row = s.get(FeedRow, feed_id)
            if row is None:
                raise CatalogError(f"no feed {feed_id!r}")
            row.enabled = bool(enabled)
            s.flush()
            return to_feed(row)

    def remove_feed(self, feed_id: int) -> None:
        """Delete a feed (its recordings' postings are removed by the caller)."""
        self._delete(FeedRow, feed_id, "feed")

    # -- live ingestion health (reference_index.catalog_health) ------------------------------
    def report_feed_status(self, statuses: Iterable[FeedStatus]) -> None:
        """Upsert the live ingester's statuses in one transaction; statuses of feeds no
        longer in the catalog are skipped (:func:`catalog_health.report_feed_status`)."""
        catalog_health.report_feed_status(self.engine, statuses)

    def feed_statuses(self, channel_id: str | None = None) -> dict[int, FeedStatus]:
        """Latest ingestion status by feed id, of one channel (unknown: :class:`CatalogError`)
        or of all; feeds never ingested are absent."""
        with Session(self.engine) as s:
            if channel_id is not None:
                self._channel_row(s, channel_id)
            return catalog_health.feed_statuses(s, channel_id)

    def _delete(self, model: type[Base], row_id: int, what: str) -> None:
        with Session(self.engine) as s, s.begin():
            row = s.get(model, row_id)
            if row is None:
                raise CatalogError(f"no {what} {row_id!r}")
            s.delete(row)

    # -- VOD / catch-up assets ---------------------------------------------------------------
    def add_asset(self, channel_id: str, title: str, source: str) -> Asset:
        """Register a VOD or catch-up recording of a channel.

        ``source`` is an ``http``/``https`` URL or an absolute path; the same source twice
        for one channel is refused (:class:`CatalogError`), as are an empty title and an
        unknown channel.
        """
        name = check_text(title, "asset title")
        if not name:
            raise CatalogError("asset title must not be empty")
        source = check_source(source, "asset source")
        row = AssetRow(
            channel_id=channel_id, title=name, source=source, created_at=datetime.now(UTC)
        )
        try:
            with Session(self.engine) as s, s.begin():
                self._channel_row(s, channel_id)
                s.add(row)
                s.flush()
                return to_asset(row)
        except IntegrityError:
            raise CatalogError(
                f"asset {redact_url(source)!r} already exists for channel {channel_id!r}"
            ) from None

    def assets(self, channel_id: str | None = None) -> list[Asset]:
        """Assets of one channel (unknown channel: :class:`CatalogError`) or of all, by
        channel then id."""
        with Session(self.engine) as s:
            query = select(AssetRow).order_by(AssetRow.channel_id, AssetRow.id)
            if channel_id is not None:
                self._channel_row(s, channel_id)
                query = query.where(AssetRow.channel_id == channel_id)
            return [to_asset(r) for r in s.scalars(query)]

    def remove_asset(self, asset_id: int) -> None:
        """Delete an asset (its postings are removed by the caller)."""
        self._delete(AssetRow, asset_id, "asset")

    # -- authorized distributors -------------------------------------------------------------
    def add_distributor(
        self,
        channel_id: str,
        licensee: str,
        *,
        host_pattern: str | None = None,
        cidr: str | None = None,
        asn: int | None = None,
        territory: str | None = None,
        valid_from: datetime | None = None,
        valid_to: datetime | None = None,
    ) -> Distributor:
        """Authorize a licensee to carry a channel; its streams are then reported as
        authorized, not pirate (matching rules: :func:`reference_index.distributors.authorized`).

        Parameters
        ----------
        channel_id : str
            An existing channel. Licences of the other channels of its simulcast group are
            not implied: add one per channel, or pass the group's to ``authorized``.
        licensee : str
            Who holds the licence (non-empty).
        host_pattern : str, optional
            ``cdn.licensee.fr`` (that host) or ``*.licensee.fr`` (the domain and all its
            sub-domains); stored lower-case in IDNA form.
        cidr : str, optional
            IPv4/IPv6 network; host bits are cleared; no wider than an IPv4 /8 or IPv6 /16.
        asn : int, optional
            AS number, 1 to 4294967294 (matched only when the caller knows the stream's).
        territory : str, optional
            ISO 3166 code (upper-cased: ``FR``, ``FR-IDF``) or free text.
        valid_from, valid_to : datetime, optional
            Validity window, ``valid_to`` exclusive; naive datetimes are taken as UTC.

        Raises
        ------
        CatalogError
            Unknown channel, empty licensee, none of ``host_pattern``/``cidr``/``asn``,
            a bad pattern, network or ASN, or ``valid_from`` not before ``valid_to``.
        """
        name = check_text(licensee, "licensee")
        if not name:
            raise CatalogError("licensee must not be empty")
        host_pattern = check_text(host_pattern, "host pattern", 255)
        cidr = check_text(cidr, "CIDR", 64)
        if host_pattern is None and cidr is None and asn is None:
            raise CatalogError(
                f"distributor {name!r} needs a host pattern, a CIDR or an ASN to be recognised"
            )
        try:
            pattern = normalise_host_pattern(host_pattern) if host_pattern else None
            network = normalise_cidr(cidr) if cidr else None
        except ValueError as exc:
            raise CatalogError(str(exc)) from None
        if asn is not None and (
            isinstance(asn, bool) or not isinstance(asn, int) or not 1 <= asn <= ASN_MAX
        ):
            raise CatalogError(f"ASN {asn!r} must be an integer from 1 to {ASN_MAX}")
        start = check_datetime(valid_from, "valid_from")
        end = check_datetime(valid_to, "valid_to")
        if start is not None and end is not None and not start < end:
            raise CatalogError(
                f"valid_from {start.isoformat()} must be before valid_to {end.isoformat()}"
            )
        place = check_text(territory, "territory", 100)
        if place and _TERRITORY_CODE.match(place):
            place = place.upper()
        row = DistributorRow(
            channel_id=channel_id,
            licensee=name,
            territory=place,
            host_pattern=pattern,
            cidr=network,
            asn=asn,
            valid_from=start,
            valid_to=end,
            created_at=datetime.now(UTC),
        )
        with Session(self.engine) as s, s.begin():
            self._channel_row(s, channel_id)
            s.add(row)
            s.flush()
            return to_distributor(row)

    def distributors(self, channel_id: str | None = None) -> list[Distributor]:
        """Distributors of one channel (unknown channel: :class:`CatalogError`) or of all,
        by channel then id (the order :func:`~reference_index.distributors.authorized`
        tries them in)."""
        with Session(self.engine) as s:
            query = select(DistributorRow).order_by(DistributorRow.channel_id, DistributorRow.id)
            if channel_id is not None:
                self._channel_row(s, channel_id)
                query = query.where(DistributorRow.channel_id == channel_id)
            return [to_distributor(r) for r in s.scalars(query)]

    def remove_distributor(self, distributor_id: int) -> None:
        """Withdraw a distributor's authorization."""
        self._delete(DistributorRow, distributor_id, "distributor")
