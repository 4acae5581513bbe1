"""Login sessions of the analyst UI: server-side, bound to an API key, with a CSRF token.

A browser logs in once with an API key (the same keys as the API); it then holds a
random session token in a cookie, and the ``ui_sessions`` table holds only the token's
SHA-256 with the key id, an absolute expiry and the session's CSRF token. Server-side
rather than a signed cookie so that logging out ends the session (a signed cookie stays
valid until it expires, whoever copied it), and every request re-reads the key: a
revoked key stops working on the next click.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import DateTime, ForeignKey, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Database
from ..keys import ApiKey, _key
from ..models import ApiKeyRow, ServiceBase, utc, utc_now

__all__ = [
    "SESSION_SECONDS",
    "UiSession",
    "UiSessionRow",
    "csrf_matches",
    "end_session",
    "find_session",
    "start_session",
]

#: Absolute lifetime of a login, in seconds (a working day): after it, log in again.
SESSION_SECONDS = 8 * 3600.0


class UiSessionRow(ServiceBase):
    """A login: the SHA-256 of the browser's token, the key it was opened with."""

    __tablename__ = "ui_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(
        String(24), ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


@dataclass(frozen=True)
class UiSession:
    """A live login as the pages see it: the key (re-read on every request) and the
    token that every POST form must carry back."""

    key: ApiKey
    csrf: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(
    db: Database, key: ApiKey, *, seconds: float = SESSION_SECONDS
) -> tuple[str, UiSession]:
    """Open a session for ``key``; returns the cookie token (shown to the browser only)
    and the session. Expired sessions of every key are swept on the way."""
    token = secrets.token_urlsafe(32)
    now = utc_now()
    row = UiSessionRow(
        id=_digest(token),
        key_id=key.id,
        csrf=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + timedelta(seconds=seconds),
    )
    with db.session() as s:
        s.execute(delete(UiSessionRow).where(UiSessionRow.expires_at < now))
        s.add(row)
    return token, UiSession(key=key, csrf=row.csrf, expires_at=row.expires_at)


def find_session(db: Database, token: str | None) -> UiSession | None:
    """The live session of a cookie token: ``None`` if the token is missing or unknown,
    the session expired, or its key was revoked since."""
    if not token or len(token) > 200:
        return None
    with db.session() as s:
        found = s.execute(
            select(UiSessionRow, ApiKeyRow)
            .join(ApiKeyRow, ApiKeyRow.id == UiSessionRow.key_id)
            .where(UiSessionRow.id == _digest(token))
        ).first()
        if found is None:
            return None
        session, key_row = found
        if key_row.revoked_at is not None or utc(session.expires_at) <= utc_now():
            return None
        return UiSession(key=_key(key_row), csrf=session.csrf, expires_at=utc(session.expires_at))


def end_session(db: Database, token: str | None) -> None:
    """Forget the session of ``token`` (logout); unknown tokens are ignored."""
    if token and len(token) <= 200:
        with db.session() as s:
            s.execute(delete(UiSessionRow).where(UiSessionRow.id == _digest(token)))


def csrf_matches(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of a form's CSRF token with the one expected."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
