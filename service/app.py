"""The FastAPI application: ``create_app(settings)``.

Embedded mode (no ``VIGIE_BROKER_URL``): the app starts the job workers on threads of
its own process and the sweeper, so ``vigie serve`` alone runs the whole service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from fingerprinting.capture import GuardedClient

from . import __version__, problems
from .api import assets, channels, distributors, feeds, matches, ops, scans
from .api import evidence as evidence_routes
from .api import jobs as job_routes
from .jobs import register
from .middleware import BodyLimit, RequestContext
from .runtime import Runtime
from .settings import Settings
from .sweeper import Sweeper
from .ui import create_ui

__all__ = ["create_app"]

DESCRIPTION = """
Vigie detects pirate IPTV restreams of TV channels by their sound and picture.

Monitoring bots submit stream URLs (`POST /v1/scans`, scope `scans:write`); each is sampled,
fingerprinted and matched against the rights holders' channels, and gets a verdict:
`confirmed`, `suspected`, `no_match`, `authorized` or `unreachable`. Analysts read matches and
incidents (`matches:read`) and review them (`matches:review`); admins manage channels and keys.

Every route but `/healthz` takes an API key: `Authorization: Bearer vk_...` or `X-API-Key`.
Errors are RFC 9457 `application/problem+json`. Listings are paged with opaque cursors.
Verdicts are POSTed to the scan's `callback_url`, signed per Standard Webhooks (see the
`scan-verdict` webhook): verify `webhook-signature` with your key's webhook secret.
"""


def create_app(
    settings: Settings,
    *,
    start_workers: bool | None = None,
    client_factory: Callable[[], GuardedClient] | None = None,
) -> FastAPI:
    """The service for ``settings``.

    ``start_workers``: run the job workers in this process (default: when the broker is
    in-process, since nothing else could run them).
    """
    rt = Runtime.open(settings, client_factory=client_factory)
    register(rt)
    run_workers = rt.queue.in_process if start_workers is None else start_workers

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if run_workers:
            rt.queue.start(settings.worker_threads, nice=settings.scan_nice)
            Sweeper(rt).start()
        try:
            yield
        finally:
            rt.close()

    app = FastAPI(
        title="Vigie",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.runtime = rt
    problems.install(app)
    app.include_router(ops.router)
    app.include_router(scans.router)
    app.include_router(matches.router)
    app.include_router(evidence_routes.router)
    app.include_router(channels.router)
    app.include_router(feeds.router)
    app.include_router(distributors.router)
    app.include_router(assets.router)
    app.include_router(job_routes.router)
    scans.document_webhooks(app)
    app.mount("/ui", create_ui(rt))  # analyst pages (not part of the API schema)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContext, observe=rt.metrics.observe_request)
    return app
