"""Service load benchmark: many bots submitting scans to ``vigie serve`` at once.

``python -m bench.service_load [--scans 500] [--clients 20] [--submit-seconds 60]``
(``--quick``: 100 scans, 10 clients, 20 s) writes ``bench/results/service_load.json``;
``--stagger`` (``service_load_staggered.json``): clients post at their own times instead
of all at the same instant.

A fresh data folder gets one channel indexed from a generated 60 s A/V recording; a
loopback server serves ``--scans`` distinct stream URLs (every fourth one is the channel's
recording remuxed as MPEG-TS — a pirate —, the others an unrelated recording), and
``vigie serve`` runs on the embedded default (SQLite, in-process workers). ``--clients``
threads submit the scans spread over ``--submit-seconds``, then poll them
(``GET /v1/scans/{id}``) until every one is done, while the latency of every API call is
recorded. The streams are files served at loopback speed, so a scan's cost is its decoding
and matching, not network waits: the scans/hour figure is the CPU-bound throughput of this
machine (a live 10 s sample adds ~10 s of waiting per scan, which worker threads overlap).

Reported: submissions accepted, lost (accepted but never done) and duplicated (two scans
for one URL, or two matches of one channel in one scan) — both must be 0 —, API latency
median / p95 / p99 during the run as the clients saw it and per route as the server spent
it (from its request log), scans per hour sustained (done / time from first
submission to last verdict), and verdicts by kind.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

RESULTS = Path(__file__).parent / "results"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vigie(data: Path, *args: str) -> None:
    env = {**os.environ, "VIGIE_DATA_DIR": str(data)}
    subprocess.run(
        [sys.executable, "-m", "service.cli", *args], env=env, check=True, capture_output=True
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _server_times(log: Path) -> dict:
    """Median / p99 of the time ``vigie serve`` spent in each route (ms), from its JSON
    request log: what the API itself costs, apart from the clients' own queueing."""
    by_route: dict[str, list[float]] = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if "route" in entry and "seconds" in entry:
            key = f"{entry['msg'].split()[0]} {entry['route']}"
            by_route.setdefault(key, []).append(entry["seconds"])
    return {
        route: {
            "requests": len(times),
            "median": round(statistics.median(times) * 1000, 1),
            "p99": round(_percentile(times, 0.99) * 1000, 1),
        }
        for route, times in sorted(by_route.items())
    }


def run(
    scans: int, clients: int, submit_seconds: float, seconds: float, *, stagger: bool = False
) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from service.db import Database
    from service.keys import create_key
    from service.models import MatchRow, ScanRow
    from service.settings import Settings
    from tests.fingerprinting.capture.hls_media import make_source
    from tests.fingerprinting.capture.servers import LoopbackServer, static

    root = Path(tempfile.mkdtemp(prefix="vigie-load-"))
    data = root / "data"
    channel = make_source(root / "tv1.ts", 60.0, seed=77)
    other = make_source(root / "other.ts", 60.0, seed=5)
    _vigie(data, "channels", "add", "tv1", "--name", "TV One")
    _vigie(data, "reindex", "tv1", str(channel))
    db = Database(Settings(data_dir=data).catalog_url)
    _, token = create_key(db, "load", ["scans:write"], rate_per_minute=10**6)
    headers = {"Authorization": f"Bearer {token}"}
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "VIGIE_DATA_DIR": str(data),
        "VIGIE_ALLOW_NETWORKS": "127.0.0.0/8",
        "VIGIE_PORT": str(port),
        "VIGIE_SCAN_SECONDS": str(seconds),
        "VIGIE_CONFIRM_AFTER_SECONDS": "86400",
    }
    latencies: list[float] = []
    lock = threading.Lock()
    with LoopbackServer() as server:
        bodies = {True: channel.read_bytes(), False: other.read_bytes()}
        for i in range(scans):
            server.route(f"/s/{i}.ts", static(bodies[i % 4 == 0], "video/mp2t"))
        server_log = (root / "serve.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=server_log,
        )
        try:
            with httpx.Client(timeout=30) as probe:
                for _ in range(300):
                    try:
                        if probe.get(f"{base}/healthz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.2)
            ids: dict[int, int] = {}
            errors: Counter = Counter()

            def call(client: httpx.Client, method: str, url: str, **kw: object) -> httpx.Response:
                t0 = time.perf_counter()
                r = client.request(method, url, headers=headers, **kw)
                with lock:
                    latencies.append(time.perf_counter() - t0)
                return r

            started = time.monotonic()

            def bot(k: int) -> None:
                mine = list(range(k, scans, clients))
                with httpx.Client(timeout=30) as client:
                    for n, i in enumerate(mine):
                        # All clients post together (the harsher case: a burst of
                        # ``clients`` requests at once), or each one its interval's
                        # k/clients later (as independent bots would).
                        shift = k / clients if stagger else 0.0
                        due = started + submit_seconds * ((n + shift) / max(1, len(mine)))
                        time.sleep(max(0.0, due - time.monotonic()))
                        r = call(
                            client,
                            "POST",
                            f"{base}/v1/scans",
                            json={"url": server.url(f"/s/{i}.ts")},
                        )
                        if r.status_code == 202:
                            ids[i] = r.json()["id"]
                        else:
                            errors[r.status_code] += 1

            threads = [threading.Thread(target=bot, args=(k,)) for k in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            submitted = time.monotonic() - started
            pending = set(ids.values())
            verdicts: Counter = Counter()
            with httpx.Client(timeout=30) as client:
                deadline = time.monotonic() + 3600
                while pending and time.monotonic() < deadline:
                    for scan_id in list(pending):
                        got = call(client, "GET", f"{base}/v1/scans/{scan_id}").json()
                        if got["status"] in ("done", "failed"):
                            pending.discard(scan_id)
                            verdicts[got["verdict"] or got["status"]] += 1
                    time.sleep(0.5)
            finished = time.monotonic() - started
        finally:
            proc.terminate()
            proc.wait(30)
            server_log.close()
    with db.session() as s:
        rows = s.query(ScanRow).filter(ScanRow.confirms.is_(None)).all()
        per_url = Counter(r.url for r in rows)
        per_match = Counter((m.scan_id, m.channel_id) for m in s.query(MatchRow).all())
    done = sum(verdicts.values())
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": "python -m bench.service_load " + " ".join(sys.argv[1:]),
        "scans": scans,
        "clients": clients,
        "submit_seconds": submit_seconds,
        "clients_post": "staggered" if stagger else "together",
        "sample_seconds": seconds,
        "accepted": len(ids),
        "refused": dict(errors),
        "lost": len(pending),
        "duplicated": sum(n - 1 for n in per_url.values() if n > 1)
        + sum(n - 1 for n in per_match.values() if n > 1),
        "submission_seconds": round(submitted, 1),
        "all_done_seconds": round(finished, 1),
        "scans_per_hour": round(done / finished * 3600) if finished else None,
        "verdicts": dict(verdicts),
        "api_latency_ms": {
            "requests": len(latencies),
            "median": round(statistics.median(latencies) * 1000, 1),
            "p95": round(_percentile(latencies, 0.95) * 1000, 1),
            "p99": round(_percentile(latencies, 0.99) * 1000, 1),
        },
        "server_ms": _server_times(root / "serve.log"),
    }
    return report


def markdown(report: dict) -> str:
    """The report as a Markdown page (``bench/results/service_load.md``)."""
    lat = report["api_latency_ms"]
    rows = "\n".join(
        f"| `{route}` | {t['requests']} | {t['median']} | {t['p99']} |"
        for route, t in report["server_ms"].items()
    )
    together = report.get("clients_post", "together") == "together"
    how = "posting together, bursts of one request per client" if together else "staggered"
    return f"""# Service load: {report["scans"]} scans from {report["clients"]} clients ({how})

`{report["command"]}` on {report["machine"]["cpus"]} CPUs, Python {report["machine"]["python"]}
(`vigie serve`, embedded: SQLite and in-process scan threads; {report["sample_seconds"]} s samples).

| accepted | lost | duplicated | scans/hour | submitted in | all done in |
|---|---|---|---|---|---|
| {report["accepted"]} | {report["lost"]} | {report["duplicated"]} | {report["scans_per_hour"]} \
| {report["submission_seconds"]} s | {report["all_done_seconds"]} s |

API latency as the clients saw it ({lat["requests"]} requests): median {lat["median"]} ms,
p95 {lat["p95"]} ms, p99 {lat["p99"]} ms.

Time the server spent per route (its request log, ms):

| route | requests | median | p99 |
|---|---|---|---|
{rows}

Verdicts: {", ".join(f"{k} {v}" for k, v in sorted(report["verdicts"].items()))}.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scans", type=int, default=500)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--submit-seconds", type=float, default=60.0)
    ap.add_argument("--sample-seconds", type=float, default=10.0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--stagger",
        action="store_true",
        help="clients post at their own times, not all together (writes service_load_staggered)",
    )
    args = ap.parse_args()
    if args.quick:
        args.scans, args.clients, args.submit_seconds = 100, 10, 20.0
    report = run(
        args.scans, args.clients, args.submit_seconds, args.sample_seconds, stagger=args.stagger
    )
    RESULTS.mkdir(exist_ok=True)
    name = "service_load_quick" if args.quick else "service_load"
    name += "_staggered" if args.stagger else ""
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown(report))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
