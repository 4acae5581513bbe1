"""``/v1/channels`` and what hangs off a channel: reference feeds and their ingestion
health, authorized distributors, VOD/catch-up assets, and batch re-indexing jobs.

Reads take ``matches:read`` (analysts need to know what is monitored); writes take
``admin``. Feed URLs and asset sources carry subscriber credentials (Xtream user and
password, tokens), so every key but an admin one sees them redacted, and the audit log
only ever stores the redacted form (it is append-only: a leaked secret could never be
scrubbed from it).

Validation mirrors ``vigie channels ...`` (:mod:`service.cli_channels`): the request
models run the catalog's own checks (:func:`check_source`, host pattern and CIDR
normalisation) so that a 422 names the offending field; what only the catalog can decide
is mapped from its :class:`CatalogError` — "no such ..." to 404, "already exists" to 409,
anything else to 422.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path as FsPath
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from fingerprinting.capture import CaptureError, redact_url
from fingerprinting.capture.netguard import resolve_checked
from reference_index.batch import expand_sources
from reference_index.catalog import MAX_RETENTION_HOURS, CatalogError
from reference_index.catalog_records import Asset, Channel, Feed, FeedStatus, check_source
from reference_index.catalog_schema import FEED_STATES
from reference_index.distributors import (
    ASN_MAX,
    Distributor,
    normalise_cidr,
    normalise_host_pattern,
)
from reference_index.index import MODALITIES, Index
from reference_index.live import feed_source
from reference_index.store.base import ParamsMismatch, Track

from ..keys import ApiKey
from ..models import JOB_STATES, AuditRow, JobRow, utc, utc_now
from ..problems import Problem
from ..reindex_job import empty_progress, public_source
from ..runtime import Runtime
from ..scans import CursorError, page
from .deps import RuntimeDep, SessionDep, require

__all__ = [
    "AssetIn",
    "AssetOut",
    "ChannelIn",
    "ChannelOut",
    "DistributorIn",
    "DistributorOut",
    "FeedHealthOut",
    "FeedIn",
    "FeedOut",
    "FeedStatusOut",
    "JobOut",
    "JobPage",
    "ReindexIn",
    "job_dict",
    "router",
]

router = APIRouter(prefix="/v1", tags=["channels"])
Reader = require("matches:read")
Admin = require("admin")
Id = Annotated[int, Path(ge=1, le=2**62)]
ChannelPath = Annotated[str, Path(min_length=1, max_length=64, description="Channel id.")]
ERRORS = {
    401: {"description": "No API key, or an unknown one."},
    403: {"description": "The key lacks the scope."},
    404: {"description": "No such resource."},
    422: {"description": "Invalid request; `errors` names each field."},
    429: {"description": "Rate limit; see `Retry-After`."},
}
WRITE_ERRORS = {**ERRORS, 409: {"description": "It already exists."}}

#: A channel id (and a simulcast group, which is named like a channel): the catalog's rule.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
#: Longest feed URL or asset source accepted, in characters.
MAX_SOURCE_CHARS = 4096
#: Most recordings one re-indexing request may name (folders count as one).
MAX_REINDEX_SOURCES = 1000
#: Most worker processes one re-indexing job may use (each takes a core).
MAX_REINDEX_JOBS = 8

Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _source(value: str, what: str) -> str:
    """The catalog's source rule (http(s) URL with a host, or an absolute path) as a
    pydantic ``ValueError``, so the 422 names the field; messages show the URL redacted."""
    try:
        return check_source(value, what)
    except CatalogError as exc:
        raise ValueError(str(exc)) from None


# --- models -------------------------------------------------------------------------------


class ChannelIn(BaseModel):
    """A channel to register."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"id": "tf1-hd", "name": "TF1 HD", "owner": "TF1 SA", "simulcast_group": "tf1"}
            ]
        },
    )

    id: str = Field(
        pattern=ID_PATTERN,
        description="Short stable id: 1-64 letters, digits, '.', '_' or '-', starting with a "
        "letter or digit.",
    )
    name: Text200 = Field(description="Display name.")
    owner: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = Field(
        None, description="Rights holder."
    )
    simulcast_group: str | None = Field(
        None,
        pattern=ID_PATTERN,
        description="HD/SD/regional variants of one channel share a group, so a match on any "
        "is reported once for the group; default: the channel's own id.",
    )


class ChannelOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "tf1-hd",
                    "name": "TF1 HD",
                    "owner": "TF1 SA",
                    "simulcast_group": "tf1",
                    "created_at": "2026-12-01T10:00:00Z",
                    "indexed_hours": 48.0,
                }
            ]
        }
    )

    id: str
    name: str
    owner: str | None
    simulcast_group: str = Field(description="Its group, or its own id.")
    created_at: datetime
    indexed_hours: float | None = Field(
        description="Hours of reference indexed (the longer of audio and video), live and "
        "recordings; null when the index cannot be opened (parameters changed: reindex --all)."
    )


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
        return _source(value, "feed URL")


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


class DistributorIn(BaseModel):
    """A licensee authorized to carry the channel: its streams are reported as authorized,
    not pirate. Give at least one of ``host_pattern``, ``cidr`` or ``asn`` (any one that
    matches suffices)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "licensee": "Orange TV",
                    "host_pattern": "*.orange-tv.example",
                    "cidr": "192.0.2.0/24",
                    "territory": "FR",
                    "valid_from": "2026-01-01T00:00:00Z",
                    "valid_to": "2027-01-01T00:00:00Z",
                }
            ]
        },
    )

    licensee: Text200 = Field(description="Who holds the licence.")
    host_pattern: str | None = Field(
        None,
        max_length=255,
        description="cdn.licensee.example (that host) or *.licensee.example (the domain and "
        "all its sub-domains).",
    )
    cidr: str | None = Field(
        None, max_length=64, description="IPv4/IPv6 network, no wider than /8 (IPv4) or /16."
    )
    asn: int | None = Field(None, ge=1, le=ASN_MAX, strict=True, description="AS number.")
    territory: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = (
        Field(None, description="ISO 3166 code (FR, FR-IDF) or free text; informative.")
    )
    valid_from: datetime | None = Field(None, description="Start, inclusive; no offset = UTC.")
    valid_to: datetime | None = Field(None, description="End, exclusive; no offset = UTC.")

    @field_validator("host_pattern")
    @classmethod
    def _host_pattern(cls, value: str | None) -> str | None:
        return normalise_host_pattern(value) if value and value.strip() else None

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str | None) -> str | None:
        return normalise_cidr(value) if value and value.strip() else None

    @field_validator("valid_to")
    @classmethod
    def _window(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("valid_from")
        if value is not None and start is not None and not utc(start) < utc(value):
            raise ValueError("must be after valid_from")
        return value

    @model_validator(mode="after")
    def _criteria(self) -> DistributorIn:
        if self.host_pattern is None and self.cidr is None and self.asn is None:
            raise ValueError("give host_pattern, cidr or asn: how its streams are recognised")
        return self


class DistributorOut(BaseModel):
    id: int
    channel_id: str
    licensee: str
    territory: str | None
    host_pattern: str | None = Field(description="Lower-case IDNA (punycode) form.")
    cidr: str | None = Field(description="Canonical network (host bits cleared).")
    asn: int | None
    valid_from: datetime | None
    valid_to: datetime | None = Field(description="Exclusive.")
    created_at: datetime


class AssetIn(BaseModel):
    """A VOD or catch-up recording of the channel (index it with ``POST .../reindex``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"title": "Journal de 20h, 2026-12-01", "source": "/srv/vod/tf1/jt-20261201.mp4"}
            ]
        },
    )

    title: Text200
    source: str = Field(
        max_length=MAX_SOURCE_CHARS, description="http(s) URL or absolute path of the recording."
    )

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return _source(value, "asset source")


class AssetOut(BaseModel):
    id: int
    channel_id: str
    title: str
    source: str = Field(description="Credentials masked unless the key is admin.")
    created_at: datetime


#: One recording of a re-indexing request, checked item by item so a 422 names
#: ``sources[i]``.
SourceItem = Annotated[
    str,
    StringConstraints(max_length=MAX_SOURCE_CHARS),
    AfterValidator(lambda value: _source(value, "source")),
]


class ReindexIn(BaseModel):
    """Recordings to fingerprint into the channel. Re-indexing a recording replaces its
    earlier postings (never duplicates); the job is resumable, so the same request after
    a crash continues where it stopped."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"sources": ["/srv/recordings/tf1/2026-12-01/", "/srv/vod/tf1/jt.mp4"], "jobs": 4}
            ]
        },
    )

    sources: list[SourceItem] = Field(
        min_length=1,
        max_length=MAX_REINDEX_SOURCES,
        description="Absolute paths of files or folders on the server (folders: their media "
        "files, recursively), or http(s) URLs.",
    )
    jobs: int = Field(
        1,
        ge=1,
        le=MAX_REINDEX_JOBS,
        strict=True,
        description="Worker processes (one core each) for decoding and fingerprinting.",
    )


class ReindexParams(BaseModel):
    sources: list[str] = Field(description="As submitted; credentials masked unless admin.")
    jobs: int


class JobFailure(BaseModel):
    source: str = Field(description="The recording, credentials masked.")
    error: str


class JobProgress(BaseModel):
    files_total: int = Field(description="Recordings to index (folders expanded); 0 until run.")
    files_done: int = Field(description="Recordings finished, indexed or failed.")
    seconds_done: float = Field(description="Seconds of media indexed so far.")
    failed: int = Field(description="Recordings that could not be indexed (skipped).")
    failures: list[JobFailure] = Field(description="The first of those, with their errors.")


class JobOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "kind": "reindex",
                    "channel_id": "tf1-hd",
                    "status": "running",
                    "params": {"sources": ["/srv/recordings/tf1/"], "jobs": 4},
                    "progress": {
                        "files_total": 24,
                        "files_done": 9,
                        "seconds_done": 32400.0,
                        "failed": 0,
                        "failures": [],
                    },
                    "error": None,
                    "created_at": "2026-12-01T10:00:00Z",
                    "started_at": "2026-12-01T10:00:01Z",
                    "finished_at": None,
                }
            ]
        }
    )

    id: int
    kind: Literal["reindex"]
    channel_id: str | None
    status: Literal[JOB_STATES]  # type: ignore[valid-type]
    params: ReindexParams
    progress: JobProgress
    error: str | None = Field(description="Why the job failed.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(BaseModel):
    """A page of jobs, newest first; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[JobOut]
    next_cursor: str | None


# --- helpers ------------------------------------------------------------------------------


def _refused(exc: CatalogError) -> Problem:
    """A catalog refusal as the HTTP error it is (see the module docstring)."""
    message = str(exc)
    if message.startswith("no "):
        return Problem(404, message.split(";")[0])  # drop the CLI hint ("add it with ...")
    if "already exists" in message:
        return Problem(409, message)
    return Problem(422, message)


def _channel_or_404(rt: Runtime, channel_id: str) -> None:
    if rt.catalog.get(channel_id) is None:
        raise Problem(404, f"no channel {channel_id!r}")


def _audit(rt: Runtime, key: ApiKey, action: str, target: str, data: dict) -> None:
    """Append the decision to the audit log (never with an unredacted URL in ``data``)."""
    with rt.db.session() as s:
        s.add(
            AuditRow(
                at=utc_now(),
                actor=key.id,
                action=action,
                target=target[:80],
                data={**data, "key_name": key.name},
            )
        )


def _indexed_hours(rt: Runtime) -> dict[str, float] | None:
    """Hours indexed per channel (the larger of its audio and video hours), or ``None``
    when the index cannot be opened with the current parameters."""

    def count(index: Index) -> dict[str, float]:
        hours: dict[str, float] = {}
        for modality in MODALITIES:
            per_channel: dict[str, float] = {}
            for t in index.store(modality).tracks().values():
                per_channel[t.channel_id] = per_channel.get(t.channel_id, 0.0) + t.seconds / 3600
            for channel_id, h in per_channel.items():
                hours[channel_id] = max(hours.get(channel_id, 0.0), h)
        return hours

    try:
        return rt.index.use(count)
    except ParamsMismatch:
        return None


def _hide_tracks(rt: Runtime, wanted: Callable[[Track], bool]) -> int:
    """Hide the index tracks ``wanted`` selects from queries at once (their postings are
    dropped at the next compaction, as ``vigie channels remove`` does); returns how many."""

    def hide(index: Index) -> int:
        hidden = 0
        for modality in MODALITIES:
            store = index.store(modality)
            ids = [t.id for t in store.tracks().values() if wanted(t)]
            if ids:
                store.remove_tracks(ids)
            hidden += len(ids)
        return hidden

    try:
        return rt.index.use(hide)
    except ParamsMismatch:
        return 0  # nothing of that index is searched anyway until it is rebuilt


def _channel_out(channel: Channel, hours: dict[str, float] | None) -> dict:
    out = channel.as_dict()
    out["indexed_hours"] = None if hours is None else round(hours.get(out["id"], 0.0), 4)
    return out


def _feed_out(feed: Feed, key: ApiKey) -> dict:
    return {**feed.as_dict(), "url": feed.url if key.allows("admin") else public_source(feed.url)}


def _status_out(status: FeedStatus) -> dict:
    return {**status.as_dict(), "age_seconds": round(status.age_seconds(), 3)}


def _health(feeds: list[Feed], statuses: dict[int, FeedStatus], key: ApiKey) -> list[dict]:
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


def _asset_out(asset: Asset, key: ApiKey) -> dict:
    shown = asset.source if key.allows("admin") else public_source(asset.source)
    return {**asset.as_dict(), "source": shown}


def _distributor_out(d: Distributor) -> dict:
    return d.as_dict()


def job_dict(row: JobRow, *, admin: bool) -> dict:
    """A job as the API shows it: sources redacted unless ``admin``, progress complete."""
    params = dict(row.params or {})
    sources = [str(s) for s in params.get("sources", [])]
    return {
        "id": row.id,
        "kind": row.kind,
        "channel_id": row.channel_id,
        "status": row.status,
        "params": {
            "sources": sources if admin else [public_source(s) for s in sources],
            "jobs": int(params.get("jobs", 1)),
        },
        "progress": {**empty_progress(), **(row.progress or {})},
        "error": row.error,
        "created_at": utc(row.created_at),
        "started_at": utc(row.started_at),
        "finished_at": utc(row.finished_at),
    }


# --- channels -----------------------------------------------------------------------------


@router.get(
    "/channels", response_model=list[ChannelOut], summary="List channels, by id", responses=ERRORS
)
def list_channels(rt: RuntimeDep, key: Reader) -> list[dict]:
    hours = _indexed_hours(rt)
    return [_channel_out(c, hours) for c in rt.catalog.channels()]


@router.post(
    "/channels",
    status_code=201,
    response_model=ChannelOut,
    summary="Register a channel",
    responses={**WRITE_ERRORS, 201: {"description": "Created; `Location` points at it."}},
)
def add_channel(body: ChannelIn, rt: RuntimeDep, key: Admin, response: Response) -> dict:
    try:
        channel = rt.catalog.add_channel(
            body.id, body.name, body.owner or None, body.simulcast_group
        )
    except CatalogError as exc:
        raise _refused(exc) from None
    _audit(rt, key, "channel.add", f"channel:{channel.id}", channel.as_dict())
    response.headers["Location"] = f"/v1/channels/{channel.id}"
    return _channel_out(channel, _indexed_hours(rt))


@router.get(
    "/channels/{channel_id}", response_model=ChannelOut, summary="A channel", responses=ERRORS
)
def get_channel(channel_id: ChannelPath, rt: RuntimeDep, key: Reader) -> dict:
    channel = rt.catalog.get(channel_id)
    if channel is None:
        raise Problem(404, f"no channel {channel_id!r}")
    return _channel_out(channel, _indexed_hours(rt))


@router.delete(
    "/channels/{channel_id}",
    status_code=204,
    response_class=Response,
    response_model=None,
    summary="Delete a channel with its feeds, assets, distributors and indexed recordings",
    responses={
        **ERRORS,
        204: {
            "description": "Deleted; its recordings are hidden from "
            "queries at once and dropped at the next compaction."
        },
    },
)
def remove_channel(channel_id: ChannelPath, rt: RuntimeDep, key: Admin) -> Response:
    _channel_or_404(rt, channel_id)
    hidden = _hide_tracks(rt, lambda t: t.channel_id == channel_id)
    try:
        rt.catalog.remove(channel_id)
    except CatalogError as exc:
        raise _refused(exc) from None
    _audit(rt, key, "channel.remove", f"channel:{channel_id}", {"hidden_tracks": hidden})
    return Response(status_code=204)


# --- feeds --------------------------------------------------------------------------------


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
        raise _refused(exc) from None
    return [_feed_out(f, key) for f in feeds]


@router.post(
    "/channels/{channel_id}/feeds",
    status_code=201,
    response_model=FeedOut,
    summary="Register a live reference feed of a channel",
    responses={**WRITE_ERRORS, 201: {"description": "Created; `Location` points at it."}},
)
def add_feed(
    channel_id: ChannelPath, body: FeedIn, rt: RuntimeDep, key: Admin, response: Response
) -> dict:
    _channel_or_404(rt, channel_id)
    try:
        feed = rt.catalog.add_feed(
            channel_id,
            body.url,
            retention_hours=body.retention_hours,
            label=body.label or None,
            enabled=body.enabled,
        )
    except CatalogError as exc:
        raise _refused(exc) from None
    _audit(rt, key, "feed.add", f"feed:{feed.id}", feed.as_dict())
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
    return _health(rt.catalog.feeds(), rt.catalog.feed_statuses(), key)


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
        raise _refused(exc) from None
    return _health(feeds, statuses, key)


@router.get(
    "/feeds/{feed_id}", response_model=FeedOut, summary="A reference feed", responses=ERRORS
)
def get_feed(feed_id: Id, rt: RuntimeDep, key: Reader) -> dict:
    try:
        return _feed_out(rt.catalog.feed(feed_id), key)
    except CatalogError as exc:
        raise _refused(exc) from None


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
        raise _refused(exc) from None
    source = feed_source(feed_id)
    hidden = _hide_tracks(rt, lambda t: t.channel_id == feed.channel_id and t.source == source)
    _audit(rt, key, "feed.remove", f"feed:{feed_id}", {**feed.as_dict(), "hidden_tracks": hidden})
    return Response(status_code=204)


def _set_enabled(rt: Runtime, key: ApiKey, feed_id: int, enabled: bool) -> dict:
    try:
        feed = rt.catalog.set_feed_enabled(feed_id, enabled)
    except CatalogError as exc:
        raise _refused(exc) from None
    action = "feed.enable" if enabled else "feed.disable"
    _audit(rt, key, action, f"feed:{feed_id}", {"channel_id": feed.channel_id})
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


# --- distributors -------------------------------------------------------------------------


@router.get(
    "/channels/{channel_id}/distributors",
    response_model=list[DistributorOut],
    summary="Authorized distributors of a channel",
    responses=ERRORS,
)
def list_distributors(channel_id: ChannelPath, rt: RuntimeDep, key: Reader) -> list[dict]:
    try:
        return [_distributor_out(d) for d in rt.catalog.distributors(channel_id)]
    except CatalogError as exc:
        raise _refused(exc) from None


@router.post(
    "/channels/{channel_id}/distributors",
    status_code=201,
    response_model=DistributorOut,
    summary="Authorize a licensee's streams of a channel",
    responses=ERRORS,
)
def add_distributor(
    channel_id: ChannelPath, body: DistributorIn, rt: RuntimeDep, key: Admin
) -> dict:
    _channel_or_404(rt, channel_id)
    try:
        d = rt.catalog.add_distributor(
            channel_id,
            body.licensee,
            host_pattern=body.host_pattern,
            cidr=body.cidr,
            asn=body.asn,
            territory=body.territory or None,
            valid_from=body.valid_from,
            valid_to=body.valid_to,
        )
    except CatalogError as exc:
        raise _refused(exc) from None
    _audit(rt, key, "distributor.add", f"distributor:{d.id}", d.as_dict())
    return _distributor_out(d)


@router.delete(
    "/distributors/{distributor_id}",
    status_code=204,
    response_class=Response,
    response_model=None,
    summary="Withdraw a distributor's authorization",
    responses={**ERRORS, 204: {"description": "Deleted."}},
)
def remove_distributor(distributor_id: Id, rt: RuntimeDep, key: Admin) -> Response:
    try:
        rt.catalog.remove_distributor(distributor_id)
    except CatalogError as exc:
        raise _refused(exc) from None
    _audit(rt, key, "distributor.remove", f"distributor:{distributor_id}", {})
    return Response(status_code=204)


# --- assets -------------------------------------------------------------------------------


@router.get(
    "/channels/{channel_id}/assets",
    response_model=list[AssetOut],
    summary="VOD/catch-up recordings of a channel",
    responses=ERRORS,
)
def list_assets(channel_id: ChannelPath, rt: RuntimeDep, key: Reader) -> list[dict]:
    try:
        return [_asset_out(a, key) for a in rt.catalog.assets(channel_id)]
    except CatalogError as exc:
        raise _refused(exc) from None


@router.post(
    "/channels/{channel_id}/assets",
    status_code=201,
    response_model=AssetOut,
    summary="Register a VOD/catch-up recording (index it with .../reindex)",
    responses=WRITE_ERRORS,
)
def add_asset(channel_id: ChannelPath, body: AssetIn, rt: RuntimeDep, key: Admin) -> dict:
    _channel_or_404(rt, channel_id)
    try:
        asset = rt.catalog.add_asset(channel_id, body.title, body.source)
    except CatalogError as exc:
        raise _refused(exc) from None
    _audit(rt, key, "asset.add", f"asset:{asset.id}", asset.as_dict())
    return _asset_out(asset, key)


@router.delete(
    "/assets/{asset_id}",
    status_code=204,
    response_class=Response,
    response_model=None,
    summary="Delete an asset and its indexed recording",
    responses={**ERRORS, 204: {"description": "Deleted; its recording is hidden from queries."}},
)
def remove_asset(asset_id: Id, rt: RuntimeDep, key: Admin) -> Response:
    asset = next((a for a in rt.catalog.assets() if a.id == asset_id), None)
    if asset is None:
        raise Problem(404, f"no asset {asset_id}")
    try:
        rt.catalog.remove_asset(asset_id)
    except CatalogError as exc:
        raise _refused(exc) from None
    hidden = _hide_tracks(
        rt,
        lambda t: (
            t.kind == "asset" and t.channel_id == asset.channel_id and t.source == asset.source
        ),
    )
    _audit(
        rt, key, "asset.remove", f"asset:{asset_id}", {**asset.as_dict(), "hidden_tracks": hidden}
    )
    return Response(status_code=204)


# --- re-indexing jobs ---------------------------------------------------------------------


def _check_sources(rt: Runtime, sources: list[str]) -> None:
    """Refuse, naming the entry, a local path that does not exist (or a folder without
    media), and a URL whose host the capture policy blocks. The job decodes URLs with
    FFmpeg directly, so this resolve-time check is the only address check they get."""
    for i, src in enumerate(sources):
        field = f"sources[{i}]"
        if "://" in src:
            parts = urlsplit(src)
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
            shown = redact_url(src)
            try:
                resolve_checked(parts.hostname or "", port, rt.policy, url=shown)
            except CaptureError as exc:
                raise Problem(422, f"{field}: {exc.message}", field=field) from None
            continue
        path = FsPath(src)
        if not path.exists():
            raise Problem(
                422, f"{field}: no such file or folder {src!r} on the server", field=field
            )
        if path.is_dir() and not expand_sources([src]):
            raise Problem(422, f"{field}: folder {src!r} holds no media files", field=field)


def _running_twin(s: Session, channel_id: str, sources: list[str]) -> JobRow | None:
    """An unfinished job over the same recordings of the same channel: it is the same
    batch job (same job file), so running both at once would race."""
    rows = s.scalars(
        select(JobRow).where(
            JobRow.kind == "reindex",
            JobRow.channel_id == channel_id,
            JobRow.status.in_(("queued", "running")),
        )
    )
    wanted = sorted(sources)
    return next((r for r in rows if sorted(r.params.get("sources", [])) == wanted), None)


@router.post(
    "/channels/{channel_id}/reindex",
    status_code=202,
    response_model=JobOut,
    summary="Fingerprint recordings into a channel (a background job)",
    responses={
        **ERRORS,
        200: {
            "description": "The same recordings are already being indexed: that job.",
            "model": JobOut,
        },
        202: {"description": "Accepted; `Location` points at the job."},
    },
)
def submit_reindex(
    channel_id: ChannelPath, body: ReindexIn, rt: RuntimeDep, key: Admin, response: Response
) -> dict:
    _channel_or_404(rt, channel_id)
    _check_sources(rt, body.sources)
    with rt.db.session() as s:
        twin = _running_twin(s, channel_id, body.sources)
        if twin is not None:
            response.status_code = 200
            response.headers["Location"] = f"/v1/jobs/{twin.id}"
            return job_dict(twin, admin=True)
        row = JobRow(
            kind="reindex",
            channel_id=channel_id,
            status="queued",
            params={"sources": list(body.sources), "jobs": body.jobs},
            progress=empty_progress(),
            key_id=key.id,
            created_at=utc_now(),
        )
        s.add(row)
        s.flush()
        out = job_dict(row, admin=True)
        s.add(
            AuditRow(
                at=utc_now(),
                actor=key.id,
                action="reindex.submit",
                target=f"channel:{channel_id}"[:80],
                data={
                    "job_id": row.id,
                    "sources": [public_source(x) for x in body.sources],
                    "jobs": body.jobs,
                    "key_name": key.name,
                },
            )
        )
    rt.queue.send("reindex", out["id"])  # after the commit: the worker must find the row
    response.headers["Location"] = f"/v1/jobs/{out['id']}"
    return out


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="A batch job and its progress",
    responses=ERRORS,
)
def get_job(job_id: Id, s: SessionDep, key: Reader) -> dict:
    row = s.get(JobRow, job_id)
    if row is None or row.kind != "reindex":
        raise Problem(404, f"no job {job_id}")
    return job_dict(row, admin=key.allows("admin"))


@router.get(
    "/jobs", response_model=JobPage, summary="List batch jobs, newest first", responses=ERRORS
)
def list_jobs(
    s: SessionDep,
    key: Reader,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(JOB_STATES) + ")$")] = None,
    channel_id: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict:
    q = select(JobRow).where(JobRow.kind == "reindex")
    if status is not None:
        q = q.where(JobRow.status == status)
    if channel_id is not None:
        q = q.where(JobRow.channel_id == channel_id)
    try:
        rows, next_cursor = page(s, q, JobRow.id, cursor, limit)
    except CursorError as exc:
        raise Problem(422, f"cursor: {exc}") from None
    admin = key.allows("admin")
    return {"items": [job_dict(r, admin=admin) for r in rows], "next_cursor": next_cursor}
