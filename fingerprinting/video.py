"""Video fingerprints: perceptual hashes of normalised frames, and the views a query probes.

Every frame goes through the same normalisation on both sides, so that what pirates change
around the picture does not reach the hash:

1. **Bars** (letterbox, pillarbox, windowbox) are found per frame from rows and columns
   that are mostly black (logos drawn over a bar leave it a bar), then made robust by
   taking the narrowest bars over neighbouring frames (bars are static; a dark shot is
   not), and cut away.
   Bars come in opposite pairs: a dark band on one side only (a ticker) is picture.
2. The picture is resampled to a square ``canonical_size`` and its **corners** (where
   channel logos, pirate watermarks and blurred-out logos live) and its **bottom band**
   (tickers, scrolling banners) are filled with its mean.
3. **Uninformative** pictures (black, fades, flat cards, colour bars) are dropped: they
   would match any channel.
4. A 64-bit perceptual hash, dHash by default (:mod:`fingerprinting.framehash`,
   bit-identical to imagehash; the choice is measured, see ``VideoParams.frame_hash``).

References hash the whole picture. A suspect sample also hashes the views a pirate's
transformation maps back onto the reference: the mirrored picture, the picture zoomed out
as if un-cropping (edges replicated), and picture-in-picture windows, found from their
borders (:func:`pip_windows`). All probes of one frame vote once (see
:mod:`fingerprinting.align`), so extra views add chances to find the reference without
adding votes by chance along a line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from .decode import FrameBatch
from .framehash import FRAME_HASHES, hamming
from .params import VideoParams
from .types import VideoPrint, VideoQuery

__all__ = [
    "Probe",
    "bar_boxes",
    "canonical",
    "fingerprint_frames",
    "informative",
    "pip_windows",
    "query_probes",
    "sample_probes",
    "video_query",
]


@dataclass(frozen=True)
class Probe:
    """A view of the picture that is hashed.

    Attributes
    ----------
    name : str
    window : tuple of float
        ``(x0, y0, x1, y1)`` in fractions of the bar-free picture; may reach outside
        ``[0, 1]`` (zooming out, edges replicated).
    mirrored : bool
        Hash the left-right mirror image of the window.
    """

    name: str
    window: tuple[float, float, float, float]
    mirrored: bool = False


WHOLE = Probe("whole", (0.0, 0.0, 1.0, 1.0))


def query_probes(p: VideoParams = VideoParams()) -> list[Probe]:
    """The views every suspect frame is hashed in: whole, mirrored, un-cropped (and
    mirrored). Picture-in-picture windows depend on the sample: :func:`pip_windows`."""
    probes = [WHOLE, Probe("mirror", WHOLE.window, True)]
    for crop in p.crop_probes:
        # A centred crop of c keeps [c/2, 1 - c/2] of the reference, scaled to the frame.
        r = crop / 2 / (1 - crop)
        window = (-r, -r, 1 + r, 1 + r)
        probes.append(Probe(f"uncrop{round(100 * crop)}", window))
        probes.append(Probe(f"uncrop{round(100 * crop)}-mirror", window, True))
    for crop in p.aspect_probes:
        r = crop / 2 / (1 - crop)
        probes.append(Probe(f"widen{round(100 * crop)}", (-r, 0.0, 1 + r, 1.0)))
        probes.append(Probe(f"heighten{round(100 * crop)}", (0.0, -r, 1.0, 1 + r)))
    return probes


def _edge_persistence(g: np.ndarray, axis: int, level: float) -> np.ndarray:
    """Fraction of frames in which each pixel boundary across ``axis`` is an edge."""
    step = np.abs(np.diff(g, axis=axis))
    peak = (step > level) & (step >= np.roll(step, 1, axis)) & (step >= np.roll(step, -1, axis))
    peak |= np.roll(peak, 1, axis)  # a border between pixels may fall on either side
    return peak.mean(axis=0)


def _strongest_lines(strength: np.ndarray, k: int, apart: int = 3) -> np.ndarray:
    """Indices of the ``k`` strongest lines, at least ``apart`` + 1 from each other."""
    kept: list[int] = []
    for i in np.argsort(-strength, kind="stable"):
        if all(abs(int(i) - j) > apart for j in kept):
            kept.append(int(i))
            if len(kept) == k:
                break
    return np.array(sorted(kept), np.int64)


def pip_windows(gray: np.ndarray, p: VideoParams = VideoParams()) -> list[Probe]:
    """Picture-in-picture windows of a sample, as probes (fractions of the picture).

    An inset's border is a rectangle of straight edges that stay in place over the sample
    while the pictures on both sides change; content edges move. So edges are counted per
    pixel boundary over all frames, the strongest persistent rows and columns are the
    candidate sides, and every rectangle of them with the frame's aspect ratio is scored by
    how much of its four sides is edge (prefix sums; a few thousand rectangles). A false
    window costs one probe per frame, never a vote by itself.

    Parameters
    ----------
    gray : ndarray of uint8, shape (n, h, w)
        The sample's bar-free pictures (all of one size).
    """
    n, h, w = gray.shape
    if n < 2 or h < 8 or w < 8:
        return []
    g = gray.astype(np.float32)
    rows = _edge_persistence(g, 1, p.pip_edge_level)  # (h-1, w): between rows y and y+1
    cols = _edge_persistence(g, 2, p.pip_edge_level)  # (h, w-1)
    ys = _strongest_lines(rows.sum(axis=1), p.pip_lines)
    xs = _strongest_lines(cols.sum(axis=0), p.pip_lines)
    along_rows = np.pad(np.cumsum(rows, axis=1), ((0, 0), (1, 0)))
    along_cols = np.pad(np.cumsum(cols, axis=0), ((1, 0), (0, 0)))
    y0, y1, x0, x1 = (a.ravel() for a in np.meshgrid(ys, ys, xs, xs, indexing="ij"))
    hh, ww = y1 - y0, x1 - x0
    lo, hi = p.pip_scale
    ok = (hh >= lo * h) & (hh <= hi * h) & (ww >= lo * w) & (ww <= hi * w)
    ok &= np.abs(ww / np.maximum(hh, 1) / (w / h) - 1) <= p.pip_aspect_tolerance
    y0, y1, x0, x1, hh, ww = (a[ok] for a in (y0, y1, x0, x1, hh, ww))
    sides = np.stack(
        [
            (along_rows[y0, x1 + 1] - along_rows[y0, x0 + 1]) / ww,
            (along_rows[y1, x1 + 1] - along_rows[y1, x0 + 1]) / ww,
            (along_cols[y1 + 1, x0] - along_cols[y0 + 1, x0]) / hh,
            (along_cols[y1 + 1, x1] - along_cols[y0 + 1, x1]) / hh,
        ]
    )
    border = sides.mean(axis=0)
    good = np.flatnonzero((sides.min(axis=0) >= p.pip_min_side) & (border >= p.pip_min_border))
    best = good[np.argsort(-border[good], kind="stable")][: p.pip_windows]
    # Edge (y, y+1) means the window starts at row y + 1.
    return [
        Probe(f"pip{k}", ((x0[i] + 1) / w, (y0[i] + 1) / h, (x1[i] + 1) / w, (y1[i] + 1) / h))
        for k, i in enumerate(best)
    ]


def _bar_counts(dark: np.ndarray, limit: int) -> np.ndarray:
    """Leading dark lines along the last axis of ``dark`` (n, lines), capped at ``limit``.

    A frame that is dark all over (a fade, a black slate) says nothing about bars: it gets
    ``limit``, so that the minimum over neighbouring frames ignores it.
    """
    lit = ~dark
    count = np.where(lit.any(axis=1), np.argmax(lit, axis=1), limit)
    return np.minimum(count, limit)


def bar_boxes(
    gray: np.ndarray,
    p: VideoParams = VideoParams(),
    window: int | None = None,
    symmetric: bool = True,
) -> np.ndarray:
    """Picture box of each frame once black bars are cut: ``(n, 4)`` int ``y0, y1, x0, x1``.

    Parameters
    ----------
    gray : ndarray of uint8, shape (n, h, w)
    window : int or None
        Bars are the narrowest found over this many neighbouring frames; ``None``: over all
        frames (a short suspect sample).
    symmetric : bool
        Bars come in opposite pairs (see :func:`_symmetric`); ``False`` for a window that may
        be cut off-centre (a picture-in-picture candidate).
    """
    n, h, w = gray.shape
    if n == 0:
        return np.empty((0, 4), np.int64)
    black = gray <= p.black_level
    rows_dark = black.mean(axis=2) >= p.bar_dark_fraction
    cols_dark = black.mean(axis=1) >= p.bar_dark_fraction
    limit_h, limit_w = int(p.bar_max_fraction * h), int(p.bar_max_fraction * w)
    counts = np.stack(
        [
            _bar_counts(rows_dark, limit_h),
            _bar_counts(rows_dark[:, ::-1], limit_h),
            _bar_counts(cols_dark, limit_w),
            _bar_counts(cols_dark[:, ::-1], limit_w),
        ],
        axis=1,
    )
    if window is None:
        counts = np.broadcast_to(counts.min(axis=0), counts.shape)
    else:
        counts = ndimage.minimum_filter1d(counts, size=max(1, window), axis=0, mode="nearest")
    top, bottom, left, right = _symmetric(*counts.T) if symmetric else counts.T
    return np.stack([top, h - bottom, left, w - right], axis=1).astype(np.int64)


def _symmetric(top: np.ndarray, bottom: np.ndarray, left: np.ndarray, right: np.ndarray):
    """Bars come in pairs (a picture is centred): where one side's "bar" is more than 2
    lines wider than its opposite, it is dark picture (a ticker band, a night sky) and both
    get the narrower width."""

    def pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lopsided = np.abs(a - b) > 2
        low = np.minimum(a, b)
        return np.where(lopsided, low, a), np.where(lopsided, low, b)

    return (*pair(top, bottom), *pair(left, right))


def canonical(
    gray: np.ndarray,
    boxes: np.ndarray,
    probes: list[Probe],
    p: VideoParams = VideoParams(),
) -> np.ndarray:
    """Square, bar-free, corner-masked pictures: shape ``(n, len(probes), S, S)`` uint8.

    Each probe's window (fractions of the frame's picture box) is cut out, padded by edge
    replication where it reaches outside, and area-resampled to ``S = canonical_size``.
    """
    n = gray.shape[0]
    size = p.canonical_size
    out = np.empty((n, len(probes), size, size), np.uint8)
    for i in range(n):
        y0, y1, x0, x1 = (int(v) for v in boxes[i])
        pic = gray[i, y0:y1, x0:x1]
        ph, pw = pic.shape
        for k, probe in enumerate(probes):
            wx0, wy0, wx1, wy1 = probe.window
            c0, c1 = int(round(wx0 * pw)), int(round(wx1 * pw))
            r0, r1 = int(round(wy0 * ph)), int(round(wy1 * ph))
            pad = (max(0, -r0), max(0, r1 - ph), max(0, -c0), max(0, c1 - pw))
            src = pic
            if any(pad):
                src = cv2.copyMakeBorder(pic, *pad, cv2.BORDER_REPLICATE)
            crop = src[r0 + pad[0] : r1 + pad[0], c0 + pad[2] : c1 + pad[2]]
            img = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
            out[i, k] = img[:, ::-1] if probe.mirrored else img
    _mask_overlays(out.reshape(-1, size, size), p)
    return out


def _overlay_mask(size: int, p: VideoParams) -> np.ndarray:
    """Where logos and tickers live on a ``size`` x ``size`` picture: corners, bottom band."""
    bw, bh = int(round(p.logo_box[0] * size)), int(round(p.logo_box[1] * size))
    mask = np.zeros((size, size), bool)
    for ys in (slice(0, bh), slice(size - bh, size)):
        for xs in (slice(0, bw), slice(size - bw, size)):
            mask[ys, xs] = True
    mask[size - int(round(p.ticker_band * size)) :, :] = True
    return mask


def _mask_overlays(pics: np.ndarray, p: VideoParams) -> None:
    """Fill each picture's overlay regions with the mean of the rest (in place)."""
    mask = _overlay_mask(pics.shape[-1], p)
    if not pics.size or not mask.any():
        return
    mean = pics[:, ~mask].mean(axis=1)
    pics[:, mask] = np.round(mean).astype(np.uint8)[:, None]


def informative(pics: np.ndarray, p: VideoParams = VideoParams()) -> np.ndarray:
    """Which canonical pictures carry enough structure to vote: bool, shape ``pics.shape[:-2]``.

    Flat pictures (black, fades, plain cards) have little spread; colour bars and other
    test patterns have horizontal detail and almost no vertical detail.
    """
    g = pics.astype(np.float32)
    spread = g.std(axis=(-2, -1))
    # Detail is measured on the rows no mask touches, where the masks add no edges.
    rows = ~_overlay_mask(pics.shape[-1], p).any(axis=1)
    band = g[..., rows, :]
    vertical = np.abs(np.diff(band, axis=-2)).mean(axis=(-2, -1))
    horizontal = np.abs(np.diff(band, axis=-1)).mean(axis=(-2, -1))
    return (spread >= p.flat_std) & (vertical >= p.stripes_ratio * horizontal)


def fingerprint_frames(batches: Iterable[FrameBatch], p: VideoParams = VideoParams()) -> VideoPrint:
    """Reference fingerprint of a stream of frame batches (decoded at ``p.ref_fps``).

    Bars are smoothed over ``p.bar_window`` frames within each batch; uninformative frames
    leave no posting. Times are rounded to the reference frame grid (``1 / ref_fps`` s).
    """
    hashes, frames = [], []
    end = 0.0
    for batch in batches:
        if not len(batch):
            continue
        end = max(end, float(batch.times[-1]) + p.hop_seconds)
        boxes = bar_boxes(batch.gray, p, window=p.bar_window)
        pics = canonical(batch.gray, boxes, [WHOLE], p)[:, 0]
        keep = informative(pics, p)
        hashes.append(FRAME_HASHES[p.frame_hash](pics[keep]))
        frames.append(np.round(batch.times[keep] / p.hop_seconds).astype(np.int64))
    if not hashes:
        return VideoPrint(np.empty(0, np.uint64), np.empty(0, np.uint32), p.hop_seconds, end)
    h, f = np.concatenate(hashes), np.concatenate(frames)
    # One posting per reference frame (a source faster than ref_fps may round twice).
    f, first = np.unique(np.maximum(f, 0), return_index=True)
    return VideoPrint(h[first], f.astype(np.uint32), p.hop_seconds, end)


def sample_probes(
    gray: np.ndarray, boxes: np.ndarray, p: VideoParams = VideoParams()
) -> list[Probe]:
    """The probes of one suspect sample: :func:`query_probes` and its picture-in-picture
    windows (:func:`pip_windows`, each trimmed of its inset's own bars).

    ``boxes`` are the sample's bar boxes (:func:`bar_boxes` with ``window=None``: one box for
    the whole sample).
    """
    y0, y1, x0, x1 = (int(v) for v in boxes[0])
    picture = gray[:, y0:y1, x0:x1]
    return query_probes(p) + [_trim_bars(w, picture, p) for w in pip_windows(picture, p)]


def _trim_bars(probe: Probe, pictures: np.ndarray, p: VideoParams) -> Probe:
    """The window without the bars of its own picture (an inset of a letterboxed channel)."""
    h, w = pictures.shape[1:]
    wx0, wy0, wx1, wy1 = probe.window
    c0, c1, r0, r1 = round(wx0 * w), round(wx1 * w), round(wy0 * h), round(wy1 * h)
    inset = pictures[:, r0:r1, c0:c1]
    top, bottom, left, right = bar_boxes(inset, p, window=None, symmetric=False)[0]
    window = ((c0 + left) / w, (r0 + top) / h, (c0 + right) / w, (r0 + bottom) / h)
    return Probe(probe.name, window, probe.mirrored)


def _picture_groups(hashes: np.ndarray, distance: int) -> np.ndarray:
    """Group id of each consecutive frame: a new group starts when a frame's picture is more
    than ``distance`` bits from its group's first frame (a handful of frames: a loop)."""
    groups = np.zeros(hashes.size, np.int64)
    first = 0
    for i in range(1, hashes.size):
        if int(hamming(hashes[i], hashes[first])) > distance:
            first = i
        groups[i] = groups[i - 1] + (first == i)
    return groups


def video_query(frames: FrameBatch, p: VideoParams = VideoParams()) -> VideoQuery:
    """Every probe hash of a suspect sample's frames (decoded at ``p.query_fps``)."""
    n = len(frames)
    if n == 0:
        empty = np.empty(0, np.int64)
        names = tuple(pr.name for pr in query_probes(p))
        return VideoQuery(np.empty(0, np.uint64), empty, empty, np.empty(0), empty, names, 0, 0.0)
    duration = float(frames.times[-1] - frames.times[0]) + 1.0 / p.query_fps
    boxes = bar_boxes(frames.gray, p, window=None)
    probes = sample_probes(frames.gray, boxes, p)
    names = tuple(pr.name for pr in probes)
    pics = canonical(frames.gray, boxes, probes, p)
    keep = informative(pics, p)
    # A frame whose whole picture is flat does not vote through its windows either.
    keep &= keep[:, :1]
    frame, probe = np.nonzero(keep)
    frame_hash = FRAME_HASHES[p.frame_hash]
    groups = _picture_groups(frame_hash(pics[:, 0]), p.group_distance)
    return VideoQuery(
        hashes=frame_hash(pics[keep]),
        frame=frame.astype(np.int64),
        voter=groups[frame],
        times=frames.times[frame].astype(np.float64),
        probe=probe.astype(np.int64),
        probe_names=names,
        n_frames=n,
        duration_seconds=duration,
    )
