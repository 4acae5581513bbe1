"""``/v1/channels/{id}/feeds`` and ``/v1/feeds``: the live reference streams of a channel,
recorded and indexed by Vigie, and the health of their ingestion.

A feed URL carries subscriber credentials, so keys other than admin ones see it redacted
(see :mod:`.catalog_common`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from starlette.routing import Match
from starlette.types import Scope

from reference_index.catalog import MAX_RETENTION_HOURS, CatalogError
from reference_index.catalog_records import Feed, FeedStatus
from reference_index.catalog_schema import FEED_STATES
from reference_index.live import feed_source

from ..keys import ApiKey
from ..reindex_job import public_source
from ..runtime import Runtime
from .catalog_common import (
    BODY_ERRORS,
    ERRORS,
    MAX_SOURCE_CHARS,
    TAGS,
    WRITE_ERRORS,
    Admin,
    ChannelPath,
    Id,
    Reader,
    audit,
    channel_or_404,
    checked_source,
    hide_tracks,
    refused,
)
from .deps import RuntimeDep
from .responses import location

__all__ = ["FeedHealthOut", "FeedIn", "FeedOut", "FeedStatusOut", "feed_health", "router"]


class _FeedRoute(APIRoute):
    """A route of this router. ``/feeds/health`` is a resource of its own, so the
    ``/feeds/{feed_id}...`` routes do not take "health" for a feed id: another method on
    it is a 405 naming the allowed ones, not a 422 about a bad feed id."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and child.get("path_params", {}).get("feed_id") == "health":
            return Match.NONE, {}
        return match, child


router = APIRouter(prefix="/v1", tags=TAGS, route_class=_FeedRoute)


class FeedIn(BaseModel):
    """A live reference stream of the channel, recorded and indexed by Vigie."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "http://tnt.example/live/USER/PASS/101.ts",
                    "retention_hours": 48,
                    "label": "TNT multiplex R1",
                    "enabled": True,
                }
            ]
        },
    )

    url: str = Field(
        max_length=MAX_SOURCE_CHARS,
        description="http(s) URL (credentials allowed: stored as given, shown redacted to "
        "non-admin keys) or an absolute local path (a capture card's pipe, a file).",
    )
    retention_hours: float = Field(
        48.0,
        gt=0.0,
        le=MAX_RETENTION_HOURS,
        strict=True,
        description="How long recordings and postings of this feed are kept, in hours: a "
        "restream lags live by seconds to hours, so a rolling window suffices and bounds "
        "the index size.",
    )
    label: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = Field(
        None, description="Free text shown in listings."
    )
    enabled: bool = Field(True, strict=True, description="Disabled feeds are kept, not ingested.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return checked_source(value, "feed URL")


class FeedOut(BaseModel):
    id: int
    channel_id: str
    url: str = Field(description="Credentials masked unless the key is admin.")
    enabled: bool
    retention_hours: float = Field(description="Recordings are kept this long, in hours.")
    label: str | None
    created_at: datetime


class FeedStatusOut(BaseModel):
    """The feed's live ingestion as its ingester last reported it."""

    state: Literal[FEED_STATES]  # type: ignore[valid-type]
    ingester: str = Field(description="Who follows the feed, e.g. host:pid.")
    last_posting_utc: datetime | None = Field(description="End of the newest media indexed.")
    lag_seconds: float | None = Field(
        description="How far behind live the index was when that media was indexed, in seconds "
        "(a restream can only be matched once its reference is indexed)."
    )
    chunks: int = Field(description="Chunks indexed since the ingester took the feed.")
    errors: int = Field(description="Failures since the ingester took the feed.")
    reconnects: int
    last_error_reason: str | None = Field(description="Short machine reason, e.g. timeout.")
    last_error_message: str | None = Field(description="Redacted human message.")
    last_error_utc: datetime | None
    updated_utc: datetime = Field(description="When the ingester reported (its own clock).")
    age_seconds: float = Field(
        description="Seconds since that report: an old one means the ingester is gone or stuck."
    )


class FeedHealthOut(FeedOut):
    """A feed and how its ingestion is doing."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "channel_id": "tf1-hd",
                    "url": "http://tnt.example/live/***/***/101.ts",
                    "enabled": True,
                    "retention_hours": 48.0,
                    "label": "TNT multiplex R1",
                    "created_at": "2026-12-01T10:00:00Z",
                    "state": "live",
                    "status": {
                        "state": "live",
                        "ingester": "ingest-1:4242",
                        "last_posting_utc": "2026-12-01T10:05:58Z",
                        "lag_seconds": 4.2,
                        "chunks": 180,
                        "errors": 0,
                        "reconnects": 0,
                        "last_error_reason": None,
                        "last_error_message": None,
                        "last_error_utc": None,
                        "updated_utc": "2026-12-01T10:06:00Z",
                        "age_seconds": 3.1,
                    },
                }
            ]
        }
    )

    state: Literal[(*FEED_STATES, "never_ingested", "disabled")]  # type: ignore[valid-type]
    status: FeedStatusOut | None = Field(description="Null when no ingester ever reported.")


def _feed_out(feed: Feed, key: ApiKey) -> dict:
    return {**feed.as_dict(), "url": feed.url if key.allows("admin") else public_source(feed.url)}


def _status_out(status: FeedStatus) -> dict:
    return {**status.as_dict(), "age_seconds": round(status.age_seconds(), 3)}


def feed_health(feeds: list[Feed], statuses: dict[int, FeedStatus], key: ApiKey) -> list[dict]:
    rows = []
    for feed in feeds:
        status = statuses.get(feed.id)
        if status is not None:
            state = status.state
        else:
            state = "never_ingested" if feed.enabled else "disabled"
        out = _feed_out(feed, key)
        rows.append({**out, "state": state, "status": _status_out(status) if status else None})
    return rows


@router.get(
    "/channels/{channel_id}/feeds",
    response_model=list[FeedOut],
    summary="Reference feeds of a channel",
    responses=ERRORS,
)
def list_feeds(channel_id: ChannelPath, rt: RuntimeDep, key: Reader) -> list[dict]:
    try:
        feeds = rt.catalog.feeds(channel_id)
    except CatalogError as exc:
        raise refused(exc) from None
    return [_feed_out(f, key) for f in feeds]


@router.post(
    "/channels/{channel_id}/feeds",
    status_code=201,
    response_model=FeedOut,
    summary="Register a live reference feed of a channel",
    responses={
        **WRITE_ERRORS,
        **BODY_ERRORS,
        201: location("Created; `Location` points at it."),
    },
)
def add_feed(
    channel_id: ChannelPath, body: FeedIn, rt: RuntimeDep, key: Admin, response: Response
) -> dict:
    channel_or_404(rt, channel_id)
    try:
        feed = rt.catalog.add_feed(
            channel_id,
            body.url,
            retention_hours=body.retention_hours,
            label=body.label or None,
            enabled=body.enabled,
        )
    except CatalogError as exc:
        raise refused(exc) from None
    audit(rt, key, "feed.add", f"feed:{feed.id}", feed.as_dict())
    response.headers["Location"] = f"/v1/feeds/{feed.id}"
    return _feed_out(feed, key)


# Declared before /feeds/{feed_id}, which would otherwise take "health" for an id.
@router.get(
    "/feeds/health",
    response_model=list[FeedHealthOut],
    summary="Live ingestion health of every feed",
    responses=ERRORS,
)
def all_feeds_health(rt: RuntimeDep, key: Reader) -> list[dict]:
    return feed_health(rt.catalog.feeds(), rt.catalog.feed_statuses(), key)


@router.get(
    "/channels/{channel_id}/health",
    response_model=list[FeedHealthOut],
    summary="Live ingestion health of a channel's feeds",
    responses=ERRORS,
)
def channel_health(channel_id: ChannelPath, rt: RuntimeDep, key: Reader) -> list[dict]:
    try:
        feeds = rt.catalog.feeds(channel_id)
        statuses = rt.catalog.feed_statuses(channel_id)
    except CatalogError as exc:
        raise refused(exc) from None
    return feed_health(feeds, statuses, key)


@router.get(
    "/feeds/{feed_id}", response_model=FeedOut, summary="A reference feed", responses=ERRORS
)
def get_feed(feed_id: Id, rt: RuntimeDep, key: Reader) -> dict:
    try:
        return _feed_out(rt.catalog.feed(feed_id), key)
    except CatalogError as exc:
        raise refused(exc) from None


@router.delete(
    "/feeds/{feed_id}",
    status_code=204,
    response_class=Response,
    response_model=None,
    summary="Delete a reference feed and its live postings",
    responses={**ERRORS, 204: {"description": "Deleted."}},
)
def remove_feed(feed_id: Id, rt: RuntimeDep, key: Admin) -> Response:
    try:
        feed = rt.catalog.feed(feed_id)
        rt.catalog.remove_feed(feed_id)
    except CatalogError as exc:
        raise refused(exc) from None
    source = feed_source(feed_id)
    hidden = hide_tracks(rt, lambda t: t.channel_id == feed.channel_id and t.source == source)
    audit(rt, key, "feed.remove", f"feed:{feed_id}", {**feed.as_dict(), "hidden_tracks": hidden})
    return Response(status_code=204)


def _set_enabled(rt: Runtime, key: ApiKey, feed_id: int, enabled: bool) -> dict:
    try:
        feed = rt.catalog.set_feed_enabled(feed_id, enabled)
    except CatalogError as exc:
        raise refused(exc) from None
    action = "feed.enable" if enabled else "feed.disable"
    audit(rt, key, action, f"feed:{feed_id}", {"channel_id": feed.channel_id})
    return _feed_out(feed, key)


@router.post(
    "/feeds/{feed_id}/enable",
    response_model=FeedOut,
    summary="Resume ingesting a feed",
    responses=ERRORS,
)
def enable_feed(feed_id: Id, rt: RuntimeDep, key: Admin) -> dict:
    return _set_enabled(rt, key, feed_id, True)


@router.post(
    "/feeds/{feed_id}/disable",
    response_model=FeedOut,
    summary="Stop ingesting a feed (it stays in the catalog)",
    responses=ERRORS,
)
def disable_feed(feed_id: Id, rt: RuntimeDep, key: Admin) -> dict:
    return _set_enabled(rt, key, feed_id, False)
