"""Hashing speed of the frame-hash comparison, measured in a child process pinned to one
core.

Part of :mod:`bench.video_hashes`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..corpus import ROOT
from .hashing import hash_functions


def speed_child(pics_path: Path, reps: int) -> dict:
    """Per-frame hashing cost on the pictures in ``pics_path`` (run pinned to one core)."""
    pics = np.load(pics_path)
    fns, _ = hash_functions()
    out: dict = {"frames": int(pics.shape[0]), "picture": list(pics.shape[1:]), "reps": reps}
    out["affinity"] = sorted(os.sched_getaffinity(0))

    def timed(fn: Callable[[], object], n: int) -> dict:
        fn()  # warm-up: tap caches, imports
        cpu, wall = [], []
        for _ in range(reps):
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
        return {
            "cpu_us_per_frame": 1e6 * float(np.median(cpu)) / n,
            "wall_us_per_frame": 1e6 * float(np.median(wall)) / n,
            "wall_us_per_frame_min": 1e6 * float(np.min(wall)) / n,
        }

    for name, fn in fns.items():
        out[name] = timed(lambda fn=fn: fn(pics), pics.shape[0])
    try:  # for context: the one-image-at-a-time reference implementation
        import imagehash
        from PIL import Image

        few = [Image.fromarray(g) for g in pics[:200]]
        out["imagehash_phash"] = timed(lambda: [imagehash.phash(i) for i in few], len(few))
        out["imagehash_dhash"] = timed(lambda: [imagehash.dhash(i) for i in few], len(few))
    except ImportError:
        pass
    return out


def measure_speed(pics: np.ndarray, work: Path, reps: int) -> dict:
    """Run :func:`speed_child` in a child process pinned to core 0 (``taskset -c 0``)."""
    with tempfile.TemporaryDirectory(dir=work, prefix="speed-") as tmp:
        path = Path(tmp) / "pics.npy"
        np.save(path, pics)
        cmd = [sys.executable, "-m", "bench.video_hashes", "--speed-child", str(path)]
        cmd += ["--reps", str(reps)]
        pin = shutil.which("taskset")
        if pin:
            cmd = [pin, "-c", "0", *cmd]
        done = subprocess.run(
            cmd,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=None if pin else lambda: os.sched_setaffinity(0, {0}),
        )
    if done.returncode != 0:
        raise RuntimeError(f"speed child failed: {done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["command"] = " ".join(cmd[:3]) if pin else "os.sched_setaffinity(0, {0})"
    return out
