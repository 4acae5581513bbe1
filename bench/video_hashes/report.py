"""The frame-hash comparison's report: the conclusion written from the measured numbers,
and the Markdown tables.

Part of :mod:`bench.video_hashes`.
"""

from __future__ import annotations

from . import BITS, LABELS, MODES
from .scoring import _pair, choose


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _median(s: dict, bits: int) -> str:
    m = s["median_true"]
    return "-" if m is None else f"{m:g} ({m / bits:.2f})"


def _diff_text(c: dict) -> str:
    lo, hi = c["ci95"]
    sig = "" if lo > 0 or hi < 0 else ", not significant"
    return (
        f"{LABELS[c['a']]} - {LABELS[c['b']]} {100 * c['difference']:+.1f} points "
        f"[{100 * lo:+.1f}, {100 * hi:+.1f}]{sig}"
    )


def _verdict(report: dict, rate: str) -> str:
    """Which hash has the best interpolated recall at ``rate`` (best over probes), and which
    of the others it is significantly ahead of."""
    pooled, comp = report["pooled"], report["comparisons"]["best"]
    order = sorted(pooled, key=lambda k: -pooled[k]["best"]["at_rate"][rate]["recall_interp"])
    w, label = order[0], f"{float(rate):g}"
    beaten = [k for k in order[1:] if _pair(comp, w, k, rate)["ci95"][0] > 0]
    close = [k for k in order[1:] if k not in beaten]
    if not close:
        c = _pair(comp, w, order[1], rate)
        return (
            f"At {label}: **{LABELS[w]} wins**, by {100 * c['difference']:+.1f} points over the "
            f"runner-up {LABELS[order[1]]}."
        )
    ahead = f"; it is significantly ahead of {', '.join(LABELS[k] for k in beaten)}"
    return (
        f"At {label}: **{LABELS[w]} has the highest recall**, but on this corpus it is not "
        f"significantly ahead of {', '.join(LABELS[k] for k in close)}"
        + (ahead if beaten else "")
        + "."
    )


def conclusion(report: dict) -> str:
    """Which hash wins and by how much, written from the measured numbers."""
    pooled, comp = report["pooled"], report["comparisons"]["best"]
    names, order = list(pooled), comp["ranking"]
    at = {k: pooled[k]["best"]["at_rate"] for k in names}
    lines = []
    rec = ", ".join(
        f"{LABELS[k]} {_pct(at[k]['0.001']['recall'])} % "
        f"(interpolated {_pct(at[k]['0.001']['recall_interp'])} %, "
        f"d <= {at[k]['0.001']['threshold']}/{BITS[k]})"
        for k in order
    )
    lines.append(
        f"At an impostor rate of 1e-3 per frame pair, over Vigie's query probes, the share of "
        f"true frames found is: {rec}."
    )
    rec4 = ", ".join(f"{LABELS[k]} {_pct(at[k]['0.0001']['recall_interp'])} %" for k in order)
    lines.append(f"At 1e-4 (interpolated): {rec4}.")
    for rate in ("0.001", "0.0001"):
        diffs = "; ".join(_diff_text(c) for c in comp["pairs"] if c["rate"] == rate)
        lines.append(
            f"Differences of interpolated recall at {float(rate):g} (95 % interval from "
            f"resampling the {report['corpus']['n_segments']} reference segments): {diffs}."
        )
    for rate in ("0.001", "0.0001"):
        lines.append(_verdict(report, rate))
    wins = dict.fromkeys(names, 0)
    for t in report["transforms"].values():
        top = max(t[k]["best"]["at_rate"]["0.001"]["recall"] for k in names)
        for k in names:
            wins[k] += t[k]["best"]["at_rate"]["0.001"]["recall"] == top
    lines.append(
        "Transformations where each hash has the best (or tied best) recall at 1e-3: "
        + ", ".join(f"{LABELS[k]} {wins[k]}" for k in names)
        + f" of {len(report['transforms'])}."
    )
    wc = report["comparisons"]["whole"]
    wat = {k: pooled[k]["whole"]["at_rate"]["0.001"]["recall_interp"] for k in names}
    lines.append(
        "WHOLE probe only, at 1e-3 (interpolated): "
        + ", ".join(f"{LABELS[k]} {_pct(wat[k])} %" for k in wc["ranking"])
        + "."
    )
    sp = report.get("speed", {})
    if all(k in sp for k in names):
        cheap = min(names, key=lambda k: sp[k]["cpu_us_per_frame"])
        cost = ", ".join(
            f"{LABELS[k]} {sp[k]['cpu_us_per_frame']:.0f} us "
            f"({sp[k]['cpu_us_per_frame'] / sp[cheap]['cpu_us_per_frame']:.1f}x)"
            for k in names
        )
        lines.append(
            f"Cost: CPU per 64x64 picture on one core {cost}; bits per posting "
            + ", ".join(f"{LABELS[k]} {BITS[k]}" for k in names)
            + "."
        )
        pick = choose(report)
        vm = pooled.get("phash", {}).get("vigie_max_distance")
        where = (
            f" (Vigie's current pHash max_distance = {vm['threshold']} runs at "
            f"{vm['impostor_rate_best']:.1e} per frame pair, so 1e-3 is the rate nearer to how "
            "it operates; 1e-4 matters for a stricter per-frame test)"
            if vm
            else ""
        )
        lines.append(
            "Decision rule: the most accurate hash at 1e-3, unless a cheaper one is not "
            f"significantly worse there{where}: **{LABELS[pick]}**."
        )
    return "\n\n".join(lines)


def markdown(report: dict) -> str:
    """The Markdown report."""
    names = list(report["pooled"])

    def head(what: str) -> str:
        return " | ".join(f"{LABELS[k]} {what}" for k in names)

    f = report["corpus"]
    out = [
        "# Per-frame hash: pHash vs dHash vs PDQ",
        "",
        f"Mode: {'quick' if report['quick'] else 'full'}; {f['query_frames']} query frames "
        f"with a true pair from {f['query_clips']} query clips ({len(f['segments'])} "
        f"segments x {len(report['transforms'])} transformations); impostor pool "
        f"{f['impostor_pool_total']} frames; "
        f"{report['pooled'][names[0]]['best']['n_impostor_pairs']} impostor frame pairs per "
        "hash and mode.",
        "",
    ]
    out += [
        "Measured on fingerprinting sources (SHA-256, 12 digits): "
        + ", ".join(f"{k} {v}" for k, v in report["sources"].items())
        + ".",
        "",
    ]
    if f["pdq_note"]:
        out += [f"**PDQ missing**: {f['pdq_note']}", ""]
    out += ["## Conclusion", "", report["conclusion"], ""]
    for m, title in (
        ("best", "Best distance over Vigie's query probes (how Vigie searches)"),
        ("whole", "WHOLE probe only"),
    ):
        out += [
            f"## Per transformation: {title}",
            "",
            "Recall (%) of the true reference frame at the pooled thresholds for impostor "
            "rates 1e-3 and 1e-4 per frame pair; median true distance in bits (fraction of "
            "the hash length).",
            "",
            f"| transform | frames | {head('@1e-3')} | {head('@1e-4')} | {head('median d')} |",
            "|---|---|" + "---|" * (3 * len(names)),
        ]
        for tname, t in report["transforms"].items():
            r3 = " | ".join(_pct(t[k][m]["at_rate"]["0.001"]["recall"]) for k in names)
            r4 = " | ".join(_pct(t[k][m]["at_rate"]["0.0001"]["recall"]) for k in names)
            md = " | ".join(_median(t[k][m], BITS[k]) for k in names)
            out.append(f"| {tname} | {t[names[0]][m]['n_true']} | {r3} | {r4} | {md} |")
        out.append("")
    out += [
        "## Pooled over transformations",
        "",
        "Threshold t: accept d <= t bits, the largest with impostor rate <= the target; "
        "recall at it, and interpolated to exactly the target rate. AUC: P(true d < "
        "impostor d).",
        "",
        "| hash | mode | t @1e-3 (frac) | rate | recall | interp | t @1e-4 (frac) | rate | "
        "recall | interp | recall @1e-2 | median true | median impostor | AUC |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in names:
        for m in MODES:
            s = report["pooled"][k][m]
            a3, a4, a2 = (s["at_rate"][r] for r in ("0.001", "0.0001", "0.01"))
            out.append(
                f"| {LABELS[k]} | {m} | {a3['threshold']} ({a3['threshold_fraction']:.3f}) | "
                f"{a3['impostor_rate']:.1e} | {_pct(a3['recall'])} | "
                f"{_pct(a3['recall_interp'])} | {a4['threshold']} "
                f"({a4['threshold_fraction']:.3f}) | {a4['impostor_rate']:.1e} | "
                f"{_pct(a4['recall'])} | {_pct(a4['recall_interp'])} | {_pct(a2['recall'])} | "
                f"{_median(s, BITS[k])} | {s['median_impostor']} | {s['auc']:.4f} |"
            )
    vm = report["pooled"].get("phash", {}).get("vigie_max_distance")
    if vm:
        out += [
            "",
            f"pHash at Vigie's current max_distance = {vm['threshold']} bits (best over "
            f"probes): impostor rate {vm['impostor_rate_best']:.1e} per frame pair, recall "
            f"{_pct(vm['recall_best'])} %.",
        ]
    sp = report["speed"]
    out += [
        "",
        f"## Hashing speed (one core: affinity {sp['affinity']}, {sp['frames']} canonical "
        f"{sp['picture'][0]}x{sp['picture'][1]} pictures, median of {sp['reps']} runs)",
        "",
        "| hash | path | CPU us/frame | wall us/frame (median) | wall us/frame (min) |",
        "|---|---|---|---|---|",
    ]
    paths = {
        "phash": ("pHash", "Vigie batched numpy"),
        "dhash": ("dHash", "Vigie batched numpy"),
        "pdq": ("PDQ", "framehash.pdq: pdqhash, one call per frame"),
        "imagehash_phash": ("pHash", "imagehash, one PIL image at a time (context)"),
        "imagehash_dhash": ("dHash", "imagehash, one PIL image at a time (context)"),
    }
    for k, (name, label) in paths.items():
        if k in sp:
            s = sp[k]
            out.append(
                f"| {name} | {label} | {s['cpu_us_per_frame']:.1f} | "
                f"{s['wall_us_per_frame']:.1f} | {s['wall_us_per_frame_min']:.1f} |"
            )
    out += [
        "",
        f"A query frame is hashed in {f['probes_per_query_mean']:.1f} probes on average "
        f"({len(f['query_probes'])} fixed, plus the picture-in-picture windows found in the "
        "sample), so a query costs that many pictures per frame.",
    ]
    lost = [
        f"{tname} x {stem}"
        for tname, t in report["transforms"].items()
        for stem in f["references"]
        if t[names[0]]["recall_by_reference"].get(stem) is not None
        and all((t[k]["recall_by_reference"][stem] or 0.0) < 0.1 for k in names)
    ]
    if lost:
        out += [
            "",
            "Lost by every hash (recall < 10 % at 1e-3 for all of them, best over probes: a "
            "normalisation or probe failure, not a hash difference): " + ", ".join(lost) + ".",
        ]
    out += [
        "",
        "Caveats: impostor pairs are correlated (consecutive frames of one clip look alike), "
        "so the effective number behind a 1e-4 rate is smaller than the pair count; the "
        "corpus is four reference clips.",
    ]
    return "\n".join(out) + "\n"
