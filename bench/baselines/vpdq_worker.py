"""Worker run by the vPDQ venv's interpreter: hash video files with ``vpdq.computeHash``.

Not imported by Vigie: :func:`bench.baselines.vpdq.hash_videos` runs it as
``<vpdq venv>/bin/python vpdq_worker.py REQUEST.json RESPONSE.json``. It depends on
the standard library and ``vpdq`` only, so it must stay importable without the repo.

The request is a JSON object::

    {"paths": [...], "seconds_per_hash": 1.0, "thread_count": 1,
     "downsample_width": 0, "downsample_height": 0, "cpus": [0] or null}

The response holds, per input path (in order), either ``features`` (a list of
``[frame_number, timestamp_s, quality, hash_hex]``) with the wall and CPU seconds of
that ``computeHash`` call, or ``error``; plus the vpdq version and the start-up cost
(interpreter and ``import vpdq``) in CPU seconds. CPU seconds are
``time.process_time()`` deltas, which count every thread of the process (vPDQ's
hashing threads and libavcodec's decoding threads).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def _hash_one(vpdq: Any, path: str, request: dict[str, Any]) -> dict[str, Any]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        features = vpdq.computeHash(
            path,
            seconds_per_hash=float(request["seconds_per_hash"]),
            downsample_width=int(request.get("downsample_width", 0)),
            downsample_height=int(request.get("downsample_height", 0)),
            thread_count=int(request.get("thread_count", 1)),
        )
    except Exception as exc:  # vpdq raises a bare Exception when decoding fails
        return {"path": path, "error": f"{type(exc).__name__}: {exc}"}
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    rows = [[int(f.frame_number), float(f.timestamp), int(f.quality), str(f.hex)] for f in features]
    return {"path": path, "features": rows, "seconds": wall, "cpu_seconds": cpu}


def main(argv: list[str]) -> int:
    """Hash the files of the request file ``argv[1]``, write the response to ``argv[2]``."""
    if len(argv) != 3:
        print("usage: vpdq_worker.py REQUEST.json RESPONSE.json", file=sys.stderr)
        return 2
    request = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    cpus = request.get("cpus")
    if cpus:
        # Before vpdq starts any thread, so that every thread inherits the mask.
        os.sched_setaffinity(0, {int(c) for c in cpus})
    # This file's folder holds bench/baselines/vpdq.py, which must not shadow the real vpdq
    # (the runner also passes -I, which keeps the script's folder off sys.path).
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    import importlib.metadata

    import vpdq

    startup_cpu = time.process_time()
    results = [_hash_one(vpdq, str(p), request) for p in request["paths"]]
    response = {
        "vpdq_version": importlib.metadata.version("vpdq"),
        "startup_cpu_seconds": startup_cpu,
        "cpus": sorted(os.sched_getaffinity(0)),
        "results": results,
    }
    out = Path(argv[2])
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(json.dumps(response), encoding="utf-8")
    tmp.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
