"""The channels page: every channel with its reference feeds and their ingestion health
(state, lag, gaps, errors), its authorized distributors, and the re-indexing jobs with
their progress.

Health and jobs come from the API's own code (``service.api.feeds``, ``service.api.jobs``),
so the page and ``/v1/feeds/health`` agree and feed URLs are redacted for keys without
``admin``. Gaps are read from the index: the UTC intervals a feed's live track covered
(:meth:`~reference_index.store.embedded.EmbeddedStore.coverage`); a hole between two of
them is time the reference was blind, when no restream of the channel could be matched.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from reference_index.index import Index
from reference_index.live import feed_source
from reference_index.store.base import ParamsMismatch

from ..api import channels as channels_api
from ..api.feeds import feed_health
from ..api.jobs import job_dict
from ..models import JobRow
from ..runtime import Runtime
from ..scans import CursorError, page
from .auth import CurrentSession, runtime
from .web import UiError, render

__all__ = ["GAP_WINDOW_SECONDS", "MIN_GAP_SECONDS", "feed_gaps", "router"]

router = APIRouter(include_in_schema=False)
#: Gaps are counted over this many seconds before now (a day).
GAP_WINDOW_SECONDS = 24 * 3600.0
#: Holes shorter than this (seconds) are flush granularity, not outages.
MIN_GAP_SECONDS = 5.0
JOBS_PER_PAGE = 20


def _gaps(intervals: list[tuple[float, float]], lo: float, hi: float) -> list[tuple[float, float]]:
    """Holes of at least :data:`MIN_GAP_SECONDS` between covered intervals within
    ``[lo, hi]`` (UTC epoch seconds). The stretch after the last interval is not a gap:
    it is the feed's lag, shown beside it."""
    holes = []
    end = None
    for a, b in sorted(intervals):
        if end is not None and a - end >= MIN_GAP_SECONDS:
            start, stop = max(end, lo), min(a, hi)
            if stop - start >= MIN_GAP_SECONDS:
                holes.append((start, stop))
        end = b if end is None else max(end, b)
    return holes


def feed_gaps(rt: Runtime, feed_ids: list[int], now: float | None = None) -> dict[int, dict] | None:
    """Per feed id: ``count``, ``seconds`` and the ``latest`` (start, end) of the holes in
    its live coverage over the last day (UTC epoch seconds); ``None`` if the index cannot
    be opened with the current parameters. Feeds never ingested have no entry."""
    now = time.time() if now is None else now
    lo = now - GAP_WINDOW_SECONDS
    by_source = {feed_source(i): i for i in feed_ids}

    def read(index: Index) -> dict[int, dict]:
        found: dict[int, dict] = {}
        for modality in ("audio", "video"):  # audio first; video for video-only feeds
            store = index.store(modality)
            for track in store.tracks().values():
                feed_id = by_source.get(track.source)
                if track.kind != "live" or feed_id is None or feed_id in found:
                    continue
                holes = _gaps(store.coverage(track.id), lo, now)
                found[feed_id] = {
                    "modality": modality,
                    "count": len(holes),
                    "seconds": sum(b - a for a, b in holes),
                    "latest": holes[-1] if holes else None,
                }
        return found

    try:
        return rt.index.use(read)
    except ParamsMismatch:
        return None


@router.get("/channels")
def channels(request: Request, session: CurrentSession, cursor: str | None = None) -> Response:
    rt = runtime(request)
    key = session.key
    admin = key.allows("admin")
    hours = channels_api._indexed_hours(rt)
    feeds = rt.catalog.feeds()
    gaps = feed_gaps(rt, [f.id for f in feeds])
    health = feed_health(feeds, rt.catalog.feed_statuses(), key)
    distributors = [d.as_dict() for d in rt.catalog.distributors()]
    listed = []
    for channel in rt.catalog.channels():
        out = channels_api._channel_out(channel, hours)
        out["feeds"] = [
            {**f, "gaps": (gaps or {}).get(f["id"])}
            for f in health
            if f["channel_id"] == channel.id
        ]
        out["distributors"] = [d for d in distributors if d["channel_id"] == channel.id]
        listed.append(out)
    with rt.db.session() as s:
        try:
            rows, next_cursor = page(
                s, select(JobRow).where(JobRow.kind == "reindex"), JobRow.id, cursor, JOBS_PER_PAGE
            )
        except CursorError:
            raise UiError(422, "cursor: not one this page gave out") from None
        jobs = [job_dict(r, admin=admin) for r in rows]
    return render(
        request,
        "channels.html",
        channels=listed,
        jobs=jobs,
        next_cursor=next_cursor,
        gaps_known=gaps is not None,
        gap_hours=GAP_WINDOW_SECONDS / 3600,
    )
