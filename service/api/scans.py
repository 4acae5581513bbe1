"""``/v1/scans``: monitoring bots submit stream URLs and read verdicts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, FastAPI, Path, Query, Response
from pydantic import BaseModel
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from ..keys import ApiKey
from ..models import DeliveryAttemptRow, DeliveryRow, ScanGroupRow, ScanRow, utc, utc_now
from ..problems import Problem
from ..runtime import Runtime
from ..scans import (
    CursorError,
    find_duplicate,
    group_dict,
    matches_of,
    new_scan,
    page,
    scan_dict,
    url_digest,
)
from ..schemas import DeliveryOut, IsoDateTime, ScanGroupOut, ScanOut, ScanPage, ScanRequest
from .deps import RuntimeDep, SessionDep, require
from .responses import BODY_ERRORS, ERRORS, location

router = APIRouter(prefix="/v1", tags=["scans"])
Writer = require("scans:write")
#: Bots read back their own scans; analysts read every scan.
ScanReader = require("scans:write", "matches:read")
Id = Annotated[int, Path(ge=1, le=2**62)]


def _can_read(key: ApiKey, row: ScanRow) -> bool:
    """Bots read their own scans; analysts and admins read all."""
    return key.allows("matches:read") or row.key_id == key.id


def _scan_out(s, row: ScanRow, key: ApiKey) -> dict:  # noqa: ANN001
    return scan_dict(row, matches_of(s, [row.id])[row.id], admin=key.allows("admin"))


@router.post(
    "/scans",
    status_code=202,
    summary="Submit stream URLs to scan",
    response_model=ScanOut | ScanGroupOut,
    responses={
        200: {
            **location("The URL was submitted recently: the existing scan is returned."),
            "model": ScanOut,
        },
        202: location(
            "Accepted: a scan (``url``) or a group (``urls``, "
            "``playlist_url``); `Location` points at it."
        ),
        **{k: v for k, v in ERRORS.items() if k != 404},
        **BODY_ERRORS,
    },
)
async def submit(body: ScanRequest, rt: RuntimeDep, key: Writer, response: Response) -> dict:
    # One thread-pool hop for all the database work (see service.api.deps for why).
    status, location_, out = await run_in_threadpool(submit_scans, rt, body, key)
    response.status_code = status
    response.headers["Location"] = location_
    return out


def submit_scans(rt: Runtime, body: ScanRequest, key: ApiKey) -> tuple[int, str, dict]:
    """Store the scan (or group) and queue its job: ``(status, Location, body)``.

    The duplicate check and the INSERT hold the URL's lock (:meth:`Database.lock`: on
    SQLite, the single write lock) until the commit, and every other submission of that
    URL waits for it: so they hold nothing else. A new scan has no matches yet, so its
    answer is built without reading them, after the commit.
    """
    settings = rt.settings
    request = {
        "seconds": body.seconds or settings.scan_seconds,
        "modalities": body.modalities or ["audio", "video"],
        "callback_url": body.callback_url,
        "labels": body.labels or {},
    }
    admin = key.allows("admin")
    if body.url is not None:
        with rt.db.session() as s:
            if settings.dedupe_seconds > 0:  # two bots posting one URL at once: one scan
                rt.db.lock(s, f"scan-url:{url_digest(body.url)}")
            dup = find_duplicate(s, body.url, settings.dedupe_seconds)
            if dup is not None and _can_read(key, dup):
                return 200, f"/v1/scans/{dup.id}", _scan_out(s, dup, key)
            row = new_scan(body.url, key_id=key.id, **request)
            s.add(row)
        rt.queue.send("scan", row.id)
        return 202, f"/v1/scans/{row.id}", scan_dict(row, [], admin=admin)
    now = utc_now()
    with rt.db.session() as s:
        group = ScanGroupRow(
            playlist_url=body.playlist_url,
            status="expanding" if body.playlist_url else "ready",
            entries=len(body.urls or []),
            truncated=False,
            request=request,
            key_id=key.id,
            created_at=now,
            updated_at=now,
        )
        s.add(group)
        s.flush()
        rows = [
            new_scan(u, key_id=key.id, group_id=group.id, entry_index=i, **request)
            for i, u in enumerate(body.urls or [])
        ]
        s.add_all(rows)
    out = group_dict(group, [scan_dict(r, [], admin=admin, full=False) for r in rows], admin=admin)
    for r in rows:
        rt.queue.send("scan", r.id)
    if body.playlist_url:
        rt.queue.send("expand", group.id)
    return 202, f"/v1/scan-groups/{group.id}", out


@router.get("/scans/{scan_id}", response_model=ScanOut, summary="A scan", responses=ERRORS)
async def get_scan(scan_id: Id, rt: RuntimeDep, key: ScanReader) -> dict:
    out = await run_in_threadpool(_read_scan, rt, scan_id, key)
    if out is None:
        raise Problem(404, f"no scan {scan_id}")
    return out


def _read_scan(rt: Runtime, scan_id: int, key: ApiKey) -> dict | None:
    """The scan as ``key`` may see it, or ``None`` (unknown, or another bot's)."""
    with rt.db.session() as s:
        row = s.get(ScanRow, scan_id)
        if row is None or not _can_read(key, row):
            return None
        return _scan_out(s, row, key)


@router.get("/scans", response_model=ScanPage, summary="List scans, newest first", responses=ERRORS)
def list_scans(
    s: SessionDep,
    key: ScanReader,
    status: Annotated[str | None, Query(pattern="^(queued|sampling|matching|done|failed)$")] = None,
    verdict: Annotated[
        str | None, Query(pattern="^(confirmed|suspected|no_match|authorized|unreachable)$")
    ] = None,
    channel_id: Annotated[str | None, Query(max_length=64)] = None,
    group_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    since: Annotated[
        IsoDateTime | None, Query(description="Submitted at or after (ISO 8601).")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict:
    q = select(ScanRow)
    if not key.allows("matches:read"):
        q = q.where(ScanRow.key_id == key.id)
    for column, value in (
        (ScanRow.status, status),
        (ScanRow.verdict, verdict),
        (ScanRow.channel_id, channel_id),
        (ScanRow.group_id, group_id),
    ):
        if value is not None:
            q = q.where(column == value)
    if since is not None:
        q = q.where(ScanRow.created_at >= (utc(since) if since.tzinfo else utc(since)))
    try:
        rows, next_cursor = page(s, q, ScanRow.id, cursor, limit)
    except CursorError as exc:
        raise Problem(422, f"cursor: {exc}") from None
    found = matches_of(s, [r.id for r in rows])
    admin = key.allows("admin")
    return {
        "items": [scan_dict(r, found[r.id], admin=admin, full=False) for r in rows],
        "next_cursor": next_cursor,
    }


@router.get(
    "/scan-groups/{group_id}",
    response_model=ScanGroupOut,
    summary="Scans submitted together",
    responses=ERRORS,
)
def get_group(group_id: Id, s: SessionDep, key: ScanReader) -> dict:
    group = s.get(ScanGroupRow, group_id)
    if group is None or not (key.allows("matches:read") or group.key_id == key.id):
        raise Problem(404, f"no scan group {group_id}")
    rows = list(
        s.scalars(
            select(ScanRow)
            .where(ScanRow.group_id == group_id)
            .order_by(ScanRow.entry_index)
            .limit(1000)
        )
    )
    found = matches_of(s, [r.id for r in rows])
    admin = key.allows("admin")
    return group_dict(
        group, [scan_dict(r, found[r.id], admin=admin, full=False) for r in rows], admin=admin
    )


@router.get(
    "/scans/{scan_id}/deliveries",
    response_model=list[DeliveryOut],
    summary="Webhook deliveries of a scan (the delivery log)",
    responses=ERRORS,
)
def deliveries(scan_id: Id, s: SessionDep, key: ScanReader) -> list[dict]:
    row = s.get(ScanRow, scan_id)
    if row is None or not _can_read(key, row):
        raise Problem(404, f"no scan {scan_id}")
    out = []
    admin = key.allows("admin")
    for d in s.scalars(
        select(DeliveryRow).where(DeliveryRow.scan_id == scan_id).order_by(DeliveryRow.id)
    ):
        attempts = s.scalars(
            select(DeliveryAttemptRow)
            .where(DeliveryAttemptRow.delivery_id == d.id)
            .order_by(DeliveryAttemptRow.attempt)
        )
        out.append(
            {
                "id": d.id,
                "scan_id": d.scan_id,
                "url": scan_dict(row, [], admin=admin, full=False)["callback_url"] or d.url,
                "event": d.event,
                "message_id": d.message_id,
                "status": d.status,
                "next_attempt_at": utc(d.next_attempt_at),
                "created_at": utc(d.created_at),
                "attempts": [
                    {
                        "attempt": a.attempt,
                        "at": utc(a.at),
                        "status_code": a.status_code,
                        "error": a.error,
                        "elapsed_seconds": a.elapsed_seconds,
                    }
                    for a in attempts
                ],
            }
        )
    return out


class WebhookPayload(BaseModel):
    """``POST`` to the scan's ``callback_url`` when its verdict is set or changes."""

    type: str
    timestamp: datetime
    data: ScanOut


def document_webhooks(app: FastAPI) -> None:
    """Describe the verdict webhook in the OpenAPI document (``webhooks``)."""

    @app.webhooks.post("scan-verdict")
    def scan_verdict(body: WebhookPayload) -> None:
        """Sent when a scan's verdict is set, and again when a second sample confirms it
        (or does not). Headers `webhook-id`, `webhook-timestamp` and `webhook-signature`
        (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with the submitting key's
        webhook secret) follow the Standard Webhooks specification. Answer 2xx; other
        answers are retried with backoff (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), except
        410 Gone and other 4xx, which stop delivery."""
