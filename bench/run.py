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
import scipy.signal

from fingerprinting import audio
from fingerprinting.align import NullCalibration
from fingerprinting.decode import decode_audio
from fingerprinting.types import Peaks
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
    index = data / "index"
    run["posting_bytes"] = sum(f.stat().st_size for f in (index / "audio").glob("seg-*"))
    run["peak_bytes"] = sum(f.stat().st_size for f in (index / "peaks").glob("*.vth"))
    run["index_bytes"] = run["posting_bytes"] + run["peak_bytes"]
    return run


def background_keys(real_keys: np.ndarray, n: int, p, rng: np.random.Generator) -> np.ndarray:
    """``n`` chance hashes distributed like real ones, without copying real ones.

    Resampling the real postings themselves would make every real hash value hundreds of
    times more common than in a real 100-hour index (the references are 15 minutes). Instead
    the frequency steps (``dq_ab``, ``dq_ac``, drawn as a pair: they are correlated) and the
    time and anchor fields (drawn as a triple) come from two independent draws of real
    postings, so each field keeps its real skew and the values spread as in a big index.
    The pool is the references plus the calibration negatives (about 3 h of music and
    speech); the report gives the effective bits of the result beside the pool's.
    """
    widths = [b for _, b in p.hash_fields]
    low_bits = sum(widths[2:])  # ratio, anchor, dt
    high_mask = np.uint32(((1 << sum(widths[:2])) - 1) << low_bits)
    low_mask = np.uint32((1 << low_bits) - 1)
    a = real_keys[rng.integers(0, real_keys.size, n)] & high_mask
    b = real_keys[rng.integers(0, real_keys.size, n)] & low_mask
    return a | b


def effective_bits(keys: np.ndarray) -> float:
    """Collision entropy of hash values, ``-log2 sum p^2`` (unbiased estimate of ``sum p^2``):
    a lookup of a hash drawn like these reads ``postings x 2^-bits`` postings on average."""
    _, c = np.unique(keys, return_counts=True)
    m = float(c.sum())
    return float(-np.log2(max((c * (c - 1.0)).sum() / (m * (m - 1.0)), 1e-30)))


def add_background(
    index: Index, real_keys: np.ndarray, rate: float, hours: int, real_peaks: list[Peaks]
) -> None:
    """``hours`` one-hour tracks of chance postings (see :func:`background_keys`) at the real
    posting ``rate`` (per second) with uniform times: the size, load and chance-hit rate of
    a big index, without its (unavailable) audio. Each has reference peaks too, at the real
    peaks' rate and with their frequencies (drawn from ``real_peaks``, one per recording),
    uniform in time, so
    that verifying a line on a background track costs and finds what it would on a real
    one's."""
    rng = np.random.default_rng(3)
    hop = index.audio_params.hop_seconds
    frames_per_hour = int(3600 / hop)
    n = int(rate * 3600)
    peak_bins = np.concatenate([pk.bins for pk in real_peaks])
    real_frames = sum(float(pk.frames.max()) + 1 for pk in real_peaks if len(pk))
    n_peaks = int(peak_bins.size / real_frames * frames_per_hour)
    for h in range(hours):
        keys = background_keys(real_keys, n, index.audio_params, rng)
        frames = np.sort(rng.integers(0, frames_per_hour, n))
        track = index.audio.add_track(
            f"bg-{h:03d}",
            "background",
            keys,
            frames,
            hop_seconds=hop,
            length_frames=frames_per_hour,
        )
        bins = peak_bins[rng.integers(0, peak_bins.size, n_peaks)]
        times = np.sort(rng.uniform(0, frames_per_hour, n_peaks))
        index.peaks.add(track.id, Peaks(times, bins, np.zeros(n_peaks), hop), track.start)
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


def self_similarity(ref: np.ndarray, a: float, b: float, seconds: float) -> float:
    """How alike the reference is to itself at offsets ``a`` and ``b`` (seconds).

    Normalised cross-correlation of the two stretches, best over +-50 ms (a reported offset is
    exact to a 32 ms frame). About 0.05 for unrelated passages of music; a chorus that comes
    back scores 0.5-0.7, a sample-exact loop 1.
    """
    n, lag = int(seconds * SR), int(0.05 * SR)
    i, j = int(a * SR), int(b * SR)
    if min(i, j - lag) < 0 or max(i + n, j + n + lag) > ref.size:
        return 0.0
    x, y = ref[i : i + n].astype(np.float64), ref[j - lag : j + n + lag].astype(np.float64)
    corr = scipy.signal.correlate(y, x, mode="valid", method="fft")
    energy = np.convolve(y * y, np.ones(n), mode="valid")
    return float(np.max(corr / np.sqrt(np.maximum(energy * np.dot(x, x), 1e-20))))


def score(queries: list[Query], rows: list[dict], refs: dict[str, np.ndarray]) -> dict:
    """Recall (right channel named) per (transform, length), offsets, false matches.

    A found query's offset is ``offset_exact`` within 0.5 s of where it was cut,
    ``offset_repeat`` where the reference repeats itself there (self-similarity >= 0.4:
    choruses and loops, which no fingerprint can tell apart), else ``offset_wrong``.
    A false match is a wrong channel named, or any channel for a negative. ``missed``
    counts the queries whose channel was not named, per channel: failures concentrate on
    kinds of content (a bass-heavy track under a commentator), which recall alone hides.
    """
    keys = ("n", "hit", "false", "offset_exact", "offset_repeat", "offset_wrong")
    cells: dict[str, dict] = defaultdict(lambda: dict.fromkeys(keys, 0) | {"missed": {}})
    for q, r in zip(queries, rows, strict=True):
        cell = cells[f"{q.transform}/{q.seconds:g}s"]
        cell["n"] += 1
        if q.channel is not None and r["channel"] != q.channel:
            cell["missed"][q.channel] = cell["missed"].get(q.channel, 0) + 1
        if r["channel"] is None:
            continue
        if q.channel is None or r["channel"] != q.channel:
            cell["false"] += 1
            continue
        cell["hit"] += 1
        if abs(r["offset"] - q.offset) <= OFFSET_TOLERANCE:
            cell["offset_exact"] += 1
        elif self_similarity(refs[q.channel], q.offset, r["offset"], q.seconds) >= 0.4:
            cell["offset_repeat"] += 1
        else:
            cell["offset_wrong"] += 1
    for c in cells.values():
        c["recall"] = c["hit"] / c["n"]
    return dict(sorted(cells.items()))


def markdown(report: dict) -> str:
    """The report as a Markdown table plus key figures."""
    v, a = report["vigie"]["cells"], report.get("audfprint", {}).get("cells", {})
    lines = [
        "| transform / length | n | Vigie recall | Vigie false | Vigie offsets exact/repeat/"
        "wrong | audfprint recall | audfprint false |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, c in v.items():
        b = a.get(key, {})
        lines.append(
            f"| {key} | {c['n']} | {c['recall']:.3f} | {c['false']} | "
            f"{c['offset_exact']}/{c['offset_repeat']}/{c['offset_wrong']} | "
            f"{b.get('recall', float('nan')):.3f} | {b.get('false', '-')} |"
        )
    lines.append("")
    for key, c in v.items():
        if c["missed"]:
            most = sorted(c["missed"].items(), key=lambda kv: (-kv[1], kv[0]))
            lines.append(f"- Vigie misses, {key}: " + ", ".join(f"{ch} {n}" for ch, n in most))
    for k, val in report["figures"].items():
        lines.append(f"- {k}: {val}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m bench``."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="few queries, for a smoke run")
    ap.add_argument("--no-baseline", action="store_true", help="skip audfprint")
    ap.add_argument("--background-hours", type=int, default=100)
    ap.add_argument(
        "--null-queries",
        type=int,
        default=1000,
        help="calibration cuts per query length: the tail fit needs a few dozen above chance",
    )
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
    index = Index(idx_dir, calibrations={"audio": NullCalibration(0, 1, 1, 0, 0)})
    prints = [fingerprint_file(str(p), index.audio_params).audio for p in corpus.refs]
    for p, fp in zip(corpus.refs, prints, strict=True):
        index.add_recording(channel_of(p), str(p), fp)
    index.audio.compact()
    real = index.stats()
    rate = sum(len(fp) for fp in prints) / sum(fp.duration_seconds for fp in prints)
    pool = np.concatenate(
        [fp.hashes for fp in prints]
        + [
            fingerprint_file(str(p), index.audio_params).audio.hashes
            for p in corpus.calibration_negatives
        ]
    )
    add_background(index, pool, rate, args.background_hours, [fp.peaks for fp in prints])
    null = np.concatenate(
        [
            measure_null_scores(
                index,
                [str(p) for p in corpus.calibration_negatives],
                seconds=s,
                n_queries=args.null_queries,
                seed=int(s),
            )
            for s in (5.0, 10.0)
        ]
    )
    index.calibrations["audio"] = NullCalibration.fit(null)
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
        "index": {
            "real": real,
            "with_background": total,
            "effective_bits": {
                "pool": effective_bits(pool),
                "background": effective_bits(
                    background_keys(pool, 2_000_000, index.audio_params, np.random.default_rng(0))
                ),
            },
        },
        "calibration": {**index.calibration.__dict__, "null_scores": sorted(null.tolist())},
        "vigie": {
            "cells": score(queries, rows, ref_audio),
            "one_hour_indexing": hour,
            "queries": [
                {"file": q.path.name, "truth": q.channel, "truth_offset": q.offset, **r}
                for q, r in zip(queries, rows, strict=True)
            ],
        },
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
            "queries": [
                {"file": q.path.name, **r} for q, r in zip(queries, afp["rows"], strict=True)
            ],
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
