"""Scoring of the video benchmark: recall, false matches, exact / repeat / wrong offsets."""

import numpy as np

from bench.video import _random_masks, repeats_itself, score
from fingerprinting.framehash import hamming
from fingerprinting.types import VideoPrint


def _looped_reference() -> VideoPrint:
    """60 s at 5 fps whose pictures repeat every 20 s."""
    rng = np.random.default_rng(0)
    loop = rng.integers(0, 2**63, 100, dtype=np.uint64)
    return VideoPrint(np.tile(loop, 3), np.arange(300, dtype=np.uint32), 0.2, 60.0)


def test_repeats_itself_sees_loops_not_other_places():
    fp = _looped_reference()
    assert repeats_itself(fp, 5.0, 25.0, 10.0, 6)
    assert not repeats_itself(fp, 5.0, 12.0, 10.0, 6)


def test_score_counts_each_outcome():
    refs = {"ch": _looped_reference()}
    rows = [
        {
            "transform": "t",
            "seconds": 10.0,
            "channel": "ch",
            "start": 5.0,
            "vigie": {"channel": "ch", "offset": 5.3},
        },  # exact
        {
            "transform": "t",
            "seconds": 10.0,
            "channel": "ch",
            "start": 5.0,
            "vigie": {"channel": "ch", "offset": 25.0},
        },  # repeat
        {
            "transform": "t",
            "seconds": 10.0,
            "channel": "ch",
            "start": 5.0,
            "vigie": {"channel": "ch", "offset": 12.0},
        },  # wrong place
        {
            "transform": "t",
            "seconds": 10.0,
            "channel": "ch",
            "start": 5.0,
            "vigie": {"channel": None, "offset": None},
        },  # missed
        {
            "transform": "t",
            "seconds": 10.0,
            "channel": "ch",
            "start": 5.0,
            "vigie": {"channel": "other", "offset": 1.0},
        },  # wrong channel
        {
            "transform": "negative",
            "seconds": 10.0,
            "channel": None,
            "start": None,
            "vigie": {"channel": "ch", "offset": 3.0},
        },  # false match
    ]
    cells = score(rows, "vigie", refs)
    t = cells["t/10s"]
    assert (t["n"], t["found"], t["exact"], t["repeat"], t["false"]) == (5, 3, 1, 1, 1)
    assert t["recall"] == 3 / 5
    assert cells["negative/10s"]["false"] == 1


def test_background_masks_flip_exactly_the_bits_asked():
    rng = np.random.default_rng(1)
    for bits in (0, 1, 8, 27):
        masks = _random_masks(50, bits, rng)
        assert np.all(hamming(masks, np.uint64(0)) == bits)
