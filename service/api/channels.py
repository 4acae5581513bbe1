"""``/v1/channels``: the channels Vigie monitors (register, list, read, delete).

What hangs off a channel has a router of its own: reference feeds and their health
(:mod:`.feeds`), authorized distributors (:mod:`.distributors`), VOD/catch-up assets
(:mod:`.assets`) and re-indexing jobs (:mod:`.jobs`); scopes, errors and the catalog's
refusals are shared through :mod:`.catalog_common`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from reference_index.catalog import CatalogError
from reference_index.catalog_records import Channel
from reference_index.index import MODALITIES, Index
from reference_index.store.base import ParamsMismatch

from ..problems import Problem
from ..runtime import Runtime
from .catalog_common import (
    BODY_ERRORS,
    ERRORS,
    ID_PATTERN,
    TAGS,
    WRITE_ERRORS,
    Admin,
    ChannelPath,
    Reader,
    Text200,
    audit,
    channel_or_404,
    hide_tracks,
    refused,
)
from .deps import RuntimeDep
from .feeds import feed_health
from .jobs import job_dict
from .responses import location

__all__ = ["ChannelIn", "ChannelOut", "job_dict", "router"]

router = APIRouter(prefix="/v1", tags=TAGS)

#: Kept importable from here for the web UI (service/ui/channels.py), which shows the same
#: health rows and jobs as the API.
_health = feed_health


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


def _channel_out(channel: Channel, hours: dict[str, float] | None) -> dict:
    out = channel.as_dict()
    out["indexed_hours"] = None if hours is None else round(hours.get(out["id"], 0.0), 4)
    return out


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
    responses={
        **WRITE_ERRORS,
        **BODY_ERRORS,
        201: location("Created; `Location` points at it."),
    },
)
def add_channel(body: ChannelIn, rt: RuntimeDep, key: Admin, response: Response) -> dict:
    try:
        channel = rt.catalog.add_channel(
            body.id, body.name, body.owner or None, body.simulcast_group
        )
    except CatalogError as exc:
        raise refused(exc) from None
    audit(rt, key, "channel.add", f"channel:{channel.id}", channel.as_dict())
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
    channel_or_404(rt, channel_id)
    hidden = hide_tracks(rt, lambda t: t.channel_id == channel_id)
    try:
        rt.catalog.remove(channel_id)
    except CatalogError as exc:
        raise refused(exc) from None
    audit(rt, key, "channel.remove", f"channel:{channel_id}", {"hidden_tracks": hidden})
    return Response(status_code=204)
