"""Live ingestion benchmark: ``vigie ingest`` following N live HLS reference feeds at once.

``python -m bench.live [--channels 100] [--minutes 10] [--segment-seconds 6] [--workers 2]``
(``--quick``: 20 channels for 2 minutes) writes ``bench/results/live.{json,md}``.

A separate server process serves N live HLS channels on loopback (640 x 360 H.264 at 25 fps
+ AAC, encoded as broadcasters do: x264 ``veryfast``, a keyframe every 2 s; MPEG-TS
segments of ``--segment-seconds``, a window of 5 segments, advancing in real time; all
channels share one 60 s programme, looped with a discontinuity). A fresh data folder gets
one catalog channel with one feed per served channel, and ``vigie ingest --workers W``
follows them all, with its default chunk and flush settings, for the whole run.

Every ``--interval`` seconds the benchmark samples:

* CPU time (user + system, from ``/proc/<pid>/stat``, reaped children included) and RSS
  (``VmRSS``; and PSS, which counts pages shared between processes once) of the ingester's
  whole process tree, and the server's CPU time separately (it shares the machine);
* the feed statuses the ingester reports to the catalog every 5 s: state, indexing lag
  (wall clock minus the end of the media indexed last, when it was indexed), its age
  (now minus that end: grows without bound if a feed stops being indexed), errors and
  reconnects;
* the *visible* lag: now minus the end of each feed's audio (and video) coverage flushed to
  the index, i.e. what a query from another process can already match (it includes the
  flush interval and the audio fingerprint's look-ahead);
* the index's size on disk.

The summary is over the steady state (samples after the first minute): CPU seconds per
second of media indexed (i.e. per channel), fraction of the cores used, RSS in total and
per channel, lags (medians and 95th percentiles), the slope of the median indexing lag
(s/min: a backlog makes it grow), and a verdict: median indexing lag below one segment,
slope below 0.1 s/min, and every feed live at every steady-state sample.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .live_probe import cpu_seconds, process_tree, take_sample
from .live_report import markdown
from .live_server import WINDOW_SEGMENTS, serve
from .live_summary import WARMUP_SECONDS, summarize

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent


# -- the run ----------------------------------------------------------------------------------


#: Log lines of the ingester that are routine (anything else is reported): flushes,
#: retention, the catalog's migration check, and one line per HTTP request (httpx at INFO).
_ROUTINE = re.compile(
    r" flushed \{| retention dropped | HTTP Request: | Context impl | Will assume "
)


def _log_summary(path: Path) -> dict:
    """Counts of the ingester's log lines, and the first unusual ones verbatim."""
    lines = path.read_text(errors="replace").splitlines()
    unusual = [line for line in lines if line.strip() and not _ROUTINE.search(line)]
    return {
        "lines": len(lines),
        "flush_lines": sum(1 for line in lines if " flushed {" in line),
        "http_request_lines": sum(1 for line in lines if " HTTP Request: " in line),
        "unusual_lines": len(unusual),
        "unusual_first": unusual[:40],
        "tracebacks": sum(1 for line in lines if line.startswith("Traceback")),
    }


def run(args: argparse.Namespace) -> dict:
    """Serve, register, ingest and sample; return the report (without writing it)."""
    from reference_index.catalog import Catalog
    from reference_index.index import Index

    version = code_version()  # what the ingester will import
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    server = ctx.Process(
        target=serve,
        args=(child, stop, args.channels, args.segment_seconds, args.lockstep),
        daemon=True,
    )
    t_media = time.monotonic()
    server.start()
    if not parent.poll(600):
        raise SystemExit("the server process made no media in 10 minutes")
    served = parent.recv()
    print(f"media ready in {time.monotonic() - t_media:.1f} s; {args.channels} channels served")
    seconds = args.minutes * 60.0
    samples: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="vigie-bench-live-") as tmp:
        data = Path(tmp)
        catalog_url = f"sqlite:///{(data / 'vigie.db').resolve()}"
        catalog = Catalog(catalog_url)
        feeds = []
        for i, url in enumerate(served["urls"]):
            catalog.add_channel(f"bench-{i:03d}", name=f"Bench channel {i:03d}")
            feeds.append(catalog.add_feed(f"bench-{i:03d}", url).id)
        index = Index(data / "index")
        env = dict(os.environ)
        env.update(
            VIGIE_DATA_DIR=str(data),
            VIGIE_ALLOW_NETWORKS="127.0.0.0/8",
            PYTHONUNBUFFERED="1",
        )
        env.pop("VIGIE_DATABASE_URL", None)
        run_for = seconds + args.interval / 2  # the last sample is taken while it runs
        command = [
            sys.executable,
            "-m",
            "service.cli",
            "ingest",
            "--workers",
            str(args.workers),
            "--for",
            f"{run_for:g}",
        ]
        log_path = data / "ingest.log"
        server_cpu0 = sum(cpu_seconds(p) for p in process_tree(server.pid))
        with log_path.open("w") as log:
            t0 = time.monotonic()
            proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
            try:
                k = 0
                while k * args.interval <= seconds and proc.poll() is None:
                    time.sleep(max(0.0, t0 + k * args.interval - time.monotonic()))
                    s = take_sample(
                        time.monotonic() - t0, proc.pid, server.pid, catalog, index, feeds
                    )
                    s["server_cpu_seconds"] = round(s["server_cpu_seconds"] - server_cpu0, 3)
                    samples.append(s)
                    _progress(s)
                    k += 1
                code = proc.wait(timeout=180 + run_for)
                shutdown = time.monotonic() - t0 - run_for  # from when --for expired
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        catalog.close()
        ingest_log = _log_summary(log_path)
        stop.set()
        server_seen = parent.recv() if parent.poll(30) else {}
        server.join(10)
    cores = os.cpu_count() or 1
    summary = summarize(samples, args.channels, args.segment_seconds, cores)
    for s in samples:  # kept (rounded) for re-analysis
        s["lags_seconds"] = [round(x, 3) for x in s["lags_seconds"]]
        s["indexed_until_utc"] = {f: round(t, 3) for f, t in s["indexed_until_utc"].items()}
    return {
        "benchmark": "live",
        "config": {
            "channels": args.channels,
            "minutes": args.minutes,
            "segment_seconds": args.segment_seconds,
            "workers": args.workers,
            "sample_interval_seconds": args.interval,
            "window_segments": WINDOW_SEGMENTS,
            "publication": "lockstep" if args.lockstep else "spread over a segment",
            "source": "60 s synthetic programme, 640x360 H.264 25 fps x264 veryfast, "
            "keyframe every 2 s, + AAC mono 22.05 kHz; MPEG-TS; all channels share it",
            "served_segments": served["segments"],
            "served_segment_seconds": served["segment_seconds"],
            "served_segment_bytes_median": served["segment_bytes_median"],
            "ingest": "default chunk (6 s) and flush (10 s) settings",
            "warmup_seconds": WARMUP_SECONDS,
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "cpus": cores,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "code": version,
        "summary": summary,
        "ingester_exit_code": code,
        "ingester_shutdown_seconds": round(shutdown, 2),
        "ingester_log": ingest_log,
        "server": _server_seen(server_seen),
        "samples": samples,
        "command": _command(args),
    }


def code_version() -> dict:
    """The checkout measured: commit, and the tracked files modified since (or ``{}``)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
    except OSError:
        return {}
    return {"commit": commit, "modified": [line[3:] for line in status]}


def _server_seen(seen: dict) -> dict:
    """What the server process reported at the end (requests served, handler errors)."""
    return {k: seen.get(k) for k in ("requests", "handler_error_count", "handler_errors")}


def _progress(s: dict) -> None:
    lag = s["indexing_lag_seconds"] or {}
    vis = s["visible"]["audio"]["lag_seconds"] or {}
    print(
        f"t={s['t_seconds']:6.1f}s cpu={s['ingester']['cpu_seconds']:8.1f}s "
        f"rss={s['ingester']['rss_mib']:7.1f}MiB live={s['feeds_live']:3d} "
        f"lag med/p95/max={lag.get('median')}/{lag.get('p95')}/{lag.get('max')} "
        f"visible med={vis.get('median')} err={s['errors']} rec={s['reconnects']}",
        flush=True,
    )


def _command(args: argparse.Namespace) -> str:
    lockstep = " --lockstep" if args.lockstep else ""
    if args.quick:
        return "python -m bench.live --quick" + lockstep
    return (
        f"python -m bench.live --channels {args.channels} --minutes {args.minutes:g} "
        f"--segment-seconds {args.segment_seconds:g} --workers {args.workers}{lockstep}"
    )


def main() -> None:
    """``python -m bench.live``: run, print and write ``bench/results/live.{json,md}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=100, help="live feeds followed")
    parser.add_argument("--minutes", type=float, default=10.0, help="ingestion time (min)")
    parser.add_argument("--segment-seconds", type=float, default=6.0, help="HLS segment (s)")
    parser.add_argument("--workers", type=int, default=2, help="ingest processes")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument(
        "--lockstep", action="store_true", help="all channels publish at the same instant"
    )
    parser.add_argument("--quick", action="store_true", help="20 channels for 2 minutes")
    args = parser.parse_args()
    if args.quick:
        args.channels, args.minutes = 20, 2.0
    report = run(args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "live.json").write_text(json.dumps(report, indent=2))
    text = markdown(report)
    (RESULTS / "live.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
