"""``/v1/matches``, ``/v1/incidents`` and reviews: what analysts read and decide."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import select

from fingerprinting.capture import redact_url

from ..evidence import record_reviews
from ..keys import ApiKey
from ..models import AuditRow, IncidentRow, MatchRow, ScanRow, utc, utc_now
from ..problems import Problem
from ..scans import CursorError, page
from ..schemas import (
    AuditEntry,
    IncidentOut,
    IncidentPage,
    IsoDateTime,
    MatchOut,
    MatchPage,
    ReviewRequest,
)
from .deps import RuntimeDep, SessionDep, require
from .responses import BODY_ERRORS, ERRORS

router = APIRouter(prefix="/v1", tags=["matches"])
Reader = require("matches:read")
Reviewer = require("matches:review")
Id = Annotated[int, Path(ge=1, le=2**62)]
VerdictQ = Annotated[
    str | None, Query(pattern="^(confirmed|suspected|no_match|authorized|unreachable)$")
]


def _audit(row: AuditRow) -> dict:
    return {
        "id": row.id,
        "at": utc(row.at),
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "note": row.note,
        "data": row.data or {},
    }


def match_dict(
    m: MatchRow,
    scan: ScanRow | None,
    key: ApiKey,
    *,
    full: bool = False,
    reviews: list[AuditRow] | None = None,
) -> dict:
    data = m.data or {}
    admin = key.allows("admin")
    url = scan.url if (scan is not None and admin) else data.get("url", "")
    out = {
        "id": m.id,
        "scan_id": m.scan_id,
        "incident_id": m.incident_id,
        "channel_id": m.channel_id,
        "simulcast_group": m.simulcast_group,
        "owner": m.owner,
        "host": m.host,
        "url": url if admin else redact_url(url),
        "verdict": m.verdict,
        "confidence": m.confidence,
        "reference": m.reference,
        "offset_seconds": m.offset_seconds,
        "delay_seconds": m.delay_seconds,
        "audio": data.get("audio"),
        "video": data.get("video"),
        "distributor": data.get("distributor"),
        "review_state": m.review_state,
        "created_at": utc(m.created_at),
    }
    if full:
        out["evidence"] = scan.evidence if scan is not None else None
        out["reviews"] = [_audit(r) for r in reviews or []]
    return out


def _incident(i: IncidentRow) -> dict:
    return {
        "id": i.id,
        "host": i.host,
        "channel_id": i.channel_id,
        "simulcast_group": i.simulcast_group,
        "owner": i.owner,
        "verdict": i.verdict,
        "confidence": i.confidence,
        "first_seen": utc(i.first_seen),
        "last_seen": utc(i.last_seen),
        "matches": i.matches,
        "last_match_id": i.last_match_id,
        "review_state": i.review_state,
    }


def _paged(s, q, column, cursor, limit):  # noqa: ANN001, ANN202
    try:
        return page(s, q, column, cursor, limit)
    except CursorError as exc:
        raise Problem(422, f"cursor: {exc}") from None


@router.get("/matches", response_model=MatchPage, summary="Matches, newest first", responses=ERRORS)
def list_matches(
    s: SessionDep,
    key: Reader,
    channel_id: Annotated[str | None, Query(max_length=64)] = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    verdict: VerdictQ = None,
    host: Annotated[str | None, Query(max_length=255)] = None,
    incident_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    since: Annotated[IsoDateTime | None, Query(description="Found at or after (ISO 8601).")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict:
    q = select(MatchRow)
    for column, value in (
        (MatchRow.channel_id, channel_id),
        (MatchRow.owner, owner),
        (MatchRow.verdict, verdict),
        (MatchRow.host, host and host.lower()),
        (MatchRow.incident_id, incident_id),
    ):
        if value is not None:
            q = q.where(column == value)
    if since is not None:
        q = q.where(MatchRow.created_at >= utc(since))
    rows, next_cursor = _paged(s, q, MatchRow.id, cursor, limit)
    scans = (
        {
            r.id: r
            for r in s.scalars(select(ScanRow).where(ScanRow.id.in_([m.scan_id for m in rows])))
        }
        if key.allows("admin")
        else {}
    )
    return {
        "items": [match_dict(m, scans.get(m.scan_id), key) for m in rows],
        "next_cursor": next_cursor,
    }


@router.get(
    "/matches/{match_id}",
    response_model=MatchOut,
    summary="A match with its evidence and reviews",
    responses=ERRORS,
)
def get_match(match_id: Id, s: SessionDep, key: Reader) -> dict:
    m = s.get(MatchRow, match_id)
    if m is None:
        raise Problem(404, f"no match {match_id}")
    reviews = list(
        s.scalars(select(AuditRow).where(AuditRow.target == f"match:{m.id}").order_by(AuditRow.id))
    )
    return match_dict(m, s.get(ScanRow, m.scan_id), key, full=True, reviews=reviews)


@router.post(
    "/matches/{match_id}/review",
    response_model=AuditEntry,
    status_code=201,
    summary="Confirm or dismiss a match (written to the audit log)",
    responses={**ERRORS, **BODY_ERRORS},
)
def review(
    match_id: Id, body: ReviewRequest, s: SessionDep, key: Reviewer, rt: RuntimeDep = None
) -> dict:
    m = s.get(MatchRow, match_id)
    if m is None:
        raise Problem(404, f"no match {match_id}")
    state = "confirmed" if body.decision == "confirm" else "dismissed"
    previous = m.review_state
    m.review_state = state
    incident = s.get(IncidentRow, m.incident_id)
    if incident is not None:
        incident.review_state = state
    entry = AuditRow(
        at=utc_now(),
        actor=key.id,
        action=f"review.{body.decision}",
        target=f"match:{m.id}",
        note=body.note,
        data={
            "previous": previous,
            "state": state,
            "incident_id": m.incident_id,
            "key_name": key.name,
        },
    )
    s.add(entry)
    s.flush()
    out = _audit(entry)
    if rt is not None:  # over HTTP; a caller with a session of its own signs after its commit
        s.commit()  # the review stands before its signed evidence entry is made
        record_reviews(rt.db, rt.settings, m.id)
    return out


@router.get(
    "/incidents",
    response_model=IncidentPage,
    summary="One row per pirate stream of a channel, most recently seen first",
    responses=ERRORS,
)
def list_incidents(
    s: SessionDep,
    key: Reader,
    channel_id: Annotated[str | None, Query(max_length=64)] = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    verdict: VerdictQ = None,
    host: Annotated[str | None, Query(max_length=255)] = None,
    review_state: Annotated[str | None, Query(pattern="^(unreviewed|confirmed|dismissed)$")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict:
    q = select(IncidentRow)
    for column, value in (
        (IncidentRow.channel_id, channel_id),
        (IncidentRow.owner, owner),
        (IncidentRow.verdict, verdict),
        (IncidentRow.host, host and host.lower()),
        (IncidentRow.review_state, review_state),
    ):
        if value is not None:
            q = q.where(column == value)
    rows, next_cursor = _paged(s, q, IncidentRow.id, cursor, limit)
    return {"items": [_incident(i) for i in rows], "next_cursor": next_cursor}


@router.get(
    "/incidents/{incident_id}", response_model=IncidentOut, summary="An incident", responses=ERRORS
)
def get_incident(incident_id: Id, s: SessionDep, key: Reader) -> dict:
    i = s.get(IncidentRow, incident_id)
    if i is None:
        raise Problem(404, f"no incident {incident_id}")
    return _incident(i)


@router.get(
    "/audit",
    response_model=list[AuditEntry],
    summary="The audit log, newest first",
    responses=ERRORS,
)
def audit_log(
    s: SessionDep,
    key: Reader,
    target: Annotated[str | None, Query(max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict]:
    q = select(AuditRow)
    if target is not None:
        q = q.where(AuditRow.target == target)
    return [_audit(r) for r in s.scalars(q.order_by(AuditRow.id.desc()).limit(limit))]
