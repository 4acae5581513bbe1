"""Dependencies of the routes: the runtime, a database session, the caller's API key.

``Annotated`` aliases (``RuntimeDep``, ``SessionDep``, ``require(scope)``), in the manner
of full-stack-fastapi-template: routes declare what they need in their signature.

Why ``async def`` here: FastAPI runs every plain ``def`` dependency on anyio's thread pool,
and each such hop costs two thread handoffs, each of which must win the interpreter lock
back from the scan worker threads of the same process. Measured under the load benchmark
(``bench.service_load``, 2 cores), a ``POST /v1/scans`` spent a median 40 ms of its 56 ms
in five such hops (runtime, key, scope check, handler, response validation), and a single
handoff stalled for up to 130 ms. So the dependencies that do no I/O are coroutines, and
the key lookup (a database read) takes one hop that also takes the rate-limit token.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ..keys import ApiKey, authenticate
from ..problems import Problem
from ..runtime import Runtime

__all__ = ["RuntimeDep", "SessionDep", "require"]

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer vk_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: vk_...`")


async def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


def _session(rt: RuntimeDep) -> Iterator[Session]:
    with rt.db.session() as s:
        yield s


SessionDep = Annotated[Session, Depends(_session)]


async def _caller(
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
    key, wait = await run_in_threadpool(_authenticate, rt, token)
    if key is None:
        raise Problem(401, "the API key is unknown or revoked", headers=challenge)
    if wait > 0:
        raise Problem(
            429,
            "rate limit of this API key exceeded; retry later",
            headers={"Retry-After": rt.limiter.retry_after(wait)},
        )
    return key


def _authenticate(rt: Runtime, token: str) -> tuple[ApiKey | None, float]:
    """The key of ``token`` and the seconds it must wait for a rate-limit token (0.0:
    granted), on a pool thread: the lookup reads the database."""
    key = authenticate(rt.db, token)
    if key is None:
        return None, 0.0
    return key, rt.limiter.take(key.id, key.rate_per_minute or rt.settings.rate_per_minute)


def require(*scopes: str) -> object:
    """Dependency alias: the caller's key, which must hold one of ``scopes`` (else 403)."""
    wanted = " or ".join(repr(s) for s in scopes)

    async def check(key: Annotated[ApiKey, Depends(_caller)]) -> ApiKey:
        if not any(key.allows(s) for s in scopes):
            raise Problem(403, f"this API key lacks the {wanted} scope", scopes=list(scopes))
        return key

    check.scopes = scopes  # read by the scope tests, which walk every route
    return Annotated[ApiKey, Depends(check)]
