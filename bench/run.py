"""Audio benchmark: recall and false matches per pirate transformation, speed, memory, size.

``python -m bench [--quick] [--no-baseline]`` writes ``bench/results/audio.json`` and
``bench/results/audio.md``. Vigie and audfprint see the same query files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from fingerprinting import audio
from fingerprinting.align import NullCalibration
from fingerprinting.decode import decode_audio
from reference_index.batch import fingerprint_file
from reference_index.calibrate import measure_null_scores
from reference_index.index import Index
from service.detect import best_per_channel
from service.media import write_audio

from .corpus import ROOT, SR, Query, channel_of, find_corpus, make_queries
from .dataset import TRANSFORMS, load_audio
from .measure import run_measured

RESULTS = ROOT / "bench" / "results"
OFFSET_TOLERANCE = 0.5  # seconds


def _child_peak(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd``; wall and CPU seconds and peak RSS (MiB) of the process tree's largest."""
    run = run_measured(cmd, env)
    if run["returncode"] != 0:
        raise RuntimeError(f"{cmd} failed: {run['stderr'][-2000:]}")
    return {k: run[k] for k in ("seconds", "cpu_seconds", "peak_rss_mb")}


def one_hour_file(refs: list[Path], work: Path) -> Path:
    """A one-hour WAV (22.05 kHz) made of the reference music, for memory and speed."""
    path = work / "one_hour.wav"
    if not path.exists():
        parts, total = [], 0
        for p in refs:
            y = load_audio(p, SR)
            parts.append(y)
            total += y.size
            if total >= 3600 * SR:
                break
        y = np.concatenate(parts)
        reps = int(np.ceil(3600 * SR / y.size))
        write_audio(path, np.tile(y, reps)[: 3600 * SR], SR)
    return path


def vigie_indexing_cost(hour: Path, work: Path) -> dict:
    """``vigie reindex`` of a one-hour recording, as its own process."""
    data = work / "vigie-hour"
    shutil.rmtree(data, ignore_errors=True)
    env = {**os.environ, "VIGIE_DATA_DIR": str(data)}
    vigie = [sys.executable, "-m", "service.cli"]
    subprocess.run(
        [*vigie, "channels", "add", "hour", "--name", "hour"],
        env=env,
        check=True,
        capture_output=True,
    )
    run = _child_peak([*vigie, "reindex", "hour", str(hour)], env)
    run["x_realtime"] = 3600.0 / run["cpu_seconds"]
    run["index_bytes"] = sum(f.stat().st_size for f in (data / "index" / "audio").glob("seg-*"))
    return run


def add_background(index: Index, real_keys: np.ndarray, rate: float, hours: int) -> None:
    """``hours`` one-hour tracks of chance postings, for an index of realistic size.

    Hash values are drawn from the empirical distribution of the real references' postings
    (``real_keys``; popular hashes stay popular) at the real posting ``rate`` (per second),
    with uniform random times: the load and the chance-hit rate of a big index, without its
    (unavailable) audio.
    """
    rng = np.random.default_rng(3)
    hop = index.audio_params.hop_seconds
    frames_per_hour = int(3600 / hop)
    n = int(rate * 3600)
    for h in range(hours):
        keys = real_keys[rng.integers(0, real_keys.size, n)]
        frames = np.sort(rng.integers(0, frames_per_hour, n))
        index.audio.add_track(
            f"bg-{h:03d}",
            "background",
            keys,
            frames,
            hop_seconds=hop,
            length_frames=frames_per_hour,
        )
    index.audio.compact()


def run_vigie(index: Index, queries: list[Query], min_confidence: float) -> list[dict]:
    """Scan every query in-process; per query: verdict, channel, offset, timings."""
    p = index.audio_params
    rows = []
    for q in queries:
        pcm = decode_audio(str(q.path), p.sample_rate)
        t0 = time.perf_counter()
        pk = audio.query_peaks(pcm, p)
        t1 = time.perf_counter()
        cands = best_per_channel(index.query_audio(pk))
        t2 = time.perf_counter()
        best = cands[0] if cands else None
        matched = best is not None and best.confidence >= min_confidence
        rows.append(
            {
                "channel": best.channel_id if matched else None,
                "offset": best.offset_seconds if matched else None,
                "speed": best.speed if best else None,
                "votes": best.votes if best else 0,
                "score": best.score if best else 0.0,
                "fingerprint_ms": 1000 * (t1 - t0),
                "query_ms": 1000 * (t2 - t1),
            }
        )
    return rows


def run_audfprint(corpus_refs: list[Path], queries: list[Query], work: Path) -> dict:
    """audfprint on the same references and queries (installed in its own venv)."""
    from .baselines import audfprint as afp

    python = afp.ensure_installed(ROOT / ".bench-venvs" / "audfprint")
    wavs = []
    for p in corpus_refs:
        w = work / "afp-refs" / f"{channel_of(p)}.wav"
        w.parent.mkdir(parents=True, exist_ok=True)
        if not w.exists():
            write_audio(w, load_audio(p, 11025), 11025)
        wavs.append(w)
    db = work / "afp.pklz"
    build = afp.build_index(wavs, db, python, maxtime=65536)
    t0 = time.perf_counter()
    found = afp.match([q.path for q in queries], db, python, ncores=2)
    match_s = time.perf_counter() - t0
    rows = []
    for r in found:
        ref = Path(r["match"]).stem if r["match"] else None
        rows.append({"channel": ref, "offset": r["offset_seconds"]})
    hour = one_hour_file(corpus_refs, work)
    hour_cost = afp.build_index([hour], work / "afp-hour.pklz", python, maxtime=262144)
    hour_cost["x_realtime"] = hour_cost["audio_seconds"] / hour_cost["cpu_seconds"]
    return {"rows": rows, "build": build, "match_seconds": match_s, "hour": hour_cost}


def same_content(ref: np.ndarray, a: float, b: float, seconds: float) -> bool:
    """Whether the reference sounds the same at offsets ``a`` and ``b`` (looped music).

    Game and library music repeats itself sample for sample; an offset one loop away is as
    right as the one the query was cut at. Normalised correlation of the two stretches.
    """
    n = int(seconds * SR)
    i, j = int(a * SR), int(b * SR)
    if min(i, j) < 0 or max(i, j) + n > ref.size:
        return False
    x, y = ref[i : i + n], ref[j : j + n]
    den = float(np.sqrt(np.dot(x, x) * np.dot(y, y))) or 1.0
    return float(np.dot(x, y)) / den > 0.9


def score(queries: list[Query], rows: list[dict], refs: dict[str, np.ndarray]) -> dict:
    """Recall per (transform, length) and false matches (wrong channel or any on negatives).

    A right channel at a wrong offset counts as found only where the reference repeats
    itself there (``same_content``); it is counted apart as ``loop_offsets``.
    """
    cells: dict[str, dict] = defaultdict(lambda: {"n": 0, "hit": 0, "false": 0, "loop_offsets": 0})
    for q, r in zip(queries, rows, strict=True):
        cell = cells[f"{q.transform}/{q.seconds:g}s"]
        cell["n"] += 1
        if q.channel is None:
            cell["false"] += r["channel"] is not None
        elif r["channel"] == q.channel:
            if abs(r["offset"] - q.offset) <= OFFSET_TOLERANCE:
                cell["hit"] += 1
            elif same_content(refs[q.channel], q.offset, r["offset"], q.seconds):
                cell["hit"] += 1
                cell["loop_offsets"] += 1
        elif r["channel"] is not None:
            cell["false"] += 1
    for c in cells.values():
        c["recall"] = c["hit"] / c["n"]
    return dict(sorted(cells.items()))


def markdown(report: dict) -> str:
    """The report as a Markdown table plus key figures."""
    v, a = report["vigie"]["cells"], report.get("audfprint", {}).get("cells", {})
    lines = [
        "| transform / length | n | Vigie recall | Vigie false | audfprint recall | "
        "audfprint false |",
        "|---|---|---|---|---|---|",
    ]
    for key, c in v.items():
        b = a.get(key, {})
        lines.append(
            f"| {key} | {c['n']} | {c['recall']:.3f} | {c['false']} | "
            f"{b.get('recall', float('nan')):.3f} | {b.get('false', '-')} |"
        )
    lines.append("")
    for k, val in report["figures"].items():
        lines.append(f"- {k}: {val}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m bench``."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="few queries, for a smoke run")
    ap.add_argument("--no-baseline", action="store_true", help="skip audfprint")
    ap.add_argument("--background-hours", type=int, default=100)
    ap.add_argument("--work", type=Path, default=ROOT / "media-cache" / "bench-work")
    ap.add_argument(
        "--write-calibration",
        action="store_true",
        help="store the measured null calibration as Vigie's shipped default",
    )
    args = ap.parse_args(argv)
    per_cell, negatives = (6, 30) if args.quick else (40, 200)
    corpus = find_corpus(ROOT / "media-cache")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    queries = make_queries(
        corpus, work / "queries", list(TRANSFORMS), [5.0, 10.0], per_cell, negatives
    )

    idx_dir = work / "index"
    shutil.rmtree(idx_dir, ignore_errors=True)
    index = Index(idx_dir, calibration=NullCalibration(0, 1, 1, 0, 0))
    prints = [fingerprint_file(str(p), index.audio_params) for p in corpus.refs]
    for p, fp in zip(corpus.refs, prints, strict=True):
        index.add_recording(channel_of(p), str(p), fp)
    index.audio.compact()
    real = index.stats()
    real_keys = np.concatenate([fp.hashes for fp in prints])
    rate = real_keys.size / sum(fp.duration_seconds for fp in prints)
    add_background(index, real_keys, rate, args.background_hours)
    null = np.concatenate(
        [
            measure_null_scores(
                index,
                [str(p) for p in corpus.calibration_negatives],
                seconds=s,
                n_queries=150,
                seed=int(s),
            )
            for s in (5.0, 10.0)
        ]
    )
    index.calibration = NullCalibration.fit(null)
    if args.write_calibration:
        index.calibration.save(ROOT / "reference_index" / "calibration_audio.json")
    min_conf = 0.999
    ref_audio = {channel_of(p): load_audio(p, SR) for p in corpus.refs}
    rows = run_vigie(index, queries, min_conf)
    hour = vigie_indexing_cost(one_hour_file(corpus.refs, work), work)
    q10 = [r["query_ms"] for q, r in zip(queries, rows, strict=True) if q.seconds == 10.0]
    fp10 = [r["fingerprint_ms"] for q, r in zip(queries, rows, strict=True) if q.seconds == 10.0]
    total = index.stats()
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "index": {"real": real, "with_background": total},
        "calibration": index.calibration.__dict__,
        "vigie": {"cells": score(queries, rows, ref_audio), "one_hour_indexing": hour},
        "figures": {
            "vigie fingerprint speed (x real time, one core, decode included)": round(
                hour["x_realtime"], 1
            ),
            "vigie peak RSS indexing one hour (MiB)": round(hour["peak_rss_mb"], 1),
            "vigie index bytes per channel-hour": int(hour["index_bytes"]),
            "index searched (channel-hours)": round(total["hours"], 1),
            "vigie 10 s query latency after fingerprinting, median / p95 (ms)": (
                f"{np.median(q10):.1f} / {np.percentile(q10, 95):.1f}"
            ),
            "vigie 10 s query peak picking, median (ms)": round(float(np.median(fp10)), 1),
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "audio.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    if not args.no_baseline:
        afp = run_audfprint(corpus.refs, queries, work)
        report["audfprint"] = {
            "cells": score(queries, afp["rows"], ref_audio),
            "build": afp["build"],
            "one_hour_indexing": afp["hour"],
        }
        report["figures"]["audfprint fingerprint speed (x real time, one core)"] = round(
            afp["hour"]["x_realtime"], 1
        )
        report["figures"]["audfprint peak RSS indexing one hour (MiB)"] = round(
            afp["hour"]["peak_rss_mb"], 1
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "audio.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    (RESULTS / "audio.md").write_text(markdown(report))
    print(markdown(report))
