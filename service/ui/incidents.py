"""Pages of incidents and matches: the queue, an incident with its matches, a match with
its frames, alignment plot and evidence, the review buttons, and the audit log.

Reads reuse the API's own shapes (:func:`service.api.matches.match_dict`, ``_incident``),
so the pages show what ``/v1/...`` returns to the same key: stream URLs redacted unless
the key is admin. A review goes through the API's own review function, which writes the
same audit entry ``POST /v1/matches/{id}/review`` writes, and once committed is signed
into the match's evidence chain (:func:`service.evidence.record_reviews`) as the API does.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..api import evidence as evidence_api
from ..api import matches as matches_api
from ..evidence import record_reviews
from ..keys import ApiKey
from ..models import AuditRow, IncidentRow, MatchRow, ScanRow
from ..problems import Problem
from ..runtime import Runtime
from ..scans import CursorError, page
from ..schemas import ReviewRequest
from .artefacts import artefacts_view
from .auth import CurrentSession, check_post, require_scope, runtime
from .evidence_view import evidence_view
from .queries import LIMITS, STALE_CURSOR, IncidentFilters, incident_page, is_new
from .web import BASE, UiError, render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
Id = Annotated[int, Path(ge=1, le=2**62)]
#: Matches listed on an incident page, per page.
MATCHES_PER_PAGE = 50
#: Audit entries per page.
AUDIT_PER_PAGE = 100


def _paged(s: Session, q: object, column: object, cursor: str | None, limit: int) -> tuple:
    try:
        return page(s, q, column, cursor, limit)
    except CursorError:
        raise UiError(422, STALE_CURSOR) from None


def match_detail(rt: Runtime, s: Session, key: ApiKey, m: MatchRow) -> dict:
    """Everything the match panel shows: the API's match (with evidence and reviews), its
    frames and plot from the scan's artefacts, and the evidence record laid out."""
    scan = s.get(ScanRow, m.scan_id)
    reviews = list(
        s.scalars(select(AuditRow).where(AuditRow.target == f"match:{m.id}").order_by(AuditRow.id))
    )
    match = matches_api.match_dict(m, scan, key, full=True, reviews=reviews)
    live = m.reference == "live"
    return {
        "match": match,
        "speed": (m.data or {}).get("speed"),
        "live": live,
        "artefacts": artefacts_view(rt.settings, m.scan_id, m.channel_id, live=live),
        "evidence": evidence_view(match["evidence"]),
        "can_review": key.allows("matches:review"),
    }


@router.get("/")
def home() -> Response:
    return RedirectResponse(f"{BASE}/incidents", status_code=303)


@router.get("/incidents")
def incidents(
    request: Request,
    session: CurrentSession,
    channel_id: str | None = None,
    host: str | None = None,
    owner: str | None = None,
    verdict: str | None = None,
    review_state: str | None = None,
    limit: str | None = None,
    cursor: str | None = None,
) -> Response:
    filters = IncidentFilters.parse(
        channel_id=channel_id,
        host=host,
        owner=owner,
        verdict=verdict,
        review_state=review_state,
        limit=limit,
    )
    rt = runtime(request)
    with rt.db.session() as s:
        rows, next_cursor, total = incident_page(s, filters, cursor)
        items = [{**matches_api._incident(i), "new": is_new(i)} for i in rows]
    return render(
        request,
        "incidents.html",
        items=items,
        total=total,
        filters=filters,
        next_cursor=next_cursor,
        first_page=not cursor,
        limits=LIMITS,
    )


@router.get("/incidents/{incident_id}")
def incident(
    request: Request, incident_id: Id, session: CurrentSession, cursor: str | None = None
) -> Response:
    rt = runtime(request)
    key = session.key
    with rt.db.session() as s:
        row = s.get(IncidentRow, incident_id)
        if row is None:
            raise UiError(404, f"no incident {incident_id}")
        q = select(MatchRow).where(MatchRow.incident_id == incident_id)
        rows, next_cursor = _paged(s, q, MatchRow.id, cursor, MATCHES_PER_PAGE)
        lead = s.get(MatchRow, row.last_match_id) if row.last_match_id else None
        lead = lead or (rows[0] if rows else None)
        detail = match_detail(rt, s, key, lead) if lead is not None else None
        listed = [matches_api.match_dict(m, None, key) for m in rows]
        out = matches_api._incident(row)
    return render(
        request,
        "incident.html",
        incident=out,
        matches=listed,
        next_cursor=next_cursor,
        detail=detail,
        back=f"{BASE}/incidents/{incident_id}",
    )


@router.get("/matches/{match_id}")
def match(request: Request, match_id: Id, session: CurrentSession) -> Response:
    rt = runtime(request)
    with rt.db.session() as s:
        m = s.get(MatchRow, match_id)
        if m is None:
            raise UiError(404, f"no match {match_id}")
        detail = match_detail(rt, s, session.key, m)
    return render(request, "match.html", detail=detail, back=f"{BASE}/matches/{match_id}")


@router.get("/matches/{match_id}/evidence.zip")
def evidence_bundle(request: Request, match_id: Id, session: CurrentSession) -> Response:
    """The signed bundle, as ``GET /v1/matches/{id}/evidence.zip`` gives it to the key."""
    require_scope(session, "matches:read", "export evidence")
    try:
        return evidence_api.evidence_zip(match_id, runtime(request), session.key)
    except Problem as exc:
        raise UiError(exc.status, exc.detail) from None


@router.post("/matches/{match_id}/review")
def review(
    request: Request,
    match_id: Id,
    session: CurrentSession,
    csrf: Annotated[str, Form(max_length=100)] = "",
    decision: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form(max_length=4000)] = "",
    back: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    check_post(request, session, csrf)
    require_scope(session, "matches:review", "confirm or dismiss matches")
    try:
        body = ReviewRequest(decision=decision, note=note.strip() or None)
    except ValidationError as exc:
        field = ".".join(str(p) for p in exc.errors()[0]["loc"]) or "form"
        raise UiError(422, f"{field}: {exc.errors()[0]['msg']}") from None
    rt = runtime(request)
    with rt.db.session() as s:
        try:
            matches_api.review(match_id, body, s, session.key)
        except Problem as exc:
            raise UiError(exc.status, exc.detail) from None
    # committed: sign the review into the match's evidence chain, as the API route does
    record_reviews(rt.db, rt.settings, match_id)
    target = back if back.startswith(f"{BASE}/") and "//" not in back else None
    return RedirectResponse(f"{target or f'{BASE}/matches/{match_id}'}#review", status_code=303)


@router.get("/audit")
def audit(
    request: Request,
    session: CurrentSession,
    target: str | None = None,
    cursor: str | None = None,
) -> Response:
    target = (target or "").strip() or None
    if target is not None and len(target) > 80:
        raise UiError(422, "target: at most 80 characters")
    rt = runtime(request)
    with rt.db.session() as s:
        q = select(AuditRow)
        if target is not None:
            q = q.where(AuditRow.target == target)
        rows, next_cursor = _paged(s, q, AuditRow.id, cursor, AUDIT_PER_PAGE)
        entries = [matches_api._audit(r) for r in rows]
    for entry in entries:
        kind, _, ident = entry["target"].partition(":")
        entry["link"] = f"{BASE}/matches/{ident}" if kind == "match" and ident.isdigit() else None
    return render(request, "audit.html", entries=entries, target=target, next_cursor=next_cursor)
