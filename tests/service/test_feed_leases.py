"""Feed leases (reference_index/feed_leases.py) on SQLite and PostgreSQL: every feed has
exactly one holder, shares even out, dead holders' feeds are taken over with the gap
recorded, and a holder that cannot renew stops by itself."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from reference_index.catalog import Catalog
from reference_index.catalog_records import FeedStatus
from reference_index.catalog_schema import FeedLeaseRow
from reference_index.feed_leases import FeedLeases, feed_leases

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
LEASE = 30.0


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request, tmp_path):
    if request.param == "sqlite":
        cat = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    else:
        cat = Catalog(request.getfixturevalue("pg_database"))
    cat.add_channel("c1", name="Channel 1")
    for i in range(6):
        cat.add_feed("c1", f"http://feeds.example/{i}.m3u8")
    yield cat
    cat.close()


def feed_ids(cat: Catalog) -> list[int]:
    return [f.id for f in cat.feeds(enabled_only=True)]


def holders(cat: Catalog, now: datetime) -> dict[int, str]:
    """Feed id -> holder of an unexpired lease."""
    return {
        f: lease.holder
        for f, lease in feed_leases(cat.engine).items()
        if lease.holder and lease.lease_until > now
    }


def test_one_holder_takes_every_feed_and_keeps_it(catalog):
    ids = feed_ids(catalog)
    a = FeedLeases(catalog.engine, "a", LEASE)
    first = a.round(ids, now=T0)
    assert first.held == first.taken == frozenset(ids)
    assert first.leader and first.ingesters == 1 and not first.takeovers
    again = a.round(ids, now=T0 + timedelta(seconds=10))
    assert again.held == frozenset(ids) and not again.taken and not again.lost
    leases = feed_leases(catalog.engine)
    assert {lease.lease_until for lease in leases.values()} == {T0 + timedelta(seconds=40)}


def test_a_second_holder_gets_its_fair_share_and_no_feed_has_two(catalog):
    ids = feed_ids(catalog)
    a, b = FeedLeases(catalog.engine, "a", LEASE), FeedLeases(catalog.engine, "b", LEASE)
    a.round(ids, now=T0)
    joined = b.round(ids, now=T0 + timedelta(seconds=1))  # all busy: nothing yet
    assert joined.held == frozenset() and joined.ingesters == 2 and not joined.leader
    shrink = a.round(ids, now=T0 + timedelta(seconds=10))
    assert len(shrink.surplus) == 3 and len(shrink.held) == 3
    assert shrink.surplus.isdisjoint(shrink.held)
    a.release(shrink.surplus)
    grown = b.round(ids, now=T0 + timedelta(seconds=11))
    assert grown.held == shrink.surplus and not grown.takeovers  # handed over, not taken over
    now = T0 + timedelta(seconds=12)
    owned = holders(catalog, now)
    assert sorted(owned) == sorted(ids)
    assert sorted(owned.values()) == ["a"] * 3 + ["b"] * 3


def test_a_dead_holders_feeds_are_taken_over_with_the_gap_recorded(catalog):
    ids = feed_ids(catalog)
    a, b = FeedLeases(catalog.engine, "a", LEASE), FeedLeases(catalog.engine, "b", LEASE)
    a.round(ids, now=T0)
    aired = T0 - timedelta(seconds=4)
    catalog.report_feed_status(
        [
            FeedStatus(
                feed_id=f, state="live", ingester="a", last_posting_utc=aired, updated_utc=T0
            )
            for f in ids
        ]
    )
    # "a" dies: no more rounds. Before its lease runs out, "b" gets nothing ...
    assert b.round(ids, now=T0 + timedelta(seconds=29)).held == frozenset()
    # ... one lease period later, "a"'s heartbeat and leases have run out: "b" takes all.
    later = T0 + timedelta(seconds=31)
    took = b.round(ids, now=later)
    assert took.held == frozenset(ids) and set(took.takeovers) == set(ids)
    lease = took.takeovers[ids[0]]
    assert lease.previous_holder == "a" and lease.takeovers == 1
    assert lease.blind_since_utc == aired and lease.acquired_utc == later
    assert took.leader and took.ingesters == 1
    # "a" comes back (it was only paused): its feeds are lost to it, it must stop them.
    back = a.round(ids, now=later + timedelta(seconds=1))
    assert back.lost == frozenset(ids) and back.held == frozenset()
    assert set(holders(catalog, later + timedelta(seconds=2)).values()) == {"b"}


def test_disabled_and_removed_feeds_are_let_go(catalog):
    ids = feed_ids(catalog)
    a = FeedLeases(catalog.engine, "a", LEASE)
    a.round(ids, now=T0)
    catalog.set_feed_enabled(ids[0], False)
    catalog.remove_feed(ids[1])  # its lease row goes with it (ON DELETE CASCADE)
    got = a.round(feed_ids(catalog), now=T0 + timedelta(seconds=10))
    assert got.surplus == {ids[0]} and got.lost == {ids[1]}
    assert got.held == frozenset(ids[2:])
    a.release(got.surplus)
    assert ids[1] not in feed_leases(catalog.engine)
    assert feed_leases(catalog.engine)[ids[0]].holder == ""


def test_holders_racing_for_the_same_feeds_never_share_one(catalog):
    ids = feed_ids(catalog)
    names = [f"h{i}" for i in range(4)]
    sides = [FeedLeases(catalog.engine, n, LEASE) for n in names]
    go = threading.Barrier(len(sides))
    errors: list[BaseException] = []

    def play(side: FeedLeases) -> None:
        try:
            go.wait()
            side.round(ids, now=T0)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=play, args=(s,)) for s in sides]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with catalog.engine.connect() as conn:
        rows = conn.execute(select(FeedLeaseRow.feed_id, FeedLeaseRow.holder)).all()
    assert sorted(r.feed_id for r in rows) == sorted(ids)  # one row, one holder per feed
    # After a round each, every holder converges to the fair share of 6 / 4 -> at most 2.
    for step in range(1, 4):
        for side in sides:
            got = side.round(ids, now=T0 + timedelta(seconds=step))
            side.release(got.surplus)
    for side in sides:
        side.round(ids, now=T0 + timedelta(seconds=5))
    counts = list(holders(catalog, T0 + timedelta(seconds=6)).values())
    assert len(counts) == len(ids) and max(counts.count(n) for n in names) <= 2


def test_a_holder_that_cannot_renew_fences_itself(catalog):
    ids = feed_ids(catalog)
    a = FeedLeases(catalog.engine, "a", lease_seconds=0.3)
    a.round(ids)
    assert a.expired() == frozenset()
    time.sleep(0.4)  # no round: the database was unreachable, say
    assert a.expired() == frozenset(ids)
    a.round(ids)
    assert a.expired() == frozenset()


def test_leave_frees_everything_at_once(catalog):
    ids = feed_ids(catalog)
    a, b = FeedLeases(catalog.engine, "a", LEASE), FeedLeases(catalog.engine, "b", LEASE)
    a.round(ids, now=T0)
    a.leave()
    got = b.round(ids, now=T0 + timedelta(seconds=1))
    assert got.held == frozenset(ids) and not got.takeovers and got.ingesters == 1


@pytest.mark.parametrize("name", ["", "x" * 256])
def test_bad_holder_names_are_refused(catalog, name):
    with pytest.raises(ValueError, match="holder name"):
        FeedLeases(catalog.engine, name)


def test_bad_lease_period_is_refused(catalog):
    with pytest.raises(ValueError, match="lease period"):
        FeedLeases(catalog.engine, "a", 0)
