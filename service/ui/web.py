"""Rendering of the UI's pages: the Jinja2 environment, its filters, security headers, and
the two ways a page refuses a request (:class:`UiError`, :class:`LoginRequired`).

Pages are plain server-rendered HTML: no script runs in them (the Content-Security-Policy
forbids any), styles come from one static file, plots are inline SVG.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

__all__ = [
    "BASE",
    "SECURITY_HEADERS",
    "LoginRequired",
    "UiError",
    "env",
    "login_redirect",
    "render",
]

#: Where the UI is mounted (every link of the pages starts with it).
BASE = "/ui"
#: Sent with every page: nothing but our own CSS and images loads, no script runs, no
#: other site may frame the pages (clickjacking of the review buttons), and pages that
#: show evidence are not cached on shared machines.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class UiError(Exception):
    """A request a page refuses, shown as an HTML page with ``status`` and ``message``
    (what was wrong, in words an analyst can act on)."""

    def __init__(self, status: int, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.title = title or {
            400: "Bad request",
            401: "Logged out",
            403: "Not allowed",
            404: "Not found",
            422: "Invalid request",
        }.get(status, "Error")


class LoginRequired(Exception):
    """No live session (never logged in, logged out, expired, or the key was revoked)."""


def _utc(value: datetime | str | float | None) -> str:
    """A time as ``YYYY-MM-DD HH:MM:SSZ`` (UTC); ISO strings and epoch seconds too."""
    if value is None or value == "":
        return "—"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _num(value: float | int | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{float(value):,.{digits}f}"


def _secs(value: float | None, digits: int = 1) -> str:
    """Seconds with their unit, ``—`` when unknown."""
    return "—" if value is None else f"{float(value):,.{digits}f} s"


def _pct(value: float | None, digits: int = 2) -> str:
    """A probability in percent (confidences)."""
    return "—" if value is None else f"{100.0 * float(value):.{digits}f} %"


env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"], default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(utc=_utc, num=_num, secs=_secs, pct=_pct, urlquote=lambda v: quote(str(v)))
env.globals["BASE"] = BASE


def render(request: Request, template: str, *, status: int = 200, **context: object) -> Response:
    """``template`` rendered with ``context``, the viewer's session (for the navigation
    and the CSRF token of every form) and the security headers."""
    html = env.get_template(template).render(
        request=request, session=getattr(request.state, "ui_session", None), **context
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def login_redirect(request: Request) -> RedirectResponse:
    """To the login form, coming back to this page afterwards."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{BASE}/login?next={quote(path, safe='')}", status_code=303)
