"""Scores of the frame-hash comparison: thresholds at an impostor rate, recall (plain and
interpolated), AUC, ROC points, the bootstrap of differences between hashes, the pooled and
per-transformation scores of a run, and the decision rule.

Part of :mod:`bench.video_hashes`.
"""

from __future__ import annotations

import numpy as np

from fingerprinting.params import VideoParams

from . import BITS, MODES, RATES


def threshold_at_rate(impostor_hist: np.ndarray, rate: float) -> tuple[int, float]:
    """Largest threshold ``t`` (accept ``d <= t`` bits) whose impostor rate is ``<= rate``.

    Returns ``(t, achieved rate)``; ``t = -1`` (accept nothing, rate 0) when even distance 0
    is more frequent than ``rate`` among impostors.
    """
    hist = np.asarray(impostor_hist, np.float64)
    total = hist.sum()
    if total <= 0:
        raise ValueError("no impostor pairs")
    cdf = np.cumsum(hist) / total
    ok = np.flatnonzero(cdf <= rate * (1 + 1e-12))
    if not ok.size:
        return -1, 0.0
    t = int(ok[-1])
    return t, float(cdf[t])


def recall_at(true_d: np.ndarray, t: int) -> float:
    """Fraction of true pairs whose distance is at most ``t`` bits (0 for no pairs)."""
    true_d = np.asarray(true_d)
    return float(np.mean(true_d <= t)) if true_d.size else 0.0


def acceptance_weights(true_d: np.ndarray, impostor_hist: np.ndarray, rate: float) -> np.ndarray:
    """Probability that each true pair is accepted by the randomised test whose impostor rate
    is exactly ``rate``: 1 for ``d <= t`` (:func:`threshold_at_rate`), ``lam`` for
    ``d == t + 1`` (the fraction of impostors at ``t + 1`` that brings the rate to ``rate``),
    0 beyond. Float64, the shape of ``true_d``."""
    true_d = np.asarray(true_d)
    hist = np.asarray(impostor_hist, np.float64)
    t, achieved = threshold_at_rate(hist, rate)
    w = (true_d <= t).astype(np.float64)
    nxt = t + 1
    step = hist[nxt] / hist.sum() if nxt < hist.size else 0.0
    if step > 0:
        w[true_d == nxt] = min(1.0, (rate - achieved) / step)
    return w


def interpolated_recall(true_d: np.ndarray, impostor_hist: np.ndarray, rate: float) -> float:
    """Recall at exactly impostor rate ``rate``: accept ``d <= t`` and, with the probability
    that brings the impostor rate to ``rate``, ``d == t + 1`` (the ROC's chord)."""
    w = acceptance_weights(true_d, impostor_hist, rate)
    return float(w.mean()) if w.size else 0.0


def auc(true_d: np.ndarray, impostor_hist: np.ndarray) -> float:
    """``P(true < impostor) + P(true == impostor) / 2`` over all (true, impostor) pairs."""
    imp = np.asarray(impostor_hist, np.float64)
    imp = imp / imp.sum()
    true_h = np.bincount(np.asarray(true_d, np.int64).ravel(), minlength=imp.size)[: imp.size]
    if true_h.sum() == 0:
        return float("nan")
    true_p = true_h / true_h.sum()
    above = 1.0 - np.cumsum(imp)  # P(impostor > d)
    return float(np.sum(true_p * (above + 0.5 * imp)))


def summarise(
    true_d: np.ndarray,
    impostor_hist: np.ndarray,
    bits: int,
    thresholds: dict[str, int] | None = None,
) -> dict:
    """Scores of one hash in one mode: medians, AUC, recall at each rate of :data:`RATES`.

    ``thresholds`` (rate key -> bits) imposes thresholds fixed elsewhere (the pooled ones,
    for a single transformation); otherwise they come from ``impostor_hist``.
    """
    true_d = np.asarray(true_d)
    hist = np.asarray(impostor_hist)
    n_imp = int(hist.sum())
    cdf = np.cumsum(hist) / max(n_imp, 1)
    med_imp = int(np.searchsorted(cdf, 0.5)) if n_imp else None
    out: dict = {
        "n_true": int(true_d.size),
        "n_impostor_pairs": n_imp,
        "median_true": float(np.median(true_d)) if true_d.size else None,
        "median_true_fraction": float(np.median(true_d)) / bits if true_d.size else None,
        "p90_true": float(np.percentile(true_d, 90)) if true_d.size else None,
        "median_impostor": med_imp,
        "median_impostor_fraction": med_imp / bits if med_imp is not None else None,
        "auc": auc(true_d, hist) if n_imp and true_d.size else None,
        "at_rate": {},
    }
    for rate in RATES:
        key = f"{rate:g}"
        if thresholds is not None:
            t = thresholds[key]
            achieved = float(cdf[t]) if t >= 0 and n_imp else 0.0
        else:
            t, achieved = threshold_at_rate(hist, rate)
        entry = {
            "threshold": t,
            "threshold_fraction": t / bits,
            "impostor_rate": achieved,
            "recall": recall_at(true_d, t),
        }
        if thresholds is None:
            entry["recall_interp"] = interpolated_recall(true_d, hist, rate)
        out["at_rate"][key] = entry
    return out


def roc_points(true_d: np.ndarray, impostor_hist: np.ndarray, bits: int) -> list[list[float]]:
    """``[threshold, impostor rate, recall]`` for every threshold ``0 .. bits``."""
    hist = np.asarray(impostor_hist, np.float64)
    hist = np.pad(hist, (0, max(0, bits + 1 - hist.size)))  # a shorter histogram: no more
    fpr = np.cumsum(hist)[: bits + 1] / hist.sum()
    true_h = np.bincount(np.asarray(true_d, np.int64).ravel(), minlength=bits + 2)
    tpr = np.cumsum(true_h)[: bits + 1] / max(1, np.asarray(true_d).size)
    return [[t, float(fpr[t]), float(tpr[t])] for t in range(bits + 1)]


def bootstrap_difference(
    found_a: np.ndarray,
    found_b: np.ndarray,
    groups: np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Pooled recall of ``a`` minus that of ``b`` and its 95 % interval, resampling groups.

    ``found_a``/``found_b`` say per true pair (the same pairs) whether, or with which
    probability (:func:`acceptance_weights`), it is found; ``groups`` is the independent unit
    of each pair (here the reference segment its query was cut from: frames of one clip, and
    the transformations of one segment, are not independent). Whole groups are drawn with
    replacement. Returns ``(difference, low, high)``.
    """
    found_a = np.asarray(found_a, np.float64)
    found_b = np.asarray(found_b, np.float64)
    _, g = np.unique(groups, return_inverse=True)
    k = int(g.max()) + 1
    sa = np.bincount(g, found_a, k)
    sb = np.bincount(g, found_b, k)
    cnt = np.bincount(g, minlength=k).astype(np.float64)
    diff = float((sa.sum() - sb.sum()) / cnt.sum())
    idx = np.random.default_rng(seed).integers(0, k, (n_boot, k))
    boot = (sa[idx].sum(1) - sb[idx].sum(1)) / cnt[idx].sum(1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return diff, float(lo), float(hi)


def build_report(tallies: dict, facts: dict, p: VideoParams) -> dict:
    """Pooled and per-transformation scores, bootstrap of the winner's margin, conclusion."""
    names = facts["hashes"]
    pooled: dict = {}
    per: dict = {t: {} for t in tallies}
    found: dict = {}
    groups = np.concatenate([np.concatenate(t.clips) for t in tallies.values()])
    for k in names:
        bits = BITS[k]
        pooled[k] = {}
        for m in MODES:
            true_all = np.concatenate([np.concatenate(t.true[k][m]) for t in tallies.values()])
            imp_all = sum(t.imp[k][m] for t in tallies.values())
            s = summarise(true_all, imp_all, bits)
            s["roc"] = roc_points(true_all, imp_all, bits)
            pooled[k][m] = s
            thr = {r: v["threshold"] for r, v in s["at_rate"].items()}
            for r in thr:
                found[(k, m, r)] = acceptance_weights(true_all, imp_all, float(r))
            for tname, t in tallies.items():
                d = np.concatenate(t.true[k][m])
                per[tname].setdefault(k, {})[m] = summarise(d, t.imp[k][m], bits, thr)
        for tname, t in tallies.items():
            probe_of = np.concatenate(t.best_probe[k])
            t3 = pooled[k]["best"]["at_rate"]["0.001"]["threshold"]
            ok = np.concatenate(t.true[k]["best"]) <= t3
            used, counts = np.unique(probe_of[ok], return_counts=True)
            per[tname][k]["best_probe_of_found"] = {
                str(u): int(c) for u, c in zip(used, counts, strict=True)
            }
            ref_of = np.concatenate(t.refs)
            per[tname][k]["recall_by_reference"] = {
                stem: float(ok[ref_of == i].mean()) if np.any(ref_of == i) else None
                for i, stem in enumerate(facts["references"])
            }
    if "phash" in names:  # Vigie's current operating point
        d = pooled["phash"]["best"]
        roc = d["roc"][p.max_distance]
        pooled["phash"]["vigie_max_distance"] = {
            "threshold": p.max_distance,
            "impostor_rate_best": roc[1],
            "recall_best": roc[2],
        }
    comparisons = {}
    for m in MODES:
        order = sorted(names, key=lambda k: -pooled[k][m]["at_rate"]["0.001"]["recall_interp"])
        pairs = []
        for i, a in enumerate(order):
            for b in order[i + 1 :]:
                for r in ("0.001", "0.0001"):
                    diff, lo, hi = bootstrap_difference(found[(a, m, r)], found[(b, m, r)], groups)
                    pairs.append({"a": a, "b": b, "rate": r, "difference": diff, "ci95": [lo, hi]})
        comparisons[m] = {"ranking": order, "pairs": pairs}
    return {"pooled": pooled, "transforms": per, "comparisons": comparisons}


def _pair(comp: dict, a: str, b: str, rate: str) -> dict:
    """The bootstrap comparison of ``a`` minus ``b`` at ``rate``, in either order."""
    for c in comp["pairs"]:
        if c["rate"] == rate and {c["a"], c["b"]} == {a, b}:
            if c["a"] == a:
                return c
            lo, hi = c["ci95"]
            return {**c, "a": a, "b": b, "difference": -c["difference"], "ci95": [-hi, -lo]}
    raise KeyError((a, b, rate))


def choose(report: dict) -> str:
    """The decision rule: the most accurate hash (interpolated recall at 1e-3, best over
    probes) unless a cheaper one (CPU per picture, then bits) is not significantly worse
    at 1e-3 (its bootstrap interval of the difference includes zero)."""
    comp = report["comparisons"]["best"]
    top = comp["ranking"][0]
    tied = [top] + [k for k in comp["ranking"][1:] if _pair(comp, top, k, "0.001")["ci95"][0] <= 0]
    sp = report.get("speed", {})
    return min(tied, key=lambda k: (sp.get(k, {}).get("cpu_us_per_frame", 0.0), BITS[k]))
