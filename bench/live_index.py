"""Live reference index benchmark: retention keeps memory and disk flat; query latency.

``python -m bench.live_index [--part retention|latency|all] [--quick]`` writes
``bench/results/live_index.{json,md}`` (a part run alone replaces only its own section).

* **retention**: ``--channels`` live feeds (20) for ``--hours`` simulated hours (6), 6 s
  chunks through :meth:`FeedLoop.ingest` as fast as the CPU allows, a :class:`LiveWriter`
  flush every 10 simulated seconds and ``Index.retain`` every simulated minute with a
  short retention (1 h) so that the steady state comes within the run. RSS, index disk and
  segments are sampled every 10 simulated minutes. Each channel loops its own decoded
  programme: decoding is done once, so CPU figures are fingerprinting and indexing only.
* **latency**: an index of ``--lat-channels`` x ``--lat-hours`` (100 x 48) channel-hours of
  live postings, written straight to the stores (hour segments; the running hour in
  10-minute flushes) from real fingerprints of 19 programmes varied per tile
  (:class:`bench.live_corpus.Tiler`), plus one channel that aired the real 20th
  programme in its last hour. A 10 s sample of it, captured by a restream 30 s late, is
  queried in a fresh process with ``around`` (the default window -600..+30 s) and without.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from fingerprinting import audio, video
from fingerprinting.framehash import hamming
from fingerprinting.params import VideoParams
from fingerprinting.types import FrameBatch
from reference_index.catalog import Catalog
from reference_index.catalog_schema import sqlite_url
from reference_index.index import DEFAULT_LIVE_WINDOW, Index
from reference_index.live import FeedHealth, FeedLoop, IngestPlan, LiveWriter, feed_source
from reference_index.mih import _flip_masks, _rotl, near_hashes

from .live_corpus import (
    CHUNK_SECONDS,
    DEFAULT_CACHE,
    FingerprintCpu,
    Tiler,
    build_index,
    chunk_slices,
    live_chunk,
    live_prints,
    programmes,
    rss,
    tree_bytes,
)
from .live_index_report import markdown

RESULTS = Path(__file__).parent / "results"
T0 = 1_800_000_000.0 // 3600 * 3600  # simulated UTC of the start (an hour boundary), epoch s
MB = 1e6
SEEDS = list(range(1000, 1020))  # 20 programmes, shared by both parts (cached once)
KEYS = ("audio_keys", "video_hashes")


def CASES(pk, vq) -> list:  # noqa: N802 - a table
    """Timed query cases: (name, audio peaks, video query); "coverage_only" is the rest of
    ``Index.query`` (the coverage of every live track in the window)."""
    return [("query", pk, vq), ("audio_only", pk, None), ("video_only", None, vq),
            ("coverage_only", None, None)]  # fmt: skip


def _manifest_stamp(index: Index) -> tuple:
    return tuple((s.root / "manifest.json").stat().st_mtime_ns for s in (index.audio, index.video))


def run_retention(
    work: Path, channels: int, hours: float, retention_hours: float, prog_seconds: float,
    cache: Path,
) -> dict:  # fmt: skip
    """Part A: ingest ``channels`` looping programmes for ``hours`` simulated hours with a
    retention of ``retention_hours``; samples every 10 simulated minutes."""
    progs = programmes(SEEDS[:channels], prog_seconds, cache)
    slices = [chunk_slices(p) for p in progs]
    del progs  # the slices are views of the reference frames; the query frames can go
    catalog = Catalog(sqlite_url(work / "vigie.db"))
    index = Index(work / "index")
    writer = LiveWriter(index)
    loops, keep = [], {}
    for c in range(channels):
        catalog.add_channel(f"ch{c:03d}", name=f"Channel {c}")
        feed = catalog.add_feed(
            f"ch{c:03d}", f"http://ref.example/live/{c}.m3u8", retention_hours=retention_hours
        )
        keep[feed_source(feed.id)] = retention_hours * 3600.0
        loops.append(
            FeedLoop(
                feed, writer, IngestPlan(), lambda: None, FeedHealth(feed.id, "bench"),
                threading.Event(),
            )
        )  # fmt: skip
    n = len(slices[0])
    offsets = [(7 * c) % n for c in range(channels)]
    steps = int(round(hours * 3600 / CHUNK_SECONDS))
    cpu = {"ingest": 0.0, "flush": 0.0, "retain": 0.0}
    upkeep = {"retain_calls": 0, "idle_calls": 0, "idle_commits": 0, "dropped": 0}
    samples: list[dict] = []
    next_flush, next_retain, next_sample = 10.0, 60.0, 0.0
    wall0 = time.perf_counter()

    def sample(elapsed: float) -> None:
        s = {"sim_h": round(elapsed / 3600, 4), "wall_s": round(time.perf_counter() - wall0, 1)}
        s.update(rss())
        for m in ("audio", "video"):
            st = index.store(m)
            s[f"{m}_mb"] = round(st.disk_bytes() / MB, 2)
            s[f"{m}_segments"] = len(st.segment_names)
            s[f"{m}_postings"] = st.posting_count()
        s["dir_mb"] = round(tree_bytes(work / "index") / MB, 2)
        samples.append(s)

    sample(0.0)
    with FingerprintCpu() as timed:
        for i in range(steps):
            t = time.process_time()
            for c, loop in enumerate(loops):
                pcm, frames = slices[c][(i + offsets[c]) % n]
                loop.ingest(live_chunk(pcm, frames, T0 + i * CHUNK_SECONDS, i, i == 0))
            cpu["ingest"] += time.process_time() - t
            elapsed = (i + 1) * CHUNK_SECONDS
            if elapsed >= next_flush or i == steps - 1:
                t = time.process_time()
                writer.flush()
                cpu["flush"] += time.process_time() - t
                next_flush += 10.0 * (1 + (elapsed - next_flush) // 10.0)
            if elapsed >= next_retain:
                t, before = time.process_time(), _manifest_stamp(index)
                segs = len(index.audio.segment_names) + len(index.video.segment_names)
                dropped = index.retain(T0 + elapsed, keep, default_seconds=retention_hours * 3600)
                after = len(index.audio.segment_names) + len(index.video.segment_names)
                cpu["retain"] += time.process_time() - t
                upkeep["retain_calls"] += 1
                upkeep["dropped"] += dropped
                if dropped == 0 and after == segs:  # nothing dropped nor merged
                    upkeep["idle_calls"] += 1
                    upkeep["idle_commits"] += int(_manifest_stamp(index) != before)
                next_retain += 60.0
            if elapsed >= next_sample + 600.0:
                next_sample += 600.0
                sample(elapsed)
        for loop in loops:
            loop.end_run()
        writer.flush()
    wall = time.perf_counter() - wall0
    catalog.close()
    ch_hours = channels * hours
    at = {h: min(samples, key=lambda s, h=h: abs(s["sim_h"] - h)) for h in (1.5, hours)}
    steady = [s for s in samples if s["sim_h"] >= retention_hours + 1.0]

    def spread(key: str) -> dict:
        vals = [s[key] for s in steady]
        return {"min": min(vals), "max": max(vals)} if vals else {}

    return {
        "params": {
            "channels": channels,
            "sim_hours": hours,
            "retention_hours": retention_hours,
            "programme_seconds": prog_seconds,
            "chunk_seconds": CHUNK_SECONDS,
            "flush_every_s": 10,
            "retain_every_s": 60,
        },  # fmt: skip
        "wall_s": round(wall, 1),
        "sim_hours_per_wall_hour": round(hours / (wall / 3600), 1),
        "cpu_s_per_channel_hour": {
            "audio_fingerprint": round(timed.cpu["audio"] / ch_hours, 2),
            "video_fingerprint": round(timed.cpu["video"] / ch_hours, 2),
            "ingest_total": round(cpu["ingest"] / ch_hours, 2),
            "flush": round(cpu["flush"] / ch_hours, 2),
            "retain_and_merge": round(cpu["retain"] / ch_hours, 2),
        },
        "upkeep": upkeep,
        "at": {f"{h:g}h": at[h] for h in at},
        "steady": {
            "from_sim_h": retention_hours + 1.0,
            **{k: spread(k) for k in ("VmRSS", "audio_mb", "video_mb", "dir_mb")},
            **{k: spread(k) for k in ("audio_segments", "video_segments")},
        },
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, 1),
        "samples": samples,
    }


# -- B: latency ------------------------------------------------------------------------------


def _counts(index: Index, pk, vq, around: float | None) -> dict:
    """Segments read, postings whose key matched in them, those kept by the window, and
    channels with hits, per modality."""
    out = {}
    ap, vp = index.audio_params, index.video_params
    qp = audio.query_print(pk, ap)
    tracks = index.audio.tracks()
    within = index._window(tracks, around, DEFAULT_LIVE_WINDOW, qp.duration_seconds)
    segs = index.audio._part_segments(0, within)
    hits = index.audio.lookup(qp.hashes, within)
    out["audio"] = {
        "query_keys": int(qp.hashes.size),
        "segments_read": len(segs),
        "postings_in_segments": int(sum(s.keys.size for s in segs)),
        "postings_matched": int(sum(s.lookup(qp.hashes)[0].size for s in segs)),
        "postings_in_window": hits.size,
        "channels_hit": int(np.unique(hits.track).size),
        "searched_hours": round(within.searched_frames(tracks) * ap.hop_seconds / 3600, 2),
    }
    tracks = index.video.tracks()
    within = index._window(tracks, around, DEFAULT_LIVE_WINDOW, float(vq.times.max()) + 0.2)
    masks, shift = _flip_masks(vp.chunk_bits, vp.probe_radius), np.uint64(64 - vp.chunk_bits)
    v = {"query_hashes": len(vq), "segments_read": 0, "postings_in_segments": 0}
    v.update(postings_matched=0, postings_in_window=0)
    for part in range(vp.chunks):
        probes = (_rotl(vq.hashes, part * vp.chunk_bits) >> shift)[:, None] ^ masks[None, :]
        probes = probes.reshape(-1)
        segs = index.video._part_segments(part, within)
        v["segments_read"] += len(segs)
        v["postings_in_segments"] += int(sum(s.keys.size for s in segs))
        v["postings_matched"] += int(
            sum(s.lookup_prefix(probes, vp.chunk_bits)[0].size for s in segs)
        )
        v["postings_in_window"] += index.video.lookup_prefix(
            probes, vp.chunk_bits, within, part=part
        ).size
    near = near_hashes(
        index.video, vq.hashes, max_distance=vp.max_distance, chunk_bits=vp.chunk_bits,
        radius=vp.probe_radius, within=within,
    )  # fmt: skip
    v["near_pairs"] = int(near.query_pos.size)
    v["channels_hit"] = int(np.unique(near.track).size)
    v["searched_hours"] = round(within.searched_frames(tracks) * vp.hop_seconds / 3600, 2)
    out["video"] = v
    return out


def _timing(fn, repeats: int) -> dict:
    """Wall milliseconds of ``fn()`` over ``repeats`` runs after two warm-ups, and its CPU
    milliseconds (what an idle core would take; the wall time counts other jobs' turns)."""
    fn()
    fn()
    ms, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        ms.append(1e3 * (time.perf_counter() - t))
        cpu.append(1e3 * (time.process_time() - c))
    ms.sort()
    return {
        "median_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[min(len(ms) - 1, int(np.ceil(0.95 * len(ms))) - 1)], 2),
        "min_ms": round(ms[0], 2),
        "cpu_median_ms": round(statistics.median(cpu), 2),
        "runs": repeats,
    }


def _verdict(found, target: str, around: float, delay: float) -> dict:
    out = {}
    for m in ("audio", "video"):
        cands = getattr(found, m)
        best = cands[0] if cands else None
        wrong = [c for c in cands if c.channel_id != target]
        out[m] = {
            "best_channel": best and best.channel_id,
            "delay_s": best and round(around - best.offset_seconds, 3),
            "confidence": best and round(best.confidence, 6),
            "votes": best and best.votes,
            "ok": bool(best and best.channel_id == target)
            and abs(around - best.offset_seconds - delay) <= 0.5,
            "wrong_candidates": len(wrong),
            "wrong_max_confidence": round(max((c.confidence for c in wrong), default=0.0), 6),
        }
    return out


def query_child(root: str, pcm: np.ndarray, frames: FrameBatch, around: float, target: str,
                delay: float, repeats: int) -> dict:  # fmt: skip
    """Runs in a fresh process: open the index, fingerprint the sample, time the queries."""
    out = {"rss_start": rss()}
    index = Index(Path(root))
    out["rss_open"] = rss()
    t = time.perf_counter()
    pk = audio.query_peaks(pcm, index.audio_params)
    vq = video.video_query(frames, index.video_params)
    out["sample_fingerprint_ms"] = round(1e3 * (time.perf_counter() - t), 1)
    for name, at in (("window", around), ("whole", None)):
        res = {
            case: _timing(lambda a=a, v=v, at=at: index.query(a, v, around=at), repeats)
            for case, a, v in CASES(pk, vq)
        }
        res |= {
            "counts": _counts(index, pk, vq, at),
            "answer": _verdict(index.query(pk, vq, around=at), target, around, delay),
            "rss_after": rss(),
        }
        out[name] = res
    return out


def run_latency(
    work: Path, channels: int, hours: int, prog_seconds: float, cache: Path, repeats: int
) -> dict:
    """Part B: build the index, then query it from a fresh process."""
    progs = programmes(SEEDS, prog_seconds, cache)
    t = time.process_time()
    prints = [live_prints(p) for p in progs]
    fp_cpu = time.process_time() - t
    tiler = Tiler(prints[:-1], prog_seconds)
    target = channels // 2
    t_end = T0 + 3600.0 * hours
    slot = t_end - 600.0  # the real programme airs from 10 minutes before the end
    a_per_h = sum(len(p.audio_keys) for p in prints[:-1]) / len(prints[:-1]) * 3600 / prog_seconds
    v_per_h = sum(len(p.video_hashes) for p in prints[:-1]) / len(prints[:-1]) * 3600 / prog_seconds
    need = channels * hours * (a_per_h * 8.6 + v_per_h * 4 * 12.1)
    free = shutil.disk_usage(work).free
    if need > 0.8 * free:
        raise SystemExit(f"index needs ~{need / 1e9:.1f} GB, {free / 1e9:.1f} GB free: reduce")
    print(f"latency: building {channels} x {hours} h (~{need / 1e9:.1f} GB)", flush=True)
    build = build_index(work / "index", T0, channels, hours, tiler, prints[-1], slot, target)
    index = Index(work / "index")
    size = {m: index.stats(m) for m in ("audio", "video")}
    size["segments"] = {m: len(index.store(m).segment_names) for m in ("audio", "video")}
    del index
    at = min(120.0, prog_seconds - 20.0)  # programme seconds where the sample starts
    p = progs[-1]
    pcm = p.pcm[int(at * 8000) : int((at + 10) * 8000)]
    sel = (p.query.times >= at) & (p.query.times < at + 10)
    frames = FrameBatch(p.query.times[sel] - at, p.query.gray[sel])
    delay, around = 30.0, slot + at + 30.0
    qa = audio.query_print(audio.query_peaks(pcm)).hashes
    qv = video.video_query(frames).hashes
    synth = [tiler.hour(np.random.default_rng(99)) for _ in range(2)]

    def chance(keys: np.ndarray, hashes: np.ndarray) -> dict:
        near = hamming(hashes[:, None], qv[None, :]).min(axis=1) <= VideoParams().max_distance
        return {"audio": float(np.isin(keys, qa).mean()), "video": float(near.mean())}

    bg = prints[:-1]
    rates = {
        "real": chance(*(np.concatenate([getattr(p, k) for p in bg]) for k in KEYS)),
        "synthetic": chance(*(np.concatenate([h[i] for h in synth]) for i in (0, 2))),
    }
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        fut = pool.submit(
            query_child, str(work / "index"), pcm, frames, around, f"ch{target:03d}", delay,
            repeats,
        )  # fmt: skip
        queried = fut.result()
    return {
        "params": {
            "channels": channels,
            "hours": hours,
            "channel_hours": channels * hours,
            "programme_seconds": prog_seconds,
            "sample_seconds": 10.0,
            "delay_s": delay,
            "window_s": list(DEFAULT_LIVE_WINDOW),
            "repeats": repeats,
        },  # fmt: skip
        "postings_per_channel_hour": {"audio": round(a_per_h), "video_frames": round(v_per_h)},
        "programme_fingerprint_cpu_s": round(fp_cpu, 1),
        "build": build,
        "chance_match_fraction": rates,
        "size": size,
        "disk_gb": round(sum(size[m]["bytes"] for m in ("audio", "video")) / 1e9, 2),
        **queried,
    }


def _revision() -> str:
    """The checkout's commit, ``+dirty`` when the measured code has uncommitted changes."""
    git = ["git", "-C", str(Path(__file__).parent.parent)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "reference_index", "fingerprinting"],
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    return head.stdout.strip() + ("+dirty" if dirty else "") if head.returncode == 0 else "?"


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m bench.live_index``."""
    ap = argparse.ArgumentParser(
        prog="python -m bench.live_index", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--part", choices=("retention", "latency", "all"), default="all")
    ap.add_argument("--quick", action="store_true", help="small sizes, 1-minute programmes")
    ap.add_argument("--channels", type=int, help="retention: live feeds (20; quick 4)")
    ap.add_argument("--hours", type=float, help="retention: simulated hours (6; quick 1.5)")
    ap.add_argument("--retention-hours", type=float, help="retention window (1; quick 0.5)")
    ap.add_argument("--lat-channels", type=int, help="latency: channels (100; quick 10)")
    ap.add_argument("--lat-hours", type=int, help="latency: hours per channel (48; quick 3)")
    ap.add_argument("--repeats", type=int, default=20, help="timed queries per case")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="decoded programmes")
    ap.add_argument("--workdir", type=Path, help="where the index folders go (a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the index folders afterwards")
    a = ap.parse_args(argv)
    q = a.quick
    prog_seconds = 60.0 if q else 300.0
    json_path = RESULTS / "live_index.json"
    res = json.loads(json_path.read_text()) if json_path.exists() else {}
    res["machine"] = {"python": platform.python_version(), "cpus": mp.cpu_count()}
    rev = _revision()
    base = Path(tempfile.mkdtemp(prefix="vigie-live-", dir=a.workdir))
    try:
        if a.part in ("retention", "all"):
            work, load = base / "retention", os.getloadavg()
            work.mkdir()
            res["retention"] = run_retention(
                work, a.channels or (4 if q else 20), a.hours or (1.5 if q else 6.0),
                a.retention_hours or (0.5 if q else 1.0), prog_seconds, a.cache,
            )  # fmt: skip
            res["retention"]["params"] |= {"quick": q, "load_avg_at_start": load, "code": rev}
            print(json.dumps({k: v for k, v in res["retention"].items() if k != "samples"}))
        if a.part in ("latency", "all"):
            work, load = base / "latency", os.getloadavg()
            work.mkdir()
            res["latency"] = run_latency(
                work, a.lat_channels or (10 if q else 100), a.lat_hours or (3 if q else 48),
                prog_seconds, a.cache, a.repeats,
            )  # fmt: skip
            res["latency"]["params"] |= {"quick": q, "load_avg_at_start": load, "code": rev}
            print(json.dumps(res["latency"], indent=1))
    finally:
        if a.keep:
            print(f"index folders kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    json_path.write_text(json.dumps(res, indent=1) + "\n")
    (RESULTS / "live_index.md").write_text(markdown(res, __doc__ or ""))


if __name__ == "__main__":
    main()
