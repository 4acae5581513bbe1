"""The service's tables (SQLAlchemy 2 ORM): scans, matches, incidents, reviews, keys, jobs.

They live in the same database as the channel catalog (one SQLite file by default), under
their own Alembic history (``service/migrations``, version table
``alembic_version_service``), because the catalog is a library that must not know about
the service. Times are UTC (``DateTime(timezone=True)``; SQLite hands them back naive, so
readers go through :func:`utc`).

The scans table is the source of truth of the work queue: a message on the broker only
says "look at scan N"; what to do, and whether it was already done, is read from the row.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "DELIVERY_STATES",
    "JOB_STATES",
    "REVIEW_STATES",
    "SCAN_STATES",
    "VERDICTS",
    "ApiKeyRow",
    "AuditRow",
    "DeliveryAttemptRow",
    "DeliveryRow",
    "IncidentRow",
    "JobRow",
    "MatchRow",
    "ScanGroupRow",
    "ScanRow",
    "ServiceBase",
    "utc",
    "utc_now",
]

#: Life of a scan: ``queued`` (waiting for a worker), ``sampling`` (capturing the stream),
#: ``matching`` (fingerprinting and querying the index), ``done`` (verdict set) or
#: ``failed`` (the job itself broke; an unreachable stream is ``done`` with that verdict).
SCAN_STATES = ("queued", "sampling", "matching", "done", "failed")
#: What a scan concluded (see :mod:`service.verdict`).
VERDICTS = ("confirmed", "suspected", "no_match", "authorized", "unreachable")
#: An analyst's decision on a match.
REVIEW_STATES = ("unreviewed", "confirmed", "dismissed")
#: Life of a batch job (re-indexing).
JOB_STATES = ("queued", "running", "done", "failed")
#: Life of a webhook delivery: ``pending`` (an attempt is scheduled), ``delivered``,
#: ``failed`` (gave up: non-retryable answer or out of attempts).
DELIVERY_STATES = ("pending", "delivered", "failed")


def utc_now() -> datetime:
    return datetime.now(UTC)


def utc(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite returns naive ones)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ServiceBase(DeclarativeBase):
    """Declarative base of the service tables."""

    type_annotation_map = {datetime: DateTime(timezone=True), dict: JSON, list: JSON}


class ApiKeyRow(ServiceBase):
    """An API key: only the SHA-256 of its secret is stored (the key is shown once)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[str] = mapped_column(String(200))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    rate_per_minute: Mapped[int | None] = mapped_column(Integer)
    #: Signs the webhooks of the scans this key submits (Standard Webhooks ``whsec_``).
    webhook_secret: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class ScanGroupRow(ServiceBase):
    """Scans submitted together: a list of URLs, or the entries of an IPTV playlist."""

    __tablename__ = "scan_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    playlist_url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # expanding, ready, failed
    reason: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    entries: Mapped[int] = mapped_column(Integer, default=0)
    truncated: Mapped[bool] = mapped_column(default=False)
    request: Mapped[dict] = mapped_column(JSON)  # seconds, modalities, callback_url, labels
    key_id: Mapped[str | None] = mapped_column(String(24))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ScanRow(ServiceBase):
    """One sample of one stream URL, from submission to verdict."""

    __tablename__ = "scans"
    __table_args__ = (UniqueConstraint("group_id", "entry_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    url_sha256: Mapped[str] = mapped_column(String(64), index=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    seconds: Mapped[float] = mapped_column(Float)
    modalities: Mapped[str] = mapped_column(String(32))
    callback_url: Mapped[str | None] = mapped_column(Text)
    labels: Mapped[dict] = mapped_column(JSON, default=dict)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("scan_groups.id"), index=True)
    entry_index: Mapped[int | None] = mapped_column(Integer)
    entry_name: Mapped[str | None] = mapped_column(String(300))
    #: This scan is the second sample that confirms (or not) scan ``confirms``.
    confirms: Mapped[int | None] = mapped_column(ForeignKey("scans.id"), index=True)
    key_id: Mapped[str | None] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    not_before: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: A worker holds the scan until then; past it, the scan may be taken over.
    lease_until: Mapped[datetime | None]
    verdict: Mapped[str | None] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    channel_id: Mapped[str | None] = mapped_column(String(64), index=True)
    confidence: Mapped[float | None] = mapped_column(Float)
    delay_seconds: Mapped[float | None] = mapped_column(Float)
    confirmation: Mapped[dict | None] = mapped_column(JSON)
    result: Mapped[dict | None] = mapped_column(JSON)
    evidence: Mapped[dict | None] = mapped_column(JSON)  # credentials masked
    evidence_sealed: Mapped[dict | None] = mapped_column(JSON)  # complete, for bundles
    sample_seconds: Mapped[float | None] = mapped_column(Float)  # wall time of the capture
    match_seconds: Mapped[float | None] = mapped_column(Float)  # fingerprint + query


class IncidentRow(ServiceBase):
    """One pirate stream of one channel: every detection of ``channel_id`` on ``host``."""

    __tablename__ = "incidents"
    __table_args__ = (UniqueConstraint("host", "channel_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    channel_id: Mapped[str] = mapped_column(String(64), index=True)
    simulcast_group: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(200), index=True)
    verdict: Mapped[str] = mapped_column(String(16), index=True)
    confidence: Mapped[float] = mapped_column(Float)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime] = mapped_column(index=True)
    matches: Mapped[int] = mapped_column(Integer, default=0)
    last_match_id: Mapped[int | None] = mapped_column(Integer)
    review_state: Mapped[str] = mapped_column(String(16), default="unreviewed")


class MatchRow(ServiceBase):
    """A channel a scan's sample restreams. One per (scan, channel): a redelivered scan
    job cannot record the same match twice."""

    __tablename__ = "matches"
    __table_args__ = (UniqueConstraint("scan_id", "channel_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id"), index=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    channel_id: Mapped[str] = mapped_column(String(64), index=True)
    simulcast_group: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(200), index=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    verdict: Mapped[str] = mapped_column(String(16), index=True)
    confidence: Mapped[float] = mapped_column(Float)
    reference: Mapped[str] = mapped_column(String(8))
    offset_seconds: Mapped[float] = mapped_column(Float)
    delay_seconds: Mapped[float | None] = mapped_column(Float)
    audio_score: Mapped[float | None] = mapped_column(Float)
    video_score: Mapped[float | None] = mapped_column(Float)
    distributor_id: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict] = mapped_column(JSON)
    review_state: Mapped[str] = mapped_column(String(16), default="unreviewed")
    created_at: Mapped[datetime] = mapped_column(index=True)


class AuditRow(ServiceBase):
    """Append-only log of decisions (reviews, key and channel administration). The
    migration installs triggers that refuse UPDATE and DELETE on it."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str | None] = mapped_column(String(24))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(80), index=True)
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON, default=dict)


class DeliveryRow(ServiceBase):
    """A webhook message for a scan's verdict, and where its delivery stands."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    event: Mapped[str] = mapped_column(String(40))
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DeliveryAttemptRow(ServiceBase):
    """One POST of a webhook message: the delivery log."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    elapsed_seconds: Mapped[float] = mapped_column(Float)


class JobRow(ServiceBase):
    """A batch job (re-indexing a channel's recordings) and its progress."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    channel_id: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    params: Mapped[dict] = mapped_column(JSON)
    progress: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    key_id: Mapped[str | None] = mapped_column(String(24))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
