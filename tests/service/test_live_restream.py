"""A pirate restream of a live channel, 30 s behind it, named with its delay from the live
reference index (both served from loopback, the reference ingested from its live feed)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from fingerprinting.capture import GuardedClient, HostLimiter, NetworkPolicy
from reference_index.catalog import Catalog
from reference_index.catalog_schema import sqlite_url
from reference_index.index import Index
from reference_index.live import FeedHealth, FeedLoop, IngestPlan, LiveWriter
from service.detect import scan_url
from tests.fingerprinting.capture.hls_media import LiveHls, make_source, segment
from tests.fingerprinting.capture.servers import LoopbackServer

DELAY_SEGMENTS = 15  # of 2 s: the restream shows what the channel aired 30 s earlier


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("restream")
    return segment(make_source(d / "channel.ts", 60.0, 31), d / "hls", 2.0)


def _behind(media, k):
    """The same programme, ``k`` segments later: what a restreamer relays with a delay."""
    return replace(
        media,
        segments=media.segments[-k:] + media.segments[:-k],
        durations=media.durations[-k:] + media.durations[:-k],
    )


def test_a_restream_30_s_behind_the_live_channel_is_named_with_its_delay(media, tmp_path):
    catalog = Catalog(sqlite_url(tmp_path / "vigie.db"))
    catalog.add_channel("ch1", name="Channel One")
    index = Index(tmp_path / "index")
    policy = NetworkPolicy.from_setting("127.0.0.0/8")
    with LoopbackServer() as server:
        channel = LiveHls(server, media, name="channel", window=25)
        pirate = LiveHls(server, _behind(media, DELAY_SEGMENTS), name="pirate", window=25)
        feed = catalog.add_feed("ch1", channel.playlist_url)
        # Ingest the channel's live feed; a first chunk of 46 s reaches back far enough to
        # hold what the restream shows now (the test need not wait 30 s in real time).
        writer, stop = LiveWriter(index), threading.Event()
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
        result, got = scan_url(
            pirate.playlist_url, index, 10.0, 0.999, client=GuardedClient(policy)
        )
    catalog.close()
    assert result.verdict == "match" and result.aired_basis == "live_edge"
    best = result.matches[0]
    assert best.channel_id == "ch1" and best.reference == "live"
    assert best.audio is not None and best.video is not None and best.modalities_agree
    assert best.delay_seconds == pytest.approx(2.0 * DELAY_SEGMENTS, abs=0.5)
    assert result.coverage["ch1"] > 0.0
    shown = result.as_dict()["matches"][0]
    assert shown["reference"] == "live" and shown["delay_seconds"] == pytest.approx(30.0, abs=0.5)
