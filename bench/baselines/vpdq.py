"""Side-by-side baseline: Meta ThreatExchange's vPDQ (video PDQ).

vPDQ hashes a video by running PDQ (a 256-bit perceptual image hash with a 0-100
quality score) on one decoded frame every ``seconds_per_hash`` seconds, and compares
two videos as unordered bags of frame hashes. It is never vendored into this
repository: :func:`ensure_installed` builds the PyPI package ``vpdq`` into its own
virtualenv at run time, and :func:`hash_videos` drives it through one subprocess of
that venv (``vpdq_worker.py``), so its native code and libav* libraries never load
into the benchmark's process. Matching is reimplemented in numpy in
:mod:`bench.baselines.vpdq_match` (:func:`match`, re-exported here), following
ThreatExchange's reference rule, so that hundreds of queries against dozens of
references take seconds.

Typical use::

    py = ensure_installed()
    feats, stats = hash_videos(refs + queries, seconds_per_hash=1.0, venv_python=py)
    index = prepare_references({str(r): feats[str(r)] for r in refs})
    result = match(feats[str(queries[0])], index)
    result.matched_id, result.query_match_percent, result.offset_seconds

A feature is a dict ``{"frame": int, "time": float (seconds), "quality": int (0-100),
"hash": str (64 hex digits, PDQ's 256 bits)}``. vPDQ's ``time`` is the decoded frame's
index divided by the stream's average frame rate (not its PTS), and the frames hashed
are decoded frames number 0, k, 2k, ... with ``k = int(seconds_per_hash * fps)``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..measure import run_measured
from .vpdq_install import (
    DEFAULT_VENV_DIR,
    VPDQ_REQUIREMENT,
    child_env,
    ensure_installed,
    venv_python,
)
from .vpdq_match import (
    COMPARED_MATCH_THRESHOLD_PERCENT,
    DISTANCE_THRESHOLD,
    QUALITY_THRESHOLD,
    QUERY_MATCH_THRESHOLD_PERCENT,
    FeatureArrays,
    VpdqMatch,
    VpdqReferences,
    hamming_matrix,
    hashes_to_words,
    match,
    match_many,
    prepare_references,
    vpdq_similarity,
)

__all__ = [
    "COMPARED_MATCH_THRESHOLD_PERCENT",
    "DEFAULT_VENV_DIR",
    "DISTANCE_THRESHOLD",
    "QUALITY_THRESHOLD",
    "QUERY_MATCH_THRESHOLD_PERCENT",
    "VPDQ_REQUIREMENT",
    "FeatureArrays",
    "VpdqMatch",
    "VpdqReferences",
    "ensure_installed",
    "hamming_matrix",
    "hash_videos",
    "hashes_to_words",
    "match",
    "match_many",
    "prepare_references",
    "vpdq_similarity",
]

_WORKER = Path(__file__).resolve().with_name("vpdq_worker.py")


# ----------------------------------------------------------------------------- hashing


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def hash_videos(
    paths: Sequence[Path | str],
    seconds_per_hash: float = 1.0,
    *,
    venv_python: Path | str | None = None,
    thread_count: int = 1,
    downsample_width: int = 0,
    downsample_height: int = 0,
    cpus: Sequence[int] | None = None,
    check: bool = True,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """Hash video files with ``vpdq.computeHash``, all in one subprocess of the vPDQ venv.

    Parameters
    ----------
    paths : sequence of Path or str
        Video files (anything libavformat opens). Results are keyed by
        ``os.fspath(path)`` as given; duplicates are hashed once.
    seconds_per_hash : float
        Interval between hashed frames, seconds (0 hashes every decoded frame).
    venv_python : Path or str, optional
        Interpreter returned by :func:`ensure_installed`; defaults to the one in
        :data:`DEFAULT_VENV_DIR`. Nothing is installed here.
    thread_count : int
        vPDQ's hashing threads (1: hash in the decoding thread; 0: one per CPU the
        machine has, ignoring ``cpus``). libavcodec may add slice-decoding threads.
    downsample_width, downsample_height : int
        Frame size, pixels, that frames are scaled to before PDQ (0: native size).
    cpus : sequence of int, optional
        CPUs the worker is pinned to (``sched_setaffinity``), e.g. ``[0]`` to measure
        speed per core.
    check : bool
        Raise if a file fails to hash; if False, failed files get an empty list and
        are reported in ``stats["errors"]``.

    Returns
    -------
    features : dict
        Path -> list of features ``{"frame": int, "time": float (s), "quality": int,
        "hash": str (64 hex digits)}``, in frame order.
    stats : dict
        ``seconds`` and ``cpu_seconds`` (wall and user + system CPU of the whole
        subprocess, interpreter start and ``import vpdq`` included), ``peak_rss_mb``,
        ``hash_seconds`` and ``hash_cpu_seconds`` (inside ``computeHash`` only, summed
        over files, all threads), ``startup_cpu_seconds``, ``frames_hashed``,
        ``frames_hashed_per_cpu_second`` (``frames_hashed / hash_cpu_seconds``),
        ``vpdq_version``, ``cpus``, ``seconds_per_hash``, ``thread_count``, ``files``
        (path -> ``seconds``, ``cpu_seconds``, ``frames``) and ``errors`` (path -> message).

    Raises
    ------
    FileNotFoundError
        If a video file does not exist.
    RuntimeError
        If the venv is missing, the worker fails, or (with ``check``) a file fails.
    """
    if seconds_per_hash < 0:
        raise ValueError(f"seconds_per_hash must be >= 0, got {seconds_per_hash}")
    python = Path(venv_python) if venv_python is not None else venv_python_default()
    if not python.exists():
        raise RuntimeError(f"no vPDQ interpreter at {python}; call ensure_installed() first")
    unique = list(dict.fromkeys(os.fspath(p) for p in paths))
    for p in unique:
        if not Path(p).is_file():
            raise FileNotFoundError(p)
    request = {
        "paths": [str(Path(p).absolute()) for p in unique],
        "seconds_per_hash": float(seconds_per_hash),
        "thread_count": int(thread_count),
        "downsample_width": int(downsample_width),
        "downsample_height": int(downsample_height),
        "cpus": [int(c) for c in cpus] if cpus else None,
    }
    with tempfile.TemporaryDirectory(prefix="vpdq-") as tmp:
        req, resp = Path(tmp) / "request.json", Path(tmp) / "response.json"
        req.write_text(json.dumps(request), encoding="utf-8")
        cmd = [str(python), "-I", str(_WORKER), str(req), str(resp)]
        run = run_measured(cmd, child_env())
        if run["returncode"] != 0 or not resp.exists():
            raise RuntimeError(
                f"vPDQ worker failed (exit {run['returncode']}): {' '.join(cmd)}\n"
                f"{_tail(run['stderr'] + run['stdout'])}"
            )
        response = json.loads(resp.read_text(encoding="utf-8"))

    features: dict[str, list[dict[str, Any]]] = {}
    files: dict[str, dict[str, float]] = {}
    errors: dict[str, str] = {}
    for key, res in zip(unique, response["results"], strict=True):
        if "error" in res:
            errors[key] = res["error"]
            features[key] = []
            continue
        features[key] = [
            {"frame": fr, "time": t, "quality": q, "hash": h} for fr, t, q, h in res["features"]
        ]
        files[key] = {
            "seconds": res["seconds"],
            "cpu_seconds": res["cpu_seconds"],
            "frames": float(len(res["features"])),
        }
    if errors and check:
        detail = "\n".join(f"{k}: {v}" for k, v in errors.items())
        raise RuntimeError(f"vPDQ could not hash {len(errors)} file(s):\n{detail}")
    hash_cpu = sum(f["cpu_seconds"] for f in files.values())
    frames = int(sum(f["frames"] for f in files.values()))
    stats: dict[str, Any] = {
        "seconds": run["seconds"],
        "cpu_seconds": run["cpu_seconds"],
        "peak_rss_mb": run["peak_rss_mb"],
        "hash_seconds": sum(f["seconds"] for f in files.values()),
        "hash_cpu_seconds": hash_cpu,
        "startup_cpu_seconds": response["startup_cpu_seconds"],
        "frames_hashed": frames,
        "frames_hashed_per_cpu_second": frames / hash_cpu if hash_cpu > 0 else float("nan"),
        "vpdq_version": response["vpdq_version"],
        "cpus": response["cpus"],
        "seconds_per_hash": float(seconds_per_hash),
        "thread_count": int(thread_count),
        "files": files,
        "errors": errors,
    }
    return features, stats


def venv_python_default() -> Path:
    """Interpreter of the vPDQ venv at :data:`DEFAULT_VENV_DIR` (it may not exist)."""
    return venv_python(DEFAULT_VENV_DIR)
