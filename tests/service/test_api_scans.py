"""The service end to end over HTTP: a bot posts a pirate live HLS restream and an
unrelated stream, and gets ``confirmed`` (with channel and delay) and ``no_match``, with a
signed webhook; plus submission rules (validation, de-duplication, groups, playlists)."""

import json
import threading
import time

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.keys import create_key
from service.settings import Settings
from service.webhooks import verify
from tests.fingerprinting.capture.hls_media import LiveHls, make_source, segment
from tests.fingerprinting.capture.servers import LoopbackServer, static
from tests.service.backends import embedded_only


@pytest.fixture(scope="module")
def channel(vigie, tmp_path_factory):
    """Channel tv1 indexed from a 40 s A/V recording; that recording cut into 2 s HLS
    segments (the pirate's restream), and an unrelated recording."""
    root = tmp_path_factory.mktemp("api-scans")
    data = root / "data"
    recording = make_source(root / "tv1.ts", 40.0, seed=77)
    other = make_source(root / "other.ts", 30.0, seed=5)
    vigie(data, "channels", "add", "tv1", "--name", "TV One", "--owner", "TV One SA")
    vigie(data, "reindex", "tv1", str(recording))
    return data, segment(recording, root / "hls", 2.0), other


def settings_for(data, **over):
    values = dict(
        data_dir=data,
        allow_networks="127.0.0.0/8",
        scan_seconds=8.0,
        confirm_after_seconds=1.0,
        webhook_backoff_seconds=0.05,
        worker_threads=4,
        capture_deadline_seconds=30.0,
    )
    values.update(over)
    return Settings(**values)


@pytest.fixture
def service(channel, backend):
    """The app on each back end (``embedded``, ``scaleout``: see tests/service/backends.py)."""
    data, _, _ = channel
    app = create_app(
        settings_for(data, **backend.overrides(data)), start_workers=backend.start_workers
    )
    rt = app.state.runtime
    bot, bot_token = create_key(rt.db, "bot", ["scans:write"])
    _, analyst_token = create_key(rt.db, "analyst", ["matches:read", "matches:review"])
    with TestClient(app) as client:
        yield (
            client,
            bot,
            {"Authorization": f"Bearer {bot_token}"},
            {"Authorization": f"Bearer {analyst_token}"},
        )


def wait_for(client, headers, scan_id, *, until, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scan = client.get(f"/v1/scans/{scan_id}", headers=headers).json()
        if until(scan):
            return scan
        time.sleep(0.25)
    raise AssertionError(f"scan {scan_id} never got there: {scan}")


def test_a_live_restream_is_confirmed_and_an_unrelated_stream_is_no_match(channel, service):
    _, media, other = channel
    client, bot, bot_h, analyst_h = service
    hooks = []

    def hook(request, r):
        hooks.append(request)
        r.send(204, b"")

    with LoopbackServer() as server:
        live = LiveHls(server, media, window=8)
        server.route("/other.ts", static(other.read_bytes(), "video/mp2t"))
        server.route("/hook", hook)
        posted = client.post(
            "/v1/scans",
            headers=bot_h,
            json={
                "url": live.playlist_url,
                "callback_url": server.url("/hook"),
                "labels": {"case": "e2e"},
            },
        )
        assert posted.status_code == 202, posted.text
        first = posted.json()
        assert posted.headers["location"] == f"/v1/scans/{first['id']}"
        assert first["status"] == "queued" and first["labels"] == {"case": "e2e"}
        unrelated = client.post(
            "/v1/scans", headers=bot_h, json={"url": server.url("/other.ts")}
        ).json()

        done = wait_for(client, bot_h, first["id"], until=lambda s: s["verdict"] == "confirmed")
        assert done["channel_id"] == "tv1" and done["simulcast_group"] == "tv1"
        assert done["confidence"] >= 0.999
        assert done["confirmation"]["state"] == "confirmed"
        assert done["delay_seconds"] is None or abs(done["delay_seconds"]) < 60
        no = wait_for(client, bot_h, unrelated["id"], until=lambda s: s["status"] == "done")
        assert no["verdict"] == "no_match" and no["matches"] == []
        deadline = time.monotonic() + 20
        while len(hooks) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)

    # webhooks: one for the first verdict (suspected), one when the second sample confirmed
    assert len(hooks) >= 2
    secret = bot.webhook_secret
    verdicts = []
    for request in hooks:
        verify(secret, request.headers, request.body)  # raises if the signature is wrong
        verdicts.append(json.loads(request.body)["data"]["verdict"])
    assert verdicts[:2] == ["suspected", "confirmed"]
    log = client.get(f"/v1/scans/{first['id']}/deliveries", headers=bot_h).json()
    assert [d["status"] for d in log] == ["delivered", "delivered"]
    assert all(d["attempts"][0]["status_code"] == 204 for d in log)

    # the analyst's view: one incident for the pirate host + channel, with both matches
    incidents = client.get("/v1/incidents", headers=analyst_h).json()["items"]
    (incident,) = [i for i in incidents if i["channel_id"] == "tv1"]
    assert incident["verdict"] == "confirmed" and incident["matches"] == 2
    assert incident["host"] == "127.0.0.1" and incident["owner"] == "TV One SA"
    matches = client.get(
        "/v1/matches", headers=analyst_h, params={"incident_id": incident["id"]}
    ).json()["items"]
    assert len(matches) == 2 and {m["verdict"] for m in matches} == {"confirmed"}
    match = client.get(f"/v1/matches/{matches[0]['id']}", headers=analyst_h).json()
    assert match["evidence"]["hops"] and match["reviews"] == []
    reviewed = client.post(
        f"/v1/matches/{match['id']}/review",
        headers=analyst_h,
        json={"decision": "confirm", "note": "logo visible"},
    )
    assert reviewed.status_code == 201 and reviewed.json()["action"] == "review.confirm"
    again = client.get(f"/v1/matches/{match['id']}", headers=analyst_h).json()
    assert again["review_state"] == "confirmed" and again["reviews"][0]["note"] == "logo visible"


def test_an_unreachable_stream_gets_its_reason(channel, service):
    client, _, bot_h, _ = service
    with LoopbackServer() as server:
        server.route("/gone.m3u8", static(b"nope", "text/plain", status=404))
        scan = client.post(
            "/v1/scans", headers=bot_h, json={"url": server.url("/gone.m3u8")}
        ).json()
        done = wait_for(client, bot_h, scan["id"], until=lambda s: s["status"] == "done")
    assert done["verdict"] == "unreachable" and done["reason"] == "http_status"
    assert "404" in done["message"] and done["evidence"]["hops"]


def test_the_same_url_twice_returns_the_running_scan(service):
    client, _, bot_h, _ = service
    url = "http://pirate.invalid/live/bob/hunter2/77.ts"
    one = client.post("/v1/scans", headers=bot_h, json={"url": url})
    two = client.post("/v1/scans", headers=bot_h, json={"url": url})
    assert one.status_code == 202 and two.status_code == 200
    assert two.json()["id"] == one.json()["id"]
    assert two.headers["location"] == f"/v1/scans/{one.json()['id']}"
    # credentials are masked for a key without admin
    assert "hunter2" not in one.text and "/live/***/***/77.ts" in one.json()["url"]


def test_the_same_url_posted_at_once_by_many_bots_makes_one_scan(service):
    client, _, bot_h, _ = service
    url = "http://pirate.invalid/live/eve/pw/78.ts"
    start = threading.Barrier(8)
    answers = []

    def post() -> None:
        start.wait()
        answers.append(client.post("/v1/scans", headers=bot_h, json={"url": url}))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(answers) == 8
    assert sorted(a.status_code for a in answers) == [200] * 7 + [202]
    assert len({a.json()["id"] for a in answers}) == 1


def test_several_urls_make_a_group(service):
    client, _, bot_h, _ = service
    urls = [f"http://pirate.invalid/ch{i}.ts" for i in range(3)]
    posted = client.post("/v1/scans", headers=bot_h, json={"urls": urls})
    assert posted.status_code == 202
    group = posted.json()
    assert group["entries"] == 3 and len(group["scans"]) == 3
    assert posted.headers["location"] == f"/v1/scan-groups/{group['id']}"
    listed = client.get("/v1/scans", headers=bot_h, params={"group_id": group["id"]}).json()
    assert sorted(s["id"] for s in listed["items"]) == sorted(s["id"] for s in group["scans"])


def test_a_playlist_fans_out_into_one_scan_per_entry(service):
    client, _, bot_h, _ = service
    playlist = "#EXTM3U\n" + "".join(
        f'#EXTINF:-1 tvg-id="c{i}",Channel {i}\nhttp://pirate.invalid/live/u/p/{i}.ts\n'
        for i in range(5)
    )
    with LoopbackServer() as server:
        server.route("/get.php", static(playlist.encode(), "audio/x-mpegurl"))
        posted = client.post(
            "/v1/scans",
            headers=bot_h,
            json={"playlist_url": server.url("/get.php?username=u&password=p")},
        )
        assert posted.status_code == 202
        gid = posted.json()["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            group = client.get(f"/v1/scan-groups/{gid}", headers=bot_h).json()
            if group["status"] != "expanding":
                break
            time.sleep(0.2)
    assert group["status"] == "ready" and group["entries"] == 5
    assert [s["entry_name"] for s in group["scans"]] == [f"Channel {i}" for i in range(5)]
    assert "password=p" not in json.dumps(group)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "exactly one of url"),
        ({"url": "rtmp://x/live"}, "url"),
        ({"url": "http://x/a.ts", "urls": ["http://x/b.ts"]}, "exactly one"),
        ({"urls": ["http://x/a.ts", "ftp://x/b"]}, "urls[1]"),
        ({"url": "http://" + "a" * 254 + "/live.ts"}, "longer than 253"),
        ({"url": "http://x/a.ts", "seconds": 0.5}, "seconds"),
        ({"url": "http://x/a.ts", "modalities": ["smell"]}, "modalities[0]"),
        ({"url": "http://x/a.ts", "surprise": 1}, "surprise"),
    ],
)
@embedded_only
def test_bad_submissions_are_422_naming_the_field(service, body, field):
    client, _, bot_h, _ = service
    got = client.post("/v1/scans", headers=bot_h, json=body)
    assert got.status_code == 422
    assert got.headers["content-type"].startswith("application/problem+json")
    assert field in got.json()["detail"]


def test_problems_for_keys_bodies_and_routes(service):
    client, _, bot_h, analyst_h = service
    assert client.get("/v1/scans/1").status_code == 401
    bad = client.get("/v1/scans/1", headers={"Authorization": "Bearer vk_nope_nope"})
    assert bad.status_code == 401 and bad.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/incidents", headers=bot_h).status_code == 403
    assert (
        client.post("/v1/scans", headers=analyst_h, json={"url": "http://x/a.ts"}).status_code
        == 403
    )
    big = client.post(
        "/v1/scans",
        headers={**bot_h, "content-type": "application/json"},
        content=b'{"url": "' + b"a" * 70000 + b'"}',
    )
    assert big.status_code == 413 and "limited" in big.json()["detail"]
    assert client.get("/v1/nothing", headers=bot_h).status_code == 404
    assert client.get("/v1/scans", headers=bot_h, params={"cursor": "garbage"}).status_code == 422
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz", headers=analyst_h)
    assert ready.status_code == 200, ready.text
    metrics = client.get("/metrics", headers=analyst_h)
    assert metrics.status_code == 200 and "vigie_queue_depth" in metrics.text
