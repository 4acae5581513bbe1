"""Acceptance of the service through HTTP: the channel's live feed is ingested, a pirate
restreams it 36 s behind on loopback, a bot posts the pirate URL and gets ``confirmed``
with the channel and its 36 s delay, and a webhook whose signature verifies."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from fingerprinting.capture import GuardedClient, HostLimiter, NetworkPolicy
from reference_index.catalog import Catalog
from reference_index.index import Index
from reference_index.live import FeedHealth, FeedLoop, IngestPlan, LiveWriter
from service.app import create_app
from service.keys import create_key
from service.webhooks import verify
from tests.fingerprinting.capture.hls_media import LiveHls, make_source, segment
from tests.fingerprinting.capture.servers import LoopbackServer
from tests.service.test_api_scans import settings_for, wait_for

#: Pirate delay, in 2 s segments (36 s). The feed is ingested for one 46 s chunk only, so the
#: confirming second sample, taken after the first is matched, must still show content from
#: inside it: its end may come at most this delay after the ingest's. 30 s failed under the
#: parallel suite's load (the second sample matched the looped media's previous turn).
DELAY_SEGMENTS = 18


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("api-live")
    return segment(make_source(d / "channel.ts", 60.0, 31), d / "hls", 2.0)


def _ingest(catalog, index_dir, feed, policy):
    """Index the live feed's first 46 s chunk (reaching back past the pirate's delay)."""
    writer, stop = LiveWriter(Index(index_dir)), threading.Event()
    loop = FeedLoop(
        feed,
        writer,
        IngestPlan(chunk_seconds=46.0),
        lambda: GuardedClient(policy, limiter=HostLimiter()),
        FeedHealth(feed.id, "test"),
        stop,
    )
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while loop.health.chunks < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join(30)
    loop.end_run()
    writer.flush()
    assert loop.health.chunks >= 1, loop.health


def test_a_live_restream_is_confirmed_with_its_delay_over_http(media, tmp_path):
    settings = settings_for(tmp_path, scan_seconds=10.0)
    catalog = Catalog(settings.catalog_url)
    catalog.add_channel("ch1", name="Channel One", owner="One SA")
    policy = NetworkPolicy.from_setting("127.0.0.0/8")
    hooks = []
    with LoopbackServer() as server:
        channel = LiveHls(server, media, name="channel", window=25)
        behind = replace(
            media,
            segments=media.segments[-DELAY_SEGMENTS:] + media.segments[:-DELAY_SEGMENTS],
            durations=media.durations[-DELAY_SEGMENTS:] + media.durations[:-DELAY_SEGMENTS],
        )
        pirate = LiveHls(server, behind, name="pirate", window=25)
        server.route("/hook", lambda request, r: (hooks.append(request), r.send(200, b"ok")))
        _ingest(catalog, settings.index_dir, catalog.add_feed("ch1", channel.playlist_url), policy)
        app = create_app(settings)
        bot, token = create_key(app.state.runtime.db, "bot", ["scans:write"])
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(app) as client:
            posted = client.post(
                "/v1/scans",
                headers=headers,
                json={"url": pirate.playlist_url, "callback_url": server.url("/hook")},
            )
            assert posted.status_code == 202, posted.text
            done = wait_for(
                client,
                headers,
                posted.json()["id"],
                until=lambda s: (
                    s["verdict"] == "confirmed"
                    or (s["confirmation"] or {}).get("state") == "not_confirmed"
                ),
            )
            deadline = time.monotonic() + 20
            while len(hooks) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
    catalog.close()
    assert done["verdict"] == "confirmed", done
    assert done["channel_id"] == "ch1"
    assert done["delay_seconds"] == pytest.approx(2.0 * DELAY_SEGMENTS, abs=0.5)
    assert done["matches"][0]["reference"] == "live"
    assert len(hooks) >= 2
    for request in hooks:
        verify(bot.webhook_secret, request.headers, request.body)
    last = json.loads(hooks[-1].body)["data"]
    assert last["verdict"] == "confirmed" and last["delay_seconds"] == done["delay_seconds"]
