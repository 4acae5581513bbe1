"""The ``vigie`` command line (typer). Its commands and JSON shapes are a public contract."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fingerprinting.align import NullCalibration
from fingerprinting.capture import CaptureError, CapturePlan, GuardedClient, NetworkPolicy, sample
from fingerprinting.decode import DecodeError
from reference_index.batch import IndexedFile, expand_sources, reindex, reindex_all
from reference_index.calibrate import measure_null_scores
from reference_index.catalog import CatalogError
from reference_index.generations import Recording, current_generation, recordings
from reference_index.index import MODALITIES

from .cli_channels import channels_app
from .cli_common import err, fail, open_catalog, open_index, settings_from_env
from .cli_evidence import evidence_app
from .cli_ingest import ingest_cmd
from .cli_serve import keys_app, serve_cmd, worker_cmd
from .detect import scan_source, scan_url
from .settings import Settings

app = typer.Typer(help="Vigie: find pirate restreams of TV channels.", no_args_is_help=True)
app.add_typer(channels_app, name="channels")
app.add_typer(evidence_app, name="evidence")
app.command("ingest")(ingest_cmd)
app.command("serve")(serve_cmd)
app.command("worker")(worker_cmd)
app.add_typer(keys_app, name="keys")


@app.command("reindex")
def reindex_cmd(
    channel_id: Annotated[
        str | None, typer.Argument(metavar="ID", help="Channel to index into.")
    ] = None,
    sources: Annotated[
        list[str] | None,
        typer.Argument(metavar="PATH_OR_URL...", help="Recordings, folders, URLs."),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes.")] = 1,
    everything: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Rebuild every indexed recording and catalog asset into a new index "
            "generation (after a change of fingerprint parameters), swapped in when done.",
        ),
    ] = False,
) -> None:
    """Fingerprint recordings into a channel (re-running replaces, never duplicates; a
    killed run resumes when the same command is run again)."""
    settings = settings_from_env()
    if everything:
        if channel_id or sources:
            raise fail("--all rebuilds everything: give no channel or recordings with it")
        _reindex_all(settings, jobs)
        return
    if not channel_id or not sources:
        raise fail("give a channel ID and recordings (or --all)")
    try:
        open_catalog(settings).require(channel_id)
    except CatalogError as exc:
        raise fail(str(exc)) from None
    files = expand_sources(sources)
    if not files:
        raise fail("no media files found in " + ", ".join(sources))
    index = open_index(settings)
    with _progress(f"indexing {channel_id}", len(files)) as on_done:
        results = reindex(index, channel_id, files, jobs=jobs, on_done=on_done)
    _summary(results, f"into {channel_id}")


def _reindex_all(settings: Settings, jobs: int) -> None:
    root = settings.index_dir
    extra = [Recording(a.channel_id, a.source) for a in open_catalog(settings).assets()]
    total = len(set(recordings(root / current_generation(root))) | set(extra))
    if total == 0:
        raise fail("nothing to re-index: no recording in the index and no catalog asset")
    with _progress("re-indexing everything", total) as on_done:
        generation, results = reindex_all(root, extra, jobs=jobs, on_done=on_done)
    _summary(results, f"into generation {generation}")


@contextmanager
def _progress(what: str, total: int) -> Iterator[Callable[[IndexedFile], None]]:
    """A progress bar of recordings (count, hours of media, ETA); yields its callback."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[hours]:.2f} h"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=not sys.stderr.isatty(),
    ) as progress:
        task = progress.add_task(what, total=total, hours=0.0)

        def on_done(done: IndexedFile) -> None:
            hours = progress.tasks[0].fields["hours"] + done.seconds / 3600.0
            progress.update(task, advance=1, hours=hours)

        yield on_done


def _summary(results: list[IndexedFile], where: str) -> None:
    ok = [r for r in results if r.track]
    hours = sum(r.seconds for r in ok) / 3600.0
    typer.echo(f"indexed {len(ok)} of {len(results)} recordings ({hours:.2f} h) {where}")
    for f in results:
        if f.error:
            err.print(f"skipped: {f.error}", markup=False, highlight=False)
    if not ok:
        raise typer.Exit(2)


def _client(settings: Settings) -> GuardedClient:
    try:
        policy = NetworkPolicy.from_setting(settings.allow_networks)
    except ValueError as exc:
        raise fail(f"VIGIE_ALLOW_NETWORKS: {exc}") from None
    return GuardedClient(policy)


def _unreachable(exc: CaptureError, as_json: bool) -> typer.Exit:
    """A failed capture: the JSON verdict on stdout with ``--json``, one line otherwise."""
    if as_json:
        evidence = exc.evidence.public() if exc.evidence is not None else None
        payload = {
            "verdict": "unreachable",
            "reason": exc.reason,
            "message": exc.message,
            "evidence": evidence,
        }
        typer.echo(json.dumps(payload))
        return typer.Exit(2)
    return fail(f"{exc.reason}: {exc.message}")


@app.command("scan")
def scan_cmd(
    source: Annotated[str, typer.Argument(metavar="PATH_OR_URL", help="Suspect file or stream.")],
    seconds: Annotated[
        float | None, typer.Option("--seconds", min=0.5, max=600, help="Sample length (s).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON result only.")] = False,
) -> None:
    """Sample a suspect source and name the channel it restreams, if any.

    URLs (http, https) are captured through the guarded capture layer; a capture that
    fails gives the verdict ``unreachable`` with its reason (exit status 2).
    """
    settings = settings_from_env()
    index = open_index(settings)
    seconds = seconds or settings.scan_seconds
    if "://" in source:
        with _client(settings) as client:
            try:
                result, got = scan_url(
                    source,
                    index,
                    seconds,
                    settings.match_confidence,
                    client=client,
                    deadline_seconds=settings.capture_deadline_seconds,
                    egress_note=settings.egress_note,
                )
            except CaptureError as exc:
                raise _unreachable(exc, as_json) from None
        data = result.as_dict()
        data["capture"] = _capture_summary(got)
    else:
        try:
            result = scan_source(source, index, seconds, settings.match_confidence)
        except DecodeError as exc:
            raise fail(str(exc)) from None
        data = result.as_dict()
    if as_json:
        typer.echo(json.dumps(data))
        return
    if not result.matches:
        typer.echo(f"no_match ({data['sample']['seconds']} s sampled from {result.source})")
    for m in data["matches"]:
        evidence = []
        if m["audio"]:
            evidence.append(f"{m['audio']['votes']} aligned audio hashes")
        if m["video"]:
            evidence.append(f"{m['video']['frames_matched']} aligned frames")
        if m["modalities_agree"] is False:
            evidence.append("audio and video disagree on the offset")
        where = f"at {m['offset_seconds']} s"
        if m["reference"] == "live":
            aired = datetime.fromtimestamp(m["offset_seconds"], UTC).isoformat(timespec="seconds")
            where = f"live (aired {aired})"
            if m["delay_seconds"] is not None:
                where += f", {m['delay_seconds']} s behind"
        typer.echo(
            f"match: channel {m['channel_id']} {where}, speed {m['speed']}, "
            f"confidence {m['confidence']}, " + ", ".join(evidence)
        )
    typer.echo(json.dumps(data))


def _capture_summary(got: object) -> dict:
    """How a URL's sample was captured, with its evidence (credentials masked)."""
    return {
        "kind": got.kind,
        "started_utc": got.started_utc.isoformat(),
        "ended_utc": got.ended_utc.isoformat(),
        "media_started_utc": got.media_started_utc.isoformat() if got.media_started_utc else None,
        "stopped_by": got.stopped_by,
        "evidence": got.evidence.public(),
    }


@app.command("sample")
def sample_cmd(
    url: Annotated[str, typer.Argument(metavar="URL", help="Stream to capture.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for sample.wav, frames, evidence.")],
    seconds: Annotated[
        float | None, typer.Option("--seconds", min=0.5, max=600, help="Sample length (s).")
    ] = None,
    sealed: Annotated[
        bool, typer.Option("--sealed", help="Keep credentials in evidence.json (sealed record).")
    ] = False,
) -> None:
    """Capture a stream as a scan would and write what was captured, for inspection:
    ``sample.wav``, ``frames/NNNN_T.png`` (T in seconds) and ``evidence.json``."""
    from .media import write_audio
    from .sample_files import write_frames

    settings = settings_from_env()
    plan = CapturePlan(
        seconds=seconds or settings.scan_seconds,
        deadline_seconds=settings.capture_deadline_seconds,
        egress_note=settings.egress_note,
        allow_local_files=True,
    )
    with _client(settings) as client:
        try:
            got = sample(url, plan, client=client)
        except CaptureError as exc:
            if exc.evidence is not None:
                out.mkdir(parents=True, exist_ok=True)
                record = exc.evidence.sealed() if sealed else exc.evidence.public()
                (out / "evidence.json").write_text(json.dumps(record, indent=2))
            raise _unreachable(exc, False) from None
    out.mkdir(parents=True, exist_ok=True)
    if got.pcm.size:
        write_audio(out / "sample.wav", got.pcm, got.sample_rate)
    n_frames = write_frames(out / "frames", got.frames)
    record = got.evidence.sealed() if sealed else got.evidence.public()
    summary = _capture_summary(got)
    summary["evidence"] = record
    (out / "evidence.json").write_text(json.dumps(summary, indent=2))
    typer.echo(
        f"captured {got.seconds:.1f} s ({got.kind}): {got.audio_seconds:.1f} s of sound, "
        f"{n_frames} frames -> {out}"
    )


@app.command("calibrate")
def calibrate_cmd(
    negatives: Annotated[
        list[str],
        typer.Argument(metavar="PATH...", help="Audio that is NOT in the index (files/folders)."),
    ],
    seconds: Annotated[float, typer.Option("--seconds", help="Query length (s).")] = 10.0,
    queries: Annotated[
        int,
        typer.Option(
            "--queries",
            min=50,
            help="Null queries; the tail is fitted over the 40 highest scores (a tenth of "
            "the queries when fewer than 400), so more put the fit further out in the tail.",
        ),
    ] = 1000,
    modality: Annotated[
        str, typer.Option("--modality", help="Which fingerprints: audio or video.")
    ] = "audio",
) -> None:
    """Measure the null score distribution of this index and store its calibration."""
    if modality not in MODALITIES:
        raise fail(f"--modality must be one of {', '.join(MODALITIES)}, not {modality!r}")
    settings = settings_from_env()
    index = open_index(settings)
    files = expand_sources(negatives)
    try:
        scores = measure_null_scores(
            index, files, seconds=seconds, n_queries=queries, modality=modality
        )
    except (DecodeError, ValueError) as exc:
        raise fail(str(exc)) from None
    cal = NullCalibration.fit(scores)
    path = Path(index.home) / modality / "calibration.json"
    cal.save(path)
    typer.echo(
        f"calibrated on {cal.n_queries} null queries: slope {cal.slope:.3f}, "
        f"threshold {cal.threshold:.2f}, max null score {cal.max_null_score:.2f} -> {path}"
    )


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
