"""``vigie evidence``: check a match's evidence bundle offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .cli_common import err, fail
from .evidence import BundleError, verify_bundle

__all__ = ["evidence_app"]

evidence_app = typer.Typer(help="Evidence bundles of matches.", no_args_is_help=True)


@evidence_app.command("verify")
def verify_cmd(
    bundle: Annotated[
        Path,
        typer.Argument(
            metavar="BUNDLE",
            help="The bundle zip (GET /v1/matches/ID/evidence.zip) or its unzipped folder.",
        ),
    ],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            metavar="PEM",
            help="The installation's public key, obtained apart from the bundle "
            "(GET /v1/evidence/public-key): the bundle's own key must be this one.",
        ),
    ] = None,
) -> None:
    """Check every artefact against the signed manifest, that nothing unlisted is in the
    bundle, the manifest's signature, and the chain of signed review entries.

    Prints one line per problem, naming the file, and exits 1; prints a summary and
    exits 0 when the bundle verifies. Exit 2: BUNDLE or PEM cannot be used at all.
    """
    pem = None
    if public_key is not None:
        try:
            pem = public_key.read_bytes()
        except OSError as exc:
            raise fail(f"{public_key}: {exc.strerror or exc}") from None
    try:
        result = verify_bundle(bundle, pem)
    except BundleError as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:
        raise fail(f"{public_key}: {exc}") from None
    if not result.ok:
        for line in result.problems:
            err.print(f"FAIL {line}", markup=False, highlight=False, soft_wrap=True)
        err.print(
            f"{bundle}: does not verify ({len(result.problems)} problems)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    m = result.manifest or {}
    trust = "the key given" if pem is not None else "its own key (pass --public-key to pin it)"
    typer.echo(
        f"OK {bundle}: match {m.get('match_id')} (scan {m.get('scan_id')}, channel "
        f"{m.get('channel_id')}, {m.get('verdict')}), {result.artefacts} artefacts and "
        f"{result.reviews} review entries verified, signed "
        f"{m.get('created_utc')} by key sha256:{result.key_sha256} ({trust})"
    )
