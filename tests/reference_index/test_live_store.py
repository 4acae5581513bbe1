"""Live tracks of the embedded store: UTC time axis, coverage, windows, retention, merges."""

import numpy as np
import pytest

from reference_index.store.base import FrameWindow
from reference_index.store.embedded import EmbeddedStore
from reference_index.store.upkeep import merge_intervals

PARAMS = {"a": 1}
HOP = 0.5  # seconds per frame: round numbers in the tests
T0 = 1_800_000_000.0  # a UTC epoch on an hour boundary (2027-01-15 08:00:00)


def _feed(store, track, t_from, t_to, seed=0, per_frame=2):
    """Append postings for UTC [t_from, t_to) and flush them with their coverage."""
    rng = np.random.default_rng(seed)
    frames = np.repeat(np.arange(int((t_from - T0) / HOP), int((t_to - T0) / HOP)), per_frame)
    keys = rng.integers(0, 2**32, frames.size, dtype=np.uint64).astype(np.uint32)
    store.append(track.id, keys, frames)
    store.flush({track.id: [(t_from, t_to)]})
    return keys, frames


def _hits(h):
    return sorted(zip(h.query_pos.tolist(), h.track.tolist(), h.frame.tolist(), strict=True))


def test_live_track_is_one_time_axis_per_feed(tmp_path):
    store = EmbeddedStore(tmp_path, PARAMS)
    a = store.live_track("ch1", "live:1", start=T0, hop_seconds=HOP)
    again = EmbeddedStore(tmp_path, PARAMS).live_track(
        "ch1", "live:1", start=T0 + 99, hop_seconds=HOP
    )
    assert again == a and again.start == T0
    b = store.live_track("ch2", "live:2", start=T0, hop_seconds=HOP)
    assert b.id != a.id and store.tracks()[b.id].kind == "live"


def test_far_frames_are_stored_compactly(tmp_path):
    """Two days into a live track, a segment holds only the range of its own postings."""
    store = EmbeddedStore(tmp_path, PARAMS)
    track = store.live_track("ch1", "live:1", start=T0, hop_seconds=0.032)
    frames = 5_400_000 + np.arange(1000)
    keys = np.arange(1000, dtype=np.uint32)
    store.append(track.id, keys, frames)
    store.flush()
    seg = store._segments[store.segment_names[0]]
    ids, first, end = seg.track_ranges
    assert first.tolist() == [5_400_000] and end.tolist() == [5_401_000]
    assert seg.locs.max() < 1000
    assert store.lookup(keys[[3, 999]]).frame.tolist() == [5_400_003, 5_400_999]
    assert store.tracks()[track.id].frames == 5_401_000


def test_flush_records_coverage_with_the_postings(tmp_path):
    store = EmbeddedStore(tmp_path, PARAMS)
    track = store.live_track("ch1", "live:1", start=T0, hop_seconds=HOP)
    _feed(store, track, T0, T0 + 60)
    _feed(store, track, T0 + 60.4, T0 + 120)  # jitter under a second: one interval
    _feed(store, track, T0 + 300, T0 + 360)  # after an outage: a gap
    assert EmbeddedStore(tmp_path, PARAMS).coverage(track.id) == [
        (T0, T0 + 120),
        (T0 + 300, T0 + 360),
    ]
    # Coverage with no postings (a silent stretch) is still coverage.
    store.flush({track.id: [(T0 + 360, T0 + 400)]})
    assert store.coverage(track.id)[-1] == (T0 + 300, T0 + 400)


def test_window_reads_only_segments_in_it_and_filters_hits(tmp_path):
    store = EmbeddedStore(tmp_path, PARAMS)
    track = store.live_track("ch1", "live:1", start=T0, hop_seconds=HOP)
    fed = [_feed(store, track, T0 + 60 * i, T0 + 60 * (i + 1), seed=i) for i in range(10)]
    keys = np.concatenate([k for k, _ in fed])
    everything = store.lookup(keys)
    lo, hi = int(120 / HOP), int(240 / HOP)  # minutes 2 and 3
    window = FrameWindow(np.array([track.id]), np.array([lo]), np.array([hi]))
    assert len(store._part_segments(0, window)) == 2
    inside = store.lookup(keys, window)
    expected = [h for h in _hits(everything) if lo <= h[2] < hi]
    assert _hits(inside) == expected and len(expected) > 0
    # A window on another track reads nothing.
    other = FrameWindow(np.array([track.id + 1]), np.array([0]), np.array([FrameWindow.ALL]))
    assert store.lookup(keys, other).size == 0


def test_retention_drops_whole_segments_and_trims_coverage(tmp_path):
    store = EmbeddedStore(tmp_path, PARAMS)
    live = store.live_track("ch1", "live:1", start=T0, hop_seconds=HOP)
    asset = store.add_track(
        "ch1", "film.mp4", np.arange(10, dtype=np.uint32), np.arange(10), hop_seconds=HOP
    )
    fed = [_feed(store, live, T0 + 60 * i, T0 + 60 * (i + 1), seed=i) for i in range(5)]
    before = len(store.segment_names)
    assert store.retain({live.id: T0 + 150}) == 2  # minutes 0 and 1 end before the cutoff
    assert len(store.segment_names) == before - 2
    assert len(list(tmp_path.glob("seg-*"))) == before - 2
    # Coverage starts at the oldest posting still searchable: minute 2 is kept whole.
    assert store.coverage(live.id) == [(T0 + 120, T0 + 300)]
    stamp = (tmp_path / "manifest.json").stat().st_mtime_ns
    assert store.retain({live.id: T0 + 150}) == 0  # nothing more to do: no commit
    assert (tmp_path / "manifest.json").stat().st_mtime_ns == stamp
    # Postings of minute 2 are kept whole (the segment straddles the cutoff).
    assert store.lookup(fed[2][0]).size == fed[2][0].size
    assert store.lookup(fed[0][0]).size == 0
    # Asset segments are never expired by time; a removed track's segment goes.
    assert store.retain({live.id: T0 + 10_000, asset.id: T0 + 10_000}) == 3
    assert store.lookup(np.arange(10, dtype=np.uint32)).size == 10
    store.remove_tracks([asset.id])
    assert store.retain({}) == 1 and store.segment_names == []


def test_live_segments_merge_by_bucket_and_answer_the_same(tmp_path):
    store = EmbeddedStore(tmp_path, PARAMS, parts=1)
    a = store.live_track("ch1", "live:1", start=T0, hop_seconds=HOP)
    b = store.live_track("ch2", "live:2", start=T0, hop_seconds=HOP)
    keys = []
    for i in range(36):  # 3 hours of 5-minute flushes, two feeds per flush
        t = T0 + 300 * i
        for track, seed in ((a, 2 * i), (b, 2 * i + 1)):
            rng = np.random.default_rng(seed)
            frames = np.arange(int((t - T0) / HOP), int((t + 300 - T0) / HOP))
            k = rng.integers(0, 2**32, frames.size, dtype=np.uint64).astype(np.uint32)
            store.append(track.id, k, frames)
            keys.append(k)
        store.flush({a.id: [(t, t + 300)], b.id: [(t, t + 300)]})
    probe = np.concatenate(keys)[::7]
    before = _hits(store.lookup(probe))
    assert len(store.segment_names) == 36
    # 40 minutes into hour 3: hours 1 and 2 are over, hour 3's first 30 minutes settled
    # (3 buckets of 10 minutes), its last 30 minutes are 6 flushes still to settle.
    now = T0 + 2 * 3600 + 2400
    store.merge_live(now)
    assert len(store.segment_names) == 2 + 3 + 6
    assert _hits(store.lookup(probe)) == before
    # Hours later, everything is one segment per hour; merging again changes nothing.
    store.merge_live(T0 + 10 * 3600)
    assert len(store.segment_names) == 3
    assert store.merge_live(T0 + 10 * 3600) == 0
    assert _hits(EmbeddedStore(tmp_path, PARAMS).lookup(probe)) == before


def test_asset_compaction_leaves_live_segments_alone(tmp_path):
    store = EmbeddedStore(tmp_path, PARAMS)
    live = store.live_track("ch1", "live:1", start=T0, hop_seconds=HOP)
    for i in range(3):
        store.add_track(
            "ch1", f"{i}.mp4", np.arange(5, dtype=np.uint32) + 10 * i, np.arange(5), hop_seconds=HOP
        )
        _feed(store, live, T0 + 60 * i, T0 + 60 * (i + 1), seed=i)
    assert store.compact() == 1 + 3


@pytest.mark.parametrize(
    ("given", "merged"),
    [
        ([], []),
        ([(0, 1), (1.5, 2)], [[0, 2]]),
        ([(6, 7), (0, 1), (3, 4)], [[0, 1], [3, 4], [6, 7]]),
        ([(0, 10), (2, 3)], [[0, 10]]),
    ],
)
def test_merge_intervals(given, merged):
    assert merge_intervals(given) == merged


def test_small_flushes_carry_no_prefix_directory_and_answer_the_same(tmp_path):
    """A live flush of a few thousand frame hashes is not given a 256 kB directory."""
    store = EmbeddedStore(tmp_path, PARAMS, np.dtype(np.uint64), parts=2, prefix_bits=16)
    track = store.live_track("ch1", "live:1", start=T0, hop_seconds=0.2)
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 2**63, (2, 3000), dtype=np.uint64)
    store.append(track.id, keys, np.arange(3000))
    prefixes = (keys[1, ::10] >> np.uint64(48)).astype(np.uint64)
    in_head = _hits(store.lookup_prefix(prefixes, 16, part=1))
    store.flush()
    assert all((tmp_path / n).stat().st_size < 64_000 for n in store.segment_names)
    assert _hits(store.lookup_prefix(prefixes, 16, part=1)) == in_head and len(in_head) >= 300
