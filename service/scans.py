"""Scans as the API sees them: submit (with de-duplication), read, list with cursors.

The job side (claiming, sampling, recording verdicts) is :mod:`service.jobs`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from fingerprinting.capture import redact_url, split_kodi_url
from reference_index.distributors import normalise_host

from .models import MatchRow, ScanGroupRow, ScanRow, utc, utc_now

__all__ = [
    "CursorError",
    "decode_cursor",
    "encode_cursor",
    "find_duplicate",
    "group_dict",
    "new_scan",
    "scan_dict",
    "stream_host",
    "url_digest",
]


class CursorError(ValueError):
    pass


def encode_cursor(last_id: int) -> str:
    """Opaque cursor: the last id of the page (pages run newest first)."""
    return base64.urlsafe_b64encode(json.dumps({"before": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        before = json.loads(base64.urlsafe_b64decode(padded.encode()))["before"]
    except (ValueError, KeyError, TypeError):
        raise CursorError("cursor is not one this API returned") from None
    if not isinstance(before, int) or isinstance(before, bool):
        raise CursorError("cursor is not one this API returned")
    return before


def page(s: Session, query: Select, id_column: object, cursor: str | None, limit: int) -> tuple:
    """Rows of ``query`` newest first after ``cursor``, and the next cursor."""
    before = decode_cursor(cursor)
    if before is not None:
        query = query.where(id_column < before)
    rows = list(s.scalars(query.order_by(id_column.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].id) if more and rows else None)


def url_digest(url: str) -> str:
    """De-duplication key of a stream URL: its exact text (a changed token is another URL)."""
    return hashlib.sha256(url.strip().encode()).hexdigest()


def stream_host(url: str) -> str:
    """The host a stream URL names, normalised (lower case, punycode)."""
    bare, _ = split_kodi_url(url)
    from urllib.parse import urlsplit

    host = urlsplit(bare).hostname or ""
    return normalise_host(host) or host.lower()


def new_scan(
    url: str,
    *,
    seconds: float,
    modalities: list[str],
    callback_url: str | None,
    labels: dict | None,
    key_id: str | None,
    group_id: int | None = None,
    entry_index: int | None = None,
    entry_name: str | None = None,
    confirms: int | None = None,
    not_before: datetime | None = None,
) -> ScanRow:
    now = utc_now()
    return ScanRow(
        url=url,
        url_sha256=url_digest(url),
        host=stream_host(url),
        status="queued",
        seconds=seconds,
        modalities=",".join(modalities),
        callback_url=callback_url,
        labels=labels or {},
        group_id=group_id,
        entry_index=entry_index,
        entry_name=entry_name,
        confirms=confirms,
        key_id=key_id,
        created_at=now,
        updated_at=now,
        not_before=not_before,
        attempts=0,
    )


def find_duplicate(s: Session, url: str, within_seconds: float) -> ScanRow | None:
    """The latest first-sample scan of ``url`` submitted within the period and not failed."""
    if within_seconds <= 0:
        return None
    since = utc_now() - timedelta(seconds=within_seconds)
    return s.scalars(
        select(ScanRow)
        .where(
            ScanRow.url_sha256 == url_digest(url),
            ScanRow.created_at >= since,
            ScanRow.confirms.is_(None),
            ScanRow.status != "failed",
        )
        .order_by(ScanRow.id.desc())
        .limit(1)
    ).first()


def _shown(url: str | None, admin: bool) -> str | None:
    if url is None:
        return None
    return url if admin else redact_url(url)


def scan_dict(row: ScanRow, matches: list[MatchRow], *, admin: bool, full: bool = True) -> dict:
    """The API shape of a scan (:class:`service.schemas.ScanOut`)."""
    result = row.result or {}
    lead = (result.get("matches") or [None])[0] if row.channel_id else None
    group = next((m.simulcast_group for m in matches if m.channel_id == row.channel_id), None)
    out = {
        "id": row.id,
        "status": row.status,
        "url": _shown(row.url, admin),
        "host": row.host,
        "verdict": row.verdict,
        "reason": row.reason,
        "message": row.message,
        "channel_id": row.channel_id,
        "simulcast_group": group,
        "confidence": row.confidence,
        "delay_seconds": row.delay_seconds,
        "audio": lead.get("audio") if lead else None,
        "video": lead.get("video") if lead else None,
        "seconds": row.seconds,
        "modalities": row.modalities.split(","),
        "labels": row.labels or {},
        "callback_url": _shown(row.callback_url, admin),
        "group_id": row.group_id,
        "entry_name": row.entry_name,
        "confirms": row.confirms,
        "confirmation": row.confirmation,
        "attempts": row.attempts,
        "created_at": utc(row.created_at),
        "updated_at": utc(row.updated_at),
        "started_at": utc(row.started_at),
        "finished_at": utc(row.finished_at),
        "sample_seconds": row.sample_seconds,
        "match_seconds": row.match_seconds,
        "matches": [
            {
                "id": m.id,
                "channel_id": m.channel_id,
                "simulcast_group": m.simulcast_group,
                "verdict": m.verdict,
                "confidence": m.confidence,
                "delay_seconds": m.delay_seconds,
                "reference": m.reference,
                "incident_id": m.incident_id,
            }
            for m in matches
        ],
        "result": row.result if full else None,  # its sample.source is already redacted
        "evidence": row.evidence if full else None,
    }
    return out


def matches_of(s: Session, scan_ids: list[int]) -> dict[int, list[MatchRow]]:
    found: dict[int, list[MatchRow]] = {i: [] for i in scan_ids}
    if scan_ids:
        rows = s.scalars(
            select(MatchRow)
            .where(MatchRow.scan_id.in_(scan_ids))
            .order_by(MatchRow.confidence.desc())
        )
        for m in rows:
            found[m.scan_id].append(m)
    return found


def group_dict(group: ScanGroupRow, scans: list[dict], *, admin: bool) -> dict:
    return {
        "id": group.id,
        "status": group.status,
        "playlist_url": _shown(group.playlist_url, admin),
        "reason": group.reason,
        "message": group.message,
        "entries": group.entries,
        "truncated": group.truncated,
        "created_at": utc(group.created_at),
        "scans": scans,
    }
