"""Multi-index hashing finds every reference hash within the guaranteed radius, exactly."""

import numpy as np

from fingerprinting.framehash import hamming
from reference_index.mih import chunk_keys, near_hashes
from reference_index.store.embedded import EmbeddedStore


def _flip(h: np.ndarray, n_bits: int, rng: np.random.Generator) -> np.ndarray:
    out = h.copy()
    for i in range(h.size):
        for b in rng.choice(64, n_bits, replace=False):
            out[i] ^= np.uint64(1) << np.uint64(b)
    return out


def test_chunk_keys_rotate_each_chunk_to_the_front():
    h = np.array([0x0123_4567_89AB_CDEF], np.uint64)
    keys = chunk_keys(h)
    assert [hex(int(k[0]) >> 48) for k in keys] == ["0x123", "0x4567", "0x89ab", "0xcdef"]


def test_near_hashes_matches_brute_force(tmp_path):
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 2**63, 5000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    store = EmbeddedStore(tmp_path, {"v": 1}, np.dtype(np.uint64), parts=4, prefix_bits=16)
    track = store.add_track("ch", "a.mp4", chunk_keys(ref), np.arange(ref.size), hop_seconds=0.2)
    picks = rng.choice(ref.size, 130, replace=False)
    dists = np.repeat(np.arange(13), 10)  # 0..12 bits away
    query = np.concatenate(
        [_flip(ref[p : p + 1], d, rng) for p, d in zip(picks, dists, strict=True)]
    )
    near = near_hashes(store, query, max_distance=12)
    assert np.all(near.track == track.id)
    # Exactly the pairs brute force finds within 12 bits, among those MIH can reach; every
    # pair within the guaranteed radius (7 bits) is there.
    all_d = hamming(query[:, None], ref[None, :])
    found = set(zip(near.query_pos.tolist(), near.frame.tolist(), strict=True))
    assert all(
        all_d[q, f] == d for q, f, d in zip(near.query_pos, near.frame, near.distance, strict=True)
    )
    assert all(d <= 12 for d in near.distance)
    guaranteed = {(q, f) for q, f in zip(*np.nonzero(all_d <= 7), strict=True)}
    assert guaranteed <= found
    assert len(found) == near.query_pos.size  # each pair once, whichever chunks found it
    # Beyond the guarantee most near pairs are still found (one chunk within one bit).
    far = {(q, f) for q, f in zip(*np.nonzero((all_d > 7) & (all_d <= 12)), strict=True)}
    assert len(far & found) >= 0.5 * len(far)


def test_head_postings_are_searched_too(tmp_path):
    store = EmbeddedStore(tmp_path, {"v": 1}, np.dtype(np.uint64), parts=4, prefix_bits=16)
    live = store.add_track(
        "ch", "feed", np.empty((4, 0), np.uint64), np.empty(0), hop_seconds=0.2, kind="live"
    )
    h = np.array([0xFFFF_0000_1234_8765], np.uint64)
    store.append(live.id, chunk_keys(h), np.array([42]))
    near = near_hashes(store, h ^ np.uint64(0b101), max_distance=4)
    assert near.frame.tolist() == [42] and near.distance.tolist() == [2]
    store.flush()
    assert near_hashes(store, h, max_distance=0).frame.tolist() == [42]
