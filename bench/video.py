"""Video benchmark: recall and false matches per pirate transformation, audio removed.

``python -m bench.video [--quick] [--no-baseline] [--write-calibration]`` writes
``bench/results/video.json`` and ``video.md``. Vigie and vPDQ read the same query files.

* References: the shared clips (Big Buck Bunny, Chaplin, two Intel clips), plus the clips
  ``../shared/media/get-more.sh`` fetches into ``media-cache/video`` when present.
* Negatives, never indexed: the Intel person clip (similar framing to the Intel references)
  and the 20 sign-language clips joined into one stream, split in time into a calibration
  half and a test half.
* The index is padded to 100 channel-hours of chance postings made from runs of real frame
  hashes of the calibration negatives, each run moved to another picture as far as real
  different pictures are from each other (see :func:`add_background`), so chance hits are
  those of a big index.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import time
import zlib
from collections import defaultdict
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from fingerprinting import video
from fingerprinting.align import NullCalibration
from fingerprinting.decode import decode_frames
from fingerprinting.framehash import hamming
from fingerprinting.params import VideoParams
from reference_index.batch import fingerprint_file
from reference_index.calibrate import measure_null_scores
from reference_index.index import Index
from reference_index.mih import chunk_keys
from service.detect import best_per_channel

from .corpus import ROOT
from .video_dataset import VIDEO_TRANSFORMS, Clip, read_clip, write_clip

RESULTS = ROOT / "bench" / "results"
SHARED_VIDEO = ROOT.parent / "shared" / "media" / "video"
OFFSET_TOLERANCE = 0.5  # seconds
MIN_CONFIDENCE = 0.999
FRAME_BITS = 1  # background: bits of frame-to-frame jitter
REFERENCES = (
    "big_buck_bunny_0_30.webm",
    "chaplin.mp4",
    "bottle-detection.mp4",
    "car-detection.mp4",
)


def corpus(work: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """References, calibration negatives and test negatives (files)."""
    refs = [SHARED_VIDEO / n for n in REFERENCES if (SHARED_VIDEO / n).exists()]
    refs += sorted((ROOT / "media-cache" / "video").glob("*.mp4"))
    if not refs:
        raise SystemExit(f"no reference video in {SHARED_VIDEO}")
    person = SHARED_VIDEO / "one-by-one-person-detection.mp4"
    signs = sorted((SHARED_VIDEO / "negatives").glob("*.mkv"))
    joined = work / "signs.mp4"
    if signs and not joined.exists():
        clips = [read_clip(p, 0.0, None, max_width=640) for p in signs]
        frames = np.concatenate([_fit(c.frames, clips[0].frames.shape) for c in clips])
        write_clip(joined, Clip(frames, clips[0].fps))
    halves = []
    for src in [p for p in (person, joined) if p.exists()]:
        whole = read_clip(src, 0.0, None, max_width=640)
        mid = len(whole.frames) // 2
        for k, part in enumerate((whole.frames[:mid], whole.frames[mid:])):
            path = work / f"neg-{src.stem}-{k}.mp4"
            if not path.exists():
                write_clip(path, Clip(part, whole.fps))
            halves.append((k, path))
    return refs, [p for k, p in halves if k == 0], [p for k, p in halves if k == 1]


def _fit(frames: np.ndarray, shape: tuple) -> np.ndarray:
    h, w = shape[1:3]
    if frames.shape[1:3] == (h, w):
        return frames
    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])


def add_background(
    index: Index,
    pool: np.ndarray,
    hours: float,
    rng: np.random.Generator,
    apart: np.ndarray,
) -> None:
    """Chance reference tracks up to ``hours``: runs of 5-50 consecutive pool hashes (real
    footage's temporal structure: shots, static scenes) in random order. Each run is XORed
    with its own random mask, of as many bits as a distance drawn from ``apart`` (distances
    measured between real unrelated pictures), so it is another picture as far from the
    negatives as other programmes are: mostly 20-30 bits, now and then a look-alike a few
    bits away. (Masks of a fixed 8 bits made 1,700 near-copies of the negatives' one static
    room, an index no broadcaster has.) Each hash gets ``FRAME_BITS`` of jitter."""
    p = index.video_params
    frames_per_track = int(3600 * p.ref_fps)
    have = index.stats("video")["hours"]
    for k in range(int(np.ceil(max(0.0, hours - have)))):
        runs, total = [], 0
        while total < frames_per_track:
            n = int(rng.integers(5, 51))
            start = int(rng.integers(0, max(1, pool.size - n)))
            bits = int(rng.choice(apart))
            runs.append(pool[start : start + n] ^ _random_masks(1, bits, rng))
            total += n
        h = np.concatenate(runs)[:frames_per_track]
        h ^= _random_masks(h.size, FRAME_BITS, rng)
        index.video.add_track(
            f"background-{k}",
            f"background-{k}",
            chunk_keys(h, p.chunk_bits),
            np.arange(h.size),
            hop_seconds=p.hop_seconds,
        )
    index.video.compact()


def _random_masks(n: int, bits: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uint64 masks with exactly ``bits`` bits set, at random places."""
    pos = np.argsort(rng.random((n, 64)), axis=1)[:, :bits]
    flips = np.zeros((n, 64), bool)
    np.put_along_axis(flips, pos, True, axis=1)
    return np.packbits(flips, axis=1).view(">u8").reshape(-1).astype(np.uint64)


def make_queries(refs: list[Path], negs: list[Path], work: Path, per_cell: int, n_neg: int):
    """Write every query clip (no audio); returns rows with their truth.

    Each clip is cached with a sidecar ``.json`` holding its row (truth included); a clip
    without its sidecar is made again, so a cache never disagrees with its truth.
    """
    rng = np.random.default_rng(7)
    qdir = work / "queries"
    qdir.mkdir(exist_ok=True)
    durations = {r: decode_frames(str(r), 1.0).times[-1] + 1.0 for r in refs + negs}
    other = read_clip(negs[0], 0.0, 20.0) if negs else None
    rows = []
    for seconds in (5.0, 10.0):
        for name in VIDEO_TRANSFORMS:
            for i in range(per_cell):
                ref = refs[i % len(refs)]
                length = min(seconds, durations[ref] - 0.5)
                start = float(rng.uniform(0.0, max(0.0, durations[ref] - length - 0.3)))
                path = qdir / f"{name}-{int(seconds)}s-{i}.mp4"
                seed = [int(seconds), i, zlib.crc32(name.encode())]
                make = partial(_transformed, path, ref, start, length, name, seed, other)
                rows.append(_cached(path, make))
        for i in range(n_neg):
            neg = negs[i % len(negs)]
            start = float(rng.uniform(0.0, max(0.0, durations[neg] - seconds - 0.3)))
            path = qdir / f"negative-{int(seconds)}s-{i}.mp4"
            rows.append(_cached(path, partial(_negative, path, neg, start, seconds)))
    return rows


def _transformed(path, ref, start, length, name, seed, other) -> dict:
    cut = read_clip(ref, start, length)
    tf = VIDEO_TRANSFORMS[name]
    clip = tf(cut, np.random.default_rng(seed), other)
    # A keyframe every 2 s, as IPTV streams are encoded.
    write_clip(path, clip, bitrate=tf.bitrate, gop=round(2 * clip.fps))
    return _row(path, name, float(seed[0]), ref.stem, cut.start_seconds)


def _negative(path, neg, start, seconds) -> dict:
    write_clip(path, read_clip(neg, start, seconds))
    return _row(path, "negative", seconds, None, None)


def _cached(path: Path, make) -> dict:
    """The row of a cached query clip, or ``make()`` it (clip first, sidecar last)."""
    sidecar = path.with_suffix(".json")
    if path.exists() and sidecar.exists():
        return json.loads(sidecar.read_text())
    row = make()
    sidecar.write_text(json.dumps(row))
    return row


def _row(path: Path, transform: str, seconds: float, channel: str | None, start: float | None):
    return {
        "path": str(path),
        "transform": transform,
        "seconds": seconds,
        "channel": channel,
        "start": start,
    }


def run_vigie(index: Index, queries: list[dict]) -> None:
    """Scan each query's pictures in-process; adds Vigie's answer to each row."""
    p = index.video_params
    for q in queries:
        frames = decode_frames(q["path"], p.query_fps, width=p.frame_width)
        t0 = time.perf_counter()
        vq = video.video_query(frames, p)
        t1 = time.perf_counter()
        cands = best_per_channel(index.query_video(vq))
        t2 = time.perf_counter()
        best = cands[0] if cands else None
        hit = best is not None and best.confidence >= MIN_CONFIDENCE
        q["vigie"] = {
            "channel": best.channel_id if hit else None,
            "offset": best.offset_seconds if hit else None,
            "score": best.score if best else 0.0,
            "hash_ms": 1000 * (t1 - t0),
            "query_ms": 1000 * (t2 - t1),
        }


def run_vpdq(refs: list[Path], queries: list[dict]) -> dict:
    """vPDQ on the same files, sampled as densely as Vigie (references 5, queries 2 hashes/s)."""
    from .baselines import vpdq, vpdq_install

    python = vpdq_install.ensure_installed()
    ref_feats, ref_stats = vpdq.hash_videos(refs, 0.2, venv_python=python, cpus=[0])
    q_feats, _ = vpdq.hash_videos([q["path"] for q in queries], 0.5, venv_python=python)
    packed = vpdq.prepare_references({r.stem: ref_feats[str(r)] for r in refs})
    for q in queries:
        m = vpdq.match(q_feats[q["path"]], packed)
        q["vpdq"] = {"channel": m.matched_id, "offset": m.offset_seconds}
    return ref_stats


def repeats_itself(fp, a: float, b: float, seconds: float, max_distance: int) -> bool:
    """The reference shows the same pictures at ``a`` and at ``b`` (seconds) for
    ``seconds``: a looped or static stretch, where an offset cannot be told apart."""
    t = np.arange(0.0, seconds, 0.5)
    frames = fp.frames.astype(np.float64) * fp.hop_seconds

    def at(x: np.ndarray) -> np.ndarray:
        idx = np.clip(np.searchsorted(frames, x), 0, frames.size - 1)
        return fp.hashes[idx]

    return bool(np.median(hamming(at(a + t), at(b + t))) <= max_distance)


def score(queries: list[dict], system: str, refs: dict | None = None, max_distance: int = 6):
    """Recall, false matches and offsets per transformation and length: exact (within
    0.5 s), repeat (the reference shows the same pictures there, see
    :func:`repeats_itself`; needs ``refs``, channel -> VideoPrint) or wrong."""
    cells: dict[str, dict] = defaultdict(
        lambda: {"n": 0, "found": 0, "false": 0, "exact": 0, "repeat": 0}
    )
    for q in queries:
        if system not in q:
            continue
        c = cells[f"{q['transform']}/{int(q['seconds'])}s"]
        c["n"] += 1
        got = q[system]["channel"]
        if q["channel"] is None:
            c["false"] += got is not None
        elif got == q["channel"]:
            c["found"] += 1
            off = q[system]["offset"]
            if off is not None and abs(off - q["start"]) <= OFFSET_TOLERANCE:
                c["exact"] += 1
            elif off is not None and refs is not None:
                fp = refs[q["channel"]]
                c["repeat"] += repeats_itself(fp, q["start"], off, q["seconds"], max_distance)
        elif got is not None:
            c["false"] += 1
    for c in cells.values():
        c["recall"] = c["found"] / c["n"] if c["n"] else 0.0
    return dict(sorted(cells.items()))


def hashing_speed(refs: list[Path], work: Path, index: Index) -> dict:
    """Reference hashing (decode included) of the references re-encoded at 360p, per CPU s."""
    from .video_dataset import scale_to_height

    path = work / "refs-360p.mp4"
    if not path.exists():
        clips = [scale_to_height(read_clip(r, 0.0, None), 360) for r in refs]
        frames = np.concatenate([_fit(c.frames, clips[0].frames.shape) for c in clips])
        write_clip(path, Clip(frames, 25.0))
    t0 = time.process_time()
    fp = fingerprint_file(str(path), index.audio_params, index.video_params)
    cpu = time.process_time() - t0
    sampled = int(np.ceil(fp.video.duration_seconds * index.video_params.ref_fps))
    return {"frames_sampled": sampled, "cpu_seconds": cpu, "frames_per_cpu_second": sampled / cpu}


def markdown(report: dict) -> str:
    lines = [
        "| transform / length | n | Vigie recall | Vigie false | Vigie offsets exact/repeat/wrong |"
        " vPDQ recall | vPDQ false |",
        "|---|---|---|---|---|---|---|",
    ]
    vp = report.get("vpdq", {}).get("cells", {})
    for key, c in report["vigie"]["cells"].items():
        b = vp.get(key)
        lines.append(
            f"| {key} | {c['n']} | {c['recall']:.3f} | {c['false']} | {c['exact']}/{c['repeat']}/"
            f"{c['found'] - c['exact'] - c['repeat']} |"
            f" {b['recall'] if b else float('nan'):.3f} | {b['false'] if b else '-'} |"
        )
    lines.append("")
    for k, v in report["figures"].items():
        lines.append(f"- {k}: {v}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.video", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="10 queries per cell, 60 negatives")
    ap.add_argument("--per-cell", type=int, help="queries per transformation and length")
    ap.add_argument("--negatives", type=int, help="negative queries per length")
    ap.add_argument("--no-baseline", action="store_true", help="skip vPDQ")
    ap.add_argument(
        "--write-calibration",
        action="store_true",
        help="store the measured null calibration as Vigie's shipped default",
    )
    ap.add_argument("--background-hours", type=float, default=100.0)
    ap.add_argument("--max-distance", type=int, help="override VideoParams.max_distance")
    ap.add_argument("--work", type=Path, default=ROOT / "media-cache" / "bench-video")
    args = ap.parse_args(argv)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    refs, cal_negs, test_negs = corpus(work)
    per_cell, n_neg = (10, 60) if args.quick else (40, 200)
    per_cell, n_neg = args.per_cell or per_cell, args.negatives or n_neg
    queries = make_queries(refs, test_negs, work, per_cell, n_neg)

    idx_dir = work / "index"
    shutil.rmtree(idx_dir, ignore_errors=True)
    placeholder = NullCalibration(0, 1, 1, 0, 0)
    vp = VideoParams()
    if args.max_distance is not None:
        vp = dataclasses.replace(vp, max_distance=args.max_distance)
    index = Index(
        idx_dir, video_params=vp, calibrations={"audio": placeholder, "video": placeholder}
    )
    ref_prints = [fingerprint_file(str(r), index.audio_params, vp).video for r in refs]
    for r, fp in zip(refs, ref_prints, strict=True):
        index.add_recording(r.stem, str(r), fp)
    index.video.compact()
    real = index.stats("video")
    pool = np.concatenate(
        [fingerprint_file(str(p), index.audio_params, vp).video.hashes for p in cal_negs]
    )
    ref_hashes = np.concatenate([fp.hashes for fp in ref_prints])
    ref_by_channel = {r.stem: fp for r, fp in zip(refs, ref_prints, strict=True)}
    apart = hamming(pool[:, None], ref_hashes[None, :]).ravel()
    print(f"{len(queries)} queries; padding the index to {args.background_hours} h", flush=True)
    add_background(index, pool, args.background_hours, np.random.default_rng(3), apart)
    null = np.concatenate(
        [
            measure_null_scores(
                index,
                [str(p) for p in cal_negs],
                seconds=s,
                n_queries=150,
                seed=int(s),
                modality="video",
            )
            for s in (5.0, 10.0)
        ]
    )
    index.calibrations["video"] = NullCalibration.fit(null)
    if args.write_calibration:
        index.calibrations["video"].save(ROOT / "reference_index" / "calibration_video.json")
    print(f"calibrated on {null.size} null queries; scanning {len(queries)} queries", flush=True)
    run_vigie(index, queries)
    report: dict = {
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "params": dataclasses.asdict(vp),
        "index": {"real": real, "searched": index.stats("video")},
        "calibration": {
            **index.calibrations["video"].__dict__,
            "null_scores": sorted(null.tolist()),
        },
        "vigie": {"cells": score(queries, "vigie", ref_by_channel, vp.max_distance)},
        "queries": queries,
    }
    speed = hashing_speed(refs, work, index)
    lat = np.array([q["vigie"]["query_ms"] for q in queries if q["seconds"] == 10.0])
    hms = np.array([q["vigie"]["hash_ms"] for q in queries if q["seconds"] == 10.0])
    report["figures"] = {
        "vigie reference hashing, frames per CPU second at 360p (decode included)": round(
            speed["frames_per_cpu_second"], 1
        ),
        # Over the whole padded index: every background frame has a posting, so this is an
        # upper bound (real references skip flat frames) without small-index overheads.
        "vigie video index bytes per channel-hour (5 fps)": int(
            index.stats("video")["bytes"] / index.stats("video")["hours"]
        ),
        "index searched (channel-hours)": round(index.stats("video")["hours"], 1),
        "vigie 10 s query: probe hashing median (ms)": round(float(np.median(hms)), 1),
        "vigie 10 s query: search + vote median / p95 (ms)": (
            f"{np.median(lat):.1f} / {np.percentile(lat, 95):.1f}"
        ),
    }
    if not args.no_baseline:
        stats = run_vpdq(refs, queries)
        cells = score(queries, "vpdq", ref_by_channel, vp.max_distance)
        report["vpdq"] = {"cells": cells, "hashing": stats}
        report["figures"]["vpdq reference hashing stats"] = stats
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "video.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (RESULTS / "video.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
