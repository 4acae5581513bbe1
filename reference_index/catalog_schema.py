"""The catalog's tables (SQLAlchemy 2 ORM); Alembic migrations create and upgrade them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
    true,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .sqlite_writes import serialize_writes

__all__ = [
    "FEED_STATES",
    "AssetRow",
    "Base",
    "ChannelRow",
    "DistributorRow",
    "FeedLeaseRow",
    "FeedRow",
    "FeedStatusRow",
    "IngesterRow",
    "migrate",
    "migration_lock",
    "sqlite_pragmas",
    "sqlite_url",
]


#: States of a feed's live ingestion: ``starting`` (ingester took the feed, nothing indexed
#: yet), ``live`` (indexing), ``reconnecting`` (feed lost, retrying), ``stopped`` (released).
FEED_STATES = ("starting", "live", "reconnecting", "stopped")


class Base(DeclarativeBase):
    """Declarative base of the catalog tables."""


class ChannelRow(Base):
    """A rights holder's channel."""

    __tablename__ = "channels"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(200), index=True)
    simulcast_group: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def _channel_fk(table: str) -> ForeignKey:
    return ForeignKey("channels.id", ondelete="CASCADE", name=f"fk_{table}_channel_id_channels")


class FeedRow(Base):
    """A live reference stream of a channel, recorded and indexed by Vigie."""

    __tablename__ = "reference_feeds"
    __table_args__ = (
        UniqueConstraint("channel_id", "url", name="uq_reference_feeds_channel_id_url"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(64), _channel_fk(__tablename__), index=True)
    url: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=true())
    retention_hours: Mapped[float] = mapped_column(Float, server_default="48")
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FeedStatusRow(Base):
    """Health of a feed's live ingestion, as its ingester last reported it (one row per
    feed, upserted; deleted with the feed by ``ON DELETE CASCADE``)."""

    __tablename__ = "feed_status"
    __table_args__ = (
        CheckConstraint(
            "state IN (" + ", ".join(f"'{state}'" for state in FEED_STATES) + ")",
            name="ck_feed_status_state",
        ),
        CheckConstraint(
            "chunks >= 0 AND errors >= 0 AND reconnects >= 0", name="ck_feed_status_counts"
        ),
    )

    feed_id: Mapped[int] = mapped_column(
        Integer,
        ForeignKey(
            "reference_feeds.id", ondelete="CASCADE", name="fk_feed_status_feed_id_reference_feeds"
        ),
        primary_key=True,
        autoincrement=False,
    )
    state: Mapped[str] = mapped_column(String(16))
    ingester: Mapped[str] = mapped_column(String(255))
    last_posting_utc: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lag_seconds: Mapped[float | None] = mapped_column(Float)
    chunks: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    reconnects: Mapped[int] = mapped_column(Integer)
    last_error_reason: Mapped[str | None] = mapped_column(String(100))
    last_error_message: Mapped[str | None] = mapped_column(Text)
    last_error_utc: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_utc: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FeedLeaseRow(Base):
    """Which ingester follows a feed, until when (one row per feed ever leased; see
    :mod:`reference_index.feed_leases`). Times are the holders' clocks, in UTC."""

    __tablename__ = "feed_leases"

    feed_id: Mapped[int] = mapped_column(
        Integer,
        ForeignKey(
            "reference_feeds.id", ondelete="CASCADE", name="fk_feed_leases_feed_id_reference_feeds"
        ),
        primary_key=True,
        autoincrement=False,
    )
    holder: Mapped[str] = mapped_column(String(255))
    lease_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acquired_utc: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    takeovers: Mapped[int] = mapped_column(Integer, server_default="0")
    previous_holder: Mapped[str | None] = mapped_column(String(255))
    blind_since_utc: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IngesterRow(Base):
    """An ingester process that is alive until ``until_utc`` unless it says so again: how
    many share the feeds."""

    __tablename__ = "ingesters"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    until_utc: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AssetRow(Base):
    """A VOD or catch-up recording of a channel's programme."""

    __tablename__ = "vod_assets"
    __table_args__ = (
        UniqueConstraint("channel_id", "source", name="uq_vod_assets_channel_id_source"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(64), _channel_fk(__tablename__), index=True)
    title: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DistributorRow(Base):
    """A licensee allowed to carry a channel (see :mod:`reference_index.distributors`)."""

    __tablename__ = "authorized_distributors"
    __table_args__ = (
        CheckConstraint(
            "host_pattern IS NOT NULL OR cidr IS NOT NULL OR asn IS NOT NULL",
            name="ck_authorized_distributors_criterion",
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(64), _channel_fk(__tablename__), index=True)
    licensee: Mapped[str] = mapped_column(String(200))
    territory: Mapped[str | None] = mapped_column(String(100))
    host_pattern: Mapped[str | None] = mapped_column(String(255))
    cidr: Mapped[str | None] = mapped_column(String(64))
    asn: Mapped[int | None] = mapped_column(BigInteger)
    valid_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def sqlite_url(path: Path) -> str:
    """SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{Path(path).resolve()}"


def sqlite_pragmas(engine: Engine) -> None:
    """WAL with ``synchronous=NORMAL``: a commit is durable once written to the WAL, which
    survives the process being killed at any point (the state the project promises); only
    an operating-system crash or power cut may lose the last commits, never corrupt the
    file. ``FULL`` would fsync on every commit, and every accepted scan is a commit."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    serialize_writes(engine)


#: Key of the PostgreSQL advisory lock that serialises schema upgrades (any bigint; this one
#: spells "vigie" in ASCII). Shared by the catalog's and the service's migrations.
MIGRATION_LOCK_KEY = 0x7669676965


def migration_lock(conn: Connection) -> None:
    """Hold off other processes' schema upgrades until ``conn``'s transaction ends.

    ``vigie serve`` and any number of ``vigie worker`` processes start at once against one
    PostgreSQL database, and each upgrades the schema on open: without the lock, two
    processes would both see an empty version table and both ``CREATE TABLE``, and one
    would fail. PostgreSQL's DDL is transactional, so the second process waits, then finds
    the schema at head and does nothing. SQLite needs no lock: its first write already
    takes the database's single write lock (waiting up to the busy timeout).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def migrate(engine: Engine) -> None:
    """Bring the catalog schema to the newest Alembic revision."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        migration_lock(conn)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
