"""Markdown report of ``bench/results/live_index.json`` (see :mod:`bench.live_index`)."""

from __future__ import annotations


def _table(rows: list[list], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(str(x) for x in r) + " |" for r in rows])


def _span(d: dict) -> str:
    return f"{d['min']}-{d['max']}" if d else "n/a"


def _load(p: dict) -> str:
    load = ", ".join(f"{x:.1f}" for x in p.get("load_avg_at_start", [])) or "not recorded"
    return f"{load}; code {p.get('code', 'not recorded')}"


def _retention_md(r: dict) -> list[str]:
    p, cpu, st, up = r["params"], r["cpu_s_per_channel_hour"], r["steady"], r["upkeep"]
    base = r["samples"][0]
    keys = ("sim_h", "wall_s", "VmRSS", "RssAnon", "RssFile", "audio_mb", "video_mb", "dir_mb",
            "audio_segments", "video_segments", "audio_postings", "video_postings")  # fmt: skip
    head = ["sim h", "wall s", "RSS MB", "anon MB", "file MB", "audio MB", "video MB",
            "folder MB", "audio segs", "video segs", "audio posts", "video posts"]  # fmt: skip
    at = [[k, v["VmRSS"], round(v["VmRSS"] - base["VmRSS"], 1),
           round(v["audio_mb"] + v["video_mb"], 2), v["dir_mb"], v["audio_segments"],
           v["video_segments"]] for k, v in r["at"].items()]  # fmt: skip
    total = cpu["ingest_total"] + cpu["flush"] + cpu["retain_and_merge"]
    return [
        "## A. Retention keeps memory and disk flat" + (" (quick run)" if p.get("quick") else ""),
        "",
        f"{p['channels']} live channels x {p['sim_hours']:g} simulated hours, retention "
        f"{p['retention_hours']:g} h, {p['chunk_seconds']:g} s chunks through "
        "`FeedLoop.ingest`, `LiveWriter.flush` every 10 s and `Index.retain` every 60 s "
        f"(simulated). Wall {r['wall_s']} s: **{r['sim_hours_per_wall_hour']} simulated "
        f"hours per wall hour** for {p['channels']} channels on one core (load average at "
        f"the start: {_load(p)}).",
        "",
        "CPU seconds per channel-hour (decoding excluded: each channel loops a programme "
        f"decoded once): audio fingerprinting {cpu['audio_fingerprint']}, video "
        f"fingerprinting {cpu['video_fingerprint']}, whole `ingest()` {cpu['ingest_total']}, "
        f"flushes {cpu['flush']}, `retain()` with its merges {cpu['retain_and_merge']}: "
        f"{total:.2f} s: without decoding, one core would keep up with about "
        f"{3600 / total:.0f} live channels (decoding the feeds costs more than this).",
        "",
        f"RSS at 0 h is the bench itself ({base['VmRSS']} MB: imports and the decoded "
        "programmes it loops); the column after it is the growth since then.",
        "",
        _table(
            at,
            ["at", "RSS MB", "RSS growth MB", "index MB", "folder MB", "audio segs", "video segs"],
        ),  # fmt: skip
        "",
        f"From {st['from_sim_h']:g} simulated hours on (after the first hour segment "
        f"expired): RSS {_span(st['VmRSS'])} MB, audio {_span(st['audio_mb'])} MB, video "
        f"{_span(st['video_mb'])} MB, index folder {_span(st['dir_mb'])} MB, segments audio "
        f"{_span(st['audio_segments'])}, video {_span(st['video_segments'])} (4 key spaces). "
        "The disk is a sawtooth with a period of one hour between one and two retention "
        "windows of postings: hour segments go whole, once all their postings are older "
        "than the cutoff; before the first hour closes, 10-minute buckets expire the same way.",
        "",
        f"`retain()` was called {up['retain_calls']} times and dropped {up['dropped']} "
        f"segment files; {up['idle_calls']} calls dropped and merged nothing, and "
        f"{up['idle_commits']} of those still committed new manifests (lock, write, fsync).",
        "",
        _table([[s[k] for k in keys] for s in r["samples"]], head),
        "",
    ]


def _latency_md(r: dict) -> list[str]:
    p, size, b, w, whole = r["params"], r["size"], r["build"], r["window"], r["whole"]
    rows, counts = [], []
    for name in ("window", "whole"):
        x = r[name]
        for case in ("query", "audio_only", "video_only", "coverage_only"):
            if case in x:
                t = x[case]
                rows.append([name, case, t["median_ms"], t["p95_ms"], t["min_ms"],
                             t.get("cpu_median_ms", ""), t["runs"]])  # fmt: skip
        for m in ("audio", "video"):
            c, a = x["counts"][m], x["answer"][m]
            keys = ("segments_read", "postings_in_segments", "postings_matched",
                    "postings_in_window", "channels_hit", "searched_hours")  # fmt: skip
            found = ("best_channel", "delay_s", "confidence", "wrong_candidates",
                     "wrong_max_confidence")  # fmt: skip
            counts.append([name, m, *(c[k] for k in keys), *(a[k] for k in found)])
    ch = {k: ", ".join(f"{m} {v:.2%}" for m, v in d.items())
          for k, d in r["chance_match_fraction"].items()}  # fmt: skip
    per_ch = {m: round(size[m]["bytes"] / p["channel_hours"] / 1e6, 2) for m in ("audio", "video")}
    return [
        "## B. Query latency at channel scale" + (" (quick run)" if p.get("quick") else ""),
        "",
        f"{p['channels']} channels x {p['hours']} h = {p['channel_hours']} channel-hours of "
        f"live postings ({r['postings_per_channel_hour']['audio']:,} audio postings and "
        f"{r['postings_per_channel_hour']['video_frames']:,} video frames per channel-hour, "
        f"as fingerprinted): index {r['disk_gb']} GB (MB per channel-hour: {per_ch}; "
        f"{size['audio']['postings']:,} audio postings, {size['video']['postings']:,} video "
        f"frames x 4 key spaces; segments {size['segments']}), written in {b['build_s']} s. "
        f"Sample: 10 s of the real programme, captured by a restream {p['delay_s']:g} s late; "
        f"window {p['window_s']} s around its capture time. Load average at the start: "
        f"{_load(p)}.",
        "",
        f"Fingerprinting the sample (audio peaks + video probes): {r['sample_fingerprint_ms']} "
        "ms, not included below. RSS of the query process (a fresh one): "
        f"{r['rss_start']['VmRSS']} MB after imports, {r['rss_open']['VmRSS']} MB with the "
        f"index open (segments and their key directories are memory-mapped: file-backed "
        "pages, shared by every process that opens the index), "
        f"{w['rss_after']['VmRSS']} MB after the windowed queries (file-backed "
        f"{w['rss_after']['RssFile']} MB), {whole['rss_after']['VmRSS']} MB after the "
        f"whole-index ones (file-backed {whole['rss_after']['RssFile']} MB: the page cache "
        "of nearly every segment page, shared and reclaimable). Page cache warm.",
        "",
        _table(
            rows, ["search", "what", "median ms", "p95 ms", "min ms", "CPU median ms", "runs"]
        ),  # fmt: skip
        "",
        "`coverage_only` is `Index.query(None, None, around=...)`: the coverage of every live "
        "track in the window, part of every query. Per modality, what each search read "
        "(key matches: postings of the segments read whose key matched; in window: those "
        "left after the window's frame filter; video: 16-bit prefix matches before the "
        "Hamming check; channels hit: with a posting in window, video: within the distance):",
        "",
        _table(
            counts,
            [
                "search",
                "modality",
                "segments read",
                "postings in them",
                "key matches",
                "in window",
                "channels hit",
                "hours searched",
                "best",
                "delay s",
                "confidence",
                "wrong cands",
                "wrong max conf",
            ],
        ),  # fmt: skip
        "",
        "Key distribution check: fraction of postings a chance match of the sample hits "
        "(audio: key equal to one of its query keys; video: within `max_distance` bits of "
        f"one of its hashes): real background programmes {ch['real']}; synthetic hours made "
        f"from them {ch['synthetic']}. The synthetic index gives fewer chance hits than real "
        "fingerprints of the same programmes (audio: jittered keys; video: every tile XORed "
        "with a random word), so the per-hit costs (window filter, Hamming check, voting) "
        "are somewhat underestimated; the lookups themselves are not.",
        "",
    ]


def markdown(res: dict, intro: str) -> str:
    """The Markdown report of the results JSON; ``intro``: the benchmark's docstring."""
    out = [
        "# Live reference index: retention and query latency",
        "",
        (intro or "").split("\n\n", 1)[1].strip(),
        "",
        "Reproduce: `python -m bench.live_index` (both parts, about 30 minutes and 8 GB of "
        "temporary disk), `--part retention|latency`, `--quick` (a few minutes); sizes: "
        "`--channels --hours --retention-hours --lat-channels --lat-hours`. Decoded "
        "programmes are cached in the temp dir (`--cache`). "
        f"Machine: {res['machine']['cpus']} CPUs, Python {res['machine']['python']}, shared "
        "with other jobs (load averages from 1.5 to over 40 while this bench was being run; "
        "each part records its own at the start), so wall times are noisy; CPU times are "
        "the steadier figure.",
        "",
    ]
    if "retention" in res:
        out += _retention_md(res["retention"])
    if "latency" in res:
        out += _latency_md(res["latency"])
    return "\n".join(out)
