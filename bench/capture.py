"""Capture benchmark: time to a usable sample from live HLS, and CPU per captured second.

``python -m bench.capture [--runs N]`` writes ``bench/results/capture.{json,md}``.

Live channels (640 x 360 H.264 at 25 fps + AAC, as a pirate panel's cheapest variant) are
served from loopback by a separate process, so the figures are the capturing process's
own: segments of 2 s and 6 s in MPEG-TS, 2 s in fMP4, with a long window (a whole 10 s
sample is already published: capture costs download and decoding time) and a short one
(3 segments: part of the sample must be waited for in real time); plus a continuous
MPEG-TS stream over HTTP. Each run joins the channel at a different moment.

The test material is x264 ``ultrafast`` (CAVLC, no B-frames: cheap to decode) with a
keyframe every second; ``ts2-broadcast`` is encoded as broadcasters do (``veryfast``:
CABAC and B-frames, a keyframe every 2 s) to show what real streams cost.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

from fingerprinting.capture import CapturePlan, GuardedClient, HostLimiter, NetworkPolicy, sample

RESULTS = Path(__file__).parent / "results"
SOURCE_SECONDS = 60.0
#: (name, segment seconds, kind, window in segments)
CHANNELS = [
    ("ts2-long", 2.0, "mpegts", 8),
    ("ts2-short", 2.0, "mpegts", 3),
    ("ts6-long", 6.0, "mpegts", 4),
    ("ts6-short", 6.0, "mpegts", 3),
    ("fmp4-2-long", 2.0, "fmp4", 8),
    ("ts2-broadcast", 2.0, "mpegts", 8),
]


def _serve(conn: object, stop: object) -> None:
    """Child process: make the media, serve every channel, send back their URLs."""
    from tests.fingerprinting.capture.hls_media import LiveHls, make_source, segment
    from tests.fingerprinting.capture.servers import LoopbackServer, static

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = make_source(root / "src.ts", SOURCE_SECONDS, seed=5, size=(640, 360))
        broadcast = make_source(
            root / "broadcast.ts",
            SOURCE_SECONDS,
            seed=5,
            size=(640, 360),
            keyframe_seconds=2.0,
            preset="veryfast",
        )
        server = LoopbackServer()
        urls = {}
        for name, seconds, kind, window in CHANNELS:
            cut_from = broadcast if name.endswith("broadcast") else source
            media = segment(cut_from, root / name, seconds, kind)
            urls[name] = LiveHls(server, media, name=name, window=window).playlist_url
        server.route("/stream.ts", static(source.read_bytes(), "video/mp2t"))
        urls["ts-http"] = server.url("/stream.ts")
        conn.send(urls)
        stop.wait()
        server.close()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(url: str, runs: int, seconds: float, client: GuardedClient) -> dict:
    """Median and spread of ``runs`` captures of ``url``."""
    walls, firsts, cpus, got_seconds = [], [], [], []
    for k in range(runs):
        cpu0, t0 = _cpu(), time.perf_counter()
        got = sample(url, CapturePlan(seconds=seconds, deadline_seconds=60), client=client)
        walls.append(time.perf_counter() - t0)
        cpus.append((_cpu() - cpu0) / got.seconds)
        firsts.append(got.evidence.first_media_seconds)
        got_seconds.append(got.seconds)
        time.sleep(0.7 * (k % 3))  # join the live channel at another point of a segment
    return {
        "runs": runs,
        "time_to_sample_seconds": _stats(walls),
        "time_to_first_media_seconds": _stats(firsts),
        "cpu_seconds_per_captured_second": _stats(cpus),
        "captured_seconds": _stats(got_seconds),
    }


def _stats(values: list[float]) -> dict:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="captures per channel")
    parser.add_argument("--seconds", type=float, default=10.0, help="sample length (s)")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    server = ctx.Process(target=_serve, args=(child, stop), daemon=True)
    server.start()
    urls = parent.recv()
    rows = {}
    policy = NetworkPolicy.from_setting("127.0.0.0/8")
    try:
        with GuardedClient(policy, limiter=HostLimiter(rate=1000, burst=1000)) as client:
            sample(urls["ts-http"], CapturePlan(seconds=2), client=client)  # warm-up
            for name, url in urls.items():
                rows[name] = measure(url, args.runs, args.seconds, client)
                print(name, json.dumps(rows[name]))
    finally:
        stop.set()
        server.join(10)
    report = {
        "benchmark": "capture",
        "sample_seconds": args.seconds,
        "channels": {
            name: {"segment_seconds": s, "kind": kind, "window_segments": w}
            for name, s, kind, w in CHANNELS
        },
        "results": rows,
        "machine": {"python": platform.python_version(), "cpus": mp.cpu_count()},
        "command": f"python -m bench.capture --runs {args.runs}",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "capture.json").write_text(json.dumps(report, indent=2))
    lines = [
        "# Capture benchmark",
        "",
        f"`{report['command']}`: {args.seconds:g} s samples of loopback live HLS served by "
        "another process (640 x 360 H.264 25 fps + AAC). Medians (min-max) over runs.",
        "",
        "| channel | to sample (s) | to first media (s) | CPU s per captured s |",
        "|---|---|---|---|",
    ]
    for name, r in rows.items():
        t, f, c = (
            r["time_to_sample_seconds"],
            r["time_to_first_media_seconds"],
            r["cpu_seconds_per_captured_second"],
        )
        lines.append(
            f"| {name} | {t['median']} ({t['min']}-{t['max']}) | {f['median']} | "
            f"{c['median']} ({c['min']}-{c['max']}) |"
        )
    (RESULTS / "capture.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
