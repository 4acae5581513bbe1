"""True pairs and impostor pools of the frame-hash comparison: the references decoded and
hashed, the query segments cut, transformed, encoded, decoded back as Vigie decodes a
suspect sample, paired with their reference frames, and scored against the impostors.

Part of :mod:`bench.video_hashes`.
"""

from __future__ import annotations

import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fingerprinting import video
from fingerprinting.decode import decode_frames
from fingerprinting.params import VideoParams
from fingerprinting.video import WHOLE, query_probes

from ..video_dataset import VIDEO_TRANSFORMS, Clip, read_clip, write_clip
from . import (
    BITS,
    DENSE_FPS,
    MAX_PAIR_GAP,
    MODES,
    NEGATIVE_FPS,
    PERSON,
    PERSON_SPLIT,
    POOL_STRIDE,
    REFERENCES,
    SEGMENT_SECONDS,
    SHARED_VIDEO,
)
from .hashing import (
    Hashed,
    best_over_probes,
    hash_functions,
    impostor_histograms,
    normalise_and_hash,
    pair_distances,
)


def nearest_index(grid: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Index of the element of sorted ``grid`` (s) nearest to each time of ``t`` (s)."""
    grid, t = np.asarray(grid, np.float64), np.asarray(t, np.float64)
    if grid.size < 2:
        return np.zeros(t.shape, np.int64)
    i = np.clip(np.searchsorted(grid, t), 1, grid.size - 1)
    return np.where(t - grid[i - 1] <= grid[i] - t, i - 1, i).astype(np.int64)


# --------------------------------------------------------------------------- corpus


def _dense_reference(path: Path, fns: dict, p: VideoParams) -> Hashed:
    frames = decode_frames(str(path), DENSE_FPS, width=p.frame_width)
    return normalise_and_hash(frames, [WHOLE], p.bar_window, fns, p)


def impostor_pool(
    refs: dict[str, Hashed], fns: dict, p: VideoParams
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, int]]:
    """Impostor hashes ``{hash: (m, words)}``, their source (index of the reference in
    ``refs``, -1 for negatives) and the number of frames per source."""
    parts: list[tuple[int, str, Hashed]] = []
    for k, (name, h) in enumerate(refs.items()):
        parts.append((k, name, h.take(np.arange(0, len(h.times), POOL_STRIDE))))
    person = SHARED_VIDEO / PERSON
    negs = [person] if person.exists() else []
    negs += sorted((SHARED_VIDEO / "negatives").glob("*.mkv"))
    for path in negs:
        limit = PERSON_SPLIT if path == person else None
        frames = decode_frames(str(path), NEGATIVE_FPS, width=p.frame_width, max_seconds=limit)
        parts.append((-1, path.stem, normalise_and_hash(frames, [WHOLE], p.bar_window, fns, p)))
    hashes = {k: np.concatenate([h.hashes[k][h.valid[:, 0], 0] for _, _, h in parts]) for k in fns}
    source = np.concatenate([np.full(int(h.valid[:, 0].sum()), s) for s, _, h in parts])
    counts = {name: int(h.valid[:, 0].sum()) for _, name, h in parts}
    return hashes, source, counts


def segments(duration: float, quick: bool, rng: np.random.Generator) -> list[tuple[float, float]]:
    """``(start, length)`` in seconds of the query segments cut from a reference of
    ``duration`` seconds: one of at most :data:`SEGMENT_SECONDS` at a random start
    (``quick``), or back-to-back segments of equal length, at most :data:`SEGMENT_SECONDS`
    each, covering all but the last 0.5 s."""
    usable = max(duration - 0.5, 0.1)
    if quick:
        length = min(SEGMENT_SECONDS, usable)
        return [(float(rng.uniform(0.0, max(0.0, usable - length))), length)]
    count = int(np.ceil(usable / SEGMENT_SECONDS - 1e-9))
    length = usable / count
    return [(k * length, length) for k in range(count)]


# --------------------------------------------------------------------------- measurement


@dataclass
class Tally:
    """True distances and impostor histograms accumulated for one transformation."""

    true: dict[str, dict[str, list[np.ndarray]]]
    best_probe: dict[str, list[np.ndarray]]
    imp: dict[str, dict[str, np.ndarray]]
    clips: list[np.ndarray]  # per query clip: the segment index of each true pair
    refs: list[np.ndarray]
    probes_per_query: list[int]
    frames_decoded: int = 0

    @classmethod
    def empty(cls, names: list[str]) -> Tally:
        return cls(
            {k: {m: [] for m in MODES} for k in names},
            {k: [] for k in names},
            {k: {m: np.zeros(BITS[k] + 2, np.int64) for m in MODES} for k in names},
            [],
            [],
            [],
        )


def measure_query(
    path: Path,
    start: float,
    ref: Hashed,
    ref_index: int,
    pool: dict[str, np.ndarray],
    pool_source: np.ndarray,
    fns: dict,
    tally: Tally,
    group: int,
    p: VideoParams,
) -> None:
    """Decode one query file as Vigie does and add its true and impostor distances."""
    frames = decode_frames(str(path), p.query_fps, width=p.frame_width)
    tally.frames_decoded += len(frames)
    q = normalise_and_hash(frames, None, None, fns, p)
    tally.probes_per_query.append(len(q.probes))
    t = q.times + start
    j = nearest_index(ref.times, t)
    keep = q.valid[:, 0] & ref.valid[j, 0] & (np.abs(ref.times[j] - t) <= MAX_PAIR_GAP)
    q, j = q.take(np.flatnonzero(keep)), j[keep]
    tally.clips.append(np.full(j.size, group))
    tally.refs.append(np.full(j.size, ref_index))
    others = pool_source != ref_index
    for k in fns:
        bits = BITS[k]
        d = pair_distances(q.hashes[k], ref.hashes[k][j])  # (n, P): WHOLE reference hash
        best = best_over_probes(d, q.valid, bits)
        masked = np.where(q.valid, d, np.uint16(bits + 1))
        tally.true[k]["whole"].append(d[:, 0])
        tally.true[k]["best"].append(best)
        tally.best_probe[k].append(np.asarray(q.probes)[np.argmin(masked, axis=1)])
        hists = impostor_histograms(q.hashes[k], q.valid, pool[k][others], bits)
        for m in MODES:
            tally.imp[k][m] += hists[m]


def run_measurement(
    quick: bool, work: Path, p: VideoParams, only: list[str] | None = None
) -> tuple[dict, dict]:
    """Encode, decode and hash every query; returns (per-transform tallies, corpus facts).

    ``only`` restricts the transformations (names of ``VIDEO_TRANSFORMS``)."""
    transforms = {k: v for k, v in VIDEO_TRANSFORMS.items() if only is None or k in only}
    if not transforms:
        raise SystemExit(f"no transformation among {only}; known: {list(VIDEO_TRANSFORMS)}")
    fns, pdq_note = hash_functions()
    ref_paths = [SHARED_VIDEO / n for n in REFERENCES if (SHARED_VIDEO / n).exists()]
    if len(ref_paths) < 2:
        raise SystemExit(f"need at least two reference clips in {SHARED_VIDEO}")
    t0 = time.perf_counter()
    refs = {r.stem: _dense_reference(r, fns, p) for r in ref_paths}
    pool, pool_source, pool_counts = impostor_pool(refs, fns, p)
    person = SHARED_VIDEO / PERSON
    other = (
        read_clip(person, PERSON_SPLIT + 1.0, 20.0)
        if person.exists()
        else Clip(np.zeros((1, 360, 640, 3), np.uint8) + 128, 25.0)
    )
    print(f"references and impostor pool hashed in {time.perf_counter() - t0:.1f} s", flush=True)
    tallies = {name: Tally.empty(list(fns)) for name in transforms}
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    seg_list = []
    with tempfile.TemporaryDirectory(dir=work, prefix="queries-") as tmp:
        for ri, (stem, ref) in enumerate(refs.items()):
            duration = float(ref.times[-1]) + 1.0 / DENSE_FPS
            for si, (start, length) in enumerate(segments(duration, quick, rng)):
                cut = read_clip(ref_paths[ri], start, length)
                seg_list.append({"reference": stem, "start": cut.start_seconds, "seconds": length})
                for name, tf in transforms.items():
                    seed = [si, ri, zlib.crc32(name.encode())]
                    clip2 = tf(cut, np.random.default_rng(seed), other)
                    path = Path(tmp) / f"{name}-{stem}-{si}.mp4"
                    write_clip(path, clip2, bitrate=tf.bitrate, gop=round(2 * clip2.fps))
                    measure_query(
                        path,
                        cut.start_seconds,
                        ref,
                        ri,
                        pool,
                        pool_source,
                        fns,
                        tallies[name],
                        len(seg_list) - 1,
                        p,
                    )
                    path.unlink()
                print(
                    f"{stem} segment {si} ({cut.start_seconds:.1f} s): "
                    f"{time.perf_counter() - t0:.0f} s elapsed",
                    flush=True,
                )
                del cut
    facts = {
        "references": {s: int(h.valid[:, 0].sum()) for s, h in refs.items()},
        "impostor_pool_frames": pool_counts,
        "impostor_pool_total": int(pool_source.size),
        "segments": seg_list,
        "query_probes": [pr.name for pr in query_probes(p)],
        "pip_windows_found": "pip_windows" in dir(video),
        "hashes": list(fns),
        "pdq_note": pdq_note,
        "measure_seconds": time.perf_counter() - t0,
    }
    return tallies, facts
