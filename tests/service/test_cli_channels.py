"""`vigie channels` feeds, distributors and removal, run as a user would (subprocesses)."""

import json
from datetime import UTC, datetime

import pytest

from reference_index.catalog import Catalog, FeedStatus, sqlite_url
from reference_index.index import Index
from service.media import synth_programme, write_audio

SECRET_USER, SECRET_PASS = "alice", "s3cretpw"
FEED = f"http://panel.example:8080/live/{SECRET_USER}/{SECRET_PASS}/101.m3u8"


def _no_secrets(*runs):
    for r in runs:
        for stream in (r.stdout, r.stderr):
            assert SECRET_USER not in stream and SECRET_PASS not in stream, stream


def _one_line_error(run, fragment):
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert run.stderr.startswith("error: ") and fragment in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1


def _json(vigie, data, *args):
    return json.loads(vigie(data, *args, "--json").stdout)


def test_feeds_round_trip_never_shows_credentials(vigie, tmp_path):
    data = tmp_path / "data"
    vigie(data, "channels", "add", "tf1-hd", "--name", "TF1 HD", "--group", "tf1")
    added = vigie(
        data, "channels", "feeds", "add", "tf1-hd", FEED, "--retention-hours", "72",
        "--label", "TNT R1",
    )  # fmt: skip
    assert added.stdout.startswith("added feed 1 to tf1-hd: ")
    vigie(data, "channels", "feeds", "add", "tf1-hd", "/dev/capture0", "--disabled")
    table = vigie(data, "channels", "feeds", "list")
    rows = _json(vigie, data, "channels", "feeds", "list", "tf1-hd")
    assert [r["url"] for r in rows] == [
        "http://panel.example:8080/live/***/***/101.m3u8",
        "/dev/capture0",
    ]
    assert [(r["retention_hours"], r["label"], r["enabled"]) for r in rows] == [
        (72.0, "TNT R1", True),
        (48.0, None, False),
    ]
    assert "panel.example" in table.stdout and "TNT R1" in table.stdout
    # the raw URL is kept for ingestion
    catalog = Catalog(sqlite_url(data / "vigie.db"))
    assert catalog.feeds("tf1-hd")[0].url == FEED
    catalog.close()

    disabled = vigie(data, "channels", "feeds", "disable", "1")
    enabled = vigie(data, "channels", "feeds", "enable", "2")
    assert disabled.stdout.startswith("disabled feed 1") and enabled.stdout.startswith("enabled")
    rows = _json(vigie, data, "channels", "feeds", "list")
    assert [r["enabled"] for r in rows] == [False, True]
    duplicate = vigie(data, "channels", "feeds", "add", "tf1-hd", FEED, check=False)
    _one_line_error(duplicate, "already exists for channel 'tf1-hd'")
    bad_scheme = vigie(
        data, "channels", "feeds", "add", "tf1-hd", f"ftp://{SECRET_USER}:{SECRET_PASS}@x/a",
        check=False,
    )  # fmt: skip
    _one_line_error(bad_scheme, "must use http or https")
    _no_secrets(added, table, disabled, enabled, duplicate, bad_scheme)

    removed = vigie(data, "channels", "feeds", "remove", "2")
    assert removed.stdout.strip() == "removed feed 2"
    assert [r["id"] for r in _json(vigie, data, "channels", "feeds", "list")] == [1]


def test_feed_errors_are_one_line(vigie, tmp_path):
    data = tmp_path / "data"
    vigie(data, "channels", "add", "arte", "--name", "Arte")
    _one_line_error(
        vigie(data, "channels", "feeds", "add", "nope", "http://x/a.m3u8", check=False),
        "no channel 'nope'",
    )
    _one_line_error(
        vigie(
            data,
            "channels",
            "feeds",
            "add",
            "arte",
            "http://x/a.m3u8",
            "--retention-hours",
            "0",
            check=False,
        ),  # fmt: skip
        "retention",
    )
    _one_line_error(vigie(data, "channels", "feeds", "enable", "7", check=False), "no feed 7")
    _one_line_error(vigie(data, "channels", "feeds", "list", "nope", check=False), "no channel")


def test_feeds_health_with_and_without_statuses(vigie, tmp_path, monkeypatch):
    data = tmp_path / "data"
    vigie(data, "channels", "add", "tf1", "--name", "TF1")
    vigie(data, "channels", "add", "arte", "--name", "Arte")
    vigie(data, "channels", "feeds", "add", "tf1", FEED, "--label", "TNT R1")
    vigie(data, "channels", "feeds", "add", "tf1", "/dev/capture0", "--disabled")
    vigie(data, "channels", "feeds", "add", "arte", "http://x/arte.m3u8")

    never = _json(vigie, data, "channels", "feeds", "health")
    assert [(r["id"], r["status"]) for r in never] == [(3, None), (1, None), (2, None)]
    table = vigie(data, "channels", "feeds", "health")
    assert "never ingested" in table.stdout and "disabled" in table.stdout

    catalog = Catalog(sqlite_url(data / "vigie.db"))  # as the live ingester reports
    catalog.report_feed_status(
        [
            FeedStatus(
                feed_id=1,
                state="reconnecting",
                ingester="ingest-1:4242",
                last_posting_utc=datetime(2025, 3, 1, 20, 0, 2, tzinfo=UTC),
                lag_seconds=6.5,
                chunks=40,
                errors=3,
                reconnects=2,
                last_error_reason="http_403",
                last_error_message="GET http://panel.example:8080/live/***/***/101.m3u8: 403",
                last_error_utc=datetime(2025, 3, 1, 20, 0, 4, tzinfo=UTC),
                updated_utc=datetime(2025, 3, 1, 20, 0, 5, tzinfo=UTC),
            ),
            FeedStatus(
                feed_id=3,
                state="live",
                ingester="ingest-1:4242",
                updated_utc=datetime(2025, 3, 1, 20, 0, 5, tzinfo=UTC),
            ),
        ]
    )
    catalog.close()

    rows = _json(vigie, data, "channels", "feeds", "health", "--channel", "tf1")
    assert [r["id"] for r in rows] == [1, 2]
    feed, status = rows[0], rows[0]["status"]
    assert feed["url"] == "http://panel.example:8080/live/***/***/101.m3u8"
    assert feed["label"] == "TNT R1" and feed["enabled"] is True
    assert status == {
        "feed_id": 1,
        "state": "reconnecting",
        "ingester": "ingest-1:4242",
        "last_posting_utc": "2025-03-01T20:00:02+00:00",
        "lag_seconds": 6.5,
        "chunks": 40,
        "errors": 3,
        "reconnects": 2,
        "last_error_reason": "http_403",
        "last_error_message": "GET http://panel.example:8080/live/***/***/101.m3u8: 403",
        "last_error_utc": "2025-03-01T20:00:04+00:00",
        "updated_utc": "2025-03-01T20:00:05+00:00",
    }
    assert rows[1]["status"] is None  # the disabled capture card was never ingested
    narrow = vigie(data, "channels", "feeds", "health")  # 80 columns: cells fold...
    assert "reconnecting" in narrow.stdout  # ...but never the state
    monkeypatch.setenv("COLUMNS", "200")
    table = vigie(data, "channels", "feeds", "health")
    for fragment in (
        "reconnecting", "live", "6.5", "http_403", "2025-03-01 20:00:02", "TNT R1", " d ago",
    ):  # fmt: skip
        assert fragment in table.stdout, (fragment, table.stdout)
    unknown = vigie(data, "channels", "feeds", "health", "--channel", "nope", check=False)
    _one_line_error(unknown, "no channel 'nope'")
    _no_secrets(narrow, table, unknown)
    assert SECRET_PASS not in json.dumps(rows)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(-2, "0 s"), (42.4, "42 s"), (119, "119 s"), (120, "2 min"), (7199, "119 min"),
     (7200, "2 h"), (47 * 3600, "47 h"), (48 * 3600, "2 d")],
)  # fmt: skip
def test_health_ages_are_short(seconds, shown):
    from service.cli_channels import _age

    assert _age(seconds) == shown


def test_distributors_round_trip(vigie, tmp_path):
    data = tmp_path / "data"
    vigie(data, "channels", "add", "tf1", "--name", "TF1")
    added = vigie(
        data, "channels", "distributors", "add", "tf1", "--licensee", "Orange",
        "--host", "*.Orange.FR", "--cidr", "192.0.2.9/24", "--asn", "3215",
        "--territory", "fr", "--from", "2025-01-01", "--to", "2026-01-01T00:00:00+01:00",
    )  # fmt: skip
    assert added.stdout.startswith("added distributor 1 for tf1: Orange (host *.orange.fr")
    vigie(data, "channels", "distributors", "add", "tf1", "--licensee", "Free", "--asn", "12322")
    (orange, free) = _json(vigie, data, "channels", "distributors", "list", "tf1")
    assert orange["host_pattern"] == "*.orange.fr" and orange["cidr"] == "192.0.2.0/24"
    assert orange["asn"] == 3215 and orange["territory"] == "FR"
    assert orange["valid_from"] == "2025-01-01T00:00:00+00:00"
    assert orange["valid_to"] == "2025-12-31T23:00:00+00:00"
    assert free["asn"] == 12322 and free["host_pattern"] is None and free["valid_to"] is None
    table = vigie(data, "channels", "distributors", "list").stdout
    assert "Orange" in table and "Free" in table

    for args, fragment in [
        ((), "needs a host pattern, a CIDR or an ASN"),
        (("--host", "*.fr"), "whole top-level domain"),
        (("--cidr", "0.0.0.0/0"), "wider than /8"),
        (("--asn", "0"), "ASN 0 must be"),
        (("--asn", "1", "--from", "yesterday"), "--from 'yesterday' is not an ISO 8601"),
        (("--asn", "1", "--from", "2025-02-01", "--to", "2025-01-01"), "must be before"),
    ]:
        run = vigie(
            data, "channels", "distributors", "add", "tf1", "--licensee", "X", *args, check=False
        )
        _one_line_error(run, fragment)
    assert len(_json(vigie, data, "channels", "distributors", "list")) == 2

    assert vigie(data, "channels", "distributors", "remove", "2").stdout.strip() == (
        "removed distributor 2"
    )
    _one_line_error(
        vigie(data, "channels", "distributors", "remove", "2", check=False), "no distributor 2"
    )
    assert [d["id"] for d in _json(vigie, data, "channels", "distributors", "list")] == [1]


@pytest.fixture
def indexed_pair(vigie, tmp_path):
    """Two channels with one short synthetic recording indexed each, plus feeds/licences."""
    data, media = tmp_path / "data", tmp_path / "media"
    media.mkdir()
    for i, ch in enumerate(["news", "sport"]):
        write_audio(media / f"{ch}.flac", synth_programme(20.0, seed=300 + i, sr=22050), 22050)
        vigie(data, "channels", "add", ch, "--name", ch.title())
        vigie(data, "reindex", ch, str(media / f"{ch}.flac"))
        vigie(data, "channels", "feeds", "add", ch, f"http://x/{ch}.m3u8")
        vigie(data, "channels", "distributors", "add", ch, "--licensee", "L", "--asn", "64500")
    return data


def test_remove_channel_takes_its_rows_and_recordings(vigie, indexed_pair):
    data = indexed_pair
    removed = vigie(data, "channels", "remove", "news")
    assert removed.stdout.strip() == "removed channel news and 1 indexed recordings"
    assert [c["id"] for c in _json(vigie, data, "channels", "list")] == ["sport"]
    assert [f["channel_id"] for f in _json(vigie, data, "channels", "feeds", "list")] == ["sport"]
    distributors = _json(vigie, data, "channels", "distributors", "list")
    assert [d["channel_id"] for d in distributors] == ["sport"]
    tracks = Index(data / "index").store("audio").tracks().values()
    assert [t.channel_id for t in tracks] == ["sport"]
    _one_line_error(vigie(data, "channels", "remove", "news", check=False), "no channel 'news'")
