"""Per-feed health of live ingestion in the catalog (``feed_status``, migration 0003)."""

import importlib.util
import io
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

import reference_index.catalog as catalog_module
import reference_index.catalog_health as health
from reference_index.catalog import Catalog, CatalogError, FeedStatus, sqlite_url
from reference_index.catalog_health import MAX_ERROR_MESSAGE

MIGRATIONS = Path(catalog_module.__file__).parent / "migrations"
T0 = datetime(2025, 3, 1, 20, 0, tzinfo=UTC)


@pytest.fixture
def cat(tmp_path):
    catalog = Catalog(sqlite_url(tmp_path / "c.db"))
    catalog.add_channel("tf1", "TF1")
    catalog.add_channel("arte", "Arte")
    catalog.add_feed("tf1", "http://x/tf1-a.m3u8")  # 1
    catalog.add_feed("tf1", "http://x/tf1-b.m3u8")  # 2
    catalog.add_feed("arte", "http://x/arte.m3u8")  # 3
    yield catalog
    catalog.close()


def _status(feed_id, **fields):
    base = {"state": "live", "ingester": "ingest-1:4242", "updated_utc": T0}
    return FeedStatus(feed_id=feed_id, **{**base, **fields})


def _count(catalog, table="feed_status"):
    with catalog.engine.connect() as conn:
        return conn.execute(text(f"select count(*) from {table}")).scalar()


def _alembic(engine, action, revision):
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        action(cfg, revision)


def test_a_second_report_updates_the_row_in_place(cat):
    assert cat.feed_statuses() == {}
    cat.report_feed_status([_status(1, state="starting")])
    later = _status(
        1,
        last_posting_utc=T0 + timedelta(seconds=50),
        lag_seconds=7.25,
        chunks=12,
        errors=1,
        reconnects=1,
        last_error_reason="timeout",
        last_error_message="GET http://x/***/seg.ts timed out",
        last_error_utc=T0 + timedelta(seconds=30),
        updated_utc=T0 + timedelta(seconds=60),
    )
    cat.report_feed_status([later])
    assert _count(cat) == 1
    assert cat.feed_statuses() == {1: later}
    # and back to a clean state: cleared fields are cleared, not kept from before
    cleared = _status(1, state="stopped", updated_utc=T0 + timedelta(seconds=90))
    cat.report_feed_status(iter([cleared]))  # any iterable
    assert cat.feed_statuses() == {1: cleared} and _count(cat) == 1


def test_times_come_back_as_aware_utc(cat):
    paris = timezone(timedelta(hours=1))
    cat.report_feed_status(
        [
            _status(
                1,
                last_posting_utc=datetime(2025, 3, 1, 21, 0, 0, 500000, tzinfo=paris),
                updated_utc=datetime(2025, 3, 1, 20, 0, 5),  # naive: taken as UTC
            )
        ]
    )
    st = cat.feed_statuses()[1]
    assert st.last_posting_utc == datetime(2025, 3, 1, 20, 0, 0, 500000, tzinfo=UTC)
    assert st.last_posting_utc.tzinfo is UTC and st.updated_utc.tzinfo is UTC
    assert st.updated_utc == T0 + timedelta(seconds=5)
    assert st.age_seconds(T0 + timedelta(seconds=65)) == 60.0
    assert st.age_seconds() > 0


def test_statuses_of_unknown_feeds_are_skipped(cat):
    cat.remove_feed(2)
    cat.report_feed_status([_status(2), _status(3), _status(404)])
    assert list(cat.feed_statuses()) == [3]


def test_many_statuses_in_one_call_and_the_last_per_feed_wins(cat):
    cat.report_feed_status([_status(1, chunks=1), _status(3), _status(1, chunks=2)])
    statuses = cat.feed_statuses()
    assert list(statuses) == [1, 3] and statuses[1].chunks == 2
    cat.report_feed_status([])  # nothing to do, no error


def test_removing_a_feed_or_its_channel_removes_its_status(cat):
    cat.report_feed_status([_status(1), _status(2), _status(3)])
    cat.remove_feed(1)
    assert list(cat.feed_statuses()) == [2, 3] and _count(cat) == 2
    cat.remove("tf1")  # channel -> feeds -> statuses
    assert list(cat.feed_statuses()) == [3] and _count(cat) == 1


def test_channel_filter(cat):
    cat.report_feed_status([_status(1), _status(3)])
    assert list(cat.feed_statuses("tf1")) == [1]
    assert list(cat.feed_statuses("arte")) == [3]
    assert list(cat.feed_statuses()) == [1, 3]
    with pytest.raises(CatalogError, match="no channel 'nope'"):
        cat.feed_statuses("nope")


def test_as_dict_is_json_ready(cat):
    st = _status(1, last_posting_utc=T0, lag_seconds=3.0, last_error_utc=None)
    d = st.as_dict()
    assert d == {
        "feed_id": 1,
        "state": "live",
        "ingester": "ingest-1:4242",
        "last_posting_utc": "2025-03-01T20:00:00+00:00",
        "lag_seconds": 3.0,
        "chunks": 0,
        "errors": 0,
        "reconnects": 0,
        "last_error_reason": None,
        "last_error_message": None,
        "last_error_utc": None,
        "updated_utc": "2025-03-01T20:00:00+00:00",
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"state": "running"}, "state 'running' must be one of starting, live"),
        ({"ingester": "  "}, "ingester must not be empty"),
        ({"chunks": -1}, "chunks -1 must be an integer >= 0"),
        ({"errors": 1.5}, "errors 1.5 must be an integer"),
        ({"reconnects": True}, "reconnects True must be an integer"),
        ({"lag_seconds": math.nan}, "lag_seconds nan must be a finite number"),
        ({"lag_seconds": "3"}, "lag_seconds '3' must be a finite number"),
        ({"updated_utc": None}, "updated_utc must be set"),
        ({"last_error_utc": "2025-01-01"}, "last_error_utc '2025-01-01' must be a datetime"),
    ],
)
def test_a_bad_status_stores_nothing(cat, fields, message):
    with pytest.raises(CatalogError, match=message):
        cat.report_feed_status([_status(3), _status(1, **fields)])
    assert cat.feed_statuses() == {}


def test_texts_are_stripped_and_cut_and_a_negative_lag_is_kept(cat):
    cat.report_feed_status(
        [
            _status(
                1,
                ingester=" host:1 ",
                lag_seconds=-0.5,  # encoder clock ahead of ours
                last_error_reason="  ",
                last_error_message="x" * (MAX_ERROR_MESSAGE + 50),
            )
        ]
    )
    st = cat.feed_statuses()[1]
    assert st.ingester == "host:1" and st.lag_seconds == -0.5
    assert st.last_error_reason is None and len(st.last_error_message) == MAX_ERROR_MESSAGE


def test_database_refuses_unknown_states_and_orphans(cat):
    bad_state = "(1, 'running', 'h', 0, 0, 0, '2025-01-01')"
    no_such_feed = "(99, 'live', 'h', 0, 0, 0, '2025-01-01')"
    for values in (bad_state, no_such_feed):
        with pytest.raises(IntegrityError), cat.engine.begin() as conn:
            conn.execute(
                text(
                    "insert into feed_status "
                    "(feed_id, state, ingester, chunks, errors, reconnects, updated_utc) "
                    f"values {values}"
                )
            )


@pytest.mark.parametrize("already_reported", [False, True])
def test_a_feed_removed_during_a_report_is_skipped_on_retry(cat, monkeypatch, already_reported):
    """The feed goes between the report's reads and its writes (an INSERT that breaks the
    foreign key, or an UPDATE of a row the cascade deleted): the report is redone."""
    if already_reported:
        cat.report_feed_status([_status(1), _status(3)])
    upsert, calls = health._upsert, []

    def racing_upsert(s, latest):
        upsert(s, latest)  # reads done, writes pending until the flush at commit
        calls.append(1)
        if len(calls) == 1:
            with cat.engine.begin() as other:
                other.execute(text("delete from reference_feeds where id = 1"))

    monkeypatch.setattr(health, "_upsert", racing_upsert)
    cat.report_feed_status([_status(1, chunks=5), _status(3, chunks=5)])
    assert len(calls) == 2
    assert {k: v.chunks for k, v in cat.feed_statuses().items()} == {3: 5}


# -- migration ------------------------------------------------------------------------------
def test_upgrade_from_a_0002_database(tmp_path):
    url = sqlite_url(tmp_path / "old.db")
    engine = create_engine(url)
    _alembic(engine, command.upgrade, "0002")
    assert "feed_status" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into channels (id, name, created_at) "
                "values ('tf1', 'TF1', '2024-05-01 12:00:00')"
            )
        )
        conn.execute(
            text(
                "insert into reference_feeds (channel_id, url, label, created_at) "
                "values ('tf1', 'http://x/a.m3u8', 'R1', '2024-05-01 12:00:00')"
            )
        )
    engine.dispose()

    cat = Catalog(url)  # runs 0003 and 0004 (feed leases)
    with cat.engine.connect() as conn:
        version = conn.exec_driver_sql("select version_num from alembic_version_catalog")
        assert version.scalar() == "0004"
    assert {"feed_status", "feed_leases", "ingesters"} <= set(inspect(cat.engine).get_table_names())
    (feed,) = cat.feeds()
    assert (feed.id, feed.label, feed.enabled) == (1, "R1", True)
    assert cat.feed_statuses() == {}
    cat.report_feed_status([_status(feed.id)])
    assert list(cat.feed_statuses("tf1")) == [feed.id]
    cat.remove_feed(feed.id)  # cascade works on an upgraded database too
    assert _count(cat) == 0

    cat.add_feed("tf1", "http://x/b.m3u8")
    cat.report_feed_status([_status(2)])
    _alembic(cat.engine, command.downgrade, "0002")
    assert "feed_status" not in inspect(cat.engine).get_table_names()
    assert [f.id for f in cat.feeds()] == [2]  # feeds survive the downgrade
    cat.close()
    again = Catalog(url)
    assert again.feed_statuses() == {}
    again.close()


def test_migration_renders_for_postgresql():
    out = io.StringIO()
    ctx = MigrationContext.configure(
        dialect_name="postgresql", opts={"as_sql": True, "output_buffer": out}
    )
    path = MIGRATIONS / "versions" / "0003_feed_status.py"
    spec = importlib.util.spec_from_file_location("_migration_0003", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with Operations.context(ctx):
        module.upgrade()
        module.downgrade()
    sql = out.getvalue()
    for fragment in (
        "CREATE TABLE feed_status",
        "feed_id INTEGER NOT NULL",  # not SERIAL: the id is the feed's
        "last_posting_utc TIMESTAMP WITH TIME ZONE",
        "lag_seconds FLOAT",
        "PRIMARY KEY (feed_id)",
        "REFERENCES reference_feeds (id) ON DELETE CASCADE",
        "CONSTRAINT ck_feed_status_state CHECK",
        "DROP TABLE feed_status",
    ):
        assert fragment in sql, fragment
    assert "SERIAL" not in sql and "AUTOINCREMENT" not in sql


def test_records_compare_by_value():
    a = _status(1)
    assert a == replace(a) and a != replace(a, chunks=1)
    with pytest.raises(TypeError):
        FeedStatus(1, "live", "h", T0)  # keyword-only: too many fields to pass by position
