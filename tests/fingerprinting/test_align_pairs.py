"""The voting hits kept for the alignment plot (``Alignment.pairs``)."""

import numpy as np

from fingerprinting.align import MAX_PAIRS, vote


def _hits(rng, track, offset, speed, voters, first_voter=0, jitter=0.45):
    """One voter per 1.5 query frames, each hitting the reference on the line (to within
    ``jitter`` frames, the rounding of peak times)."""
    v = np.arange(first_voter, first_voter + voters)
    t_q = 1.5 * (v - first_voter) + rng.uniform(0, 0.2, v.size)
    t_ref = np.round(offset + speed * t_q + rng.uniform(-jitter, jitter, v.size))
    return v, t_q, np.full(v.size, track), t_ref


def test_pairs_are_the_hits_on_the_winning_line_and_nothing_else():
    rng = np.random.default_rng(5)
    line = _hits(rng, 7, 5000.0, 1.04, 200)
    weaker = _hits(rng, 7, 9000.0, 1.0, 60, first_voter=200)  # same track, another offset
    other = _hits(rng, 3, 100.0, 1.0, 150, first_voter=300)  # another track's line
    # Chance hits of the same voters all over the track, never within 3 frames of the line.
    nv = rng.integers(0, 200, 3000)
    nq = line[1][nv]
    nr = np.round(rng.uniform(4000, 6000, nv.size))
    far = np.abs(nr - (5000.0 + 1.04 * nq)) > 3
    noise = (nv[far], nq[far], np.full(far.sum(), 7), nr[far])
    v, q, t, r = (np.concatenate(x) for x in zip(line, weaker, other, noise, strict=True))
    order = rng.permutation(v.size)
    found = vote(v[order], q[order], t[order], r[order], searched_frames=1e5, top=3)
    best = found[0]
    assert best.track == 7 and best.votes == 200
    assert abs(best.speed - 1.04) < 0.003 and abs(best.offset_frames - 5000) <= 1
    pq, pr = best.pairs
    want = sorted(zip(line[1].tolist(), line[3].tolist(), strict=True))
    assert sorted(zip(pq.tolist(), pr.tolist(), strict=True)) == want
    assert np.all(np.diff(pq) >= 0)  # sorted by query time
    # Every pair lies on the returned line within the vote's window (+-1 frame, rounded).
    assert np.abs(pr - (best.offset_frames + best.speed * pq)).max() <= 1.5
    # The other track's alignment carries its own line only.
    third = next(a for a in found if a.track == 3)
    assert sorted(third.pairs[1].tolist()) == sorted(other[3].tolist())


def test_pairs_are_distinct_and_evenly_subsampled():
    rng = np.random.default_rng(6)
    v, q, t, r = _hits(rng, 1, 300.0, 1.0, 6000, jitter=0.0)
    # Each voter hits twice at the same point (two probes of one triplet): one point.
    v, q, t, r = (np.concatenate([x, x]) for x in (v, q, t, r))
    best = vote(v, q, t, r, searched_frames=1e6, coarse_frames=10_000)[0]
    assert best.votes == 6000
    pq, pr = best.pairs
    assert pq.size == MAX_PAIRS
    assert pq[0] == q.min() and pq[-1] == q.max()  # the whole line, ends included
    gaps = np.diff(pq)
    assert gaps.min() > 0 and gaps.max() < 2.5 * np.median(gaps)  # evenly spread
    small = vote(v, q, t, r, searched_frames=1e6, coarse_frames=10_000, max_pairs=50)[0]
    assert small.pairs[0].size == 50
    assert vote(v, q, t, r, searched_frames=1e6, max_pairs=0)[0].pairs is None


def test_pairs_do_not_change_equality():
    rng = np.random.default_rng(7)
    v, q, t, r = _hits(rng, 2, 800.0, 1.0, 100)
    a = vote(v, q, t, r, searched_frames=1e5)[0]
    b = vote(v, q, t, r, searched_frames=1e5, max_pairs=0)[0]
    assert a == b and a.pairs is not None and b.pairs is None
