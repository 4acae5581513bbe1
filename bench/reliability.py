"""Reliability report of the scale-out mode: load held, faults injected, bad inputs tried.

``python -m bench.reliability [--quick]`` writes ``bench/results/reliability.{json,md}``.
It needs PostgreSQL (database ``test`` on 127.0.0.1:5432, as the scale-out tests) and the
``redis-server`` program (a private one is started per run, so that it can be killed).
Every run is ``vigie serve`` + ``vigie worker`` processes (bench/cluster.py):

* **throughput**: ``--scans`` (2,000) submitted at once by 20 clients across 4 workers,
  and a quarter as many on 1 worker: scans/hour each, and the ratio. Samples are
  ``--seconds`` (10) of audio and video from files served at loopback speed, so the cost
  is decoding, fingerprinting and matching: CPU. On a 2-core machine 4 workers cannot
  beat 1 by more than the cores it leaves idle, which the report shows with the load.
* **faults**, each during a load run of ``--fault-scans`` (300) spread over 30 s:
  a worker killed with SIGKILL mid-run and restarted (what an orchestrator does), and
  Redis killed and restarted (every queued message lost; the database re-queues).
* **bad inputs**: malformed, oversized, unauthenticated and unsafe requests, each of which
  must get a 4xx problem, never a 5xx.

Every run counts what was lost (accepted, never finished) and duplicated (a URL scanned
twice, a channel matched twice by one scan): both must be 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from .cluster import Cluster, RedisServer

RESULTS = Path(__file__).parent / "results"


def _database():  # noqa: ANN202 - (postgres admin URL, new database URL)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.service import backends

    found = backends.find_services()
    if not isinstance(found, backends.Services):
        raise SystemExit(f"bench.reliability needs PostgreSQL and Redis: {found}")
    return backends, found.postgres, backends.create_database(found.postgres)


def _cluster_run(
    name: str,
    scans: int,
    workers: int,
    env: dict[str, str],
    *,
    spread: float = 0.0,
    fault=None,  # noqa: ANN001 - callable(cluster, redis) run while the load is on
) -> dict:
    backends, admin, url = _database()
    work = Path(tempfile.mkdtemp(prefix=f"vigie-rel-{name}-"))
    load0 = os.getloadavg()
    try:
        with (
            RedisServer(work / "redis") as redis,
            Cluster(work, url, redis.url + "?namespace=rel", scans, env) as c,
        ):
            c.start_api()
            c.start_workers(workers)
            machine0, load_t0 = _machine_busy(), time.monotonic()
            got: dict = {}
            load = threading.Thread(
                target=lambda: got.update(sub=c.submit(list(range(scans)), 20, spread))
            )
            load.start()
            injected = fault(c, redis) if fault else None
            load.join()
            sub = got["sub"]
            c.wait_finished(list(sub.ids.values()), timeout=7200)
            machine_busy = (_machine_busy() - machine0) / (time.monotonic() - load_t0)
            tally = c.tally(sub)
            lat = sorted(sub.latencies)
        return {
            "scans": scans,
            "workers": workers,
            "submitted_in_seconds": round(sub.seconds, 1),
            "refused": {str(k): v for k, v in sub.refused.items()},
            "client_errors": dict(sub.errors),
            "post_latency_ms": {
                "median": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
                "p99": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000, 1)
                if lat
                else None,
            },
            "fault": injected,
            # Every process of the machine (PostgreSQL too), from the first submission to
            # the last verdict: how much of the hardware the run used.
            "machine_cores_busy": round(machine_busy, 2),
            "load_avg_before": [round(x, 2) for x in load0],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
            **tally.as_dict(),
        }
    finally:
        backends.drop_database(admin, url)
        shutil.rmtree(work, ignore_errors=True)


def _machine_busy() -> float:
    """CPU seconds every core of the machine spent not idle since boot."""
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def _kill_a_worker(c: Cluster, _redis: RedisServer) -> dict:
    time.sleep(8.0)
    c.kill("worker0")
    killed = time.time()
    time.sleep(2.0)
    c.start("worker0", "worker", "--threads", "2")
    return {"kind": "worker SIGKILL then restart", "at_unix": round(killed, 1), "down_s": 2.0}


def _restart_redis(_c: Cluster, redis: RedisServer) -> dict:
    time.sleep(8.0)
    redis.kill()
    killed = time.time()
    time.sleep(3.0)
    redis.start()
    return {
        "kind": "redis SIGKILL then restart (no persistence)",
        "at_unix": round(killed, 1),
        "down_s": 3.0,
    }


#: Requests the network guard refuses when the scan runs, not at submission (a host name
#: may resolve to an internal address only then): accepted (202), then the scan must end
#: ``unreachable`` with reason ``refused_address``, no request sent.
GUARDED = {"internal address", "cloud metadata address"}

#: (what, method, path, keyword arguments of httpx.request), sent with a scans:write key.
BAD_INPUTS = [
    ("no API key", "POST", "/v1/scans", {"json": {"url": "http://a.example/x.m3u8"}}),
    (
        "unknown API key",
        "POST",
        "/v1/scans",
        {"json": {"url": "http://a.example/x.m3u8"}, "headers": {"Authorization": "Bearer vk_x_y"}},
    ),
    (
        "not JSON",
        "POST",
        "/v1/scans",
        {"content": b"{url:", "headers": {"content-type": "application/json"}},
    ),
    ("empty body", "POST", "/v1/scans", {"json": {}}),
    (
        "URL and urls both",
        "POST",
        "/v1/scans",
        {"json": {"url": "http://a.example/1.ts", "urls": ["http://a.example/2.ts"]}},
    ),
    ("not a URL", "POST", "/v1/scans", {"json": {"url": "not a url"}}),
    ("file URL", "POST", "/v1/scans", {"json": {"url": "file:///etc/passwd"}}),
    ("internal address", "POST", "/v1/scans", {"json": {"url": "http://10.0.0.1/live.m3u8"}}),
    ("cloud metadata address", "POST", "/v1/scans", {"json": {"url": "http://169.254.169.254/x"}}),
    (
        "negative seconds",
        "POST",
        "/v1/scans",
        {"json": {"url": "http://a.example/x.ts", "seconds": -1}},
    ),
    (
        "unknown modality",
        "POST",
        "/v1/scans",
        {"json": {"url": "http://a.example/x.ts", "modalities": ["smell"]}},
    ),
    (
        "body of 1 MiB",
        "POST",
        "/v1/scans",
        {"content": b"{" + b" " * 2**20 + b"}", "headers": {"content-type": "application/json"}},
    ),
    (
        "10,000 URLs",
        "POST",
        "/v1/scans",
        {"json": {"urls": [f"http://a.example/{i}.ts" for i in range(10_000)]}},
    ),
    (
        "host name of 300 characters",
        "POST",
        "/v1/scans",
        {"json": {"url": f"http://{'a' * 300}.example/"}},
    ),
    (
        "callback not http",
        "POST",
        "/v1/scans",
        {"json": {"url": "http://a.example/x.ts", "callback_url": "ftp://hook.example/x"}},
    ),
    ("scan id not a number", "GET", "/v1/scans/abc", {}),
    ("scan id too large", "GET", "/v1/scans/99999999999999999999", {}),
    ("unknown scan", "GET", "/v1/scans/987654", {}),
    ("bad cursor", "GET", "/v1/scans?cursor=!!!", {}),
    ("bad status filter", "GET", "/v1/scans?status=sleeping", {}),
    ("scope it lacks (admin)", "POST", "/v1/channels", {"json": {"id": "x", "name": "X"}}),
]


def _bad_inputs(env: dict[str, str]) -> dict:
    """Each bad request once against a running API: the status each got."""
    backends, admin, url = _database()
    work = Path(tempfile.mkdtemp(prefix="vigie-rel-bad-"))
    try:
        with (
            RedisServer(work / "redis") as redis,
            Cluster(work, url, redis.url + "?namespace=bad", 1, env) as c,
        ):
            c.start_api()
            c.start_workers(1)
            results = []
            with httpx.Client(base_url=c.base, timeout=30) as client:
                for what, method, path, kw in BAD_INPUTS:
                    kw = dict(kw)
                    headers = {**c.headers, **kw.pop("headers", {})}
                    if what == "no API key":
                        headers.pop("Authorization")
                    r = client.request(method, path, headers=headers, **kw)
                    outcome = {"input": what, "status": r.status_code}
                    if what in GUARDED and r.status_code == 202:
                        outcome |= _scan_outcome(client, c, r.json()["id"], headers)
                        outcome["ok"] = outcome.get("reason") == "refused_address"
                    else:
                        outcome["problem_json"] = r.headers.get("content-type", "").startswith(
                            "application/problem+json"
                        )
                        outcome["ok"] = 400 <= r.status_code < 500 and outcome["problem_json"]
                    results.append(outcome)
            alive = c.procs["api"].poll() is None
    finally:
        backends.drop_database(admin, url)
        shutil.rmtree(work, ignore_errors=True)
    return {
        "tried": len(results),
        "server_errors": sum(1 for r in results if r["status"] >= 500),
        "handled_as_expected": sum(1 for r in results if r["ok"]),
        "not_as_expected": [r["input"] for r in results if not r["ok"]],
        "api_alive_after": alive,
        "by_status": dict(Counter(str(r["status"]) for r in results)),
        "results": results,
    }


def _scan_outcome(client: httpx.Client, c: Cluster, scan_id: int, headers: dict) -> dict:
    """Verdict and capture reason of a scan, once it is done (60 s at most)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = client.get(f"/v1/scans/{scan_id}", headers=headers).json()
        if got["status"] in ("done", "failed"):
            return {"verdict": got.get("verdict"), "reason": got.get("reason")}
        time.sleep(0.5)
    return {"verdict": None, "reason": "still running after 60 s"}


def run(scans: int, fault_scans: int, seconds: float) -> dict:
    env = {
        "VIGIE_SCAN_SECONDS": str(seconds),
        "VIGIE_REQUEUE_SECONDS": "10",
        "VIGIE_SWEEP_SECONDS": "5",
        "VIGIE_LEASE_SECONDS": "15",
    }
    report: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": "python -m bench.reliability " + " ".join(sys.argv[1:]),
        "sample_seconds": seconds,
    }
    four = _cluster_run("four", scans, 4, env)
    one = _cluster_run("one", max(50, scans // 4), 1, env)
    report["throughput"] = {
        "four_workers": four,
        "one_worker": one,
        "ratio_4_to_1": round(four["scans_per_hour"] / one["scans_per_hour"], 2)
        if four["scans_per_hour"] and one["scans_per_hour"]
        else None,
    }
    report["faults"] = {
        "worker_kill": _cluster_run("kill", fault_scans, 2, env, spread=30, fault=_kill_a_worker),
        "redis_restart": _cluster_run(
            "redis", fault_scans, 2, env, spread=30, fault=_restart_redis
        ),
    }
    report["bad_inputs"] = _bad_inputs(env)
    runs = [four, one, *report["faults"].values()]
    report["totals"] = {
        "accepted": sum(r["accepted"] for r in runs),
        "lost": sum(r["lost"] for r in runs),
        "duplicated": sum(r["duplicated"] for r in runs),
        "refused_while_loaded": sum(sum(r["refused"].values()) for r in runs),
        "bad_input_5xx": report["bad_inputs"]["server_errors"],
    }
    return report


def markdown(report: dict) -> str:
    t = report["throughput"]
    one_busy = t["one_worker"].get("machine_cores_busy")
    ceiling = f"{report['machine']['cpus'] / one_busy:.2f}x" if one_busy else "?"
    rows = [
        "| run | workers | scans | lost | duplicated | retried | scans/h | cores busy "
        "| POST p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    named = [
        ("4 workers, at once", t["four_workers"]),
        ("1 worker, at once", t["one_worker"]),
        ("worker kill -9", report["faults"]["worker_kill"]),
        ("Redis restart", report["faults"]["redis_restart"]),
    ]
    for name, r in named:
        rows.append(
            f"| {name} | {r['workers']} | {r['accepted']} | {r['lost']} | {r['duplicated']} | "
            f"{r['attempts_above_one']} | {r['scans_per_hour']} | "
            f"{r.get('machine_cores_busy', '—')} | {r['post_latency_ms']['p99']} |"
        )
    b = report["bad_inputs"]
    return "\n".join(
        [
            "# Reliability (scale-out: PostgreSQL + Redis, `vigie serve` + `vigie worker`)",
            "",
            f"`{report['command']}` on {report['machine']['cpus']} CPUs, "
            f"{report['sample_seconds']} s samples.",
            "",
            *rows,
            "",
            f"4 workers / 1 worker throughput: **{t['ratio_4_to_1']}x**. "
            f"The machine has {report['machine']['cpus']} cores: one worker already keeps "
            f"{one_busy} of them busy (its captures and matches run in processes of their "
            f"own), so more workers on this machine can at most fill the rest: "
            f"{ceiling} at best. Cores busy: every process of the machine (PostgreSQL, "
            "Redis, the API and the submitting clients too), from the first submission to "
            "the last verdict.",
            "",
            f"Bad inputs: {b['tried']} tried, {b['server_errors']} answered 5xx, "
            f"{b['handled_as_expected']} handled as expected (4xx problem+json, or accepted "
            f"then refused by the network guard at capture); not as expected: "
            f"{b['not_as_expected'] or 'none'} (by status: {b['by_status']}).",
            "",
            f"Totals: {report['totals']}",
            "",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scans", type=int, default=2000)
    ap.add_argument("--fault-scans", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--quick", action="store_true", help="200 scans, 100 per fault run")
    ap.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the .json")
    args = ap.parse_args()
    if args.quick:
        args.scans, args.fault_scans = 200, 100
    stem = "reliability_quick" if args.quick else "reliability"
    if args.markdown_only:
        report = json.loads((RESULTS / f"{stem}.json").read_text())
    else:
        report = run(args.scans, args.fault_scans, args.seconds)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
