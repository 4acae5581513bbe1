"""The two back ends the service tests run on, and throw-away PostgreSQL databases and Redis
namespaces for the scale-out one.

``embedded``: SQLite file and the in-process broker (the default, needs nothing running).
``scaleout``: PostgreSQL over psycopg 3 and the Dramatiq Redis broker, the services of this
machine and CI (PostgreSQL on 127.0.0.1:5432, database ``test``, trust auth; Redis on
127.0.0.1:6379); ``VIGIE_TEST_POSTGRES_URL`` and ``VIGIE_TEST_REDIS_URL`` point elsewhere.
Each test gets a database of its own, created from a connection to ``test`` and dropped
after (``WITH (FORCE)``, so connections a test left open do not keep it alive), and a Redis
key namespace of its own, deleted after.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, select, text

from reference_index.catalog import Catalog
from reference_index.catalog_schema import Base

#: Tried in order; the first that answers is used (the ``test`` database, trust auth).
POSTGRES_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)
REDIS_URL = os.environ.get("VIGIE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
#: Seconds to wait for either service before calling it unreachable.
CONNECT_TIMEOUT_SECONDS = 3
_PREFIX = "vigie_test_"


@dataclass(frozen=True)
class Services:
    """Where the scale-out services answered: ``postgres`` a libpq URL of the ``test``
    database, ``redis`` a Redis URL."""

    postgres: str
    redis: str


def find_services() -> Services | str:
    """The reachable services, or a sentence naming the one that is not (and why)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    try:
        import redis
    except ImportError:
        return "redis is not installed (pip install -e '.[redis]')"
    candidates = (
        (os.environ["VIGIE_TEST_POSTGRES_URL"],)
        if os.environ.get("VIGIE_TEST_POSTGRES_URL")
        else POSTGRES_CANDIDATES
    )
    postgres, errors = None, []
    for url in candidates:
        try:
            with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS) as conn:
                conn.execute("SELECT 1")
            postgres = url
            break
        except psycopg.Error as exc:
            errors.append(f"{url}: {str(exc).strip().splitlines()[0]}")
    if postgres is None:
        return "PostgreSQL is not reachable: " + "; ".join(errors)
    try:
        client = redis.Redis.from_url(
            REDIS_URL,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=CONNECT_TIMEOUT_SECONDS,
        )
        client.ping()
        client.close()
    except redis.RedisError as exc:
        return f"Redis is not reachable at {REDIS_URL}: {exc}"
    drop_stale_databases(postgres)
    return Services(postgres=postgres, redis=REDIS_URL)


def _admin(postgres: str):  # noqa: ANN202
    import psycopg

    return psycopg.connect(postgres, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def drop_stale_databases(postgres: str) -> None:
    """Drop the test databases of test processes that died before dropping their own
    (named ``vigie_test_<pid>_...``; those of live processes are left alone)."""
    with _admin(postgres) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (_PREFIX + "%",)
            )
        ]
        for name in names:
            m = re.match(rf"{_PREFIX}(\d+)_[0-9a-f]+$", name)
            if m and not _alive(int(m.group(1))):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlalchemy_url(libpq_url: str) -> str:
    """The SQLAlchemy URL (psycopg 3 driver) of a ``postgresql://`` URL."""
    return "postgresql+psycopg://" + libpq_url.split("://", 1)[1]


def create_database(postgres: str) -> str:
    """A new empty database; returns its SQLAlchemy URL."""
    name = f"{_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:10]}"
    with _admin(postgres) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = postgres.rsplit("/", 1)[0]
    return sqlalchemy_url(f"{base}/{name}")


def drop_database(postgres: str, url: str) -> None:
    """Drop a database made by :func:`create_database`, closing its connections."""
    name = url.rsplit("/", 1)[1]
    if not name.startswith(_PREFIX):
        raise ValueError(f"refusing to drop {name!r}: not a test database")
    with _admin(postgres) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_namespace() -> str:
    """A Redis key prefix no other test uses."""
    return f"vigie-test-{os.getpid()}-{uuid.uuid4().hex[:10]}"


def broker_url(redis_url: str, namespace: str) -> str:
    """``VIGIE_BROKER_URL`` of the Redis server with this key namespace."""
    return f"{redis_url}?namespace={namespace}"


def flush_namespace(redis_url: str, namespace: str) -> int:
    """Delete every key of the namespace; returns how many there were."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=500))
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()


def copy_catalog(sqlite_file: Path, url: str) -> None:
    """Copy the channel catalog of a SQLite file into the (migrated, empty) catalog at
    ``url``, ids kept, and move PostgreSQL's id sequences past them.

    The module fixtures of the API tests build their channel and index once with the
    ``vigie`` command on SQLite; a scale-out test then runs against a copy of that catalog
    (the index itself is files under the data folder, shared by both back ends).
    """
    target = Catalog(url)
    source = create_engine(f"sqlite:///{sqlite_file}")
    try:
        with source.connect() as src, target.engine.begin() as dst:
            for table in Base.metadata.sorted_tables:
                rows = [_aware(row) for row in src.execute(select(table)).mappings()]
                if rows:
                    dst.execute(insert(table), rows)
                pk = list(table.primary_key.columns)
                if len(pk) == 1 and pk[0].autoincrement is not False and _integer(pk[0]):
                    dst.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', "
                            f"'{pk[0].name}'), COALESCE(MAX({pk[0].name}), 0) + 1, false) "
                            f"FROM {table.name}"
                        )
                    )
    finally:
        source.dispose()
        target.close()


def _aware(row) -> dict:  # noqa: ANN001
    """A row with SQLite's naive datetimes marked UTC (which they are)."""
    return {
        k: v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v
        for k, v in row.items()
    }


def _integer(column) -> bool:  # noqa: ANN001
    try:
        return column.type.python_type is int
    except NotImplementedError:
        return False


@dataclass
class Backend:
    """What one back end adds to a test's settings.

    ``overrides(data_dir)`` gives the ``Settings`` fields (none for ``embedded``);
    ``start_workers`` is what to pass to ``create_app`` (``scaleout``: the test process
    runs the Redis workers itself, as ``vigie worker`` would, so TestClient tests work).
    """

    name: str
    database_url: str | None = None
    broker_url: str | None = None
    _copied: bool = field(default=False, repr=False)

    @property
    def start_workers(self) -> bool | None:
        return None if self.broker_url is None else True

    def overrides(self, data_dir: Path | None = None) -> dict[str, str]:
        """Settings fields for this back end. With ``data_dir``, a SQLite catalog already
        there (``vigie.db``) is copied into the test's PostgreSQL database first, once."""
        if self.database_url is None:
            return {}
        sqlite_file = Path(data_dir) / "vigie.db" if data_dir is not None else None
        if sqlite_file is not None and sqlite_file.exists() and not self._copied:
            copy_catalog(sqlite_file, self.database_url)
            self._copied = True
        return {"database_url": self.database_url, "broker_url": self.broker_url}


#: For tests whose outcome cannot depend on the engines (a body refused by validation, a
#: missing scope, the OpenAPI document): run them on ``embedded`` only, to keep the suite's
#: time; every other test that takes ``backend`` runs on both.
embedded_only = pytest.mark.parametrize("backend", ["embedded"], indirect=True)
