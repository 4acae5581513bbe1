"""The steady-state summary and the verdict of :mod:`bench.live`, from its samples."""

from __future__ import annotations

import statistics

import numpy as np

#: Samples before this many seconds of the run are the warm-up, left out of the summary.
WARMUP_SECONDS = 60.0
#: The backlog criterion: the median indexing lag may not grow faster than this (s/min).
MAX_LAG_SLOPE = 0.1


def _rate(samples: list[dict], key: str) -> float | None:
    """Cores used by ``key``'s CPU seconds between the first and last sample."""
    if len(samples) < 2:
        return None
    a, b = samples[0], samples[-1]
    return (_cpu(b, key) - _cpu(a, key)) / (b["t_seconds"] - a["t_seconds"])


def _cpu(sample: dict, key: str) -> float:
    return sample["ingester"]["cpu_seconds"] if key == "ingester" else sample[key]


def _slope(ts: list[float], values: list[float]) -> float | None:
    """Least-squares slope of ``values`` against ``ts`` (seconds), in units per minute."""
    if len(ts) < 3:
        return None
    return float(np.polyfit(np.asarray(ts) / 60.0, np.asarray(values), 1)[0])


def _slope_stderr(ts: list[float], values: list[float]) -> float | None:
    """Standard error of :func:`_slope` (units per minute): its noise on a short run."""
    if len(ts) < 4:
        return None
    x, y = np.asarray(ts) / 60.0, np.asarray(values, float)
    fit = np.polyval(np.polyfit(x, y, 1), x)
    spread = float(((x - x.mean()) ** 2).sum())
    return float(np.sqrt(((y - fit) ** 2).sum() / (len(x) - 2) / spread)) if spread else None


def summarize(samples: list[dict], channels: int, segment_seconds: float, cores: int) -> dict:
    """Steady-state figures (samples from :data:`WARMUP_SECONDS` on) and the verdict."""
    steady = [s for s in samples if s["t_seconds"] >= WARMUP_SECONDS]
    if len(steady) < 2:
        return {"steady_samples": len(steady), "passed": False, "verdict": "too short a run"}
    a, b = steady[0], steady[-1]
    wall = b["t_seconds"] - a["t_seconds"]
    cpu = b["ingester"]["cpu_seconds"] - a["ingester"]["cpu_seconds"]
    media = sum(
        b["indexed_until_utc"][f] - a["indexed_until_utc"][f]
        for f in b["indexed_until_utc"]
        if f in a["indexed_until_utc"]
    )
    cores_used = cpu / wall
    rss = [s["ingester"]["rss_mib"] for s in steady]
    pss = [s["ingester"]["pss_mib"] for s in steady]
    anon = [s["ingester"]["anon_mib"] for s in steady]
    lags_pooled = [x for s in steady for x in s["lags_seconds"]]
    medians = [s["indexing_lag_seconds"]["median"] for s in steady if s["indexing_lag_seconds"]]
    ts = [s["t_seconds"] for s in steady if s["indexing_lag_seconds"]]
    ages = [s["indexed_age_seconds"]["median"] for s in steady if s["indexed_age_seconds"]]
    age_ts = [s["t_seconds"] for s in steady if s["indexed_age_seconds"]]
    vis = [
        s["visible"]["audio"]["lag_seconds"] for s in steady if s["visible"]["audio"]["lag_seconds"]
    ]
    vis_video = [
        s["visible"]["video"]["lag_seconds"] for s in steady if s["visible"]["video"]["lag_seconds"]
    ]
    slope = _slope(ts, medians)
    all_live = all(s["feeds_live"] == channels for s in steady)
    median_lag = statistics.median(lags_pooled) if lags_pooled else None
    covered = {
        m: b["visible"][m]["covered_seconds"] - a["visible"][m]["covered_seconds"]
        for m in ("audio", "video")
    }
    # Per second of media actually fingerprinted (a feed that falls behind the window skips
    # segments: the end of its indexed media advances over media it never processed).
    per_media = cpu / covered["audio"] if covered["audio"] > 0 else None
    checks = {
        "median_indexing_lag_below_segment": median_lag is not None
        and median_lag < segment_seconds,
        "no_growing_backlog": slope is not None and slope < MAX_LAG_SLOPE,
        "all_feeds_live": all_live,
    }
    passed = all(checks.values())
    disk = [s["index_disk_bytes"] for s in steady]
    server = _rate(steady, "server_cpu_seconds")
    return {
        "steady_from_seconds": a["t_seconds"],
        "steady_to_seconds": b["t_seconds"],
        "steady_samples": len(steady),
        "cpu_seconds_per_media_second": round(per_media, 5) if per_media else None,
        "cpu_seconds_per_channel_per_second": round(cores_used / channels, 5),
        "media_seconds_covered_per_second": round(covered["audio"] / wall, 2),
        "feed_time_advanced_per_second": round(media / wall, 2),
        "cores_used": round(cores_used, 3),
        "fraction_of_cores": round(cores_used / cores, 3),
        "projected_channels_at_all_cores": int(cores / per_media) if per_media else None,
        "server_cores_used": round(server, 3) if server is not None else None,
        "machine_busy_cores": _round(_rate(steady, "machine_cpu_seconds"), 3),
        "other_work_cores": _round(
            (_rate(steady, "machine_cpu_seconds") or 0.0)
            - cores_used
            - (server or 0.0)
            - (_rate(steady, "bench_cpu_seconds") or 0.0),
            3,
        ),
        "bench_cores_used": round(_rate(steady, "bench_cpu_seconds") or 0.0, 3),
        "rss_mib": {"median": round(statistics.median(rss), 1), "max": round(max(rss), 1)},
        "rss_mib_per_channel": round(statistics.median(rss) / channels, 2),
        "pss_mib": {"median": round(statistics.median(pss), 1), "max": round(max(pss), 1)},
        "anon_mib": {"first": round(anon[0], 1), "last": round(anon[-1], 1)},
        "anon_slope_mib_per_minute": _round(_slope([s["t_seconds"] for s in steady], anon), 2),
        "rss_slope_mib_per_minute": _round(_slope([s["t_seconds"] for s in steady], rss), 2),
        "indexing_lag_seconds": {
            "median": _round(median_lag, 3),
            "p95": _round(float(np.percentile(lags_pooled, 95)) if lags_pooled else None, 3),
            "max": _round(max(lags_pooled) if lags_pooled else None, 3),
            "share_at_least_one_segment": round(
                sum(x >= segment_seconds for x in lags_pooled) / max(1, len(lags_pooled)), 4
            ),
        },
        "indexing_lag_median_slope_seconds_per_minute": _round(slope, 4),
        "indexing_lag_median_slope_stderr": _round(_slope_stderr(ts, medians), 4),
        "indexed_age_median_slope_seconds_per_minute": _round(_slope(age_ts, ages), 4),
        "indexed_age_seconds_median": _round(statistics.median(ages) if ages else None, 3),
        "visible_audio_lag_seconds": {
            "median": _round(statistics.median(v["median"] for v in vis) if vis else None, 3),
            "p95": _round(statistics.median(v["p95"] for v in vis) if vis else None, 3),
        },
        "visible_video_lag_seconds": {
            "median": _round(
                statistics.median(v["median"] for v in vis_video) if vis_video else None, 3
            ),
            "p95": _round(statistics.median(v["p95"] for v in vis_video) if vis_video else None, 3),
        },
        "coverage_fraction": {m: round(covered[m] / (channels * wall), 4) for m in covered},
        "feeds_live_min": min(s["feeds_live"] for s in steady),
        "threads_max": max(s["ingester"]["threads"] for s in steady),
        "errors": samples[-1]["errors"],
        "reconnects": samples[-1]["reconnects"],
        "last_error_reasons": samples[-1]["last_error_reasons"],
        "index_disk_mib": round(disk[-1] / 2**20, 2),
        "index_segments_at_end": b["index_segments"],
        "bench_anon_mib": {"first": a["bench_anon_mib"], "last": b["bench_anon_mib"]},
        "index_growth_mib_per_channel_hour": round(
            (disk[-1] - disk[0]) / 2**20 / channels / (wall / 3600), 2
        )
        if wall > 0
        else None,
        "checks": checks,
        "passed": passed,
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
