"""Feed leases: every enabled live feed followed by exactly one ingester process, however
many ``vigie ingest`` processes run (on one host or many, against one catalog database).

Each ingester process is a *holder* with a unique name. Every third of the lease period it
plays one :meth:`FeedLeases.round`:

1. it says it is alive (``ingesters`` heartbeat, valid one lease period);
2. it renews the leases it holds; a lease it held but no longer finds is *lost* (it ran out
   and another holder took the feed: the caller stops following it at once);
3. it works out its fair share, ``ceil(feeds / live ingesters)``, hands back what it holds
   beyond that (the caller stops those feeds, writes what it has, then calls
   :meth:`FeedLeases.release`) and takes free feeds up to it, in an order of its own (a
   hash of its name and the feed id) so that holders starting together rarely contend;
4. the first live holder by name is the *leader*, which applies retention for everyone.

A feed is free when nobody ever leased it, when its holder released it, or when the lease
ran out: the holder died (``kill -9``, power loss) or cannot reach the database. Taking a
feed whose lease ran out is a *takeover*: it is counted on the lease row together with the
previous holder and ``blind_since_utc``, the end of the media the dead holder had indexed
by its last health report (reports come every few seconds, so this is approximate): the
reference is blind from about then until the new holder's first postings. The exact blind
span is in the index, which records what was written (:meth:`Index.coverage`). With the
default 30 s period a dead holder's feeds are followed again within two periods.

Every take is one conditional statement in its own transaction (``INSERT`` that does nothing
on conflict, or ``UPDATE ... WHERE the lease ran out``), so two holders racing for a feed
cannot both win, on PostgreSQL as on SQLite, and no transaction holds two contended rows
(no deadlocks). A holder also fences itself: if it cannot renew a lease before that lease's
end by its own clock (database unreachable), :meth:`FeedLeases.expired` names the feeds it
must stop, so it never writes postings of a feed someone else may have taken. Times are
the holders' clocks in UTC; hosts must keep them synchronised (NTP) to well under the lease
period.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from .catalog_records import as_utc
from .catalog_schema import FeedLeaseRow, FeedRow, FeedStatusRow, IngesterRow

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "FeedLease",
    "FeedLeases",
    "LeaseRound",
    "holder_name",
]

log = logging.getLogger(__name__)

#: Lease period (seconds): a dead ingester's feeds are taken over within two of these. Short
#: enough that a crash costs a minute of reference, long enough that a database hiccup of a
#: few seconds does not move feeds around.
DEFAULT_LEASE_SECONDS = 30.0

#: Heartbeats of ingesters gone this many lease periods are deleted (the table stays small).
_FORGET_PERIODS = 100


def holder_name() -> str:
    """A name no other ingester process has: host, pid and a random tag (containers all
    run as pid 1, and a restarted process may get its old pid back)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class FeedLease:
    """A feed's lease as the catalog holds it (for health reports and operators)."""

    feed_id: int
    holder: str  # "" once released
    lease_until: datetime
    acquired_utc: datetime
    takeovers: int
    previous_holder: str | None
    blind_since_utc: datetime | None

    def as_dict(self) -> dict:
        """JSON-ready form (times ISO 8601 UTC)."""
        return {
            "holder": self.holder or None,
            "lease_until": self.lease_until.isoformat(),
            "acquired_utc": self.acquired_utc.isoformat(),
            "takeovers": self.takeovers,
            "previous_holder": self.previous_holder,
            "blind_since_utc": self.blind_since_utc.isoformat() if self.blind_since_utc else None,
        }


@dataclass(frozen=True)
class LeaseRound:
    """What one :meth:`FeedLeases.round` decided for its holder.

    Attributes
    ----------
    held : frozenset of int
        Feeds the holder owns after the round (follow them).
    taken : frozenset of int
        Of those, the ones it took in this round (start following them).
    takeovers : dict
        Of those, the ones taken from a holder whose lease ran out: feed id ->
        :class:`FeedLease` after the take (previous holder, start of the gap).
    lost : frozenset of int
        Feeds it believed it held and no longer does (stop them now, write nothing more).
    surplus : frozenset of int
        Feeds it still holds but must hand back (stop, flush, then :meth:`FeedLeases.release`):
        beyond its fair share, disabled, removed, or not among those it may follow.
    ingesters : int
        Live ingester processes, this one included.
    leader : bool
        Whether this holder is the first live one by name (it does the shared upkeep).
    """

    held: frozenset[int]
    taken: frozenset[int]
    takeovers: dict[int, FeedLease]
    lost: frozenset[int]
    surplus: frozenset[int]
    ingesters: int
    leader: bool


def _to_lease(row: FeedLeaseRow) -> FeedLease:
    return FeedLease(
        feed_id=row.feed_id,
        holder=row.holder,
        lease_until=as_utc(row.lease_until),
        acquired_utc=as_utc(row.acquired_utc),
        takeovers=row.takeovers,
        previous_holder=row.previous_holder,
        blind_since_utc=None if row.blind_since_utc is None else as_utc(row.blind_since_utc),
    )


class FeedLeases:
    """One holder's side of the feed leases in the catalog database at ``engine``.

    Parameters
    ----------
    engine : Engine
        The catalog's engine (SQLite or PostgreSQL).
    holder : str
        This process's unique name (:func:`holder_name`).
    lease_seconds : float
        Lease period; :meth:`round` should run every third of it.
    """

    def __init__(self, engine: Engine, holder: str, lease_seconds: float = DEFAULT_LEASE_SECONDS):
        if not holder or len(holder) > 255:
            raise ValueError(f"lease holder name {holder!r} must be 1 to 255 characters")
        if not lease_seconds > 0:
            raise ValueError(f"lease period {lease_seconds!r} s must be positive")
        self.engine = engine
        self.holder = holder
        self.lease_seconds = float(lease_seconds)
        # feed id -> time.monotonic() at which our lease ends by our own clock (fencing)
        self._until: dict[int, float] = {}

    def _insert(self):  # noqa: ANN202 - dialect-specific Insert construct
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(FeedLeaseRow)

    def round(self, wanted: Collection[int], now: datetime | None = None) -> LeaseRound:
        """Heartbeat, renew, work out the fair share, take free feeds up to it.

        ``wanted`` are the enabled feeds this holder may follow (all enabled feeds, or the
        ones its ``--feed`` options name).
        """
        now = datetime.now(UTC) if now is None else as_utc(now)
        until = now + timedelta(seconds=self.lease_seconds)
        started = time.monotonic()
        wanted = frozenset(int(f) for f in wanted)
        believed = frozenset(self._until)
        with self.engine.begin() as conn:
            beat = update(IngesterRow).where(IngesterRow.name == self.holder)
            if conn.execute(beat.values(until_utc=until)).rowcount == 0:
                conn.execute(insert(IngesterRow).values(name=self.holder, until_utc=until))
            forget = now - timedelta(seconds=_FORGET_PERIODS * self.lease_seconds)
            conn.execute(delete(IngesterRow).where(IngesterRow.until_utc < forget))
            conn.execute(
                update(FeedLeaseRow)
                .where(FeedLeaseRow.holder == self.holder)
                .values(lease_until=until)
            )
            mine = frozenset(
                conn.scalars(select(FeedLeaseRow.feed_id).where(FeedLeaseRow.holder == self.holder))
            )
            live = list(
                conn.scalars(
                    select(IngesterRow.name)
                    .where(IngesterRow.until_utc > now)
                    .order_by(IngesterRow.name)
                )
            )
            busy = frozenset(
                conn.scalars(
                    select(FeedLeaseRow.feed_id).where(
                        FeedLeaseRow.holder != "",
                        FeedLeaseRow.holder != self.holder,
                        FeedLeaseRow.lease_until > now,
                    )
                )
            )
        live_count = max(1, len(live))
        share = math.ceil(len(wanted) / live_count)
        keep = sorted(mine & wanted)[:share]
        surplus = mine - frozenset(keep)
        taken: set[int] = set()
        takeovers: dict[int, FeedLease] = {}
        free = sorted(wanted - mine - busy, key=self._order)
        for feed_id in free:
            if len(keep) + len(taken) >= share:
                break
            got = self._take(feed_id, now, until)
            if got is not None:
                lease, ran_out = got
                taken.add(feed_id)
                if ran_out:
                    takeovers[feed_id] = lease
        held = frozenset(keep) | frozenset(taken)
        fence = started + self.lease_seconds
        self._until = {f: fence for f in held | surplus}
        return LeaseRound(
            held=held,
            taken=frozenset(taken),
            takeovers=takeovers,
            lost=believed - mine - frozenset(taken),
            surplus=surplus,
            ingesters=live_count,
            leader=bool(live) and live[0] == self.holder,
        )

    def _order(self, feed_id: int) -> bytes:
        return hashlib.blake2b(f"{self.holder}/{feed_id}".encode(), digest_size=8).digest()

    def _take(self, feed_id: int, now: datetime, until: datetime) -> tuple[FeedLease, bool] | None:
        """Take one free feed in its own transaction: the lease and whether it was a
        takeover; ``None`` if another holder won it (or the feed was removed meanwhile).

        A compare-and-set on the holder read just before: of two holders racing, the
        second's ``UPDATE`` (or ``INSERT``) matches no row."""
        with self.engine.begin() as conn:
            if conn.execute(select(FeedRow.id).where(FeedRow.id == feed_id)).first() is None:
                return None
            seen = conn.execute(
                select(FeedLeaseRow.holder, FeedLeaseRow.lease_until).where(
                    FeedLeaseRow.feed_id == feed_id
                )
            ).first()
            if seen is None:
                created = conn.execute(
                    self._insert()
                    .values(
                        feed_id=feed_id,
                        holder=self.holder,
                        lease_until=until,
                        acquired_utc=now,
                        takeovers=0,
                    )
                    .on_conflict_do_nothing(index_elements=["feed_id"])
                ).rowcount
                if not created:
                    return None
                ran_out = False
            else:
                ran_out = seen.holder != ""
                if ran_out and as_utc(seen.lease_until) > now:
                    return None
                values: dict = {"holder": self.holder, "lease_until": until, "acquired_utc": now}
                if ran_out:
                    values |= {
                        "takeovers": FeedLeaseRow.takeovers + 1,
                        "previous_holder": seen.holder,
                        "blind_since_utc": select(FeedStatusRow.last_posting_utc)
                        .where(FeedStatusRow.feed_id == feed_id)
                        .scalar_subquery(),
                    }
                won = conn.execute(
                    update(FeedLeaseRow)
                    .where(
                        FeedLeaseRow.feed_id == feed_id,
                        FeedLeaseRow.holder == seen.holder,
                        FeedLeaseRow.lease_until == seen.lease_until,
                    )
                    .values(**values)
                ).rowcount
                if not won:
                    return None
            row = conn.execute(select(FeedLeaseRow).where(FeedLeaseRow.feed_id == feed_id)).one()
            lease = _to_lease(row)
        if ran_out:
            log.warning(
                "feed %d taken over from %s (lease ran out; reference blind since %s)",
                feed_id,
                lease.previous_holder,
                lease.blind_since_utc.isoformat() if lease.blind_since_utc else "its start",
            )
        return lease, ran_out

    def expired(self) -> frozenset[int]:
        """Feeds whose lease has ended by this process's own clock without a renewal: stop
        them at once (another holder may have taken them)."""
        now = time.monotonic()
        return frozenset(f for f, end in self._until.items() if end <= now)

    def release(self, feed_ids: Collection[int]) -> None:
        """Hand feeds back (after their postings are written): free for anyone at once, not
        counted as takeovers."""
        ids = [int(f) for f in feed_ids]
        if not ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(FeedLeaseRow)
                .where(FeedLeaseRow.holder == self.holder, FeedLeaseRow.feed_id.in_(ids))
                .values(holder="")
            )
        for f in ids:
            self._until.pop(f, None)

    def leave(self) -> None:
        """Release every feed and the heartbeat (clean shutdown: others take over at their
        next round, with no lease to wait out)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(FeedLeaseRow).where(FeedLeaseRow.holder == self.holder).values(holder="")
            )
            conn.execute(delete(IngesterRow).where(IngesterRow.name == self.holder))
        self._until.clear()


def feed_leases(engine: Engine) -> dict[int, FeedLease]:
    """Every feed's lease by feed id (feeds never leased are absent)."""
    with engine.connect() as conn:
        return {r.feed_id: _to_lease(r) for r in conn.execute(select(FeedLeaseRow))}
