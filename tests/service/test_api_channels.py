"""``/v1/channels`` and friends (service/api/channels.py) and the re-indexing job
(service/reindex_job.py), through the real app with in-process workers."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from reference_index.catalog_records import FeedStatus
from reference_index.index import MODALITIES
from service.app import create_app
from service.detect import scan_source
from service.keys import create_key
from service.media import synth_pictures, synth_programme, write_audio, write_video
from service.models import AuditRow, JobRow, utc_now
from service.reindex_job import run_reindex, sweep_reindex
from service.settings import Settings
from tests.service.backends import embedded_only

PROBLEM = "application/problem+json"
SECRET_URL = "http://u:secret@tv.example/live/user/pass/1.ts"


@pytest.fixture
def app(tmp_path, backend):
    """The app on each back end (``embedded``, ``scaleout``: see tests/service/backends.py)."""
    settings = Settings(data_dir=tmp_path / "data", rate_per_minute=100_000, **backend.overrides())
    return create_app(settings, start_workers=backend.start_workers)


@pytest.fixture
def rt(app):
    return app.state.runtime


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


def _auth(rt, *scopes):
    _key, token = create_key(rt.db, "-".join(scopes), list(scopes))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin(rt):
    return _auth(rt, "admin")


@pytest.fixture
def reader(rt):
    return _auth(rt, "matches:read")


@pytest.fixture
def channel(client, admin):
    r = client.post(
        "/v1/channels", json={"id": "tf1", "name": "TF1", "owner": "TF1 SA"}, headers=admin
    )
    assert r.status_code == 201, r.text
    return "tf1"


def _problem(r, status, *words):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status
    for w in words:
        assert w in body["detail"], body
    return body


# --- channels -----------------------------------------------------------------------------


def test_channel_round_trip(client, admin, reader, rt):
    body = {"id": "tf1-hd", "name": " TF1 HD ", "owner": "TF1 SA", "simulcast_group": "tf1"}
    r = client.post("/v1/channels", json=body, headers=admin)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/v1/channels/tf1-hd"
    got = r.json()
    assert got["name"] == "TF1 HD" and got["simulcast_group"] == "tf1"
    assert got["indexed_hours"] == 0.0
    client.post("/v1/channels", json={"id": "m6", "name": "M6"}, headers=admin)

    assert client.get("/v1/channels/tf1-hd", headers=reader).json() == got
    listed = client.get("/v1/channels", headers=reader).json()
    assert [c["id"] for c in listed] == ["m6", "tf1-hd"]
    assert listed[0]["simulcast_group"] == "m6"  # its own id by default

    assert client.delete("/v1/channels/tf1-hd", headers=admin).status_code == 204
    _problem(client.get("/v1/channels/tf1-hd", headers=reader), 404, "tf1-hd")
    _problem(client.delete("/v1/channels/tf1-hd", headers=admin), 404, "tf1-hd")
    with rt.db.session() as s:
        actions = [a.action for a in s.query(AuditRow).order_by(AuditRow.id)]
    assert actions == ["channel.add", "channel.add", "channel.remove"]


def test_channel_duplicate_is_409(client, admin, channel):
    r = client.post("/v1/channels", json={"id": channel, "name": "again"}, headers=admin)
    _problem(r, 409, "already exists")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "bad id!", "name": "x"}, "id"),
        ({"id": "", "name": "x"}, "id"),
        ({"id": "ok"}, "name"),
        ({"id": "ok", "name": "   "}, "name"),
        ({"id": "ok", "name": "x", "simulcast_group": "no spaces"}, "simulcast_group"),
        ({"id": "ok", "name": "x", "colour": "red"}, "colour"),
    ],
)
@embedded_only
def test_channel_bad_input_is_422(client, admin, body, field):
    body = _problem(client.post("/v1/channels", json=body, headers=admin), 422)
    assert body["detail"].startswith(f"{field}:"), body
    assert body["errors"][0]["field"] == field


# --- feeds --------------------------------------------------------------------------------


def test_feed_round_trip_and_health(client, admin, reader, rt, channel):
    r = client.post(
        f"/v1/channels/{channel}/feeds",
        headers=admin,
        json={"url": SECRET_URL, "retention_hours": 24, "label": "TNT R1"},
    )
    assert r.status_code == 201, r.text
    feed = r.json()
    assert r.headers["location"] == f"/v1/feeds/{feed['id']}"
    assert feed["url"] == SECRET_URL  # admin sees what it stored
    assert feed["retention_hours"] == 24.0 and feed["enabled"] is True
    second = client.post(
        f"/v1/channels/{channel}/feeds",
        headers=admin,
        json={"url": "/dev/video-card-2", "enabled": False},
    ).json()

    listed = client.get(f"/v1/channels/{channel}/feeds", headers=reader).json()
    assert [f["id"] for f in listed] == [feed["id"], second["id"]]
    assert client.get(f"/v1/feeds/{feed['id']}", headers=admin).json()["url"] == SECRET_URL

    health = client.get(f"/v1/channels/{channel}/health", headers=reader).json()
    assert [(h["state"], h["status"]) for h in health] == [
        ("never_ingested", None),
        ("disabled", None),
    ]
    now = datetime.now(UTC)
    rt.catalog.report_feed_status(
        [
            FeedStatus(
                feed_id=feed["id"],
                state="live",
                ingester="ingest-1:42",
                last_posting_utc=now - timedelta(seconds=4),
                lag_seconds=4.2,
                chunks=7,
                errors=1,
                last_error_reason="timeout",
                last_error_message="read timed out",
                last_error_utc=now - timedelta(minutes=3),
                updated_utc=now,
            )
        ]
    )
    health = client.get(f"/v1/channels/{channel}/health", headers=reader).json()
    live = health[0]
    assert live["state"] == "live" and live["status"]["lag_seconds"] == 4.2
    assert live["status"]["chunks"] == 7 and live["status"]["last_error_reason"] == "timeout"
    assert 0 <= live["status"]["age_seconds"] < 60
    everything = client.get("/v1/feeds/health", headers=reader).json()
    assert [h["id"] for h in everything] == [feed["id"], second["id"]]

    r = client.post(f"/v1/feeds/{feed['id']}/disable", headers=admin)
    assert r.status_code == 200 and r.json()["enabled"] is False
    r = client.post(f"/v1/feeds/{feed['id']}/enable", headers=admin)
    assert r.json()["enabled"] is True

    assert client.delete(f"/v1/feeds/{feed['id']}", headers=admin).status_code == 204
    _problem(client.get(f"/v1/feeds/{feed['id']}", headers=reader), 404, str(feed["id"]))
    listed = client.get(f"/v1/channels/{channel}/feeds", headers=reader).json()
    assert [f["id"] for f in listed] == [second["id"]]


def test_feed_credentials_redacted_for_readers(client, admin, reader, rt, channel):
    feed = client.post(
        f"/v1/channels/{channel}/feeds", headers=admin, json={"url": SECRET_URL}
    ).json()
    rt.catalog.report_feed_status(
        [FeedStatus(feed_id=feed["id"], state="live", ingester="i", updated_utc=utc_now())]
    )
    for path in (
        f"/v1/channels/{channel}/feeds",
        f"/v1/feeds/{feed['id']}",
        f"/v1/channels/{channel}/health",
        "/v1/feeds/health",
    ):
        r = client.get(path, headers=reader)
        assert r.status_code == 200, r.text
        assert "tv.example" in r.text  # the server still shows
        assert "secret" not in r.text and "pass" not in r.text, (path, r.text)
    with rt.db.session() as s:
        audit = [a.data for a in s.query(AuditRow).filter(AuditRow.action == "feed.add")]
    assert audit and "secret" not in str(audit) and "pass" not in str(audit)


def test_feed_errors(client, admin, channel):
    url = f"/v1/channels/{channel}/feeds"
    _problem(client.post(url, json={"url": "ftp://tv.example/x"}, headers=admin), 422, "url:")
    _problem(client.post(url, json={"url": "relative/path"}, headers=admin), 422, "url:")
    _problem(
        client.post(url, json={"url": "http://tv.example/x", "retention_hours": 0}, headers=admin),
        422,
        "retention_hours:",
    )
    _problem(
        client.post(
            url, json={"url": "http://tv.example/x", "retention_hours": 1e9}, headers=admin
        ),
        422,
        "retention_hours:",
    )
    _problem(
        client.post(url, json={"url": "http://tv.example/x", "enabled": "yes"}, headers=admin),
        422,
        "enabled:",
    )
    # a bad credentialled URL is named without its secrets
    body = _problem(
        client.post(url, json={"url": "rtmp://u:secret@tv.example/x"}, headers=admin), 422, "url:"
    )
    assert "secret" not in str(body)
    assert client.post(url, json={"url": SECRET_URL}, headers=admin).status_code == 201
    _problem(client.post(url, json={"url": SECRET_URL}, headers=admin), 409, "already exists")
    _problem(
        client.post("/v1/channels/nope/feeds", json={"url": "http://tv.example/x"}, headers=admin),
        404,
        "nope",
    )
    _problem(client.get("/v1/channels/nope/feeds", headers=admin), 404, "nope")
    _problem(client.get("/v1/channels/nope/health", headers=admin), 404, "nope")
    for method, path in (
        ("delete", "/v1/feeds/999"),
        ("post", "/v1/feeds/999/enable"),
        ("post", "/v1/feeds/999/disable"),
        ("get", "/v1/feeds/999"),
    ):
        _problem(client.request(method, path, headers=admin), 404, "999")
    _problem(client.get("/v1/feeds/abc", headers=admin), 422, "feed_id")


# --- distributors and assets --------------------------------------------------------------


def test_distributors_round_trip(client, admin, reader, channel):
    url = f"/v1/channels/{channel}/distributors"
    r = client.post(
        url,
        headers=admin,
        json={
            "licensee": "Orange TV",
            "host_pattern": "*.Orange-TV.example",
            "cidr": "192.0.2.7/24",
            "asn": 3215,
            "territory": "fr",
            "valid_from": "2026-01-01T00:00:00",
            "valid_to": "2027-01-01T00:00:00+01:00",
        },
    )
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["host_pattern"] == "*.orange-tv.example" and d["cidr"] == "192.0.2.0/24"
    assert d["territory"] == "FR" and d["asn"] == 3215
    assert d["valid_from"].startswith("2026-01-01T00:00:00")
    assert d["valid_to"].startswith("2026-12-31T23:00:00")
    assert client.get(url, headers=reader).json() == [d]
    assert client.delete(f"/v1/distributors/{d['id']}", headers=admin).status_code == 204
    assert client.get(url, headers=reader).json() == []
    _problem(client.delete(f"/v1/distributors/{d['id']}", headers=admin), 404, str(d["id"]))


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"licensee": "X"}, ["host_pattern", "cidr", "asn"]),
        ({"licensee": "", "asn": 1}, ["licensee:"]),
        ({"licensee": "X", "cidr": "0.0.0.0/0"}, ["cidr:", "wider"]),
        ({"licensee": "X", "cidr": "not a net"}, ["cidr:"]),
        ({"licensee": "X", "host_pattern": "*.fr"}, ["host_pattern:", "top-level"]),
        ({"licensee": "X", "host_pattern": "192.0.2.1"}, ["host_pattern:", "CIDR"]),
        ({"licensee": "X", "asn": 0}, ["asn:"]),
        ({"licensee": "X", "asn": "3215"}, ["asn:"]),
        (
            {
                "licensee": "X",
                "asn": 1,
                "valid_from": "2027-01-01T00:00:00Z",
                "valid_to": "2026-01-01T00:00:00Z",
            },
            ["valid_to:", "after valid_from"],
        ),
    ],
)
@embedded_only
def test_distributor_bad_input_is_422(client, admin, channel, body, words):
    r = client.post(f"/v1/channels/{channel}/distributors", json=body, headers=admin)
    _problem(r, 422, *words)


def test_distributor_unknown_channel_is_404(client, admin, reader):
    r = client.post(
        "/v1/channels/nope/distributors", json={"licensee": "X", "asn": 1}, headers=admin
    )
    _problem(r, 404, "nope")
    _problem(client.get("/v1/channels/nope/distributors", headers=reader), 404, "nope")


def test_assets_round_trip(client, admin, reader, channel):
    url = f"/v1/channels/{channel}/assets"
    token_url = "https://vod.example/jt.mp4?token=s3cr3tvalue"
    r = client.post(url, json={"title": "JT 20h", "source": token_url}, headers=admin)
    assert r.status_code == 201, r.text
    asset = r.json()
    assert asset["source"] == token_url and asset["title"] == "JT 20h"
    shown = client.get(url, headers=reader).json()
    assert [a["id"] for a in shown] == [asset["id"]]
    assert "s3cr3tvalue" not in str(shown) and "vod.example" in shown[0]["source"]
    assert client.get(url, headers=admin).json()[0]["source"] == token_url
    _problem(client.post(url, json={"title": "again", "source": token_url}, headers=admin), 409)
    _problem(
        client.post(url, json={"title": "x", "source": "x.mp4"}, headers=admin), 422, "source:"
    )
    _problem(client.post(url, json={"title": "", "source": "/x.mp4"}, headers=admin), 422, "title:")
    assert client.delete(f"/v1/assets/{asset['id']}", headers=admin).status_code == 204
    assert client.get(url, headers=reader).json() == []
    _problem(client.delete(f"/v1/assets/{asset['id']}", headers=admin), 404, str(asset["id"]))
    _problem(client.get("/v1/channels/nope/assets", headers=reader), 404, "nope")


# --- scopes -------------------------------------------------------------------------------

WRITES = [
    ("post", "/v1/channels", {"id": "x", "name": "X"}),
    ("delete", "/v1/channels/tf1", None),
    ("post", "/v1/channels/tf1/feeds", {"url": "http://tv.example/x"}),
    ("delete", "/v1/feeds/1", None),
    ("post", "/v1/feeds/1/enable", None),
    ("post", "/v1/feeds/1/disable", None),
    ("post", "/v1/channels/tf1/distributors", {"licensee": "X", "asn": 1}),
    ("delete", "/v1/distributors/1", None),
    ("post", "/v1/channels/tf1/assets", {"title": "t", "source": "/x.mp4"}),
    ("delete", "/v1/assets/1", None),
    ("post", "/v1/channels/tf1/reindex", {"sources": ["/x.mp4"]}),
]
READS = [
    "/v1/channels",
    "/v1/channels/tf1",
    "/v1/channels/tf1/feeds",
    "/v1/feeds/1",
    "/v1/feeds/health",
    "/v1/channels/tf1/health",
    "/v1/channels/tf1/distributors",
    "/v1/channels/tf1/assets",
    "/v1/jobs",
    "/v1/jobs/1",
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
@embedded_only
def test_writes_need_admin(client, reader, rt, method, path, body):
    scanner = _auth(rt, "scans:write")
    for headers in (reader, scanner):
        r = client.request(method, path, json=body, headers=headers)
        _problem(r, 403, "admin")
    _problem(client.request(method, path, json=body), 401)


@pytest.mark.parametrize("path", READS)
@embedded_only
def test_reads_need_a_reading_key(client, rt, path):
    _problem(client.get(path), 401)
    _problem(client.get(path, headers={"Authorization": "Bearer vk_nope_nope"}), 401)
    _problem(client.get(path, headers=_auth(rt, "scans:write")), 403, "matches:read")


# --- re-indexing --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """20 s of synthetic "television" (pictures and sound) as an MP4, and a 10 s excerpt of
    its sound as a WAV to query with."""
    folder = tmp_path_factory.mktemp("media")
    sr, fps = 22050, 10.0
    pcm = synth_programme(20.0, seed=31, sr=sr)
    frames = synth_pictures(20.0, fps, seed=31, width=192, height=108)
    mp4 = write_video(folder / "tf1-0600.mp4", frames, fps, pcm=pcm, sr=sr)
    clip = write_audio(folder / "clip.wav", pcm[5 * sr : 15 * sr], sr)
    return mp4, clip


def _wait(client, headers, job_id, seconds=60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']} after {seconds} s: {job}")


def test_reindex_job_indexes_and_scans_find_it(client, admin, reader, rt, channel, recording):
    mp4, clip = recording
    # The runtime's index is open (empty) before the job: it must see the new postings.
    opened = rt.index.use(lambda ix: ix)
    assert len(opened.store("audio").tracks()) == 0
    r = client.post(f"/v1/channels/{channel}/reindex", json={"sources": [str(mp4)]}, headers=admin)
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["kind"] == "reindex" and job["channel_id"] == channel
    assert job["params"] == {"sources": [str(mp4)], "jobs": 1}

    done = _wait(client, reader, job["id"])
    assert done["status"] == "done", done
    assert done["error"] is None and done["finished_at"] and done["started_at"]
    progress = done["progress"]
    assert progress["files_total"] == 1 and progress["files_done"] == 1
    assert progress["failed"] == 0 and progress["failures"] == []
    assert 19.0 < progress["seconds_done"] < 21.0

    tracks = rt.index.use(
        lambda ix: {m: [t.channel_id for t in ix.store(m).tracks().values()] for m in MODALITIES}
    )
    assert tracks == {"audio": [channel], "video": [channel]}
    assert rt.index.use(lambda ix: ix) is opened  # seen without reopening: no swap happened
    result = rt.index.use(lambda ix: scan_source(str(clip), ix, 10.0, 0.99))
    assert result.matches and result.matches[0].channel_id == channel, result.as_dict()
    assert abs(result.matches[0].offset_seconds - 5.0) < 0.5
    hours = client.get(f"/v1/channels/{channel}", headers=reader).json()["indexed_hours"]
    assert hours == pytest.approx(20 / 3600, abs=2e-4)

    listed = client.get(
        "/v1/jobs", params={"channel_id": channel, "status": "done"}, headers=reader
    ).json()
    assert [j["id"] for j in listed["items"]] == [job["id"]] and listed["next_cursor"] is None
    assert client.get("/v1/jobs", params={"status": "queued"}, headers=reader).json()["items"] == []

    # Deleting the channel hides its recordings from queries at once.
    assert client.delete(f"/v1/channels/{channel}", headers=admin).status_code == 204
    assert rt.index.use(lambda ix: len(ix.store("audio").tracks())) == 0
    assert not rt.index.use(lambda ix: scan_source(str(clip), ix, 10.0, 0.99)).matches


def test_reindex_counts_undecodable_files(client, admin, reader, tmp_path, channel, recording):
    junk = tmp_path / "junk.ts"
    junk.write_bytes(b"\x00garbage" * 500)
    mp4, _clip = recording
    r = client.post(
        f"/v1/channels/{channel}/reindex", headers=admin, json={"sources": [str(junk), str(mp4)]}
    )
    done = _wait(client, reader, r.json()["id"])
    assert done["status"] == "done", done
    p = done["progress"]
    assert (p["files_total"], p["files_done"], p["failed"]) == (2, 2, 1)
    assert [f["source"] for f in p["failures"]] == [str(junk)]

    r = client.post(f"/v1/channels/{channel}/reindex", headers=admin, json={"sources": [str(junk)]})
    failed = _wait(client, reader, r.json()["id"])
    assert failed["status"] == "failed" and "could be indexed" in failed["error"]
    assert failed["progress"]["failed"] == 1 and failed["finished_at"]


def test_reindex_bad_requests(client, admin, rt, tmp_path, channel, recording):
    url = f"/v1/channels/{channel}/reindex"
    missing = tmp_path / "nowhere" / "rec.mp4"
    body = _problem(
        client.post(url, json={"sources": [str(recording[0]), str(missing)]}, headers=admin),
        422,
        "sources[1]",
        str(missing),
    )
    assert body["field"] == "sources[1]"
    (tmp_path / "empty").mkdir()
    _problem(
        client.post(url, json={"sources": [str(tmp_path / "empty")]}, headers=admin),
        422,
        "sources[0]",
        "no media",
    )
    _problem(client.post(url, json={"sources": ["relative.mp4"]}, headers=admin), 422, "sources[0]")
    _problem(
        client.post(url, json={"sources": ["http://127.0.0.1:9/x.ts"]}, headers=admin),
        422,
        "sources[0]",
        "127.0.0.1",
    )
    _problem(client.post(url, json={"sources": []}, headers=admin), 422, "sources")
    _problem(client.post(url, json={"sources": ["/x"], "jobs": 9}, headers=admin), 422, "jobs:")
    _problem(
        client.post("/v1/channels/nope/reindex", json={"sources": [str(tmp_path)]}, headers=admin),
        404,
        "nope",
    )
    _problem(client.get("/v1/jobs/999", headers=admin), 404, "999")
    _problem(client.get("/v1/jobs", params={"status": "lost"}, headers=admin), 422, "status")
    _problem(client.get("/v1/jobs", params={"cursor": "garbage"}, headers=admin), 422, "cursor")
    _problem(client.get("/v1/jobs", params={"limit": 501}, headers=admin), 422, "limit")
    assert client.get("/v1/jobs", headers=admin).json()["items"] == []  # nothing was queued


def test_reindex_same_recordings_twice_returns_the_unfinished_job(
    client, admin, rt, tmp_path, channel
):
    """The same channel and recordings are the same batch job (one job file): a second
    request while the first is unfinished gets the first back instead of racing it."""
    sources = [str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]
    for path in sources:
        open(path, "wb").close()
    twin = _job(rt, channel_id=channel, status="queued", params={"sources": sources, "jobs": 1})
    r = client.post(
        f"/v1/channels/{channel}/reindex", json={"sources": sources[::-1]}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json()["id"] == twin and r.headers["location"] == f"/v1/jobs/{twin}"


def _job(rt, **kw):
    values = {
        "kind": "reindex",
        "channel_id": "tf1",
        "status": "queued",
        "params": {"sources": [], "jobs": 1},
        "progress": {},
        "created_at": utc_now(),
    }
    values.update(kw)
    with rt.db.session() as s:
        row = JobRow(**values)
        s.add(row)
        s.flush()
        return row.id


def test_job_sources_redacted_for_readers(client, admin, reader, rt, channel):
    job_id = _job(rt, status="failed", params={"sources": [SECRET_URL], "jobs": 2})
    shown = client.get(f"/v1/jobs/{job_id}", headers=reader).json()
    assert "secret" not in str(shown) and "pass" not in str(shown)
    assert shown["params"]["jobs"] == 2 and "tv.example" in shown["params"]["sources"][0]
    assert client.get(f"/v1/jobs/{job_id}", headers=admin).json()["params"]["sources"] == [
        SECRET_URL
    ]
    listed = client.get("/v1/jobs", headers=reader).json()["items"]
    assert "secret" not in str(listed) and "pass" not in str(listed)


def test_jobs_listing_pages_newest_first(client, reader, rt, channel):
    ids = [_job(rt, status="done") for _ in range(5)]
    first = client.get("/v1/jobs", params={"limit": 3}, headers=reader).json()
    assert [j["id"] for j in first["items"]] == ids[::-1][:3]
    rest = client.get(
        "/v1/jobs", params={"limit": 3, "cursor": first["next_cursor"]}, headers=reader
    ).json()
    assert [j["id"] for j in rest["items"]] == ids[::-1][3:] and rest["next_cursor"] is None


# --- the job itself, without the queue ----------------------------------------------------


def test_run_reindex_claims_once_and_resumes_expired_leases(app, rt, recording):
    """Called directly (no workers): a finished job, or one a live worker holds, is left
    alone; a running job whose lease ran out is taken over and completed."""
    rt.catalog.add_channel("tf1", "TF1")
    mp4, _clip = recording
    params = {"sources": [str(mp4)], "jobs": 1}
    past = utc_now() - timedelta(minutes=10)
    held = _job(
        rt,
        status="running",
        params=params,
        started_at=past,
        lease_until=utc_now() + timedelta(minutes=5),
    )
    run_reindex(rt, held)
    with rt.db.session() as s:
        row = s.get(JobRow, held)
        assert row.status == "running" and row.finished_at is None  # untouched

    orphan = _job(rt, status="running", params=params, started_at=past, lease_until=past)
    assert sweep_reindex(rt, send=lambda job_id: None) == 1  # the orphan, not the held one
    run_reindex(rt, orphan)
    with rt.db.session() as s:
        row = s.get(JobRow, orphan)
        assert row.status == "done" and row.progress["files_done"] == 1, row.error
        finished, progress = row.finished_at, dict(row.progress)
    run_reindex(rt, orphan)  # a duplicate message
    with rt.db.session() as s:
        row = s.get(JobRow, orphan)
        assert (row.status, row.finished_at, row.progress) == ("done", finished, progress)
    assert rt.index.use(lambda ix: [t.channel_id for t in ix.store("audio").tracks().values()]) == [
        "tf1"
    ]


def test_run_reindex_fails_for_a_removed_channel(app, rt, tmp_path):
    job_id = _job(rt, channel_id="gone", params={"sources": [str(tmp_path)], "jobs": 1})
    run_reindex(rt, job_id)
    with rt.db.session() as s:
        row = s.get(JobRow, job_id)
        assert row.status == "failed" and "gone" in row.error and row.finished_at


@embedded_only
def test_openapi_documents_the_routes(app):
    spec = app.openapi()
    paths = spec["paths"]
    assert "/v1/channels/{channel_id}/reindex" in paths and "/v1/feeds/health" in paths
    for path, ops in paths.items():
        if not path.startswith(
            ("/v1/channels", "/v1/feeds", "/v1/jobs", "/v1/distributors", "/v1/assets")
        ):
            continue
        for method, op in ops.items():
            assert "401" in op["responses"] and "403" in op["responses"], (method, path)
    schemas = spec["components"]["schemas"]
    for name in ("ChannelIn", "FeedIn", "DistributorIn", "AssetIn", "ReindexIn"):
        assert schemas[name].get("examples"), name
    progress = schemas["JobProgress"]
    assert set(progress["required"]) >= {"files_total", "files_done", "seconds_done", "failed"}
