import numpy as np
import pytest

from reference_index.store.segment import Segment, SegmentError, write_segment


def test_roundtrip_and_lookup(tmp_path):
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 1000, 5000).astype(np.uint32)
    tracks = rng.choice([3, 9, 40], 5000)
    frames = rng.integers(0, 100000, 5000)
    write_segment(tmp_path / "s.vseg", keys, tracks, frames)
    seg = Segment.open(tmp_path / "s.vseg")
    assert seg.verify()
    assert np.all(np.diff(seg.keys.astype(np.int64)) >= 0)
    query = np.array([5, 999, 1234, 5], np.uint32)
    qpos, tid, fr = seg.lookup(query)
    expect = sorted(
        (q, int(t), int(f))
        for q, k in enumerate(query)
        for t, f in zip(tracks[keys == k], frames[keys == k], strict=True)
    )
    got = sorted(zip(qpos.tolist(), tid.tolist(), fr.tolist(), strict=True))
    assert got == expect


def test_empty_segment(tmp_path):
    e = np.empty(0)
    write_segment(tmp_path / "e.vseg", e.astype(np.uint32), e, e)
    seg = Segment.open(tmp_path / "e.vseg")
    assert seg.lookup(np.array([1], np.uint32))[0].size == 0


def test_damage_is_detected(tmp_path):
    keys = np.arange(100, dtype=np.uint32)
    write_segment(tmp_path / "s.vseg", keys, np.zeros(100), np.arange(100))
    data = bytearray((tmp_path / "s.vseg").read_bytes())
    (tmp_path / "t.vseg").write_bytes(bytes(data[:-10]))
    with pytest.raises(SegmentError, match="truncated"):
        Segment.open(tmp_path / "t.vseg")
    data[-5] ^= 0xFF
    (tmp_path / "f.vseg").write_bytes(bytes(data))
    assert not Segment.open(tmp_path / "f.vseg").verify()
    (tmp_path / "x.vseg").write_bytes(b"not a segment at all")
    with pytest.raises(SegmentError, match="not a posting segment"):
        Segment.open(tmp_path / "x.vseg")


def test_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="same length"):
        write_segment(tmp_path / "s", np.zeros(3, np.uint32), np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match=">= 0"):
        write_segment(tmp_path / "s", np.zeros(1, np.uint32), np.zeros(1), np.array([-1]))


@pytest.mark.parametrize("n", [1, 7, 5000])
def test_directory_lookup_matches_brute_force_on_wide_keys(tmp_path, n):
    rng = np.random.default_rng(n)
    keys = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    keys[: n // 3] = keys[0]  # a popular key
    write_segment(tmp_path / "s.vseg", keys, np.zeros(n), np.arange(n))
    seg = Segment.open(tmp_path / "s.vseg")
    query = np.concatenate([keys[rng.integers(0, n, 50)], [0, 2**32 - 1, keys.max() + 1]])
    query = query.astype(np.uint32)
    qpos, _, frames = seg.lookup(query)
    got = sorted(zip(qpos.tolist(), frames.tolist(), strict=True))
    expect = sorted((i, int(f)) for i, k in enumerate(query) for f in np.nonzero(keys == k)[0])
    assert got == expect
