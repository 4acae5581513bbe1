"""``vigie channels …``: channels, their reference feeds and authorized distributors."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from reference_index.catalog import CatalogError
from reference_index.feed_leases import feed_leases
from reference_index.index import MODALITIES

from .cli_common import fail, open_catalog, open_index, settings_from_env

__all__ = ["channels_app"]

channels_app = typer.Typer(help="Manage the channel catalog.", no_args_is_help=True)


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
    settings = settings_from_env()
    try:
        ch = open_catalog(settings).add_channel(channel_id, name, owner, simulcast_group)
    except CatalogError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"added channel {ch.id} ({ch.name})")


@channels_app.command("list")
def channels_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List channels with the hours of reference indexed for each."""
    settings = settings_from_env()
    channels = open_catalog(settings).channels()
    hours: dict[str, float] = {}
    if settings.index_dir.exists():
        index = open_index(settings)
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
    settings = settings_from_env()
    catalog = open_catalog(settings)
    try:
        catalog.require(channel_id)
    except CatalogError as exc:
        raise fail(str(exc)) from None
    hidden = 0
    if settings.index_dir.exists():
        index = open_index(settings)
        for modality in MODALITIES:
            store = index.store(modality)
            ids = [t.id for t in store.tracks().values() if t.channel_id == channel_id]
            store.remove_tracks(ids)
            hidden += len(ids)
    try:
        catalog.remove(channel_id)
    except CatalogError as exc:
        raise fail(str(exc)) from None
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
    settings = settings_from_env()
    try:
        feed = open_catalog(settings).add_feed(
            channel_id, url, retention_hours=retention_hours, label=label, enabled=not disabled
        )
    except CatalogError as exc:
        raise fail(str(exc)) from None
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
    settings = settings_from_env()
    try:
        feeds = open_catalog(settings).feeds(channel_id)
    except CatalogError as exc:
        raise fail(str(exc)) from None
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


@feeds_app.command("health")
def feeds_health(
    channel_id: Annotated[
        str | None, typer.Option("--channel", metavar="ID", help="Only this channel's feeds.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Show how live ingestion of each feed is doing, as its ingester last reported.

    Lag is how far behind live the index was when the newest media was indexed, in seconds;
    "updated" is how long ago the ingester last reported (an old report: the ingester is
    gone or stuck); "takeovers" counts the times another ingester took the feed over from
    one that died (JSON ``lease``: holder, previous holder, start of the blind span). A
    feed never ingested has no state (JSON: ``"status": null``); JSON times are ISO 8601
    UTC.
    """
    settings = settings_from_env()
    catalog = open_catalog(settings)
    try:
        feeds = catalog.feeds(channel_id)
        statuses = catalog.feed_statuses(channel_id)
        leases = feed_leases(catalog.engine)
    except CatalogError as exc:
        raise fail(str(exc)) from None
    rows = [
        {
            **f.as_dict(),
            "status": st.as_dict() if (st := statuses.get(f.id)) else None,
            "lease": lease.as_dict() if (lease := leases.get(f.id)) else None,
        }
        for f in feeds
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return

    def second(iso: str | None) -> str:  # "2025-01-01T06:00:03.5+00:00" -> "2025-01-01 06:00:03"
        return iso[:19].replace("T", " ") if iso else ""

    table = Table(
        "id", "channel", "label", "state", "last posting UTC", "lag s", "errors", "reconn.",
        "last error", "updated", "takeovers",
    )  # fmt: skip
    for column in table.columns:
        column.overflow = "fold"  # never "…": a cut state or time would mislead
    table.columns[3].no_wrap = True  # "reconnecting" whole, even on 80 columns
    for r in rows:
        st = r["status"] or {}
        lag = st.get("lag_seconds")
        updated = statuses[r["id"]].age_seconds() if st else None
        table.add_row(
            str(r["id"]),
            r["channel_id"],
            r["label"] or "",
            st.get("state", "never ingested" if r["enabled"] else "disabled"),
            second(st.get("last_posting_utc")),
            "" if lag is None else f"{lag:.1f}",
            str(st.get("errors", "")),
            str(st.get("reconnects", "")),
            st.get("last_error_reason") or "",
            "" if updated is None else f"{_age(updated)} ago",
            str(r["lease"]["takeovers"]) if r["lease"] else "",
        )
    Console().print(table)


def _age(seconds: float) -> str:
    """A duration in seconds as a short age: ``"42 s"``, ``"5 min"``, ``"7 h"``, ``"3 d"``."""
    seconds = max(seconds, 0.0)  # the ingester's clock may be a little ahead of ours
    for unit, size, limit in (("s", 1, 120), ("min", 60, 120), ("h", 3600, 48)):
        if seconds < size * limit:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds // 86400)} d"


def _set_feed_enabled(feed_id: int, enabled: bool) -> None:
    try:
        feed = open_catalog(settings_from_env()).set_feed_enabled(feed_id, enabled)
    except CatalogError as exc:
        raise fail(str(exc)) from None
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
        open_catalog(settings_from_env()).remove_feed(feed_id)
    except CatalogError as exc:
        raise fail(str(exc)) from None
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
        raise fail(
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
    settings = settings_from_env()
    try:
        d = open_catalog(settings).add_distributor(
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
        raise fail(str(exc)) from None
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
    settings = settings_from_env()
    try:
        distributors = open_catalog(settings).distributors(channel_id)
    except CatalogError as exc:
        raise fail(str(exc)) from None
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
        open_catalog(settings_from_env()).remove_distributor(distributor_id)
    except CatalogError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"removed distributor {distributor_id}")
