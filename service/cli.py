"""The ``vigie`` command line (typer). Its commands and JSON shapes are a public contract."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from fingerprinting.align import NullCalibration
from fingerprinting.capture import CaptureError, CapturePlan, GuardedClient, NetworkPolicy, sample
from fingerprinting.decode import DecodeError
from reference_index.batch import IndexedFile, expand_sources, reindex
from reference_index.calibrate import measure_null_scores
from reference_index.catalog import Catalog, CatalogError
from reference_index.index import MODALITIES, Index
from reference_index.store.base import ParamsMismatch

from .detect import scan_source, scan_url
from .settings import Settings

app = typer.Typer(help="Vigie: find pirate restreams of TV channels.", no_args_is_help=True)
channels_app = typer.Typer(help="Manage the channel catalog.", no_args_is_help=True)
app.add_typer(channels_app, name="channels")

err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error and return the exit to raise."""
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _settings() -> Settings:
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def _catalog(settings: Settings) -> Catalog:
    return Catalog(settings.catalog_url)


def _index(settings: Settings) -> Index:
    try:
        return Index(settings.index_dir)
    except ParamsMismatch as exc:
        raise _fail(str(exc)) from None


@channels_app.command("add")
def channels_add(
    channel_id: Annotated[str, typer.Argument(metavar="ID", help="Short stable id, e.g. tf1-hd.")],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    owner: Annotated[str | None, typer.Option("--owner", help="Rights holder.")] = None,
    simulcast_group: Annotated[
        str | None, typer.Option("--group", help="Simulcast group (HD/SD/regional variants).")
    ] = None,
) -> None:
    """Register a channel."""
    settings = _settings()
    try:
        ch = _catalog(settings).add_channel(channel_id, name, owner, simulcast_group)
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"added channel {ch.id} ({ch.name})")


@channels_app.command("list")
def channels_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List channels with the hours of reference indexed for each."""
    settings = _settings()
    channels = _catalog(settings).channels()
    hours: dict[str, float] = {}
    if settings.index_dir.exists():
        index = _index(settings)
        for modality in MODALITIES:
            per_channel: dict[str, float] = {}
            for t in index.store(modality).tracks().values():
                per_channel[t.channel_id] = per_channel.get(t.channel_id, 0.0) + t.seconds / 3600
            for ch, h in per_channel.items():
                hours[ch] = max(hours.get(ch, 0.0), h)
    rows = [{**c.as_dict(), "indexed_hours": round(hours.get(c.id, 0.0), 4)} for c in channels]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "name", "owner", "group", "indexed h")
    for r in rows:
        table.add_row(
            r["id"], r["name"], r["owner"] or "", r["simulcast_group"], f"{r['indexed_hours']:.2f}"
        )
    Console().print(table)


@channels_app.command("remove")
def channels_remove(
    channel_id: Annotated[str, typer.Argument(metavar="ID", help="Channel to delete.")],
) -> None:
    """Delete a channel, its feeds, assets, distributors and indexed recordings.

    The recordings are hidden from queries at once; their postings are dropped at the
    index's next compaction (``reindex`` compacts).
    """
    settings = _settings()
    catalog = _catalog(settings)
    try:
        catalog.require(channel_id)
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    hidden = 0
    if settings.index_dir.exists():
        index = _index(settings)
        for modality in MODALITIES:
            store = index.store(modality)
            ids = [t.id for t in store.tracks().values() if t.channel_id == channel_id]
            store.remove_tracks(ids)
            hidden += len(ids)
    try:
        catalog.remove(channel_id)
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"removed channel {channel_id} and {hidden} indexed recordings")


feeds_app = typer.Typer(help="Live reference feeds of the channels.", no_args_is_help=True)
channels_app.add_typer(feeds_app, name="feeds")
distributors_app = typer.Typer(
    help="Authorized distributors: their streams are reported as authorized, not pirate.",
    no_args_is_help=True,
)
channels_app.add_typer(distributors_app, name="distributors")


@feeds_app.command("add")
def feeds_add(
    channel_id: Annotated[str, typer.Argument(metavar="ID", help="Channel of the feed.")],
    url: Annotated[str, typer.Argument(metavar="URL", help="http(s) URL or absolute path.")],
    retention_hours: Annotated[
        float, typer.Option("--retention-hours", help="Keep recordings this long (hours).")
    ] = 48.0,
    label: Annotated[str | None, typer.Option("--label", help="Free-text label.")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Register it disabled.")] = False,
) -> None:
    """Register a live reference feed (credentials in the URL are kept, never shown)."""
    settings = _settings()
    try:
        feed = _catalog(settings).add_feed(
            channel_id, url, retention_hours=retention_hours, label=label, enabled=not disabled
        )
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    state = "" if feed.enabled else ", disabled"
    typer.echo(
        f"added feed {feed.id} to {feed.channel_id}: {feed.redacted_url} "
        f"(kept {feed.retention_hours:g} h{state})"
    )


@feeds_app.command("list")
def feeds_list(
    channel_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="Only this channel's feeds.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List reference feeds, URLs redacted."""
    settings = _settings()
    try:
        feeds = _catalog(settings).feeds(channel_id)
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    rows = [f.as_dict() for f in feeds]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "channel", "enabled", "kept h", "label", "url")
    table.columns[-1].overflow = "fold"
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["channel_id"],
            "yes" if r["enabled"] else "no",
            f"{r['retention_hours']:g}",
            r["label"] or "",
            r["url"],
        )
    Console().print(table)


def _set_feed_enabled(feed_id: int, enabled: bool) -> None:
    try:
        feed = _catalog(_settings()).set_feed_enabled(feed_id, enabled)
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    state = "enabled" if feed.enabled else "disabled"
    typer.echo(f"{state} feed {feed.id} of {feed.channel_id}: {feed.redacted_url}")


@feeds_app.command("enable")
def feeds_enable(
    feed_id: Annotated[int, typer.Argument(metavar="FEED_ID", help="Feed id (feeds list).")],
) -> None:
    """Resume ingesting a feed."""
    _set_feed_enabled(feed_id, True)


@feeds_app.command("disable")
def feeds_disable(
    feed_id: Annotated[int, typer.Argument(metavar="FEED_ID", help="Feed id (feeds list).")],
) -> None:
    """Stop ingesting a feed (it stays in the catalog)."""
    _set_feed_enabled(feed_id, False)


@feeds_app.command("remove")
def feeds_remove(
    feed_id: Annotated[int, typer.Argument(metavar="FEED_ID", help="Feed id (feeds list).")],
) -> None:
    """Delete a feed from the catalog."""
    try:
        _catalog(_settings()).remove_feed(feed_id)
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"removed feed {feed_id}")


def _utc_option(value: str | None, option: str):  # -> datetime | None (imported lazily)
    """An ISO 8601 date or date-time option as an aware UTC datetime, or ``None``.

    A value without an offset is UTC, like everything the catalog stores.
    """
    from datetime import UTC, datetime

    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _fail(
            f"{option} {value!r} is not an ISO 8601 date or date-time "
            "(e.g. 2025-01-01 or 2025-01-01T06:00:00+01:00)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@distributors_app.command("add")
def distributors_add(
    channel_id: Annotated[str, typer.Argument(metavar="ID", help="Licensed channel.")],
    licensee: Annotated[str, typer.Option("--licensee", help="Who holds the licence.")],
    host: Annotated[
        str | None, typer.Option("--host", help="cdn.licensee.fr, or *.licensee.fr for all.")
    ] = None,
    cidr: Annotated[str | None, typer.Option("--cidr", help="IPv4/IPv6 network.")] = None,
    asn: Annotated[int | None, typer.Option("--asn", help="AS number.")] = None,
    territory: Annotated[
        str | None, typer.Option("--territory", help="ISO 3166 code or free text.")
    ] = None,
    valid_from: Annotated[
        str | None, typer.Option("--from", help="Valid from (ISO 8601; UTC if no offset).")
    ] = None,
    valid_to: Annotated[
        str | None, typer.Option("--to", help="Valid until, exclusive (ISO 8601).")
    ] = None,
) -> None:
    """Authorize a licensee's streams of a channel (give --host, --cidr or --asn)."""
    start = _utc_option(valid_from, "--from")
    end = _utc_option(valid_to, "--to")
    settings = _settings()
    try:
        d = _catalog(settings).add_distributor(
            channel_id,
            licensee,
            host_pattern=host,
            cidr=cidr,
            asn=asn,
            territory=territory,
            valid_from=start,
            valid_to=end,
        )
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    criteria = [
        f"{name} {value}"
        for name, value in (("host", d.host_pattern), ("cidr", d.cidr), ("AS", d.asn))
        if value is not None
    ]
    window = ""
    if d.valid_from or d.valid_to:
        since = d.valid_from.isoformat() if d.valid_from else "always"
        until = d.valid_to.isoformat() if d.valid_to else "open-ended"
        window = f", valid {since} to {until}"
    typer.echo(
        f"added distributor {d.id} for {d.channel_id}: {d.licensee} ({', '.join(criteria)}{window})"
    )


@distributors_app.command("list")
def distributors_list(
    channel_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="Only this channel's distributors.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List authorized distributors."""
    settings = _settings()
    try:
        distributors = _catalog(settings).distributors(channel_id)
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    rows = [d.as_dict() for d in distributors]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(
        "id", "channel", "licensee", "territory", "host", "cidr", "asn", "from UTC", "to UTC"
    )
    for column in table.columns:
        column.overflow = "fold"  # never "…": a cut host or network would mislead

    def minute(iso: str | None) -> str:  # "2025-01-01T06:00:00+00:00" -> "2025-01-01 06:00"
        return iso[:16].replace("T", " ") if iso else ""

    for r in rows:
        table.add_row(
            str(r["id"]),
            r["channel_id"],
            r["licensee"],
            r["territory"] or "",
            r["host_pattern"] or "",
            r["cidr"] or "",
            "" if r["asn"] is None else str(r["asn"]),
            minute(r["valid_from"]),
            minute(r["valid_to"]),
        )
    Console().print(table)


@distributors_app.command("remove")
def distributors_remove(
    distributor_id: Annotated[
        int, typer.Argument(metavar="DISTRIBUTOR_ID", help="Id (distributors list).")
    ],
) -> None:
    """Withdraw a distributor's authorization."""
    try:
        _catalog(_settings()).remove_distributor(distributor_id)
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"removed distributor {distributor_id}")


@app.command("reindex")
def reindex_cmd(
    channel_id: Annotated[str, typer.Argument(metavar="ID", help="Channel to index into.")],
    sources: Annotated[
        list[str], typer.Argument(metavar="PATH_OR_URL...", help="Recordings, folders, URLs.")
    ],
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes.")] = 1,
) -> None:
    """Fingerprint recordings into a channel (re-running replaces, never duplicates)."""
    settings = _settings()
    try:
        _catalog(settings).require(channel_id)
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    files = expand_sources(sources)
    if not files:
        raise _fail("no media files found in " + ", ".join(sources))
    index = _index(settings)
    failed: list[IndexedFile] = []
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
        task = progress.add_task(f"indexing {channel_id}", total=len(files), hours=0.0)

        def on_done(done: IndexedFile) -> None:
            if done.error:
                failed.append(done)
            hours = progress.tasks[0].fields["hours"] + done.seconds / 3600.0
            progress.update(task, advance=1, hours=hours)

        results = reindex(index, channel_id, files, jobs=jobs, on_done=on_done)
    ok = [r for r in results if r.track]
    hours = sum(r.seconds for r in ok) / 3600.0
    typer.echo(f"indexed {len(ok)} of {len(results)} recordings ({hours:.2f} h) into {channel_id}")
    for f in failed:
        err.print(f"skipped: {f.error}", markup=False, highlight=False)
    if not ok:
        raise typer.Exit(2)


def _client(settings: Settings) -> GuardedClient:
    try:
        policy = NetworkPolicy.from_setting(settings.allow_networks)
    except ValueError as exc:
        raise _fail(f"VIGIE_ALLOW_NETWORKS: {exc}") from None
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
    return _fail(f"{exc.reason}: {exc.message}")


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
    settings = _settings()
    index = _index(settings)
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
                )
            except CaptureError as exc:
                raise _unreachable(exc, as_json) from None
        data = result.as_dict()
        data["capture"] = _capture_summary(got)
    else:
        try:
            result = scan_source(source, index, seconds, settings.match_confidence)
        except DecodeError as exc:
            raise _fail(str(exc)) from None
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
        typer.echo(
            f"match: channel {m['channel_id']} at {m['offset_seconds']} s, speed {m['speed']}, "
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

    settings = _settings()
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
    queries: Annotated[int, typer.Option("--queries", min=50, help="Null queries.")] = 300,
    modality: Annotated[
        str, typer.Option("--modality", help="Which fingerprints: audio or video.")
    ] = "audio",
) -> None:
    """Measure the null score distribution of this index and store its calibration."""
    if modality not in MODALITIES:
        raise _fail(f"--modality must be one of {', '.join(MODALITIES)}, not {modality!r}")
    settings = _settings()
    index = _index(settings)
    files = expand_sources(negatives)
    try:
        scores = measure_null_scores(
            index, files, seconds=seconds, n_queries=queries, modality=modality
        )
    except (DecodeError, ValueError) as exc:
        raise _fail(str(exc)) from None
    cal = NullCalibration.fit(scores)
    path = Path(index.root) / modality / "calibration.json"
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
