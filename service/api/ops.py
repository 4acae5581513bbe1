"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ..metrics import CONTENT_TYPE
from ..problems import Problem
from .deps import RuntimeDep, require
from .responses import AUTH_ERRORS, problem

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up (no key needed)")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Database, index and queue answer",
    responses={
        **AUTH_ERRORS,
        503: problem(503, "A dependency is down (each is named in `checks`)."),
    },
)
def readyz(rt: RuntimeDep, _key: require("matches:read")) -> dict[str, object]:
    checks: dict[str, str] = {}
    for name, probe in (
        ("database", rt.db.ping),
        ("index", rt.index.check),
        ("queue", rt.queue.ping),
    ):
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:  # report, never crash: this is what readiness is for
            checks[name] = f"{type(exc).__name__}: {exc}"[:200]
    if any(v != "ok" for v in checks.values()):
        raise Problem(
            503, "not ready: " + ", ".join(k for k, v in checks.items() if v != "ok"), checks=checks
        )
    return {"status": "ready", "checks": checks}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE: {}}, "description": "Text exposition format."},
        **AUTH_ERRORS,
    },
)
def metrics(rt: RuntimeDep, _key: require("matches:read")) -> Response:
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE)
