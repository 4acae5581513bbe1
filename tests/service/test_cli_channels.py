"""`vigie channels` feeds, distributors and removal, run as a user would (subprocesses)."""

import json

import pytest

from reference_index.catalog import Catalog, sqlite_url
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
