"""The scans page: an analyst submits a stream URL by hand (testing a lead) and watches
its scan go from ``queued`` to its verdict.

Submission goes through the API's own ``POST /v1/scans`` code (de-duplication, the
queue) and takes the same scope, ``scans:write``; an analyst key without it sees the list
but not the form. The status page reloads itself every :data:`REFRESH_SECONDS` while
the scan (or the second sample confirming it) is still running — a meta refresh, no
script.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from ..api import scans as scans_api
from ..models import SCAN_STATES, ScanRow
from ..problems import Problem
from ..scans import CursorError, matches_of, page, scan_dict
from ..schemas import ScanRequest
from .auth import CurrentSession, check_post, require_scope, runtime
from .web import BASE, UiError, render

__all__ = ["REFRESH_SECONDS", "router"]

router = APIRouter(include_in_schema=False)
Id = Annotated[int, Path(ge=1, le=2**62)]
#: How often a running scan's page reloads, in seconds.
REFRESH_SECONDS = 2
SCANS_PER_PAGE = 50


def _recent(request: Request, session: CurrentSession, status: str | None, cursor: str | None):  # noqa: ANN202
    if status and status not in SCAN_STATES:
        raise UiError(422, f"status: must be one of {', '.join(SCAN_STATES)}")
    rt = runtime(request)
    admin = session.key.allows("admin")
    with rt.db.session() as s:
        q = select(ScanRow)
        if status:
            q = q.where(ScanRow.status == status)
        try:
            rows, next_cursor = page(s, q, ScanRow.id, cursor, SCANS_PER_PAGE)
        except CursorError:
            raise UiError(422, "cursor: not one this page gave out") from None
        found = matches_of(s, [r.id for r in rows])
        items = [scan_dict(r, found[r.id], admin=admin, full=False) for r in rows]
    return items, next_cursor


def _scans_page(
    request: Request,
    session: CurrentSession,
    *,
    status: str | None = None,
    cursor: str | None = None,
    error: str | None = None,
    form: dict | None = None,
    code: int = 200,
) -> Response:
    items, next_cursor = _recent(request, session, status, cursor)
    return render(
        request,
        "scans.html",
        status=code,
        scans=items,
        next_cursor=next_cursor,
        status_filter=status or "",
        states=SCAN_STATES,
        can_submit=session.key.allows("scans:write"),
        error=error,
        form=form or {"url": "", "seconds": ""},
    )


@router.get("/scans")
def scans(
    request: Request, session: CurrentSession, status: str | None = None, cursor: str | None = None
) -> Response:
    return _scans_page(request, session, status=status, cursor=cursor)


@router.post("/scans")
def submit(
    request: Request,
    session: CurrentSession,
    csrf: Annotated[str, Form(max_length=100)] = "",
    url: Annotated[str, Form(max_length=8192)] = "",
    seconds: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    check_post(request, session, csrf)
    require_scope(session, "scans:write", "submit scans")
    form = {"url": url, "seconds": seconds}
    try:
        wanted = float(seconds) if seconds.strip() else None
    except ValueError:
        return _scans_page(request, session, error="seconds: must be a number", form=form, code=422)
    try:
        body = ScanRequest(url=url.strip() or None, seconds=wanted)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "url"
        message = first["msg"].removeprefix("Value error, ")
        return _scans_page(request, session, error=f"{field}: {message}", form=form, code=422)
    if body.url is None:
        missing = "url: a stream URL is needed"
        return _scans_page(request, session, error=missing, form=form, code=422)
    try:
        _, _, out = scans_api.submit_scans(runtime(request), body, session.key)
    except Problem as exc:
        return _scans_page(request, session, error=exc.detail, form=form, code=exc.status)
    return RedirectResponse(f"{BASE}/scans/{out['id']}", status_code=303)


@router.get("/scans/{scan_id}")
def scan(request: Request, scan_id: Id, session: CurrentSession) -> Response:
    rt = runtime(request)
    admin = session.key.allows("admin")
    with rt.db.session() as s:
        row = s.get(ScanRow, scan_id)
        if row is None:
            raise UiError(404, f"no scan {scan_id}")
        out = scan_dict(row, matches_of(s, [row.id])[row.id], admin=admin)
        follow = s.scalars(
            select(ScanRow).where(ScanRow.confirms == scan_id).order_by(ScanRow.id.desc())
        ).first()
        follow_up = {"id": follow.id, "status": follow.status} if follow is not None else None
    running = out["status"] not in ("done", "failed") or (
        follow_up is not None and follow_up["status"] not in ("done", "failed")
    )
    return render(
        request,
        "scan.html",
        scan=out,
        follow_up=follow_up,
        refresh=REFRESH_SECONDS if running else None,
    )
