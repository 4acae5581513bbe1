"""The Markdown report of :mod:`bench.live` (``bench/results/live.md``)."""

from __future__ import annotations

from .live_summary import MAX_LAG_SLOPE


def markdown(report: dict) -> str:
    """The Markdown report: what is measured, a table per minute, the summary."""
    c, m, s = report["config"], report["machine"], report["summary"]
    segment = c["segment_seconds"]
    lines = [
        "# Live ingestion benchmark",
        "",
        f"`{report['command']}`: `vigie ingest --workers {c['workers']}` follows "
        f"{c['channels']} live HLS feeds for {c['minutes']:g} min on {m['cpus']} cores "
        f"({m['platform']}). The feeds are served on loopback by another process: 640 x 360 "
        f"H.264 25 fps (x264 veryfast, keyframe every 2 s) + AAC, {segment:g} s MPEG-TS "
        f"segments, window of {c['window_segments']}, publication {c['publication']}. Default "
        "ingest settings (6 s chunks, 10 s flushes).",
        "",
        "Measured every "
        f"{c['sample_interval_seconds']:g} s: CPU time and RSS of the ingester's process tree "
        "(/proc), the server's CPU separately, the feed statuses the ingester reports "
        "(indexing lag = wall clock minus the end of the media indexed last, when indexed), "
        "and the visible lag (now minus the end of the audio coverage flushed to the index: "
        "what a query can already match; includes the 10 s flush interval and the audio "
        "fingerprint's look-ahead). Summary over the steady state "
        f"(from {c['warmup_seconds']:g} s on).",
        "",
        "Reproduce: `python -m bench.live` (100 channels, 10 min; `--quick`: 20 channels, "
        "2 min). Other work on the machine shows in the figures.",
        "",
        f"Code: commit {report['code'].get('commit')}"
        + (
            f", with local changes to {', '.join(report['code']['modified'])}"
            if report["code"].get("modified")
            else ""
        )
        + ".",
        "",
    ]
    if "cores_used" in s:
        verdict = "PASS" if s["passed"] else "FAIL"
        failed = [k for k, ok in s["checks"].items() if not ok]
        lag, vis = s["indexing_lag_seconds"], s["visible_audio_lag_seconds"]
        steady_minutes = (s["steady_to_seconds"] - s["steady_from_seconds"]) / 60
        short = []
        if steady_minutes < 5:
            short = [
                f"(The steady state lasted {steady_minutes:.1f} min only: the lag slope is "
                "dominated by noise; use the 10-minute run for the backlog verdict.)",
                "",
            ]
        lines += [
            "## Summary",
            "",
            f"**{verdict}**: median indexing lag {lag['median']} s "
            f"(< {segment:g} s segment), lag slope "
            f"{s['indexing_lag_median_slope_seconds_per_minute']} "
            f"± {s['indexing_lag_median_slope_stderr']} s/min (< {MAX_LAG_SLOPE} "
            f"s/min), feeds live at least {s['feeds_live_min']}/{c['channels']}"
            + (f"; failed: {', '.join(failed)}" if failed else "")
            + ".",
            "",
            *short,
            "| figure | value |",
            "|---|---|",
            f"| CPU s per second of media fingerprinted | {s['cpu_seconds_per_media_second']} |",
            f"| CPU s per channel per wall second | {s['cpu_seconds_per_channel_per_second']} |",
            f"| cores used by the ingester | {s['cores_used']} of {m['cpus']} "
            f"({100 * s['fraction_of_cores']:.0f} %) |",
            f"| channels all cores could fingerprint (at that cost) | "
            f"{s['projected_channels_at_all_cores']} |",
            f"| cores used by the loopback server | {s['server_cores_used']} |",
            f"| cores busy on the machine (all work) | {s['machine_busy_cores']} of {m['cpus']}"
            f" (other work than this benchmark: {s['other_work_cores']}) |",
            f"| RSS of the ingester (median, max) | {s['rss_mib']['median']} MiB, "
            f"{s['rss_mib']['max']} MiB (PSS {s['pss_mib']['median']} MiB) |",
            f"| RSS per channel | {s['rss_mib_per_channel']} MiB |",
            f"| ingester threads (max) | {s['threads_max']} |",
            f"| RSS slope | {s['rss_slope_mib_per_minute']} MiB/min (anonymous memory "
            f"{s['anon_mib']['first']} -> {s['anon_mib']['last']} MiB, "
            f"{s['anon_slope_mib_per_minute']} MiB/min) |",
            f"| indexing lag median / p95 / max | {lag['median']} / {lag['p95']} / "
            f"{lag['max']} s |",
            f"| feed-samples lagging >= 1 segment | {100 * lag['share_at_least_one_segment']:.1f}"
            " % |",
            f"| indexing lag slope (median) | "
            f"{s['indexing_lag_median_slope_seconds_per_minute']} "
            f"± {s['indexing_lag_median_slope_stderr']} s/min (± 1 standard error) |",
            f"| age of the last indexed media (median) | {s['indexed_age_seconds_median']} s, "
            f"slope {s['indexed_age_median_slope_seconds_per_minute']} s/min |",
            f"| visible lag audio median / p95 | {vis['median']} / {vis['p95']} s |",
            f"| visible lag video median / p95 | {s['visible_video_lag_seconds']['median']} / "
            f"{s['visible_video_lag_seconds']['p95']} s |",
            f"| media fingerprinted per second | {s['media_seconds_covered_per_second']} s/s "
            f"({c['channels']} aired; indexed end advanced {s['feed_time_advanced_per_second']}"
            " s/s) |",
            f"| share of aired media covered in the index | audio "
            f"{100 * s['coverage_fraction']['audio']:.1f} %, video "
            f"{100 * s['coverage_fraction']['video']:.1f} % |",
            f"| errors / reconnects | {s['errors']} / {s['reconnects']} "
            f"{s['last_error_reasons'] or ''} |",
            f"| index on disk at end | {s['index_disk_mib']} MiB "
            f"({s['index_growth_mib_per_channel_hour']} MiB per channel-hour) |",
            f"| index segments at end | {s['index_segments_at_end']} |",
            f"| anonymous memory of this benchmark (a reader of the index) | "
            f"{s['bench_anon_mib']['first']} -> {s['bench_anon_mib']['last']} MiB |",
            f"| ingester exit code, shutdown | {report['ingester_exit_code']}, "
            f"{report['ingester_shutdown_seconds']} s |",
            f"| ingester log | {report['ingester_log']['lines']} lines "
            f"({report['ingester_log']['http_request_lines']} of HTTP requests, "
            f"{report['ingester_log']['flush_lines']} of flushes), "
            f"{report['ingester_log']['unusual_lines']} unusual |",
            "",
        ]
    else:
        lines += [f"**FAIL**: {s.get('verdict')}", ""]
    lines += [
        "## Over time",
        "",
        "| t (min) | ingester cores | server cores | machine busy cores | RSS (MiB) | live "
        "| lag med / p95 / max (s) "
        "| visible audio med / p95 (s) | errors | reconnects | index (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    samples = report["samples"]
    previous = samples[0] if samples else None
    for row in samples[1:]:
        if row["t_seconds"] // 60 == previous["t_seconds"] // 60 and row is not samples[-1]:
            continue
        dt = row["t_seconds"] - previous["t_seconds"]
        cores = (row["ingester"]["cpu_seconds"] - previous["ingester"]["cpu_seconds"]) / dt
        server = (row["server_cpu_seconds"] - previous["server_cpu_seconds"]) / dt
        busy = (row["machine_cpu_seconds"] - previous["machine_cpu_seconds"]) / dt
        lag = row["indexing_lag_seconds"] or {}
        vis = row["visible"]["audio"]["lag_seconds"] or {}
        lines.append(
            f"| {row['t_seconds'] / 60:.1f} | {cores:.2f} | {server:.2f} | {busy:.2f} | "
            f"{row['ingester']['rss_mib']:.0f} | {row['feeds_live']} | "
            f"{lag.get('median')} / {lag.get('p95')} / {lag.get('max')} | "
            f"{vis.get('median')} / {vis.get('p95')} | {row['errors']} | {row['reconnects']} | "
            f"{row['index_disk_bytes'] / 2**20:.1f} |"
        )
        previous = row
    unusual = report["ingester_log"]["unusual_first"]
    if unusual:
        lines += ["", "## Unusual ingester log lines (first ones)", "", "```", *unusual, "```"]
    return "\n".join(lines) + "\n"
