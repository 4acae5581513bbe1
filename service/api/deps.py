"""Dependencies of the routes: the runtime, a database session, the caller's API key.

``Annotated`` aliases (``RuntimeDep``, ``SessionDep``, ``require(scope)``), in the manner
of full-stack-fastapi-template: routes declare what they need in their signature.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from ..keys import ApiKey, authenticate
from ..problems import Problem
from ..runtime import Runtime

__all__ = ["RuntimeDep", "SessionDep", "require"]

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer vk_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: vk_...`")


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


def _session(rt: RuntimeDep) -> Iterator[Session]:
    with rt.db.session() as s:
        yield s


SessionDep = Annotated[Session, Depends(_session)]


def _caller(
    rt: RuntimeDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> ApiKey:
    token = header or (bearer.credentials if bearer else None)
    challenge = {"WWW-Authenticate": 'Bearer realm="vigie"'}
    if not token:
        raise Problem(
            401, "an API key is required (Authorization: Bearer vk_...)", headers=challenge
        )
    key = authenticate(rt.db, token)
    if key is None:
        raise Problem(401, "the API key is unknown or revoked", headers=challenge)
    wait = rt.limiter.take(key.id, key.rate_per_minute or rt.settings.rate_per_minute)
    if wait > 0:
        raise Problem(
            429,
            "rate limit of this API key exceeded; retry later",
            headers={"Retry-After": rt.limiter.retry_after(wait)},
        )
    return key


def require(*scopes: str) -> object:
    """Dependency alias: the caller's key, which must hold one of ``scopes`` (else 403)."""
    wanted = " or ".join(repr(s) for s in scopes)

    def check(key: Annotated[ApiKey, Depends(_caller)]) -> ApiKey:
        if not any(key.allows(s) for s in scopes):
            raise Problem(403, f"this API key lacks the {wanted} scope", scopes=list(scopes))
        return key

    check.scopes = scopes  # read by the scope tests, which walk every route
    return Annotated[ApiKey, Depends(check)]
