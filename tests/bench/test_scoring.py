"""The benchmark's scoring: recall, offsets and false matches are counted as documented."""

from pathlib import Path

import numpy as np
import pytest

from bench.corpus import SR, Query
from bench.run import background_keys, effective_bits, score, self_similarity
from fingerprinting.params import AudioParams


@pytest.fixture(scope="module")
def looped():
    rng = np.random.default_rng(0)
    loop = rng.standard_normal(4 * SR).astype(np.float32)
    return np.concatenate([loop, rng.standard_normal(6 * SR).astype(np.float32), loop, loop])


def test_self_similarity_finds_repeats_within_a_frame(looped):
    assert self_similarity(looped, 0.0, 10.0, 3.0) > 0.99
    assert self_similarity(looped, 0.0, 10.02, 3.0) > 0.99  # 20 ms off: still found
    assert self_similarity(looped, 0.0, 5.0, 3.0) < 0.1
    assert self_similarity(looped, 0.0, 100.0, 3.0) == 0.0  # out of range


def test_score_counts_hits_offsets_and_false_matches(looped):
    q = lambda t, ch, off: Query(Path("q"), t, 3.0, ch, off)  # noqa: E731
    queries = [
        q("x", "a", 0.0),
        q("x", "a", 0.0),
        q("x", "a", 0.0),
        q("x", "a", 0.0),
        q("negative", None, None),
        q("negative", None, None),
    ]
    rows = [
        {"channel": "a", "offset": 0.3},  # exact
        {"channel": "a", "offset": 10.0},  # the loop comes back there
        {"channel": "a", "offset": 5.0},  # wrong offset, right channel
        {"channel": "b", "offset": 0.0},  # wrong channel: false match
        {"channel": None, "offset": None},
        {"channel": "a", "offset": 1.0},  # a negative matched: false match
    ]
    cells = score(queries, rows, {"a": looped})
    x = cells["x/3s"]
    assert (x["n"], x["hit"], x["false"]) == (4, 3, 1)
    assert (x["offset_exact"], x["offset_repeat"], x["offset_wrong"]) == (1, 1, 1)
    assert x["recall"] == 0.75
    assert x["missed"] == {"a": 1}  # the wrong channel named; the wrong offset is a hit
    assert cells["negative/3s"]["missed"] == {}
    assert cells["negative/3s"]["false"] == 1


def test_background_keys_spread_like_a_big_index():
    rng = np.random.default_rng(1)
    real = rng.integers(0, 2**27, 3000).astype(np.uint32)
    real = np.concatenate([real, np.repeat(real[:10], 50)])  # some popular hashes
    bg = background_keys(real, 200_000, AudioParams(), np.random.default_rng(2))
    assert bg.dtype == np.uint32 and int(bg.max()) < 2**27
    assert effective_bits(bg) > effective_bits(real) + 3
    assert np.isin(bg, real).mean() < 0.2  # mostly new values, not copies
