"""PostgresStore: the embedded store's behaviours on PostgreSQL, and the same hits as it.

Needs PostgreSQL on 127.0.0.1:5432 (database ``test``, trust auth; ``VIGIE_TEST_POSTGRES_URL``
points elsewhere). Each test gets a throw-away schema, dropped after. Skipped when the
server is not reachable, failed under ``CI=true``.
"""

from __future__ import annotations

import os
import uuid

import cv2
import numpy as np
import pytest

from fingerprinting import audio
from fingerprinting.align import NullCalibration
from fingerprinting.decode import FrameBatch
from fingerprinting.params import VideoParams
from fingerprinting.video import fingerprint_frames, video_query
from reference_index.index import Index
from reference_index.store.base import FrameWindow, ParamsMismatch
from reference_index.store.embedded import EmbeddedStore
from reference_index.store.postgres import PostgresStore, libpq_url
from service.media import synth_pictures, synth_programme

CANDIDATES = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)
PARAMS = {"a": 1}
HOP = 0.5
T0 = 1_800_000_000.0  # an hour boundary
CAL = NullCalibration(
    threshold=10.0, tail_at_threshold=0.1, slope=0.2, n_queries=100, max_null_score=15.0
)


def _find_postgres() -> str:
    import psycopg

    urls = (
        [os.environ["VIGIE_TEST_POSTGRES_URL"]]
        if os.environ.get("VIGIE_TEST_POSTGRES_URL")
        else CANDIDATES
    )
    errors = []
    for url in urls:
        try:
            with psycopg.connect(libpq_url(url), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            return url
        except psycopg.Error as exc:
            errors.append(f"{url}: {str(exc).strip().splitlines()[0]}")
    reason = "PostgreSQL is not reachable: " + "; ".join(errors)
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def pg_url() -> str:
    return _find_postgres()


@pytest.fixture
def schemas(pg_url):
    """Makes stores in throw-away schemas; drops every one after the test."""
    made: list[PostgresStore] = []

    def make(params=PARAMS, key_dtype=np.uint32, schema=None, **kw) -> PostgresStore:
        name = schema or f"vigie_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        kw.setdefault("max_staleness", 0.0)
        store = PostgresStore(pg_url, params, np.dtype(key_dtype), schema=name, **kw)
        made.append(store)
        return store

    yield make
    for store in made:
        try:
            store.drop()
        finally:
            store.close()


def _add(store, channel, source, n=1000, seed=0, kind="asset", start=0.0):
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 5000, n).astype(np.uint32)
    track = store.add_track(
        channel, source, keys, np.sort(rng.integers(0, 9000, n)), hop_seconds=0.032,
        kind=kind, start=start,
    )  # fmt: skip
    return track, keys


def _hits(h):
    key = h.key.tolist() if h.key is not None else [0] * h.size
    return sorted(zip(h.query_pos.tolist(), h.track.tolist(), h.frame.tolist(), key, strict=True))


def test_add_lookup_replace_and_remove(schemas):
    store = schemas()
    t1, k1 = _add(store, "ch1", "a.wav")
    t2, _ = _add(store, "ch2", "b.wav", seed=1)
    hits = store.lookup(k1[:10])
    assert t1.id in hits.track and set(hits.track.tolist()) <= {t1.id, t2.id}
    # Each hit's key is the query key at its position.
    assert np.all(np.isin(hits.frame, np.arange(9000)))
    # Re-indexing the same recording replaces the old track.
    t3, _ = _add(store, "ch1", "a.wav", seed=2)
    assert set(store.tracks()) == {t2.id, t3.id}
    assert t1.id not in store.lookup(k1).track
    # Another process (connection) sees the same state.
    other = schemas(schema=store.schema)
    assert set(other.tracks()) == {t2.id, t3.id}
    store.remove_tracks([t2.id])
    assert set(other.tracks()) == {t3.id}
    assert t2.id not in other.lookup(np.arange(5000, dtype=np.uint32)).track
    # Compaction deletes what no track owns: the two replaced/removed tracks' postings.
    assert store.posting_count() == 3000
    assert store.compact() == 2000
    assert store.posting_count() == 1000 and store.compact() == 0


def test_refuses_other_parameters(schemas):
    store = schemas()
    with pytest.raises(ParamsMismatch, match="reindex --all"):
        schemas(params={"a": 2}, schema=store.schema)
    with pytest.raises(ParamsMismatch, match="key spaces"):
        schemas(key_dtype=np.uint64, parts=4, schema=store.schema)


def test_urls():
    assert libpq_url("postgresql+psycopg://u@h:5432/db") == "postgresql://u@h:5432/db"
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        libpq_url("sqlite:///x.db")


def test_live_appends_are_visible_after_flush_with_coverage(schemas):
    writer = schemas()
    reader = schemas(schema=writer.schema)
    track = writer.live_track("live", "feed:1", start=T0, hop_seconds=HOP)
    assert writer.live_track("live", "feed:1", start=T0 + 99, hop_seconds=HOP) == track
    keys, frames = np.array([7, 8, 9], np.uint32), np.array([10, 20, 7300])
    writer.append(track.id, keys, frames)
    # The head answers its own process; other processes see postings once flushed.
    assert writer.lookup(np.array([8], np.uint32)).frame.tolist() == [20]
    assert reader.lookup(np.array([8], np.uint32)).size == 0
    assert writer.flush({track.id: [(T0, T0 + 3700.0)]}) == [
        f"postings_h{int(T0 // 3600)}",
        f"postings_h{int(T0 // 3600) + 1}",
    ]
    assert reader.lookup(keys).frame.tolist() == [10, 20, 7300]
    assert reader.tracks()[track.id].frames == 7301
    assert reader.coverage(track.id) == [(T0, T0 + 3700.0)]
    writer.flush({track.id: [(T0 + 3700.5, T0 + 3800.0)]})  # joined: less than 1 s apart
    assert reader.coverage(track.id) == [(T0, T0 + 3800.0)]
    with pytest.raises(KeyError):
        writer.append(999, np.array([1], np.uint32), np.array([1]))


def test_window_prunes_partitions_and_filters_hits(schemas):
    store = schemas()
    track = store.live_track("live", "feed:1", start=T0, hop_seconds=HOP)
    frames = np.arange(0, 4 * 7200, 10)  # 4 hours, a posting every 5 s
    store.append(track.id, np.full(frames.size, 5, np.uint32), frames)
    store.flush()
    assert len(store.partitions()) == 4
    win = FrameWindow(np.array([track.id]), np.array([7000]), np.array([7500]))
    hits = store.lookup(np.array([5], np.uint32), win)
    assert hits.frame.tolist() == list(range(7000, 7500, 10))
    sql = store._where(0, win)
    assert f"ANY('{{{int(T0 // 3600)},{int(T0 // 3600) + 1}}}'::int4[])" in sql
    plan = "\n".join(
        r[0]
        for r in store.conn.execute(
            f"EXPLAIN SELECT * FROM {store._s}.postings p WHERE {sql} AND p.key = 5"
        ).fetchall()
    )
    # Only the window's two hour partitions are planned.
    assert plan.count(" on postings_h") == 2, plan


def test_retention_drops_whole_hours_and_trims_coverage(schemas):
    store = schemas()
    live = store.live_track("live", "feed:1", start=T0, hop_seconds=HOP)
    other = store.live_track("live2", "feed:2", start=T0, hop_seconds=HOP)
    asset, _ = _add(store, "vod", "film.mp4")
    for t in (live, other):
        frames = np.arange(0, 3 * 7200, 2)
        store.append(t.id, np.arange(frames.size, dtype=np.uint32), frames)
        store.flush({t.id: [(T0, T0 + 3 * 3600.0)]})
    hours = store.partitions()
    assert len(hours) == 3
    # Cut 1.5 h in for one feed only: the other feed still holds every hour.
    assert store.retain({live.id: T0 + 5400.0}) == 0
    # Both cut: the first hour goes whole, the second (half expired) stays.
    assert store.retain({live.id: T0 + 5400.0, other.id: T0 + 5400.0}) == 1
    assert store.partitions() == hours[1:]
    assert store.coverage(live.id) == [(T0 + 3600.0, T0 + 3 * 3600.0)]
    hits = store.lookup(np.arange(100, dtype=np.uint32))  # live frames 0..198: gone
    assert set(hits.track.tolist()) == {asset.id}
    assert asset.id in store.lookup(np.arange(5000, dtype=np.uint32)).track  # assets stay
    # A removed feed's hours go regardless of cutoffs; nothing left to drop: no change.
    store.remove_tracks([live.id, other.id])
    assert store.retain({}) == 2 and store.partitions() == []
    assert store.retain({}) == 0


def test_staged_tracks_publish_at_once(schemas):
    store = schemas()
    old, k = _add(store, "ch1", "a.wav")
    staged = store.add_track(
        "ch1", "a.wav", k, np.arange(k.size), hop_seconds=0.032, job="j1", stamp="v2"
    )
    assert set(store.tracks()) == {old.id} and store.jobs() == ["j1"]
    assert store.staged("j1")["a.wav"].stamp == "v2"
    assert staged.id not in store.lookup(k).track
    store.publish("j1")
    assert set(store.tracks()) == {staged.id} and store.jobs() == []
    assert set(store.lookup(k).track.tolist()) == {staged.id}


def _random_world(rng, stores, key_dtype, parts):
    """The same random tracks (assets and live feeds, some removed) in every store."""
    width = 8 * np.dtype(key_dtype).itemsize
    top = 2**width
    ids = []
    for i in range(int(rng.integers(2, 5))):
        n = int(rng.integers(0, 3000))
        # Few distinct prefixes so that prefix lookups hit many postings.
        keys = rng.integers(0, top, (parts, n), dtype=np.uint64) & np.uint64(top - 1)
        keys[:, : n // 2] = keys[:, : n // 2] >> np.uint64(width - 6) << np.uint64(width - 6)
        keys = keys.astype(key_dtype)
        frames = rng.integers(0, 20_000, n)
        kind = "live" if i % 2 else "asset"
        start = T0 + float(rng.integers(0, 7200)) if kind == "live" else 0.0
        for s in stores:
            args = (keys if parts > 1 else keys[0], frames)
            if kind == "asset":
                t = s.add_track(f"c{i}", f"s{i}", *args, hop_seconds=HOP)
            else:
                t = s.live_track(f"c{i}", f"s{i}", start=start, hop_seconds=HOP)
                half = frames < 10_000
                s.append(t.id, args[0][..., half], frames[half])
                s.flush({t.id: [(start, start + 5000.0)]})
                s.append(t.id, args[0][..., ~half], frames[~half])
                s.flush()
        ids.append(t.id)
    if rng.random() < 0.5:
        for s in stores:
            s.remove_tracks([ids[0]])
    return ids


@pytest.mark.parametrize("seed", range(6))
def test_same_hits_as_the_embedded_store(schemas, tmp_path, seed):
    """Random tracks, keys, windows and key spaces: identical hits from both stores."""
    rng = np.random.default_rng(seed)
    key_dtype, parts, bits = (np.uint32, 1, 12) if seed % 2 else (np.uint64, 4, 16)
    emb = EmbeddedStore(tmp_path, PARAMS, np.dtype(key_dtype), parts=parts, prefix_bits=bits)
    pg = schemas(key_dtype=key_dtype, parts=parts)
    ids = _random_world(rng, [emb, pg], key_dtype, parts)
    assert pg.tracks() == emb.tracks()
    assert {t: pg.coverage(t) for t in ids} == {t: emb.coverage(t) for t in ids}
    assert pg.posting_count() == emb.posting_count()
    width = 8 * np.dtype(key_dtype).itemsize
    for _ in range(4):
        part = int(rng.integers(parts))
        keys = rng.integers(0, 2**width, 200, dtype=np.uint64).astype(key_dtype)
        stored = [np.asarray(s.keys) for s in emb._segments.values() if s.part == part]
        if stored and sum(k.size for k in stored):  # keys that are there, some twice
            keys = np.concatenate([keys, rng.choice(np.concatenate(stored), 300)])
        tr = np.array(sorted(rng.choice(ids + [999], 3, replace=False)), np.int64)
        lo = rng.integers(0, 15_000, tr.size)
        win = FrameWindow(tr, lo, lo + rng.integers(1, 10_000, tr.size))
        for within in (None, win, FrameWindow.whole(np.array(ids))):
            assert _hits(pg.lookup(keys, within, part=part)) == _hits(
                emb.lookup(keys, within, part=part)
            )
            prefixes = keys.astype(np.uint64) >> np.uint64(width - bits)
            a = pg.lookup_prefix(prefixes, bits, within, part=part)
            assert _hits(a) == _hits(emb.lookup_prefix(prefixes, bits, within, part=part))
    # Both SQL forms of an exact lookup agree.
    other = schemas(key_dtype=key_dtype, parts=parts, schema=pg.schema, lookup_sql="unnest")
    assert _hits(other.lookup(keys, part=0)) == _hits(pg.lookup(keys, part=0))


def test_copy_formats_store_the_same(schemas):
    a, b = schemas(), schemas()
    rng = np.random.default_rng(3)
    keys, frames = rng.integers(0, 2**32, 500, dtype=np.uint64).astype(np.uint32), np.arange(500)
    a.add_track("c", "s", keys, frames, hop_seconds=HOP)
    b.add_track("c", "s", keys, frames, hop_seconds=HOP, copy_format="rows")
    assert _hits(a.lookup(keys)) == _hits(b.lookup(keys)) and a.lookup(keys).size >= 500


@pytest.fixture(scope="module")
def video_pictures():
    rgb = synth_pictures(60.0, 10.0, seed=3, width=192, height=108)
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb])


def test_index_queries_through_postgres_match_the_embedded_index(pg_url, tmp_path, video_pictures):
    """A real Index on PostgresStore: same candidates as on the embedded stores, for audio
    assets, a live audio track queried around its capture time, and video."""
    prefix = f"vigie_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    cals = {"audio": CAL, "video": CAL}
    emb = Index(tmp_path / "emb", calibrations=cals)
    pg = Index(tmp_path / "pg", calibrations=cals, postings_url=pg_url, postings_schema=prefix)
    try:
        assert pg.audio.schema == f"{prefix}_audio" and pg.video.schema == f"{prefix}_video"
        progs = {ch: synth_programme(40.0, seed=40 + i, sr=8000) for i, ch in enumerate("abc")}
        p = VideoParams()
        times = np.arange(len(video_pictures)) / 10.0
        vprint = fingerprint_frames([FrameBatch(times, video_pictures)], p)
        for idx in (emb, pg):
            for ch, y in progs.items():
                idx.add_recording(ch, f"{ch}.wav", audio.fingerprint(y))
            idx.add_recording("news", "news.mp4", vprint)
            track = idx.live_track("audio", "live", "feed:9", T0)
            idx.append_live(track, audio.fingerprint(progs["c"]), T0 + 600.0)
            idx.flush_live({"audio": {track.id: [(T0 + 600.0, T0 + 640.0)]}})
        q = audio.query_peaks(progs["b"][8000 * 12 : 8000 * 22])
        t = np.arange(0.0, 10.0, 1 / p.query_fps)
        vq = video_query(FrameBatch(t, video_pictures[np.round((21.3 + t) * 10).astype(int)]), p)
        found = pg.query(q, vq)
        assert found == emb.query(q, vq)
        assert found.audio[0].channel_id == "b"
        assert found.audio[0].offset_seconds == pytest.approx(12.0, abs=0.1)
        assert found.video[0].channel_id == "news"
        assert found.video[0].offset_seconds == pytest.approx(21.3, abs=0.3)
        # Live: the window around the capture time finds the feed at its UTC.
        q = audio.query_peaks(progs["c"][8000 * 20 : 8000 * 30])
        live = pg.query(q, around=T0 + 650.0)
        assert live == emb.query(q, around=T0 + 650.0)
        best = [c for c in live.audio if c.track.kind == "live"][0]
        assert best.offset_seconds == pytest.approx(T0 + 620.0, abs=0.1)
        assert live.coverage == {"live": pytest.approx(40.0 / 630.0)}
        assert pg.stats("audio")["postings"] == emb.stats("audio")["postings"]
        assert pg.retain(T0 + 640.0 + 48 * 3600.0) == 1
        assert emb.retain(T0 + 640.0 + 48 * 3600.0) >= 1
        assert pg.query(q, around=T0 + 650.0) == emb.query(q, around=T0 + 650.0)
    finally:
        for store in (pg.audio, pg.video):
            store.drop()
            store.close()


def test_flush_skips_postings_of_a_track_removed_meanwhile(schemas):
    store = schemas()
    gone = store.live_track("live", "feed:1", start=T0, hop_seconds=HOP)
    kept = store.live_track("live", "feed:2", start=T0, hop_seconds=HOP)
    store.append(gone.id, np.array([1, 2], np.uint32), np.array([0, 1]))
    store.append(kept.id, np.array([1, 2], np.uint32), np.array([4, 5]))
    schemas(schema=store.schema).remove_tracks([gone.id])  # another process
    store.flush({gone.id: [(T0, T0 + 1)], kept.id: [(T0, T0 + 3)]})
    assert store.lookup(np.array([1, 2], np.uint32)).frame.tolist() == [4, 5]
    assert store.posting_count() == 2 and store.coverage(kept.id) == [(T0, T0 + 3)]
