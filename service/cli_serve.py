"""``vigie serve``, ``vigie worker`` and ``vigie keys ...``."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from typing import Annotated

import typer

from .cli_common import fail, settings_from_env

__all__ = ["keys_app", "serve_cmd", "worker_cmd"]

keys_app = typer.Typer(help="API keys (stored hashed; a key is shown once).", no_args_is_help=True)


def serve_cmd(
    host: Annotated[str | None, typer.Option(help="Listen address (VIGIE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (VIGIE_PORT).")] = None,
) -> None:
    """Run the HTTP API. Without VIGIE_BROKER_URL it also runs the scan workers (threads)."""
    import uvicorn

    from .app import create_app
    from .logs import setup_logging

    settings = settings_from_env()
    setup_logging()
    try:
        app = create_app(settings)
    except ValueError as exc:
        raise fail(str(exc)) from None
    uvicorn.run(
        app,
        host=host or settings.host,
        port=settings.port if port is None else port,
        log_config=None,
        access_log=False,
    )


def worker_cmd(
    threads: Annotated[
        int | None, typer.Option(help="Worker threads (VIGIE_WORKER_THREADS).")
    ] = None,
) -> None:
    """Run scan jobs from the Redis broker (VIGIE_BROKER_URL) until stopped.

    Any number of workers, on any machines that see the same database
    (VIGIE_DATABASE_URL, PostgreSQL) and reference index folder (VIGIE_DATA_DIR). A worker
    killed mid-scan loses its lease within VIGIE_LEASE_SECONDS; another one's sweep
    (every VIGIE_SWEEP_SECONDS) then hands the scan to a live worker.
    """
    from .jobs import register
    from .logs import setup_logging
    from .runtime import Runtime
    from .sweeper import Sweeper

    settings = settings_from_env()
    if not settings.broker_url:
        raise fail(
            "vigie worker needs VIGIE_BROKER_URL (redis://...); without it, "
            "vigie serve runs the workers itself"
        )
    setup_logging()
    try:
        rt = Runtime.open(settings)
    except ValueError as exc:
        raise fail(str(exc)) from None
    register(rt)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    n = threads or settings.worker_threads
    rt.queue.start(n, nice=rt.settings.scan_nice)
    Sweeper(rt).start()  # every worker process sweeps: no single one must stay up for it
    logging.getLogger("vigie.worker").info(
        "worker started",
        extra={"pid": os.getpid(), "threads": n, "namespace": rt.queue.namespace},
    )
    stop.wait()
    rt.close()


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="Who the key is for.")],
    scopes: Annotated[
        list[str],
        typer.Option(
            "--scopes",
            "--scope",
            help="scans:write, matches:read, matches:review, admin (repeatable "
            "or comma-separated).",
        ),
    ],
    rate: Annotated[int | None, typer.Option("--rate", min=1, help="Requests per minute.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a key and print it once (with its webhook signing secret)."""
    from .db import Database
    from .keys import KeyError_, create_key

    settings = settings_from_env()
    wanted = [s.strip() for item in scopes for s in item.split(",") if s.strip()]
    try:
        key, token = create_key(Database(settings.catalog_url), name, wanted, rate)
    except KeyError_ as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(
            json.dumps({**key.as_dict(), "token": token, "webhook_secret": key.webhook_secret})
        )
        return
    typer.echo(f"key {key.id} ({', '.join(sorted(key.scopes))}) for {key.name}")
    typer.echo(f"token (shown once): {token}")
    typer.echo(f"webhook secret: {key.webhook_secret}")


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List keys (never their secrets)."""
    from .db import Database
    from .keys import list_keys

    keys = list_keys(Database(settings_from_env().catalog_url))
    if as_json:
        typer.echo(json.dumps([k.as_dict() for k in keys]))
        return
    for k in keys:
        state = "revoked" if k.revoked_at else "active"
        typer.echo(f"{k.id}  {state:7}  {' '.join(sorted(k.scopes)):40}  {k.name}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="Key id (vk_<id>_...).")]) -> None:
    """Revoke a key for good."""
    from .db import Database
    from .keys import KeyError_, revoke

    try:
        key = revoke(Database(settings_from_env().catalog_url), key_id)
    except KeyError_ as exc:
        raise fail(str(exc)) from None
    typer.echo(f"revoked {key.id} ({key.name})")
