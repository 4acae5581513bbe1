"""``/v1/channels/{id}/distributors`` and ``/v1/distributors``: licensees authorized to
carry a channel, whose streams are reported as ``authorized`` rather than pirate."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from reference_index.catalog import CatalogError
from reference_index.distributors import (
    ASN_MAX,
    Distributor,
    normalise_cidr,
    normalise_host_pattern,
)

from ..models import utc
from ..schemas import IsoDateTime
from .catalog_common import (
    BODY_ERRORS,
    ERRORS,
    TAGS,
    Admin,
    ChannelPath,
    Id,
    Reader,
    Text200,
    audit,
    channel_or_404,
    refused,
)
from .deps import RuntimeDep

__all__ = ["DistributorIn", "DistributorOut", "router"]

router = APIRouter(prefix="/v1", tags=TAGS)


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
    valid_from: IsoDateTime | None = Field(None, description="Start, inclusive; no offset = UTC.")
    valid_to: IsoDateTime | None = Field(None, description="End, exclusive; no offset = UTC.")

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


def _distributor_out(d: Distributor) -> dict:
    return d.as_dict()


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
        raise refused(exc) from None


@router.post(
    "/channels/{channel_id}/distributors",
    status_code=201,
    response_model=DistributorOut,
    summary="Authorize a licensee's streams of a channel",
    responses={**ERRORS, **BODY_ERRORS},
)
def add_distributor(
    channel_id: ChannelPath, body: DistributorIn, rt: RuntimeDep, key: Admin
) -> dict:
    channel_or_404(rt, channel_id)
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
        raise refused(exc) from None
    audit(rt, key, "distributor.add", f"distributor:{d.id}", d.as_dict())
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
        raise refused(exc) from None
    audit(rt, key, "distributor.remove", f"distributor:{distributor_id}", {})
    return Response(status_code=204)
