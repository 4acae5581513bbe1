"""API keys: created once and shown once, stored as a SHA-256 of their secret, scoped.

A key reads ``vk_<id>_<secret>``: the id finds the row, the secret (256 random bits) is
checked against its stored hash in constant time. A plain SHA-256 is enough for secrets
of that entropy (password hashes such as bcrypt exist to slow down guessing of *low*
entropy secrets, and would cost every API request milliseconds).

Scopes: ``scans:write`` (monitoring bots submit scans), ``matches:read`` (analysts read
scans, matches, incidents, channels), ``matches:review`` (analysts confirm or dismiss
matches), ``admin`` (everything, including channels, keys and unredacted stream URLs).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from .db import Database
from .models import ApiKeyRow, utc, utc_now
from .webhooks import new_secret

__all__ = ["SCOPES", "ApiKey", "KeyError_", "authenticate", "create_key", "list_keys", "revoke"]

#: Every scope, with what it grants.
SCOPES: dict[str, str] = {
    "scans:write": "submit scans and read them back (monitoring bots)",
    "matches:read": "read scans, matches, incidents, channels and jobs (analysts)",
    "matches:review": "confirm or dismiss matches (analysts)",
    "admin": "everything: channels, feeds, distributors, re-indexing, keys, unredacted URLs",
}
_PREFIX = "vk_"


class KeyError_(ValueError):  # noqa: N801 - KeyError is a builtin
    """A key request that cannot be honoured (unknown scope, unknown key)."""


@dataclass(frozen=True)
class ApiKey:
    """An API key as the service sees it (never its secret)."""

    id: str
    name: str
    scopes: frozenset[str]
    rate_per_minute: int | None
    webhook_secret: str
    created_at: datetime
    revoked_at: datetime | None = None

    def allows(self, scope: str) -> bool:
        """``admin`` holds every scope."""
        return scope in self.scopes or "admin" in self.scopes

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "rate_per_minute": self.rate_per_minute,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        scopes=frozenset(row.scopes.split()),
        rate_per_minute=row.rate_per_minute,
        webhook_secret=row.webhook_secret,
        created_at=utc(row.created_at),
        revoked_at=utc(row.revoked_at),
    )


def check_scopes(scopes: list[str] | tuple[str, ...]) -> frozenset[str]:
    """The scopes as a set; :class:`KeyError_` naming an unknown one."""
    if not scopes:
        raise KeyError_("a key needs at least one scope: " + ", ".join(SCOPES))
    unknown = sorted(set(scopes) - SCOPES.keys())
    if unknown:
        raise KeyError_(f"unknown scope {unknown[0]!r}; scopes are: " + ", ".join(SCOPES))
    return frozenset(scopes)


def create_key(
    db: Database, name: str, scopes: list[str] | tuple[str, ...], rate_per_minute: int | None = None
) -> tuple[ApiKey, str]:
    """Store a new key; returns it with its token, which is never retrievable again."""
    wanted = check_scopes(scopes)
    if not name.strip() or len(name) > 200:
        raise KeyError_("a key needs a name of 1 to 200 characters")
    if rate_per_minute is not None and rate_per_minute < 1:
        raise KeyError_("rate_per_minute must be at least 1")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    row = ApiKeyRow(
        id=key_id,
        name=name.strip(),
        scopes=" ".join(sorted(wanted)),
        secret_sha256=_digest(secret),
        rate_per_minute=rate_per_minute,
        webhook_secret=new_secret(),
        created_at=utc_now(),
    )
    with db.session() as s:
        s.add(row)
    return _key(row), f"{_PREFIX}{key_id}_{secret}"


def authenticate(db: Database, token: str) -> ApiKey | None:
    """The live key a token belongs to, or ``None`` (malformed, unknown, wrong, revoked)."""
    if not token.startswith(_PREFIX):
        return None
    key_id, _, secret = token[len(_PREFIX) :].partition("_")
    if not key_id or not secret or len(token) > 200:
        return None
    with db.session() as s:
        row = s.get(ApiKeyRow, key_id)
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_sha256, _digest(secret)):
            return None
        return _key(row)


def list_keys(db: Database) -> list[ApiKey]:
    with db.session() as s:
        return [_key(r) for r in s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))]


def revoke(db: Database, key_id: str) -> ApiKey:
    """Revoke a key for good (requests with it get 401 from now on)."""
    with db.session() as s:
        row = s.get(ApiKeyRow, key_id)
        if row is None:
            raise KeyError_(f"no API key {key_id!r}")
        if row.revoked_at is None:
            row.revoked_at = utc_now()
        return _key(row)
