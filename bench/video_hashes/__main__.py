"""Command line of the frame-hash comparison: ``python -m bench.video_hashes [--quick]``
(see :mod:`bench.video_hashes`).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from fingerprinting.decode import decode_frames
from fingerprinting.params import VideoParams
from fingerprinting.video import WHOLE, bar_boxes, canonical

from .. import video_hashes as package
from ..corpus import ROOT
from . import (
    DENSE_FPS,
    MAX_PAIR_GAP,
    POOL_STRIDE,
    RATES,
    REFERENCES,
    RESULTS,
    SHARED_VIDEO,
    WORK,
)
from .pairs import run_measurement
from .report import conclusion, markdown
from .scoring import build_report
from .speed import measure_speed, speed_child


def source_digests() -> dict[str, str]:
    """SHA-256 (12 hex digits) of the Vigie sources that decide what is measured, so that a
    report says which normalisation and probes it measured."""
    names = ("video.py", "params.py", "framehash.py", "decode.py")
    return {
        n: hashlib.sha256((ROOT / "fingerprinting" / n).read_bytes()).hexdigest()[:12]
        for n in names
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.video_hashes", description=package.__doc__)
    ap.add_argument("--quick", action="store_true", help="one 10 s segment per reference")
    ap.add_argument("--work", type=Path, default=WORK, help="folder for temporary files")
    ap.add_argument("--reps", type=int, default=None, help="speed repetitions")
    ap.add_argument("--only", default=None, help="comma-separated transformations (debugging)")
    ap.add_argument("--speed-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.speed_child is not None:
        print(json.dumps(speed_child(args.speed_child, args.reps or 5)))
        return
    p = VideoParams()
    digests = source_digests()
    t0 = time.perf_counter()
    only = args.only.split(",") if args.only else None
    tallies, facts = run_measurement(args.quick, args.work, p, only)
    report: dict = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpus": os.cpu_count(),
        },
        "quick": args.quick,
        "params": {
            "query_fps": p.query_fps,
            "dense_reference_fps": DENSE_FPS,
            "impostor_pool_fps": DENSE_FPS / POOL_STRIDE,
            "frame_width": p.frame_width,
            "canonical_size": p.canonical_size,
            "bar_window": p.bar_window,
            "max_pair_gap_seconds": MAX_PAIR_GAP,
            "rates": list(RATES),
            "video_params": dataclasses.asdict(p),
        },
        "sources": digests,
    }
    report.update(build_report(tallies, facts, p))
    facts["query_frames"] = report["pooled"][facts["hashes"][0]]["best"]["n_true"]
    facts["query_frames_decoded"] = sum(t.frames_decoded for t in tallies.values())
    facts["query_clips"] = sum(len(t.clips) for t in tallies.values())
    facts["n_segments"] = len(facts["segments"])
    facts["probes_per_query_mean"] = float(
        np.mean([n for t in tallies.values() for n in t.probes_per_query])
    )
    facts["probes_per_query_by_transform"] = {
        name: float(np.mean(t.probes_per_query)) for name, t in tallies.items()
    }
    report["corpus"] = facts
    # Speed: real canonical reference pictures (the pictures hashed at indexing time).
    pics = []
    for path in [SHARED_VIDEO / n for n in REFERENCES if (SHARED_VIDEO / n).exists()][:2]:
        frames = decode_frames(str(path), DENSE_FPS, width=p.frame_width, max_seconds=30.0)
        boxes = bar_boxes(frames.gray, p, window=p.bar_window)
        pics.append(canonical(frames.gray, boxes, [WHOLE], p)[:, 0])
    report["speed"] = measure_speed(
        np.concatenate(pics)[:600], args.work, args.reps or (15 if args.quick else 31)
    )
    # The measurement used the modules imported at start (``digests``); edits on disk during
    # the run do not reach it, but say that the working tree has moved on.
    report["sources_on_disk_changed_during_run"] = source_digests() != digests
    if report["sources_on_disk_changed_during_run"]:
        print("note: fingerprinting sources changed on disk during the run", file=sys.stderr)
    report["conclusion"] = conclusion(report)
    report["total_seconds"] = time.perf_counter() - t0
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "video_hashes.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (RESULTS / "video_hashes.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
