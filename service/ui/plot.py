"""The alignment plot of a match: query time against reference time of every audio hash
and video frame that voted for the match, as inline SVG.

A true restream lines its points up on one straight line (slope 1, or the speed factor
of a sped-up copy); chance hits scatter. Points are drawn as zero-length round-capped
path segments (one ``<path>`` per modality, a few bytes a point) so 2,000 audio hashes
stay a small page. Live reference times are UTC epoch seconds; they are drawn relative to
the earliest point, whose UTC time labels the axis.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from markupsafe import Markup, escape

__all__ = ["COLOURS", "alignment_svg", "nice_ticks"]

#: Colour of each modality's points (colour-blind safe pair).
COLOURS = {"audio": "#0072b2", "video": "#d55e00"}
_WIDTH, _HEIGHT = 640, 380
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 16, 34, 48


def nice_ticks(lo: float, hi: float, most: int = 7) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, most - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.0f}"


def _series(alignment: dict, modality: str) -> list[tuple[float, float]]:
    part = alignment.get(modality) or {}
    query = part.get("query_seconds") or []
    reference = part.get("reference_seconds") or []
    return [
        (float(q), float(r))
        for q, r in zip(query, reference, strict=False)
        if math.isfinite(float(q)) and math.isfinite(float(r))
    ]


def alignment_svg(alignment: dict | None, *, live: bool) -> Markup | None:
    """The plot of ``alignment`` (``{"audio": {"query_seconds": [...],
    "reference_seconds": [...]}, "video": {...}}``, seconds), or ``None`` without points.

    ``live``: reference seconds are UTC epoch seconds, drawn relative to the first point.
    """
    if not alignment:
        return None
    series = {m: _series(alignment, m) for m in COLOURS}
    points = [p for pts in series.values() for p in pts]
    if not points:
        return None
    origin = min(r for _, r in points) if live else 0.0
    qs = [q for q, _ in points]
    rs = [r - origin for _, r in points]
    q_lo, q_hi = min(qs), max(qs)
    r_lo, r_hi = min(rs), max(rs)
    if q_hi - q_lo < 1.0:
        q_lo, q_hi = q_lo - 0.5, q_hi + 0.5
    if r_hi - r_lo < 1.0:
        r_lo, r_hi = r_lo - 0.5, r_hi + 0.5
    pad_q, pad_r = 0.03 * (q_hi - q_lo), 0.03 * (r_hi - r_lo)
    q_lo, q_hi, r_lo, r_hi = q_lo - pad_q, q_hi + pad_q, r_lo - pad_r, r_hi + pad_r
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM

    def x(q: float) -> float:
        return _LEFT + (q - q_lo) / (q_hi - q_lo) * plot_w

    def y(r: float) -> float:
        return _TOP + plot_h - (r - r_lo) / (r_hi - r_lo) * plot_h

    if live:
        start = datetime.fromtimestamp(origin, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        y_title = f"reference time after {start} (s)"
    else:
        y_title = "reference (recording) time (s)"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="alignment" role="img" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" width="{_WIDTH}" height="{_HEIGHT}" '
        f'data-points="{len(points)}">',
        "<title>Alignment: query time against reference time of the matched audio hashes "
        "and video frames</title>",
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" '
        'stroke="#888"/>',
    ]
    for tick in nice_ticks(q_lo, q_hi):
        tx = x(tick)
        parts.append(
            f'<line x1="{tx:.1f}" y1="{_TOP}" x2="{tx:.1f}" y2="{_TOP + plot_h}" stroke="#eee"/>'
            f'<text x="{tx:.1f}" y="{_TOP + plot_h + 16}" font-size="11" '
            f'text-anchor="middle">{_label(tick)}</text>'
        )
    for tick in nice_ticks(r_lo, r_hi):
        ty = y(tick)
        parts.append(
            f'<line x1="{_LEFT}" y1="{ty:.1f}" x2="{_LEFT + plot_w}" y2="{ty:.1f}" stroke="#eee"/>'
            f'<text x="{_LEFT - 6}" y="{ty + 4:.1f}" font-size="11" '
            f'text-anchor="end">{_label(tick)}</text>'
        )
    parts.append(
        f'<text x="{_LEFT + plot_w / 2:.1f}" y="{_HEIGHT - 10}" font-size="12" '
        'text-anchor="middle">query (sample) time (s)</text>'
        f'<text transform="translate(16 {_TOP + plot_h / 2:.1f}) rotate(-90)" font-size="12" '
        f'text-anchor="middle">{escape(y_title)}</text>'
    )
    legend_x = _LEFT
    for modality, colour in COLOURS.items():
        pts = series[modality]
        width = 4.0 if modality == "video" else 3.0
        if pts:
            path = "".join(f"M{x(q):.1f},{y(r - origin):.1f}h0" for q, r in pts)
            parts.append(
                f'<path class="points {modality}" data-modality="{modality}" '
                f'data-points="{len(pts)}" d="{path}" stroke="{colour}" '
                f'stroke-width="{width}" stroke-linecap="round" fill="none"/>'
            )
        what = "hashes" if modality == "audio" else "frames"
        parts.append(
            f'<circle cx="{legend_x + 5}" cy="16" r="4" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="20" font-size="12">{modality}: {len(pts)} '
            f"{what}</text>"
        )
        legend_x += 170
    parts.append("</svg>")
    return Markup("".join(parts))
