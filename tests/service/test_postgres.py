"""What PostgreSQL does differently from SQLite, checked against the real server: both
Alembic trees build the models' schema, concurrent first starts migrate once, the audit log
is append-only, column widths are refused as bad input before the server refuses them, and
two writers folding matches into one incident take turns."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from reference_index.catalog import Catalog, CatalogError
from reference_index.catalog_schema import Base
from service.db import Database
from service.incidents import _incident
from service.models import AuditRow, IncidentRow, ServiceBase, utc_now


def _diff(engine, metadata):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_server_default": True})
        found = compare_metadata(ctx, metadata)
    # each tree sees the other's tables (one database) and the version tables
    ours = {t.name for t in metadata.sorted_tables}
    return [
        d
        for d in found
        if not (d[0] == "remove_table" and d[1].name not in ours)
        and not (d[0] == "remove_index" and d[1].table.name not in ours)
    ]


def test_both_trees_build_the_models_schema_on_postgresql(pg_database):
    catalog, db = Catalog(pg_database), Database(pg_database)
    try:
        assert _diff(catalog.engine, Base.metadata) == []
        # Everything the service models declare exists as declared; objects that later
        # revisions add without a model (an index for one page's query) are not an error.
        service_diff = _diff(db.engine, ServiceBase.metadata)
        assert [d for d in service_diff if not str(d[0]).startswith("remove_")] == []
        with db.engine.connect() as conn:
            kinds = dict(
                conn.execute(
                    text(
                        "SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_name = 'scans' AND column_name IN "
                        "('created_at', 'labels', 'id')"
                    )
                ).all()
            )
        assert kinds == {
            "created_at": "timestamp with time zone",
            "labels": "json",
            "id": "integer",
        }
    finally:
        catalog.close()
        db.close()


_OPEN = """
import sys
from reference_index.catalog import Catalog
from service.db import Database
url = sys.argv[1]
Catalog(url).close()
Database(url).close()
"""


def test_processes_starting_together_migrate_the_schema_once(pg_database):
    """``vigie serve`` and workers start at once on an empty database: each upgrades the
    schema on open; the advisory lock makes the others wait and find it done."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN, pg_database],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    db = Database(pg_database)
    with db.engine.connect() as conn:
        for table in ("alembic_version_catalog", "alembic_version_service"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 1
    db.close()


def test_the_audit_log_is_append_only(pg_database):
    db = Database(pg_database)
    with db.session() as s:
        s.add(AuditRow(at=utc_now(), actor=None, action="key.create", target="key:1", data={}))
    for statement in (update(AuditRow).values(note="rewritten"), delete(AuditRow)):
        with pytest.raises(DBAPIError, match="append-only"), db.session() as s:
            s.execute(statement)
    with db.session() as s:
        (row,) = s.scalars(select(AuditRow))
        assert row.note is None and row.at.tzinfo is not None
    db.close()


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "n" * 201), ("owner", "o" * 201), ("simulcast_group", "g" * 65)],
)
def test_catalog_refuses_values_wider_than_their_column(backend, tmp_path, field, value):
    url = backend.database_url or f"sqlite:///{tmp_path / 'c.db'}"
    catalog = Catalog(url)
    args = {"name": "TV", "owner": None, "simulcast_group": None, field: value}
    with pytest.raises(CatalogError, match="longer than"):
        catalog.add_channel("tv", **args)
    assert catalog.channels() == []
    catalog.close()


def test_two_writers_of_one_incident_take_turns(pg_database):
    """A second transaction folding a match into an incident that a first one is
    updating waits for it (on the insert-or-ignore, and on the row lock taken by the read),
    then sees its count: no count is lost."""
    db = Database(pg_database)
    mv = SimpleNamespace(
        match=SimpleNamespace(channel_id="tv1", confidence=0.9995),
        group="tv1",
        owner=None,
        verdict="suspected",
    )
    when = datetime(2026, 12, 1, tzinfo=UTC)
    entered, seen = threading.Event(), []

    def second() -> None:
        with db.session() as s:
            entered.set()
            incident = _incident(s, "pirate.example", mv, when)  # waits for the first
            seen.append(incident.matches)
            incident.matches += 1

    with db.session() as s:
        _incident(s, "pirate.example", mv, when)  # committed: the insert is no barrier
    with db.session() as s:
        incident = _incident(s, "pirate.example", mv, when)
        incident.matches += 1
        s.flush()
        other = threading.Thread(target=second)
        other.start()
        entered.wait(10)
        time.sleep(0.5)
        assert seen == []  # still waiting on the lock
    other.join(10)
    assert seen == [1]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(IncidentRow)) == 1
        assert s.scalar(select(IncidentRow.matches)) == 2
    db.close()
