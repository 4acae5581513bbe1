"""What :mod:`bench.live` measures: the ingester's process tree (``/proc``), the feed
statuses it reports to the catalog, and the index's coverage and size on disk."""

from __future__ import annotations

import contextlib
import glob
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") / 1024


# -- /proc ------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (``/proc/<pid>/task/*/children``)."""
    kids = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        with contextlib.suppress(OSError):
            kids += [int(k) for k in Path(path).read_text().split()]
    return kids


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its living descendants."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in tree or not Path(f"/proc/{p}").exists():
            continue
        tree.append(p)
        todo += _children(p)
    return tree


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and of its reaped children."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime + cutime + cstime) / CLK_TCK


def _memory_kb(pid: int) -> tuple[int, int, int]:
    """(RSS, PSS, anonymous RSS) of ``pid`` in KiB (0 when gone or unknown)."""
    rss = pss = anon = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss, anon


def machine_cpu_seconds() -> float:
    """CPU seconds all cores spent busy since boot (``/proc/stat``: everything but idle
    and iowait): the machine's whole load, other work included."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


def _threads(pid: int) -> int:
    """OS threads of ``pid`` (feed threads, FFmpeg decoder threads...), 0 when gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_usage(pid: int) -> dict:
    """CPU seconds, RSS, PSS and anonymous RSS (MiB; the rest of RSS is mapped files,
    e.g. index segments), process and thread counts of ``pid``'s process tree."""
    procs = process_tree(pid)
    memory = [_memory_kb(p) for p in procs]
    return {
        "cpu_seconds": sum(cpu_seconds(p) for p in procs),
        "rss_mib": sum(m[0] for m in memory) / 1024,
        "pss_mib": sum(m[1] for m in memory) / 1024,
        "anon_mib": sum(m[2] for m in memory) / 1024,
        "processes": len(procs),
        "threads": sum(_threads(p) for p in procs),
        "rss_mib_by_process": [round(m[0] / 1024, 1) for m in memory],
    }


# -- one sample -------------------------------------------------------------------------------


def _quantiles(values: list[float]) -> dict | None:
    """Median, 95th percentile and maximum of ``values`` (seconds), or ``None``."""
    if not values:
        return None
    a = np.asarray(values, float)
    return {
        "median": round(float(np.median(a)), 3),
        "p95": round(float(np.percentile(a, 95)), 3),
        "max": round(float(a.max()), 3),
    }


def _coverage(index: object, modality: str) -> tuple[dict[int, float], float]:
    """UTC epoch end of the flushed coverage of each feed's live ``modality`` track, and
    the seconds covered in all (the sum of the coverage intervals' lengths)."""
    store = index.store(modality)
    ends: dict[int, float] = {}
    covered = 0.0
    for track in store.tracks().values():
        if track.kind != "live" or not track.source.startswith("feed:"):
            continue
        spans = store.coverage(track.id)
        if spans:
            fid = int(track.source.split(":", 1)[1])
            ends[fid] = max(ends.get(fid, 0.0), max(end for _, end in spans))
            covered += sum(end - start for start, end in spans)
    return ends, covered


def _disk_bytes(index: object) -> int:
    """Bytes of the index's segment files (retried: a merge may sweep one meanwhile)."""
    for _ in range(5):
        try:
            total = 0
            for modality in ("audio", "video"):
                store = index.store(modality)
                store.refresh()
                total += store.disk_bytes()
            return total
        except FileNotFoundError:
            time.sleep(0.05)
    return -1


def take_sample(
    t: float, ingester_pid: int, server_pid: int, catalog: object, index: object, feeds: list
) -> dict:
    """Everything measured at ``t`` seconds after the ingester started (see module doc)."""
    now = time.time()
    usage = tree_usage(ingester_pid)
    server_cpu = sum(cpu_seconds(p) for p in process_tree(server_pid))
    statuses = catalog.feed_statuses()
    lags, ages, states = [], [], {}
    errors = reconnects = chunks = 0
    indexed_until = {}
    reasons: dict[str, int] = {}
    for fid in feeds:
        st = statuses.get(fid)
        if st is None:
            states["absent"] = states.get("absent", 0) + 1
            continue
        states[st.state] = states.get(st.state, 0) + 1
        errors += st.errors
        reconnects += st.reconnects
        chunks += st.chunks
        if st.last_error_reason:
            reasons[st.last_error_reason] = reasons.get(st.last_error_reason, 0) + 1
        if st.lag_seconds is not None:
            lags.append(st.lag_seconds)
        if st.last_posting_utc is not None:
            end = st.last_posting_utc.timestamp()
            indexed_until[fid] = end
            ages.append(now - end)
    visible = {}
    for modality in ("audio", "video"):
        ends, covered = _coverage(index, modality)
        visible[modality] = {
            "covered_seconds": round(covered, 3),
            "feeds": sum(1 for f in feeds if f in ends),
            "lag_seconds": _quantiles([now - ends[f] for f in feeds if f in ends]),
        }
    own = os.times()
    return {
        "t_seconds": round(t, 2),
        "utc": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "ingester": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in usage.items()},
        "server_cpu_seconds": round(server_cpu, 3),
        "machine_cpu_seconds": round(machine_cpu_seconds(), 3),
        "bench_cpu_seconds": round(own.user + own.system, 3),
        "states": states,
        "feeds_live": states.get("live", 0),
        "chunks": chunks,
        "errors": errors,
        "reconnects": reconnects,
        "last_error_reasons": reasons,
        "indexing_lag_seconds": _quantiles(lags),
        "indexed_age_seconds": _quantiles(ages),
        "visible": visible,
        "index_disk_bytes": _disk_bytes(index),
        "index_segments": {m: len(index.store(m).segment_names) for m in ("audio", "video")},
        # This process holds the index open like any query process: its memory shows what
        # reading the index costs, apart from ingestion.
        "bench_anon_mib": round(_memory_kb(os.getpid())[2] / 1024, 1),
        "lags_seconds": lags,
        "indexed_until_utc": indexed_until,
    }
