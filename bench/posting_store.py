"""Posting stores compared: the embedded segments against PostgreSQL, on the same live postings.

``python -m bench.posting_store [--quick]`` writes ``bench/results/posting_store.{json,md}``.

For each size (``--channels`` x each of ``--hours``; 100 x 1 h and 100 x 3 h by default),
the same channel-hours of live postings (:class:`bench.live_corpus.Tiler`: real
fingerprints of 19 programmes varied per tile, plus the real 20th programme on one channel
in the last hour, as ``bench.live_index`` builds them) go into an :class:`Index` on the
embedded stores and one on :class:`PostgresStore` (``Index(postings_url=...)``), one hour
of all channels per flush (the last hour in six 10-minute flushes). Measured:

* **ingest**: postings per second of store time (``append`` + ``flush``; making the
  postings is not counted), and, apart, 10-second live flushes of every channel (what a
  live writer does), and COPY built by numpy against psycopg's ``write_row``;
* **disk**: bytes per channel-hour (PostgreSQL: heap + btree, ``pg_total_relation_size``);
* **query latency**: ``Index.query`` of a 10 s audio+video sample captured by a restream
  30 s late, in a fresh process, ``--repeats`` times after two warm-ups, with the live
  window around the capture time and over the whole index; and exact lookups as
  ``key = ANY(array)`` against ``unnest`` joined;
* **memory**: RssAnon, RssFile and proportional set sizes (``/proc/self/smaps_rollup``:
  a page shared by two processes counts half in each) of ``--procs`` query processes
  alive at once, and of the PostgreSQL backends serving them;
* **retention**: one ``Index.retain`` that drops the oldest hour.

PostgreSQL rows take ~8x the bytes of segment postings: 100 x 48 h (741 M postings) would
take ~61 GB and ~1.6 h of COPY on this machine, so each figure is measured at two sizes to
show how it grows with hours (a straight line carried to 48 h, marked extrapolated), and
the embedded store's measured 100 x 48 h figures from ``bench/results/live_index.json``
are quoted beside them. ``--conclusion FILE`` puts a Markdown conclusion in the report.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from fingerprinting import audio, video
from fingerprinting.types import FrameBatch
from reference_index.index import Index
from reference_index.live import feed_source
from reference_index.mih import chunk_keys
from reference_index.store.postgres import PostgresStore, libpq_url

from .live_corpus import DEFAULT_CACHE, Tiler, live_prints, programmes, rss

RESULTS = Path(__file__).parent / "results"
T0 = 1_800_000_000.0 // 3600 * 3600
SEEDS = list(range(1000, 1020))
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def memory() -> dict:
    """MB of this process: RSS split anonymous / file-backed, and proportional sizes."""
    out = rss()
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("Pss", "Pss_Anon", "Pss_File"):
            out[key] = round(int(val.split()[0]) * 1024 / 1e6, 1)
    return out


def backend_memory(store: PostgresStore) -> dict:
    """MB of the PostgreSQL backend serving ``store`` (its /proc status, if readable)."""
    pid = store.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    out = {"pid": pid}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, val = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = round(int(val.split()[0]) * 1024 / 1e6, 1)
    except OSError as exc:
        out["error"] = str(exc)
    return out


def _open(kind: str, root: str, url: str, schema: str) -> Index:
    if kind == "embedded":
        return Index(Path(root) / "embedded")
    return Index(Path(root) / "pg", postings_url=url, postings_schema=schema)


def _timing(fn, repeats: int) -> dict:
    """Wall ms of ``fn()`` over ``repeats`` runs after two warm-ups (and CPU ms of this
    process: PostgreSQL's work is in its backend, not here)."""
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
        "client_cpu_median_ms": round(statistics.median(cpu), 2),
        "runs": repeats,
    }


def _answer(found, target: str, around: float, delay: float) -> dict:
    out = {}
    for m in ("audio", "video"):
        cands = getattr(found, m)
        best = cands[0] if cands else None
        out[m] = bool(best and best.channel_id == target) and (
            abs(around - best.offset_seconds - delay) <= 0.5
        )
    return out


def query_child(
    kind: str, root: str, url: str, schema: str, sample: tuple, repeats: int
) -> dict:  # fmt: skip
    """In a fresh process: open the index, time ``Index.query`` in the window and whole."""
    pcm, frames, around, target, delay = sample
    out = {"mem_start": memory()}
    index = _open(kind, root, url, schema)
    out["mem_open"] = memory()
    pk = audio.query_peaks(pcm, index.audio_params)
    vq = video.video_query(frames, index.video_params)
    for name, at in (("window", around), ("whole", None)):
        res = {
            "query": _timing(lambda at=at: index.query(pk, vq, around=at), repeats),
            "audio_only": _timing(lambda at=at: index.query(pk, None, around=at), repeats),
            "video_only": _timing(lambda at=at: index.query(None, vq, around=at), repeats),
        }
        if kind == "postgres":  # the other SQL form of an exact lookup
            index.audio.lookup_sql = "unnest"
            res["audio_only_unnest"] = _timing(
                lambda at=at: index.query(pk, None, around=at), repeats
            )
            index.audio.lookup_sql = "any"
        res["found"] = _answer(index.query(pk, vq, around=at), target, around, delay)
        res["mem_after"] = memory()
        out[name] = res
    if kind == "postgres":
        out["backend"] = {m: backend_memory(index.store(m)) for m in ("audio", "video")}
    return out


def memory_child(
    kind: str, root: str, url: str, schema: str, sample: tuple, barrier, queue, rank: int
) -> None:  # fmt: skip
    """One of ``--procs`` processes alive at once: query (window, whole) twice, then report
    memory while every sibling is still alive."""
    pcm, frames, around, _, _ = sample
    index = _open(kind, root, url, schema)
    pk = audio.query_peaks(pcm, index.audio_params)
    vq = video.video_query(frames, index.video_params)
    for _ in range(2):
        index.query(pk, vq, around=around)
        index.query(pk, vq)
    barrier.wait()
    out = {"rank": rank, "mem": memory()}
    if kind == "postgres":
        out["backend"] = {m: backend_memory(index.store(m)) for m in ("audio", "video")}
    queue.put(out)
    barrier.wait()


def run_memory(kind: str, root: str, url: str, schema: str, sample: tuple, procs: int) -> list:
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(procs), ctx.Queue()
    ps = [
        ctx.Process(target=memory_child, args=(kind, root, url, schema, sample, barrier, queue, r))
        for r in range(procs)
    ]
    for p in ps:
        p.start()
    got = sorted((queue.get(timeout=1800) for _ in ps), key=lambda r: r["rank"])
    for p in ps:
        p.join()
    return got


def _store_time(index: Index, work) -> float:
    t = time.perf_counter()
    work(index)
    return time.perf_counter() - t


def build(
    indexes: dict[str, Index], channels: int, hours: int, tiler: Tiler, real, slot: float,
    target: int,
) -> dict:  # fmt: skip
    """Write the same postings into every index; store seconds per index (the postings are
    made once per hour, outside the timings)."""
    any_index = next(iter(indexes.values()))
    a_hop, v_hop = any_index.audio_params.hop_seconds, any_index.video_params.hop_seconds
    bits = any_index.video_params.chunk_bits
    tracks = {
        k: (
            [ix.live_track("audio", f"ch{c:03d}", feed_source(c + 1), T0) for c in range(channels)],
            [ix.live_track("video", f"ch{c:03d}", feed_source(c + 1), T0) for c in range(channels)],
        )
        for k, ix in indexes.items()
    }
    rng = np.random.default_rng(7)
    secs = dict.fromkeys(indexes, 0.0)
    postings = 0
    for h in range(hours):
        start = T0 + 3600.0 * h
        content = [list(tiler.hour(rng)) for _ in range(channels)]
        if h == hours - 1:
            rel = slot - start
            ak, af, vh, vf = content[target]
            a_out = (af * a_hop < rel) | (af * a_hop >= rel + tiler.seconds)
            v_out = (vf * v_hop < rel) | (vf * v_hop >= rel + tiler.seconds)
            content[target] = [
                np.concatenate([ak[a_out], real.audio_keys]),
                np.concatenate([af[a_out], real.audio_frames + int(round(rel / a_hop))]),
                np.concatenate([vh[v_out], real.video_hashes]),
                np.concatenate([vf[v_out], real.video_frames + int(round(rel / v_hop))]),
            ]
        blocks = 6 if h == hours - 1 else 1
        for b in range(blocks):
            lo, hi = 3600.0 * b / blocks, 3600.0 * (b + 1) / blocks
            batch = []
            for ak, af, vh, vf in content:
                sa = (af * a_hop >= lo) & (af * a_hop < hi)
                sv = (vf * v_hop >= lo) & (vf * v_hop < hi)
                batch.append(
                    (ak[sa], af[sa] + int(round(3600 * h / a_hop)),
                     chunk_keys(vh[sv], bits), vf[sv] + int(round(3600 * h / v_hop)))
                )  # fmt: skip
                postings += int(sa.sum()) + 4 * int(sv.sum())
            spans = [(start + lo, start + hi)]
            for k, ix in indexes.items():
                ta, tv = tracks[k]

                def work(ix=ix, ta=ta, tv=tv, batch=batch, spans=spans):
                    for c, (ak, af, vk, vf) in enumerate(batch):
                        ix.audio.append(ta[c].id, ak, af)
                        ix.video.append(tv[c].id, vk, vf)
                    ix.audio.flush({t.id: spans for t in ta})
                    ix.video.flush({t.id: spans for t in tv})

                secs[k] += _store_time(ix, work)
        print(f"  hour {h + 1}/{hours}: " + ", ".join(f"{k} {v:.0f} s" for k, v in secs.items()),
              flush=True)  # fmt: skip
    return {
        "postings": postings,
        "store_s": {k: round(v, 1) for k, v in secs.items()},
        "postings_per_s": {k: round(postings / v) for k, v in secs.items()},
    }


def live_flushes(root: Path, url: str, schema: str, tiler: Tiler, channels: int, n: int) -> dict:
    """``n`` flushes of 10 s of every channel into fresh stores (what a live writer does
    every 10 s): ms per flush and postings/s."""
    out = {}
    rng = np.random.default_rng(11)
    hour = [tiler.hour(rng, 10.0 * n) for _ in range(channels)]
    for kind in ("embedded", "postgres"):
        ix = _open(kind, str(root / "flushes"), url, schema + "_fl")
        hop_a, hop_v = ix.audio_params.hop_seconds, ix.video_params.hop_seconds
        ta = [ix.live_track("audio", f"c{c}", f"f{c}", T0) for c in range(channels)]
        tv = [ix.live_track("video", f"c{c}", f"f{c}", T0) for c in range(channels)]
        ms, total = [], 0
        for i in range(n):
            t = time.perf_counter()
            for c, (ak, af, vh, vf) in enumerate(hour):
                sa = (af * hop_a >= 10 * i) & (af * hop_a < 10 * (i + 1))
                sv = (vf * hop_v >= 10 * i) & (vf * hop_v < 10 * (i + 1))
                ix.audio.append(ta[c].id, ak[sa], af[sa])
                ix.video.append(tv[c].id, chunk_keys(vh[sv]), vf[sv])
                total += int(sa.sum()) + 4 * int(sv.sum())
            ix.flush_live({"audio": {}, "video": {}})
            ms.append(1e3 * (time.perf_counter() - t))
        out[kind] = {
            "flushes": n,
            "median_ms": round(statistics.median(ms), 1),
            "p95_ms": round(sorted(ms)[int(np.ceil(0.95 * n)) - 1], 1),
            "postings_per_flush": round(total / n),
            "postings_per_s": round(total / (sum(ms) / 1e3)),
        }
        if kind == "postgres":
            for s in (ix.audio, ix.video):
                s.drop()
                s.close()
    return out


def copy_formats(url: str, schema: str, prints, rows: int) -> dict:
    """COPY of ``rows`` postings of one asset track: numpy-built binary vs ``write_row``."""
    keys = np.resize(prints.audio_keys, rows)
    frames = np.arange(rows, dtype=np.int64)
    out = {}
    for fmt in ("binary", "rows"):
        store = PostgresStore(url, {"bench": 1}, schema=f"{schema}_copy_{fmt}")
        t = time.perf_counter()
        store.add_track("c", "s", keys, frames, hop_seconds=0.032, copy_format=fmt)
        dt = time.perf_counter() - t
        out[fmt] = {"postings": rows, "s": round(dt, 2), "postings_per_s": round(rows / dt)}
        store.drop()
        store.close()
    return out


def run_size(
    work: Path, url: str, channels: int, hours: int, tiler: Tiler, real, progs, repeats: int,
    procs: int,
) -> dict:  # fmt: skip
    schema = f"vigie_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    indexes = {"embedded": _open("embedded", str(work), url, schema)}
    indexes["postgres"] = _open("postgres", str(work), url, schema)
    target = channels // 2
    slot = T0 + 3600.0 * hours - 600.0
    try:
        print(f"size {channels} x {hours} h", flush=True)
        built = build(indexes, channels, hours, tiler, real, slot, target)
        pg = indexes["postgres"]
        t = time.perf_counter()
        for s in (pg.audio, pg.video):
            s.conn.execute(f"VACUUM (ANALYZE) {s._s}.postings")
        built["postgres_vacuum_analyze_s"] = round(time.perf_counter() - t, 1)
        ch_h = channels * hours
        disk = {
            k: {m: ix.store(m).disk_bytes() for m in ("audio", "video")}
            for k, ix in indexes.items()
        }
        size = {
            "postings": built["postings"],
            "disk_bytes": {k: sum(v.values()) for k, v in disk.items()},
            "mb_per_channel_hour": {
                k: {m: round(b / 1e6 / ch_h, 3) for m, b in v.items()} for k, v in disk.items()
            },
            "bytes_per_posting": {
                k: round(sum(v.values()) / built["postings"], 1) for k, v in disk.items()
            },
        }
        at = min(120.0, progs[-1].seconds - 20.0)
        p = progs[-1]
        pcm = p.pcm[int(at * 8000) : int((at + 10) * 8000)]
        sel = (p.query.times >= at) & (p.query.times < at + 10)
        frames = FrameBatch(p.query.times[sel] - at, p.query.gray[sel])
        sample = (pcm, frames, slot + at + 30.0, f"ch{target:03d}", 30.0)
        ctx = mp.get_context("spawn")
        queries, mem = {}, {}
        for kind in ("embedded", "postgres"):
            with ctx.Pool(1) as pool:  # a fresh process per store, alone on the machine
                queries[kind] = pool.apply(
                    query_child, (kind, str(work), url, schema, sample, repeats)
                )
            mem[kind] = run_memory(kind, str(work), url, schema, sample, procs)
        retain = {}
        for kind, ix in indexes.items():
            t = time.perf_counter()
            dropped = ix.retain(T0 + 3600.0 * (hours + 1), default_seconds=3600.0 * hours)
            retain[kind] = {"dropped": dropped, "ms": round(1e3 * (time.perf_counter() - t), 1)}
        return {
            "channels": channels,
            "hours": hours,
            "channel_hours": ch_h,
            "build": built,
            "size": size,
            "queries": queries,
            "memory_procs": mem,
            "retain_oldest_hour": retain,
        }
    finally:
        for s in (indexes["postgres"].audio, indexes["postgres"].video):
            s.drop()
            s.close()


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m bench.posting_store``."""
    ap = argparse.ArgumentParser(prog="python -m bench.posting_store", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="10 channels x 1, 2 h; 60 s programmes")
    ap.add_argument("--url", default=os.environ.get("VIGIE_BENCH_POSTGRES_URL", DEFAULT_URL))
    ap.add_argument("--channels", type=int, help="channels (100; quick 10)")
    ap.add_argument("--hours", help="comma-separated hours per channel (1,3; quick 1,2)")
    ap.add_argument("--repeats", type=int, default=30, help="timed queries per case")
    ap.add_argument("--procs", type=int, default=2, help="query processes alive at once")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--conclusion", type=Path, help="Markdown conclusion to put in the report")
    ap.add_argument("--report-only", action="store_true", help="rewrite the .md from the .json")
    a = ap.parse_args(argv)
    name = "posting_store_quick" if a.quick else "posting_store"
    if a.report_only:
        res = json.loads((RESULTS / f"{name}.json").read_text())
        if a.conclusion:
            res["conclusion"] = a.conclusion.read_text()
            (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=1) + "\n")
        (RESULTS / f"{name}.md").write_text(markdown(res))
        return
    q = a.quick
    channels = a.channels or (10 if q else 100)
    hours = [int(h) for h in (a.hours or ("1,2" if q else "1,3")).split(",")]
    prog_seconds = 60.0 if q else 300.0
    progs = programmes(SEEDS, prog_seconds, a.cache)
    prints = [live_prints(p) for p in progs]
    tiler = Tiler(prints[:-1], prog_seconds)
    base = Path(tempfile.mkdtemp(prefix="vigie-postings-", dir=a.workdir))
    import psycopg

    with psycopg.connect(libpq_url(a.url)) as c:
        settings = {
            k: c.execute(f"SHOW {k}").fetchone()[0]
            for k in ("server_version", "shared_buffers", "work_mem", "synchronous_commit",
                      "max_wal_size")
        }  # fmt: skip
    res = {
        "machine": {"python": platform.python_version(), "cpus": mp.cpu_count(),
                    "load_avg_at_start": os.getloadavg(), "postgres": settings},
        "params": {"quick": q, "channels": channels, "hours": hours, "repeats": a.repeats,
                   "procs": a.procs, "programme_seconds": prog_seconds, "window_s": [-600, 30],
                   "sample_seconds": 10.0, "delay_s": 30.0},
    }  # fmt: skip
    try:
        schema = f"vigie_bench_{os.getpid()}"
        res["copy_formats"] = copy_formats(a.url, schema, prints[0], 50_000 if q else 300_000)
        print(json.dumps(res["copy_formats"]), flush=True)
        res["live_flushes"] = live_flushes(base, a.url, schema, tiler, channels, 10 if q else 30)
        print(json.dumps(res["live_flushes"]), flush=True)
        res["sizes"] = []
        for h in hours:
            work = base / f"h{h}"
            work.mkdir()
            res["sizes"].append(
                run_size(work, a.url, channels, h, tiler, prints[-1], progs, a.repeats, a.procs)
            )
            shutil.rmtree(work, ignore_errors=True)
            RESULTS.mkdir(exist_ok=True)
            if a.conclusion:
                res["conclusion"] = a.conclusion.read_text()
            (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=1) + "\n")
            (RESULTS / f"{name}.md").write_text(markdown(res))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _embedded_48h() -> dict | None:
    """The embedded store's 100 x 48 h figures measured by ``bench.live_index``."""
    path = RESULTS / "live_index.json"
    if not path.exists():
        return None
    lat = json.loads(path.read_text()).get("latency")
    return lat or None


_GROWTH = [
    ("store write time", "s", lambda s, k: s["build"]["store_s"][k]),
    ("disk", "GB", lambda s, k: s["size"]["disk_bytes"][k] / 1e9),
    ("whole-index query median", "ms", lambda s, k: s["queries"][k]["whole"]["query"]["median_ms"]),
]


def _line(x: list[float], y: list[float]) -> tuple[float, float]:
    """Slope of the least-squares line through ``(x, y)`` and its value at x = 48."""
    slope, icept = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(slope), float(icept + 48 * slope)


def markdown(res: dict) -> str:
    """The Markdown report of ``res``."""
    p = res["params"]
    lines = [
        "# Posting stores: embedded segments vs PostgreSQL",
        "",
        (__doc__ or "").split("\n\n", 1)[1].strip(),
        "",
        f"Reproduce: `python -m bench.posting_store` (`--quick`: {10} channels x 1, 2 h). "
        f"Machine: {res['machine']['cpus']} CPUs, Python {res['machine']['python']}, "
        f"load average at start {res['machine']['load_avg_at_start']}; PostgreSQL "
        f"{res['machine']['postgres']} (server defaults, not tuned). Sample: 10 s of "
        "audio + video, restream 30 s late, window -600..+30 s.",
        "",
    ]
    c = res.get("copy_formats")
    if c:
        lines += [
            "## COPY: numpy-built binary vs `write_row`",
            "",
            "| format | postings | s | postings/s |",
            "|---|---|---|---|",
            *(f"| {k} | {v['postings']} | {v['s']} | {v['postings_per_s']:,} |"
              for k, v in c.items()),
            "",
        ]  # fmt: skip
    f = res.get("live_flushes")
    if f:
        lines += [
            f"## Live flushes: 10 s of {p['channels']} channels per flush",
            "",
            "| store | flushes | postings/flush | median ms | p95 ms | postings/s |",
            "|---|---|---|---|---|---|",
            *(f"| {k} | {v['flushes']} | {v['postings_per_flush']:,} | {v['median_ms']} | "
              f"{v['p95_ms']} | {v['postings_per_s']:,} |" for k, v in f.items()),
            "",
        ]  # fmt: skip
    sizes = res.get("sizes", [])
    if sizes:
        lines += [
            "## Ingest and disk by size",
            "",
            "| size | store | postings | store s | postings/s | MB per channel-hour "
            "(audio + video) | bytes/posting | retain oldest hour ms |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in sizes:
            for k in ("embedded", "postgres"):
                mb = s["size"]["mb_per_channel_hour"][k]
                lines.append(
                    f"| {s['channels']} x {s['hours']} h | {k} | {s['build']['postings']:,} | "
                    f"{s['build']['store_s'][k]} | {s['build']['postings_per_s'][k]:,} | "
                    f"{mb['audio'] + mb['video']:.2f} ({mb['audio']} + {mb['video']}) | "
                    f"{s['size']['bytes_per_posting'][k]} | "
                    f"{s['retain_oldest_hour'][k]['ms']} |"
                )
        lines += [
            "",
            "PostgreSQL's store seconds exclude the `VACUUM (ANALYZE)` run after the build "
            "(autovacuum's job in production): "
            + ", ".join(
                f"{s['channels']} x {s['hours']} h {s['build']['postgres_vacuum_analyze_s']} s"
                for s in sizes
            )
            + ".",
            "",
            "## Query latency (fresh process, page cache warm)",
            "",
            "| size | store | search | query median ms | p95 | audio only | audio `unnest` | "
            "video only | client CPU ms | found |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]  # fmt: skip
        for s in sizes:
            for k in ("embedded", "postgres"):
                for search in ("window", "whole"):
                    r = s["queries"][k][search]
                    un = r.get("audio_only_unnest", {}).get("median_ms", "")
                    ok = "audio+video" if all(r["found"].values()) else str(r["found"])
                    lines.append(
                        f"| {s['channels']} x {s['hours']} h | {k} | {search} | "
                        f"{r['query']['median_ms']} | {r['query']['p95_ms']} | "
                        f"{r['audio_only']['median_ms']} | {un} | {r['video_only']['median_ms']} | "
                        f"{r['query']['client_cpu_median_ms']} | {ok} |"
                    )
        lines += [
            "",
            f"## Memory of {p['procs']} query processes alive at once (MB, after window and "
            "whole-index queries)",
            "",
            "| size | store | process | RSS | RssAnon | RssFile | Pss | Pss_File | backend RSS "
            "(audio, video) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for s in sizes:
            for k in ("embedded", "postgres"):
                for r in s["memory_procs"][k]:
                    m = r["mem"]
                    be = r.get("backend")
                    bes = (", ".join(str(be[x].get("VmRSS", "?")) for x in ("audio", "video"))
                           if be else "")  # fmt: skip
                    lines.append(
                        f"| {s['channels']} x {s['hours']} h | {k} | {r['rank']} | {m['VmRSS']} | "
                        f"{m['RssAnon']} | {m['RssFile']} | {m.get('Pss')} | {m.get('Pss_File')} | "
                        f"{bes} |"
                    )
        lines.append("")
    if len(sizes) >= 2:
        lines += [
            "## How the figures grow with hours (straight line through the sizes measured)",
            "",
            "Per extra hour of all channels, and the line carried to 48 h (extrapolated, "
            "not measured; two points of noisy wall times for the query row, so read it as an "
            "order of magnitude; the windowed query reads only the window's hours and does "
            "not grow with them):",
            "",
            "| figure | store | per hour | at 48 h (extrapolated) |",
            "|---|---|---|---|",
        ]
        for name, unit, get in _GROWTH:
            for k in ("embedded", "postgres"):
                slope, at48 = _line([s["hours"] for s in sizes], [get(s, k) for s in sizes])
                if slope <= 0:  # fell between the two sizes: noise larger than growth
                    lines.append(f"| {name} ({unit}) | {k} | flat within noise | - |")
                else:
                    lines.append(f"| {name} ({unit}) | {k} | {slope:,.1f} | {at48:,.1f} |")
        lines.append("")
    e = _embedded_48h()
    if e:
        lines += [
            "## Embedded store at 100 x 48 h (from `bench/results/live_index.json`)",
            "",
            f"Disk {e['disk_gb']} GB, written in {e['build']['build_s']} s; query median "
            f"{e['window']['query']['median_ms']} ms in the window, "
            f"{e['whole']['query']['median_ms']} ms whole; query process "
            f"{e['window']['rss_after']['VmRSS']} MB RSS after the windowed queries.",
            "",
        ]
    lines += [res.get("conclusion", ""), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
