"""Channel catalog: who owns which channel, and which channels are one simulcast group.

SQLAlchemy 2 over SQLite (WAL, busy timeout) by default, PostgreSQL by URL; the schema is
created and upgraded by Alembic (``reference_index/migrations``) when the catalog opens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, String, create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

__all__ = ["Catalog", "CatalogError", "Channel", "ChannelRow", "sqlite_url"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class CatalogError(Exception):
    """A catalog operation was refused (bad id, duplicate, unknown channel)."""


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


def _channel(row: ChannelRow) -> Channel:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return Channel(row.id, row.name, row.owner, row.simulcast_group, created)


def sqlite_url(path: Path) -> str:
    """SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{Path(path).resolve()}"


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()


def migrate(engine: Engine) -> None:
    """Bring the catalog schema to the newest Alembic revision."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Catalog:
    """Channels of the rights holders.

    Parameters
    ----------
    url : str
        SQLAlchemy database URL (``sqlite:///...`` or ``postgresql+psycopg://...``).
    """

    def __init__(self, url: str):
        self.engine = create_engine(url)
        if self.engine.dialect.name == "sqlite":
            _sqlite_pragmas(self.engine)
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
            return _channel(row) if row else None

    def require(self, channel_id: str) -> Channel:
        """The channel with this id; raises :class:`CatalogError` if unknown."""
        ch = self.get(channel_id)
        if ch is None:
            raise CatalogError(f"no channel {channel_id!r}; add it with `vigie channels add`")
        return ch

    def channels(self) -> list[Channel]:
        """All channels, by id."""
        with Session(self.engine) as s:
            return [_channel(r) for r in s.scalars(select(ChannelRow).order_by(ChannelRow.id))]

    def remove(self, channel_id: str) -> None:
        """Delete a channel from the catalog (its postings are removed by the caller)."""
        with Session(self.engine) as s, s.begin():
            row = s.get(ChannelRow, channel_id)
            if row is None:
                raise CatalogError(f"no channel {channel_id!r}")
            s.delete(row)
