"""The service's database: one engine, short sessions, the schema brought up to date.

SQLite (WAL, busy timeout, foreign keys on) by default, PostgreSQL by URL: the same code
and migrations run on both. Sessions are short-lived units of work (``with db.session()
as s:``); nothing holds a transaction across network I/O, so SQLite's single writer is
never blocked for the length of a capture.
"""

from __future__ import annotations

import hashlib
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


#: SQLite connections kept open in the pool. Why: SQLAlchemy's default keeps 5 and closes
#: any connection beyond them when it is returned; the API's requests and the scan
#: threads use more than 5 at once under load, so every overflow checkout opened a new
#: connection (``connect`` + the WAL pragmas), 10-40 ms at p90/p99 on a busy 2-core
#: machine (``bench.service_load``). A SQLite connection costs a file handle and a page
#: cache, so keeping a few dozen is cheap.
SQLITE_POOL_SIZE = 32


def _pool_options(url: str) -> dict:
    """Engine pool options: a large pool and no pre-ping for a SQLite file (a local file
    cannot drop a connection the way a network server can, so the ``SELECT 1`` before
    every checkout bought nothing), pre-ping for servers (PostgreSQL restarts)."""
    if url.startswith("sqlite") and ":memory:" not in url:
        return {"pool_size": SQLITE_POOL_SIZE, "max_overflow": SQLITE_POOL_SIZE}
    return {"pool_pre_ping": True}


class Database:
    """Engine and session factory of the service tables (migrated on open).

    Parameters
    ----------
    url : str
        SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``).
    """

    def __init__(self, url: str):
        self.url = url
        self.engine = create_engine(url, **_pool_options(url))
        if self.engine.dialect.name == "sqlite":
            sqlite_pragmas(self.engine)
        migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends normally, rolled back otherwise."""
        with self._sessions() as s, s.begin():
            yield s

    def lock(self, s: Session, name: str) -> None:
        """Hold a lock named ``name`` until ``s``'s transaction ends, so that a check and
        the write it decides (is this URL already being scanned? then insert) are one
        step for every writer of the database.

        PostgreSQL: a transaction-level advisory lock (every process, any host). SQLite
        has one writer at a time: the transaction starts writing now (taking this
        process's write lock, :mod:`reference_index.sqlite_writes`), so the reads that
        follow see every submission committed before, and later ones wait.
        """
        if self.engine.dialect.name == "postgresql":
            digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
            key = int.from_bytes(digest, "big", signed=True)
            s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        else:
            s.execute(text("DELETE FROM scans WHERE 0"))  # a write that changes nothing

    def ping(self) -> None:
        """Raise if the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()
