"""Request and response bodies of the HTTP API (pydantic v2), with OpenAPI examples.

Responses are declared models, so ``/openapi.json`` states exactly what a client gets and
FastAPI checks every response against it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from fingerprinting.capture import split_kodi_url

__all__ = [
    "AuditEntry",
    "DeliveryOut",
    "IncidentOut",
    "IsoDateTime",
    "MatchOut",
    "Page",
    "ReviewRequest",
    "ScanGroupOut",
    "ScanOut",
    "ScanRequest",
    "check_stream_url",
]

MAX_URL_CHARS = 4096
Modality = Literal["audio", "video"]
Verdict = Literal["confirmed", "suspected", "no_match", "authorized", "unreachable"]
ScanStatus = Literal["queued", "sampling", "matching", "done", "failed"]


#: An RFC 3339 date and time at the start of the text (pydantic then parses it, offset and
#: fractions included).
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_datetime(value: object) -> object:
    """Refuse what pydantic would otherwise read as a date-time although the schema says
    ``format: date-time``: numbers (taken as Unix times: ``since=0.5`` was 1970) and bare
    dates. Datetimes built in Python pass as they are."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATETIME.match(value):
        raise ValueError("must be an ISO 8601 date and time, e.g. 2026-12-01T10:00:00Z")
    return value


#: A date-time given as ISO 8601 text, as its OpenAPI ``format: date-time`` says; no
#: offset = UTC.
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_datetime)]


def check_stream_url(value: str, what: str = "url") -> str:
    """An http(s) URL with a host (a Kodi ``|header=value`` suffix allowed); ValueError
    naming what is wrong otherwise. Whether its address may be contacted is decided at
    capture time, when it is resolved (it may resolve differently by then)."""
    value = value.strip()
    if not value or len(value) > MAX_URL_CHARS:
        raise ValueError(f"{what} must be 1 to {MAX_URL_CHARS} characters")
    if any(ord(c) < 32 for c in value):
        raise ValueError(f"{what} contains control characters")
    bare, _ = split_kodi_url(value)
    try:
        parts = urlsplit(bare)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{what} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"{what} must be an http or https URL (got scheme {parts.scheme!r})")
    if not parts.hostname:
        raise ValueError(f"{what} has no host")
    if len(parts.hostname) > 253:  # DNS's limit (RFC 1035); the host column holds 255
        raise ValueError(f"{what} has a host name longer than 253 characters")
    del port
    return value


class ScanRequest(BaseModel):
    """What a monitoring bot submits: exactly one of ``url``, ``urls`` or ``playlist_url``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"url": "http://pirate.example/live/user/pass/1234.ts", "seconds": 10},
                {
                    "urls": ["http://a.example/hls/ch1.m3u8", "http://b.example/ch2.ts"],
                    "modalities": ["audio"],
                    "callback_url": "https://bot.example/hooks/vigie",
                    "labels": {"campaign": "league-final"},
                },
                {"playlist_url": "http://panel.example/get.php?username=u&password=p"},
            ]
        },
    )

    url: str | None = Field(None, description="One stream URL (HLS, MPEG-TS, Xtream link).")
    urls: list[str] | None = Field(
        None, min_length=1, max_length=1000, description="Several stream URLs, one scan each."
    )
    playlist_url: str | None = Field(
        None, description="An IPTV M3U playlist: one scan per entry, grouped."
    )
    seconds: float | None = Field(
        None, ge=2.0, le=120.0, description="Sample length in seconds (default: the service's)."
    )
    modalities: list[Modality] | None = Field(
        None, min_length=1, max_length=2, description="What to match on (default both)."
    )
    callback_url: str | None = Field(
        None, description="Where to POST the verdict (Standard Webhooks signature)."
    )
    labels: dict[str, str] | None = Field(
        None, max_length=20, description="Free labels kept with the scan (≤ 20)."
    )

    @field_validator("url", "playlist_url", "callback_url")
    @classmethod
    def _one_url(cls, v: str | None, info) -> str | None:  # noqa: ANN001
        return None if v is None else check_stream_url(v, info.field_name)

    @field_validator("urls")
    @classmethod
    def _many_urls(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        return [check_stream_url(u, f"urls[{i}]") for i, u in enumerate(v)]

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for k, val in (v or {}).items():
            if not 1 <= len(k) <= 64 or len(val) > 256:
                raise ValueError("label names are 1-64 characters and values at most 256")
        return v

    @field_validator("modalities")
    @classmethod
    def _modalities(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("modalities must not repeat")
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> ScanRequest:
        given = [n for n in ("url", "urls", "playlist_url") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of url, urls or playlist_url")
        return self


class Evidence(BaseModel):
    """One modality's alignment."""

    votes: int | None = Field(None, description="Aligned audio hashes (audio).")
    frames_matched: int | None = Field(None, description="Aligned frames (video).")
    peaks_found: int | None = Field(
        None, description="Reference spectral peaks found along the alignment (audio)."
    )
    peaks_checked: int | None = Field(
        None, description="Reference spectral peaks on the sample's span, looked up (audio)."
    )
    score: float
    confidence: float
    offset_seconds: float


class MatchSummary(BaseModel):
    id: int
    channel_id: str
    simulcast_group: str
    verdict: Verdict
    confidence: float
    delay_seconds: float | None
    reference: Literal["live", "asset"]
    incident_id: int


class Confirmation(BaseModel):
    scan_id: int = Field(description="The second sample.")
    due_at: datetime
    state: Literal["pending", "confirmed", "not_confirmed", "failed"]
    note: str | None = None


class ScanOut(BaseModel):
    """A scan: where it stands, and its verdict once done."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "status": "done",
                    "url": "http://pirate.example/live/***/***/1234.ts",
                    "host": "pirate.example",
                    "verdict": "confirmed",
                    "channel_id": "tf1",
                    "simulcast_group": "tf1",
                    "confidence": 0.99998,
                    "delay_seconds": 31.2,
                    "seconds": 10,
                    "modalities": ["audio", "video"],
                    "labels": {},
                    "attempts": 1,
                    "created_at": "2026-12-01T10:00:00Z",
                    "updated_at": "2026-12-01T10:02:14Z",
                    "matches": [],
                }
            ]
        }
    )

    id: int
    status: ScanStatus
    url: str = Field(description="Stream URL; credentials masked unless the key is admin.")
    host: str
    verdict: Verdict | None = None
    reason: str | None = Field(None, description="Why the capture failed (unreachable).")
    message: str | None = None
    channel_id: str | None = None
    simulcast_group: str | None = None
    confidence: float | None = None
    delay_seconds: float | None = Field(None, description="Seconds behind the live channel.")
    audio: Evidence | None = None
    video: Evidence | None = None
    seconds: float
    modalities: list[Modality]
    labels: dict[str, str]
    callback_url: str | None = None
    group_id: int | None = None
    entry_name: str | None = None
    confirms: int | None = Field(None, description="This scan is the second sample of that one.")
    confirmation: Confirmation | None = None
    attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    sample_seconds: float | None = Field(None, description="Wall time of the capture.")
    match_seconds: float | None = Field(None, description="Fingerprinting and index query.")
    matches: list[MatchSummary]
    result: dict | None = Field(None, description="The detector's full result.")
    evidence: dict | None = Field(None, description="How the sample was captured.")


class ScanGroupOut(BaseModel):
    id: int
    status: Literal["expanding", "ready", "failed"]
    playlist_url: str | None
    reason: str | None
    message: str | None
    entries: int
    truncated: bool
    created_at: datetime
    scans: list[ScanOut]


class Page(BaseModel):
    """A page of a listing; pass ``next_cursor`` as ``cursor`` for the next one."""

    next_cursor: str | None


class ScanPage(Page):
    items: list[ScanOut]


class MatchOut(BaseModel):
    id: int
    scan_id: int
    incident_id: int
    channel_id: str
    simulcast_group: str
    owner: str | None
    host: str
    url: str
    verdict: Verdict
    confidence: float
    reference: Literal["live", "asset"]
    offset_seconds: float
    delay_seconds: float | None
    audio: Evidence | None
    video: Evidence | None
    distributor: dict | None
    review_state: Literal["unreviewed", "confirmed", "dismissed"]
    created_at: datetime
    evidence: dict | None = None
    reviews: list[AuditEntry] | None = None


class MatchPage(Page):
    items: list[MatchOut]


class IncidentOut(BaseModel):
    id: int
    host: str
    channel_id: str
    simulcast_group: str
    owner: str | None
    verdict: Verdict
    confidence: float
    first_seen: datetime
    last_seen: datetime
    matches: int
    last_match_id: int | None
    review_state: Literal["unreviewed", "confirmed", "dismissed"]


class IncidentPage(Page):
    items: list[IncidentOut]


class ReviewRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"decision": "confirm", "note": "TF1 logo, live"}]},
    )

    decision: Literal["confirm", "dismiss"]
    note: str | None = Field(None, max_length=2000)


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str | None
    action: str
    target: str
    note: str | None
    data: dict


class DeliveryAttempt(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    elapsed_seconds: float


class DeliveryOut(BaseModel):
    id: int
    scan_id: int
    url: str
    event: str
    message_id: str
    status: Literal["pending", "delivered", "failed"]
    attempts: list[DeliveryAttempt]
    next_attempt_at: datetime | None
    created_at: datetime


MatchOut.model_rebuild()
