"""Per-feed health of live reference ingestion, kept in the catalog's ``feed_status`` table.

The live ingester (:mod:`reference_index.live`) reports a :class:`FeedStatus` for each feed
it follows, every few seconds and at each change of state. The API, ``vigie channels feeds
health`` and ``/metrics`` read them back. Each feed has one row, overwritten by each report
(the latest report wins, whatever its ``updated_utc``: ordering reports by the clocks of
different hosts would be unsafe). It goes away with its feed (``ON DELETE CASCADE``).

:class:`~reference_index.catalog.Catalog` calls these functions; the code is here so that
the catalog module stays short.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from .catalog_records import (
    FEED_STATES,
    CatalogError,
    FeedStatus,
    check_datetime,
    to_feed_status,
)
from .catalog_schema import FeedRow, FeedStatusRow

__all__ = ["MAX_ERROR_MESSAGE", "check_feed_status", "feed_statuses", "report_feed_status"]

#: Longest error message stored, in characters; longer ones are cut (a stack of nested
#: causes must not grow the row without bound).
MAX_ERROR_MESSAGE = 1000
_MAX_INGESTER = 255  # column widths (PostgreSQL enforces them, SQLite does not)
_MAX_REASON = 100
# A feed removed, or a status row inserted by another writer, between our reads and our
# writes: the transaction fails and is redone on fresh reads, this many times in all.
_ATTEMPTS = 3


def _cut(value: str | None, what: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise CatalogError(f"feed status {what} {value!r} must be a string")
    text = value.strip()[:limit]
    return text or None


def _count(value: int, what: str) -> int:
    try:
        count = operator.index(value)  # int, numpy integers; not 1.0 or "1"
    except TypeError:
        count = -1
    if isinstance(value, bool) or count < 0:
        raise CatalogError(f"feed status {what} {value!r} must be an integer >= 0")
    return count


def check_feed_status(status: FeedStatus) -> FeedStatus:
    """``status`` ready to store: times as aware UTC (naive ones are taken as UTC), texts
    stripped and cut to their column, the message to :data:`MAX_ERROR_MESSAGE` characters.

    Raises
    ------
    CatalogError
        Not a :class:`FeedStatus`, an unknown state, an empty ingester, a negative or
        non-integer count, a non-finite lag, or a missing ``updated_utc``.
    """
    if not isinstance(status, FeedStatus):
        raise CatalogError(f"{status!r} is not a FeedStatus")
    feed_id = _count(status.feed_id, "feed_id")
    if status.state not in FEED_STATES:
        raise CatalogError(
            f"feed status state {status.state!r} must be one of {', '.join(FEED_STATES)}"
        )
    ingester = _cut(status.ingester, "ingester", _MAX_INGESTER)
    if ingester is None:
        raise CatalogError("feed status ingester must not be empty")
    lag = status.lag_seconds
    if lag is not None:
        try:
            lag = float(lag)  # may be negative: the clocks of encoder and ingester differ
        except (TypeError, ValueError):
            lag = math.nan
        if isinstance(status.lag_seconds, bool | str) or not math.isfinite(lag):
            raise CatalogError(
                f"feed status lag_seconds {status.lag_seconds!r} must be a finite number"
            )
    if status.updated_utc is None:
        raise CatalogError("feed status updated_utc must be set")
    return replace(
        status,
        feed_id=feed_id,
        ingester=ingester,
        last_posting_utc=check_datetime(status.last_posting_utc, "last_posting_utc"),
        lag_seconds=lag,
        chunks=_count(status.chunks, "chunks"),
        errors=_count(status.errors, "errors"),
        reconnects=_count(status.reconnects, "reconnects"),
        last_error_reason=_cut(status.last_error_reason, "last_error_reason", _MAX_REASON),
        last_error_message=_cut(status.last_error_message, "last_error_message", MAX_ERROR_MESSAGE),
        last_error_utc=check_datetime(status.last_error_utc, "last_error_utc"),
        updated_utc=check_datetime(status.updated_utc, "updated_utc"),
    )


def report_feed_status(engine: Engine, statuses: Iterable[FeedStatus]) -> None:
    """Store the statuses, all in one transaction, each replacing its feed's previous one.

    A status for a feed that is not (or no longer) in the catalog is skipped: the feed may
    have been removed while its ingester ran. When one feed has several statuses, the last
    one counts. Nothing is stored if any status is invalid (:func:`check_feed_status`
    raises :class:`CatalogError`).
    """
    latest: dict[int, FeedStatus] = {}
    for status in statuses:
        checked = check_feed_status(status)
        latest[checked.feed_id] = checked
    if not latest:
        return
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with Session(engine) as s, s.begin():
                _upsert(s, latest)
            return
        except (IntegrityError, StaleDataError):
            if attempt == _ATTEMPTS:
                raise


def _upsert(s: Session, latest: dict[int, FeedStatus]) -> None:
    # Portable upsert: read what exists, then UPDATE or INSERT (no dialect-specific
    # ON CONFLICT); a concurrent writer makes the flush fail and the caller retry.
    known = set(s.scalars(select(FeedRow.id).where(FeedRow.id.in_(list(latest)))))
    rows = {
        row.feed_id: row
        for row in s.scalars(select(FeedStatusRow).where(FeedStatusRow.feed_id.in_(list(known))))
    }
    for feed_id, status in latest.items():
        if feed_id not in known:
            continue
        row = rows.get(feed_id)
        if row is None:
            row = FeedStatusRow(feed_id=feed_id)
            s.add(row)
        row.state = status.state
        row.ingester = status.ingester
        row.last_posting_utc = status.last_posting_utc
        row.lag_seconds = status.lag_seconds
        row.chunks = status.chunks
        row.errors = status.errors
        row.reconnects = status.reconnects
        row.last_error_reason = status.last_error_reason
        row.last_error_message = status.last_error_message
        row.last_error_utc = status.last_error_utc
        row.updated_utc = status.updated_utc


def feed_statuses(s: Session, channel_id: str | None = None) -> dict[int, FeedStatus]:
    """Latest status of each feed that has one, of one channel or of all, by feed id
    (a feed never ingested has none: it is absent, not ``None``)."""
    query = select(FeedStatusRow).order_by(FeedStatusRow.feed_id)
    if channel_id is not None:
        query = query.join(FeedRow, FeedRow.id == FeedStatusRow.feed_id).where(
            FeedRow.channel_id == channel_id
        )
    return {row.feed_id: to_feed_status(row) for row in s.scalars(query)}
