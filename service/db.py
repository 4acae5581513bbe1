"""The service's database: one engine, short sessions, the schema brought up to date.

SQLite (WAL, busy timeout, foreign keys on) by default, PostgreSQL by URL: the same code
and migrations run on both. Sessions are short-lived units of work (``with db.session()
as s:``); nothing holds a transaction across network I/O, so SQLite's single writer is
never blocked for the length of a capture.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from reference_index.catalog_schema import migration_lock, sqlite_pragmas

__all__ = ["Database", "migrate"]


def migrate(engine: Engine) -> None:
    """Bring the service tables to the newest Alembic revision."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        migration_lock(conn)  # other processes may be upgrading the same database right now
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    """Engine and session factory of the service tables (migrated on open).

    Parameters
    ----------
    url : str
        SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``).
    """

    def __init__(self, url: str):
        self.url = url
        self.engine = create_engine(url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            sqlite_pragmas(self.engine)
        migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends normally, rolled back otherwise."""
        with self._sessions() as s, s.begin():
            yield s

    def ping(self) -> None:
        """Raise if the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()
