"""Logging in with an API key, logging out, and what every page checks.

- The login form takes an API key; :func:`service.keys.authenticate` checks it as for the
  API, and the key must hold ``matches:read`` (a monitoring bot's ``scans:write`` key
  cannot open analyst pages). The browser then holds a session cookie: ``HttpOnly``,
  ``SameSite=Strict``, ``Secure`` when the request came over https, scoped to ``/ui``.
- Every page re-reads its session and key (:func:`current_session`): logout, expiry and
  revocation take effect on the next request.
- Every POST form carries a CSRF token (the session's; for the login form, a
  double-submit cookie), and a POST whose ``Origin`` is another site is refused.
"""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response

from ..keys import authenticate
from ..runtime import Runtime
from .sessions import SESSION_SECONDS, UiSession, csrf_matches, end_session, find_session
from .sessions import start_session as _start
from .web import BASE, LoginRequired, UiError, login_redirect, render

__all__ = [
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "CurrentSession",
    "check_post",
    "current_session",
    "install",
    "require_scope",
    "router",
    "runtime",
]

SESSION_COOKIE = "vigie_session"
#: Double-submit token of the login form (there is no session to hold one yet).
LOGIN_COOKIE = "vigie_login"
#: Lifetime of the login form's token, in seconds.
LOGIN_FORM_SECONDS = 3600
LOGIN_SCOPE = "matches:read"

router = APIRouter(include_in_schema=False)


def runtime(request: Request) -> Runtime:
    """The service's runtime (set on the UI app by :func:`service.ui.create_ui`)."""
    return request.app.state.runtime


def current_session(request: Request) -> UiSession:
    """The viewer's live session; :class:`LoginRequired` without one."""
    session = find_session(runtime(request).db, request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise LoginRequired()
    if not session.key.allows(LOGIN_SCOPE):  # scopes never change, but be exact
        raise UiError(403, f"this API key lacks the {LOGIN_SCOPE!r} scope")
    request.state.ui_session = session
    return session


CurrentSession = Annotated[UiSession, Depends(current_session)]


def _same_origin(request: Request) -> bool:
    """False when the browser says the form was posted from another site."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


def check_post(request: Request, session: UiSession, csrf: str | None) -> None:
    """Refuse a form POST without the session's CSRF token or from another origin."""
    if not _same_origin(request):
        raise UiError(403, "this form was posted from another site")
    if not csrf_matches(session.csrf, csrf):
        raise UiError(403, "the form's CSRF token is missing or stale: reload the page")


def require_scope(session: UiSession, scope: str, what: str) -> None:
    """:class:`UiError` 403 naming ``scope`` unless the session's key holds it."""
    if not session.key.allows(scope):
        raise UiError(403, f"this API key lacks the {scope!r} scope needed to {what}")


def _safe_next(target: str | None) -> str:
    """Where to go after login: a page of the UI only (no open redirect)."""
    if (
        target
        and target.startswith(BASE + "/")
        and not target.startswith("//")
        and "\\" not in target
        and "://" not in target
    ):
        return target
    return f"{BASE}/incidents"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _login_form(
    request: Request, *, status: int = 200, error: str | None = None, next_: str | None = None
) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", status=status, error=error, csrf=token, next=_safe_next(next_)
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=LOGIN_FORM_SECONDS,
        path=f"{BASE}/login",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:  # noqa: A002
    if find_session(runtime(request).db, request.cookies.get(SESSION_COOKIE)) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_form(request, next_=next)


@router.post("/login")
def login(
    request: Request,
    api_key: Annotated[str, Form(max_length=300)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",  # noqa: A002
) -> Response:
    if not _same_origin(request):
        raise UiError(403, "this form was posted from another site")
    if not csrf_matches(request.cookies.get(LOGIN_COOKIE), csrf):
        return _login_form(
            request, status=403, error="the login form expired: try again", next_=next
        )
    rt = runtime(request)
    key = authenticate(rt.db, api_key.strip())
    if key is None:
        return _login_form(
            request, status=401, error="this API key is unknown or revoked", next_=next
        )
    if not key.allows(LOGIN_SCOPE):
        return _login_form(
            request,
            status=403,
            error=f"this API key lacks the {LOGIN_SCOPE!r} scope: only analyst keys open "
            "these pages (monitoring-bot keys use the API)",
            next_=next,
        )
    token, _ = _start(rt.db, key, seconds=SESSION_SECONDS)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_SECONDS),
        path=BASE,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path=f"{BASE}/login")
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    rt = runtime(request)
    token = request.cookies.get(SESSION_COOKIE)
    session = find_session(rt.db, token)
    if session is not None:
        check_post(request, session, csrf)
        end_session(rt.db, token)
    response = RedirectResponse(f"{BASE}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=BASE, httponly=True, samesite="strict")
    return response


def install(ui: FastAPI) -> None:
    """HTML answers for the UI's refusals (others stay problem+json)."""

    @ui.exception_handler(UiError)
    async def _refused(request: Request, exc: UiError) -> Response:
        return render(
            request, "error.html", status=exc.status, title=exc.title, message=exc.message
        )

    @ui.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        if request.method in ("GET", "HEAD"):
            return login_redirect(request)
        return render(
            request,
            "error.html",
            status=401,
            title="Logged out",
            message="your session ended (logged out, expired, or the key was revoked): "
            "log in again",
        )
