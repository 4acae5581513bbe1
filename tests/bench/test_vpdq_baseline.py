"""vPDQ baseline: the numpy port of vPDQ's matching rule, and (slow) the real vpdq venv.

The matching tests are pure numpy on synthetic features. The slow tests need the vPDQ
venv that ``bench.baselines.vpdq_install.ensure_installed()`` builds; they skip when it
is absent and never install it themselves.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from bench.baselines import vpdq as vb
from bench.baselines import vpdq_match
from bench.baselines.vpdq_install import (
    VPDQ_REQUIREMENT,
    ensure_installed,
    installed_version,
    venv_python,
)

MEDIA = Path(__file__).resolve().parents[2].parent / "shared" / "media" / "video"


# ----------------------------------------------------------------------------- helpers


def random_hashes(rng, n):
    return ["".join(f"{b:02x}" for b in rng.integers(0, 256, 32, dtype=np.uint8)) for _ in range(n)]


def flip_bits(rng, hex_hash, n_bits):
    value = int(hex_hash, 16)
    for bit in rng.choice(256, size=n_bits, replace=False):
        value ^= 1 << int(bit)
    return f"{value:064x}"


def features(hashes, times=None, quality=100):
    times = range(len(hashes)) if times is None else times
    quals = [quality] * len(hashes) if isinstance(quality, int) else quality
    return [
        {"frame": i, "time": float(t), "quality": int(q), "hash": h}
        for i, (h, t, q) in enumerate(zip(hashes, times, quals, strict=True))
    ]


def brute_reference(query, compared, distance=31, quality=50):
    """The pseudocode of ThreatExchange's vpdq/README.md, on Python ints."""

    def prep(feats):
        seen, out = set(), []
        for f in feats:  # dedupe (first occurrence) then quality filter
            if f["hash"] not in seen:
                seen.add(f["hash"])
                out.append(f)
        return [int(f["hash"], 16) for f in out if f["quality"] >= quality]

    q, c = prep(query), prep(compared)
    if not q or not c:
        return 0.0, 0.0
    q_hit = sum(any((a ^ b).bit_count() <= distance for b in c) for a in q)
    c_hit = sum(any((a ^ b).bit_count() <= distance for a in q) for b in c)
    return q_hit * 100 / len(q), c_hit * 100 / len(c)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ----------------------------------------------------------------------------- arrays


def test_hashes_to_words_round_trip(rng):
    hexes = random_hashes(rng, 7)
    words = vb.hashes_to_words(hexes)
    assert words.shape == (7, 4) and words.dtype == np.uint64
    assert [w.astype(">u8").tobytes().hex() for w in words] == hexes
    assert vb.hashes_to_words([]).shape == (0, 4)
    with pytest.raises(ValueError):
        vb.hashes_to_words(["abc"])


def test_hamming_matrix_equals_python_popcount(rng, monkeypatch):
    a, b = random_hashes(rng, 5), random_hashes(rng, 37)
    b[3] = flip_bits(rng, a[1], 17)
    want = np.array([[(int(x, 16) ^ int(y, 16)).bit_count() for y in b] for x in a])
    monkeypatch.setattr(vpdq_match, "_BLOCK_ELEMENTS", 64)  # force several column blocks
    got = vb.hamming_matrix(vb.hashes_to_words(a), vb.hashes_to_words(b))
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, want)
    assert got[1, 3] == 17


# ----------------------------------------------------------------------------- matching


def test_identical_video_matches_fully(rng):
    ref = features(random_hashes(rng, 40))
    m = vb.match(ref, {"ref": ref})
    assert m.is_match and m.matched_id == "ref"
    assert m.query_match_percent == 100.0 and m.compared_match_percent == 100.0
    assert m.offset_seconds == 0.0
    assert m.matched_query_frames == m.query_frames == 40


def test_shifted_noisy_clip_found_in_right_reference_with_offset(rng):
    refs = {f"ch{i}": features(random_hashes(rng, 120)) for i in range(5)}
    source = refs["ch3"]
    # A 10 s restream starting 40 s into ch3, hashed at 1 s, each frame up to 20 bits off.
    clip = [flip_bits(rng, f["hash"], int(rng.integers(0, 21))) for f in source[40:50]]
    query = features(clip, times=np.arange(10) + 0.0)
    m = vb.match(query, refs)
    assert m.reference_id == "ch3" and m.is_match
    assert m.query_match_percent == 100.0
    assert m.compared_match_percent == pytest.approx(10 * 100 / 120)
    assert m.offset_seconds == pytest.approx(40.0)
    assert all(m.scores[k] == (0.0, 0.0) for k in refs if k != "ch3")


def test_offset_is_median_over_matched_frames(rng):
    ref = features(random_hashes(rng, 60), times=np.arange(60) * 0.5)  # 2 hashes per second
    hashes = [ref[i]["hash"] for i in (20, 22, 24, 26, 28)]
    hashes[4] = ref[2]["hash"]  # one frame repeated from elsewhere: an outlier pair
    query = features(hashes, times=[0, 1, 2, 3, 4])
    m = vb.match(query, {"r": ref})
    # pairs give 10-0, 11-1, 12-2, 13-3, 1-4 -> median 10
    assert m.offset_seconds == pytest.approx(10.0)


def test_unrelated_random_hashes_do_not_match(rng):
    refs = {f"r{i}": features(random_hashes(rng, 100)) for i in range(4)}
    m = vb.match(features(random_hashes(rng, 10)), refs)
    assert not m.is_match and m.matched_id is None
    assert m.reference_id is None and m.offset_seconds is None
    assert m.query_match_percent == 0.0 and m.matched_query_frames == 0
    assert m.query_frames == 10


def test_distance_threshold_is_inclusive_31(rng):
    base = random_hashes(rng, 10)
    ref = features(base)
    at = vb.match(features([flip_bits(rng, h, 31) for h in base]), {"r": ref})
    over = vb.match(features([flip_bits(rng, h, 32) for h in base]), {"r": ref})
    assert at.is_match and at.query_match_percent == 100.0
    assert not over.is_match and over.query_match_percent == 0.0


def test_low_quality_frames_are_ignored(rng):
    good = random_hashes(rng, 5)
    ref = features(good + random_hashes(rng, 5))
    # 5 frames of the reference (quality 100) + 5 unrelated frames of quality 10.
    query = features(good + random_hashes(rng, 5), quality=[100] * 5 + [10] * 5)
    m = vb.match(query, {"r": ref})
    assert m.query_frames == 5 and m.query_match_percent == 100.0 and m.is_match
    # Threshold is >= 50: quality 50 counts, 49 does not.
    query_50 = features(good + random_hashes(rng, 5), quality=[100] * 5 + [50] * 5)
    half = vb.match(query_50, {"r": ref})
    assert half.query_frames == 10 and half.query_match_percent == 50.0 and not half.is_match
    # Low-quality reference frames leave the compared-match denominator.
    ref_q = features(good + random_hashes(rng, 5), quality=[100] * 5 + [49] * 5)
    assert vb.match(features(good), {"r": ref_q}).compared_match_percent == 100.0


def test_matching_frames_of_low_quality_cannot_match(rng):
    good = random_hashes(rng, 6)
    m = vb.match(features(good, quality=30), {"r": features(good)})
    assert m.query_frames == 0 and not m.is_match and m.reference_id is None


def test_query_match_threshold_is_80_percent(rng):
    base = random_hashes(rng, 10)
    ref = {"r": features(base)}
    eight = vb.match(features(base[:8] + random_hashes(rng, 2)), ref)
    seven = vb.match(features(base[:7] + random_hashes(rng, 3)), ref)
    assert eight.query_match_percent == 80.0 and eight.is_match
    assert seven.query_match_percent == 70.0 and not seven.is_match
    assert seven.reference_id == "r"  # best candidate is still reported
    strict = vb.match(features(base[:8] + random_hashes(rng, 2)), ref, compared_match_threshold=90)
    assert not strict.is_match


def test_duplicate_hashes_count_once(rng):
    base = random_hashes(rng, 4)
    query = features([base[0]] * 7 + base[1:2] + random_hashes(rng, 2))
    m = vb.match(query, {"r": features(base)})
    # unique query frames: base0, base1, two unrelated -> 2 of 4
    assert m.query_frames == 4 and m.query_match_percent == 50.0
    assert m.compared_match_percent == 50.0


def test_best_reference_prefers_rule_then_query_then_compared(rng):
    base = random_hashes(rng, 10)
    refs = {
        "partial": features(base[:5] + random_hashes(rng, 5)),
        "long": features(base + random_hashes(rng, 90)),
        "exact": features(base),
    }
    m = vb.match(features(base), refs)
    assert m.reference_id == "exact" and m.compared_match_percent == 100.0
    assert m.scores["long"] == (100.0, 10.0) and m.scores["partial"] == (50.0, 50.0)


def test_agrees_with_readme_pseudocode_on_random_mixtures(rng):
    pool = random_hashes(rng, 30)
    for _ in range(25):

        def pick(n):
            out = []
            for _ in range(n):
                h = pool[int(rng.integers(len(pool)))]
                out.append(flip_bits(rng, h, int(rng.integers(0, 45))))
            return out

        q = features(pick(12), quality=list(rng.integers(30, 101, 12)))
        c = features(pick(40), quality=list(rng.integers(30, 101, 40)))
        m = vb.match(q, {"c": c})
        want_q, want_c = brute_reference(q, c)
        assert m.scores["c"] == pytest.approx((want_q, want_c))


def test_prepared_references_match_many_and_edge_cases(rng):
    refs = {
        "empty": [],
        "a": features(random_hashes(rng, 30)),
        "b": features(random_hashes(rng, 30)),
    }
    index = vb.prepare_references(refs)
    assert index.ids == ("empty", "a", "b") and list(index.counts) == [0, 30, 30]
    queries = {"qa": refs["a"][5:12], "qb": refs["b"][20:25], "none": []}
    out = vb.match_many(queries, index)
    assert out["qa"].matched_id == "a" and out["qb"].matched_id == "b"
    assert out["qa"].offset_seconds == 0.0  # times were kept, so the offset is 0
    assert out["none"].matched_id is None and out["none"].query_frames == 0
    assert vb.match_many(queries, refs)["qb"] == out["qb"]
    assert vb.match(refs["a"], {}).reference_id is None
    arrays = vb.FeatureArrays.from_features(refs["a"])
    assert vb.match(arrays, index).matched_id == "a"


def test_hundreds_of_queries_run_in_seconds(rng):
    n_refs, ref_len = 40, 140
    words = rng.integers(0, 2**63, size=(n_refs * ref_len, 4), dtype=np.int64).astype(np.uint64)
    times = np.tile(np.arange(ref_len, dtype=np.float64), n_refs)
    q100 = np.full(ref_len, 100, dtype=np.int16)
    refs = {
        f"r{i}": vb.FeatureArrays(words[i * ref_len : (i + 1) * ref_len], times[:ref_len], q100)
        for i in range(n_refs)
    }
    index = vb.prepare_references(refs)
    queries = {}
    for k in range(300):
        r, start = k % n_refs, int(rng.integers(0, ref_len - 10))
        w = words[r * ref_len + start : r * ref_len + start + 10].copy()
        w[:, 0] ^= np.uint64(0xFF)  # 8 bits of noise per frame
        queries[f"q{k}"] = vb.FeatureArrays(w, np.arange(10.0), np.full(10, 90, np.int16))
    t0 = time.perf_counter()
    out = vb.match_many(queries, index)
    elapsed = time.perf_counter() - t0
    assert all(out[f"q{k}"].matched_id == f"r{k % n_refs}" for k in range(300))
    assert elapsed < 15.0, f"300 queries x 40 references took {elapsed:.1f} s"


# ----------------------------------------------------------------------------- real vpdq


def _require_vpdq_venv() -> Path:
    python = venv_python()
    version = installed_version(python)
    pinned = VPDQ_REQUIREMENT.split("==", 1)[1]
    if version != pinned:
        pytest.skip(
            f"vPDQ venv not installed at {python} (found {version!r}, want {pinned}); "
            "build it with: python -c 'from bench.baselines.vpdq_install import "
            "ensure_installed; ensure_installed()'"
        )
    return python


def _write_scene_video(path: Path, seconds: range, fps: int = 10) -> Path:
    """One random 8x8-pixel block texture per second, sliding 1 pixel per frame.

    Textured frames on purpose: PDQ bits of smooth images are set by near-zero DCT
    coefficients, so two encodings of one smooth picture can be 70 bits apart.
    """
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.bit_rate = 160, 120, 2_000_000
        for sec in seconds:
            blocks = np.random.default_rng(sec).integers(0, 256, (15, 20), dtype=np.uint8)
            texture = np.kron(blocks, np.ones((8, 8), dtype=np.uint8))
            for k in range(fps):
                grey = np.roll(texture, k, axis=1)
                rgb = np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.mark.slow
def test_installed_vpdq_hashes_and_matches_synthetic_videos(tmp_path):
    python = _require_vpdq_venv()
    t0 = time.perf_counter()
    assert ensure_installed() == python  # already installed: the fast, idempotent path
    assert time.perf_counter() - t0 < 10.0
    ref = _write_scene_video(tmp_path / "ref.mp4", range(0, 12))
    clip = _write_scene_video(tmp_path / "clip.mp4", range(5, 9))
    other = _write_scene_video(tmp_path / "other.mp4", range(100, 110))
    feats, stats = vb.hash_videos([ref, clip, other], 1.0, venv_python=python, cpus=[0])
    assert len(feats[str(ref)]) == 12 and len(feats[str(clip)]) == 4
    first = feats[str(ref)][1]
    assert first["frame"] == 10 and first["time"] == pytest.approx(1.0)
    assert len(first["hash"]) == 64 and 0 <= first["quality"] <= 100
    assert stats["frames_hashed"] == 26 and stats["cpus"] == [0]
    assert stats["vpdq_version"] == VPDQ_REQUIREMENT.split("==", 1)[1]
    assert stats["hash_cpu_seconds"] > 0 and stats["frames_hashed_per_cpu_second"] > 0
    m = vb.match(feats[str(clip)], {"ref": feats[str(ref)], "other": feats[str(other)]})
    assert m.matched_id == "ref" and m.query_match_percent == 100.0
    assert m.offset_seconds == pytest.approx(5.0)
    assert m.scores["other"][0] < 80.0


@pytest.mark.slow
def test_installed_vpdq_reports_bad_files(tmp_path):
    python = _require_vpdq_venv()
    bad = tmp_path / "not-a-video.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(RuntimeError, match="could not hash"):
        vb.hash_videos([bad], 1.0, venv_python=python)
    feats, stats = vb.hash_videos([bad], 1.0, venv_python=python, check=False)
    assert feats[str(bad)] == [] and str(bad) in stats["errors"]
    with pytest.raises(FileNotFoundError):
        vb.hash_videos([tmp_path / "missing.mp4"], 1.0, venv_python=python)


@pytest.mark.slow
@pytest.mark.media
def test_installed_vpdq_hashes_chaplin():
    python = _require_vpdq_venv()
    video = MEDIA / "chaplin.mp4"
    if not video.is_file():
        pytest.skip(f"{video} is absent")
    feats, stats = vb.hash_videos([video], 1.0, venv_python=python, cpus=[0])
    got = feats[str(video)]
    assert [f["time"] for f in got] == pytest.approx(list(range(10)))  # 9.64 s at 25 fps
    assert [f["frame"] for f in got] == list(range(0, 250, 25))
    m = vb.match(got[3:8], {"chaplin": got})
    assert m.matched_id == "chaplin" and m.offset_seconds == 0.0
