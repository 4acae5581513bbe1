"""``/v1/channels/{id}/assets`` and ``/v1/assets``: VOD and catch-up recordings of a
channel, indexed with ``POST /v1/channels/{id}/reindex`` (:mod:`.jobs`).

An asset source may carry credentials, so keys other than admin ones see it redacted.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from reference_index.catalog import CatalogError
from reference_index.catalog_records import Asset

from ..keys import ApiKey
from ..problems import Problem
from ..reindex_job import public_source
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
    Text200,
    audit,
    channel_or_404,
    checked_source,
    hide_tracks,
    refused,
)
from .deps import RuntimeDep

__all__ = ["AssetIn", "AssetOut", "router"]

router = APIRouter(prefix="/v1", tags=TAGS)


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
        return checked_source(value, "asset source")


class AssetOut(BaseModel):
    id: int
    channel_id: str
    title: str
    source: str = Field(description="Credentials masked unless the key is admin.")
    created_at: datetime


def _asset_out(asset: Asset, key: ApiKey) -> dict:
    shown = asset.source if key.allows("admin") else public_source(asset.source)
    return {**asset.as_dict(), "source": shown}


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
        raise refused(exc) from None


@router.post(
    "/channels/{channel_id}/assets",
    status_code=201,
    response_model=AssetOut,
    summary="Register a VOD/catch-up recording (index it with .../reindex)",
    responses={**WRITE_ERRORS, **BODY_ERRORS},
)
def add_asset(channel_id: ChannelPath, body: AssetIn, rt: RuntimeDep, key: Admin) -> dict:
    channel_or_404(rt, channel_id)
    try:
        asset = rt.catalog.add_asset(channel_id, body.title, body.source)
    except CatalogError as exc:
        raise refused(exc) from None
    audit(rt, key, "asset.add", f"asset:{asset.id}", asset.as_dict())
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
        raise refused(exc) from None
    hidden = hide_tracks(
        rt,
        lambda t: (
            t.kind == "asset" and t.channel_id == asset.channel_id and t.source == asset.source
        ),
    )
    audit(
        rt, key, "asset.remove", f"asset:{asset_id}", {**asset.as_dict(), "hidden_tracks": hidden}
    )
    return Response(status_code=204)
