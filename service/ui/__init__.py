"""The analyst web UI, server-rendered (Jinja2), mounted at ``/ui`` by ``create_app``.

Pages: incidents (the queue, new confirmed ones on top), an incident or match (frames,
alignment plot, scores, delay, evidence, review buttons), channels (feed health,
distributors, re-indexing jobs), scans (submit a URL, watch it), and the audit log.
Analysts log in with their API key (:mod:`.auth`); the pages apply the API's scopes.

The UI is a FastAPI app of its own, mounted, not a router of the API: its routes answer
browsers (redirects to the login form, HTML error pages) and are absent from the OpenAPI
document and from the API's route-by-route scope checks.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response

from .. import problems
from ..runtime import Runtime
from . import artefacts, auth, channels, incidents, scans
from .web import BASE

__all__ = ["BASE", "create_ui"]

_STATIC = Path(__file__).parent / "static"


def create_ui(rt: Runtime) -> FastAPI:
    """The UI application for ``rt`` (mount it at :data:`BASE`)."""
    ui = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="Vigie UI")
    ui.state.runtime = rt
    problems.install(ui)
    auth.install(ui)
    for module in (auth, incidents, artefacts, channels, scans):
        ui.include_router(module.router)

    @ui.get("/static/ui.css", include_in_schema=False)
    def stylesheet() -> Response:
        return FileResponse(
            _STATIC / "ui.css",
            media_type="text/css",
            headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    return ui
