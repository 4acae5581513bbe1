import subprocess
import sys
import textwrap

import numpy as np
import pytest

from reference_index.store.base import ParamsMismatch
from reference_index.store.embedded import EmbeddedStore

PARAMS = {"a": 1}


def _add(store, channel, source, n=1000, seed=0):
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 5000, n).astype(np.uint32)
    return store.add_track(
        channel, source, keys, np.sort(rng.integers(0, 9000, n)), hop_seconds=0.032
    ), keys


def test_add_lookup_and_replace(tmp_path):
    store = EmbeddedStore(tmp_path, PARAMS)
    t1, k1 = _add(store, "ch1", "a.wav")
    t2, _ = _add(store, "ch2", "b.wav", seed=1)
    hits = store.lookup(k1[:10])
    assert set(hits.track.tolist()) <= {t1.id, t2.id} and t1.id in hits.track
    # Re-indexing the same recording replaces the old track.
    t3, _ = _add(store, "ch1", "a.wav", seed=2)
    assert set(store.tracks()) == {t2.id, t3.id}
    assert t1.id not in store.lookup(k1).track
    # Another process sees the same state.
    other = EmbeddedStore(tmp_path, PARAMS)
    assert set(other.tracks()) == {t2.id, t3.id}


def test_compaction_drops_removed_tracks_and_keeps_results(tmp_path):
    store = EmbeddedStore(tmp_path, PARAMS)
    tracks = [_add(store, f"ch{i}", f"{i}.wav", seed=i) for i in range(5)]
    store.remove_tracks([tracks[0][0].id])
    probe = np.arange(5000, dtype=np.uint32)
    before = store.lookup(probe)
    assert store.compact() == 1
    after = store.lookup(probe)

    def key(h):
        return sorted(zip(h.query_pos.tolist(), h.track.tolist(), h.frame.tolist(), strict=False))  # noqa: E731

    assert key(before) == key(after)
    assert store.posting_count() == 4000
    assert len(list(tmp_path.glob("seg-*"))) == 1


def test_head_appends_are_searchable_then_flushed(tmp_path):
    store = EmbeddedStore(tmp_path, PARAMS)
    track = store.add_track(
        "live",
        "feed",
        np.empty(0, np.uint32),
        np.empty(0),
        hop_seconds=0.032,
        kind="live",
        start=1.7e9,
    )
    store.append(track.id, np.array([7, 8], np.uint32), np.array([10, 20]))
    assert store.lookup(np.array([8], np.uint32)).frame.tolist() == [20]
    store.flush()
    assert store.tracks()[track.id].frames == 21
    assert store.lookup(np.array([8], np.uint32)).frame.tolist() == [20]
    with pytest.raises(KeyError):
        store.append(999, np.array([1], np.uint32), np.array([1]))


def test_refuses_other_parameters(tmp_path):
    EmbeddedStore(tmp_path, PARAMS)
    with pytest.raises(ParamsMismatch, match="reindex --all"):
        EmbeddedStore(tmp_path, {"a": 2})


def test_bad_kind(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        EmbeddedStore(tmp_path, PARAMS).add_track(
            "c", "s", np.zeros(1, np.uint32), np.zeros(1), hop_seconds=0.1, kind="vod"
        )


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from reference_index.store.embedded import EmbeddedStore
    store = EmbeddedStore(sys.argv[1], {"a": 1})
    rng = np.random.default_rng(0)
    i = 0
    while True:
        keys = rng.integers(0, 2**32, 300_000, dtype=np.uint64).astype(np.uint32)
        store.add_track(f"ch{i % 7}", f"rec{i}", keys, np.arange(keys.size), hop_seconds=0.032)
        print(i, flush=True)
        i += 1
""")


@pytest.mark.parametrize("delay", [0.3, 0.9, 1.7])
def test_kill_9_mid_write_leaves_the_last_committed_state(tmp_path, delay):
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    reported = []
    import time

    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            reported.append(int(line))
    proc.kill()
    proc.wait()
    store = EmbeddedStore(tmp_path, PARAMS)
    sources = {t.source for t in store.tracks().values()}
    # Every track the writer reported as written is there, whole.
    assert {f"rec{i}" for i in reported} <= sources
    for name in store.segment_names:
        from reference_index.store.segment import Segment

        assert Segment.open(tmp_path / name).verify()
    # Leftovers of the killed write are swept at the next commit.
    _add(store, "x", "y")
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    names = {p.name for p in tmp_path.glob("seg-*")}
    assert names == set(store.segment_names)
