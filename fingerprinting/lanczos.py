"""Lanczos resampling of grey frames in batches, bit-identical to Pillow's.

This reproduces Pillow's ``ImagingResample`` (``src/libImaging/Resample.c``) for
8-bit "L" images exactly. Pillow resamples in two separable passes. Per output pixel it
evaluates the Lanczos-3 kernel in double, normalises the taps to sum 1, converts them to
fixed point with 22 fractional bits (``PRECISION_BITS = 32 - 8 - 2``, rounding half away
from zero), accumulates integer products, adds ``1 << 21``, shifts right by 22 and clips
to 0..255 after *each* pass. Because of that intermediate rounding the pass order is
visible in the output: Pillow 13 runs the vertical pass first when the height loses more
than twice as many pixels as the width (earlier versions always went horizontal first);
we follow Pillow 13 whatever Pillow is installed, so our hashes do not depend on it.
Each pass is a product with a matrix of those integer taps, in float64 BLAS: every
partial sum is an integer below 2**31, far under 2**53, so float64 arithmetic is exact
whatever the summation order and the result is bit-identical at BLAS speed. The tap
matrix is banded (an output reads about ``6 * in / out`` inputs), so outputs are grouped
8 at a time and each group multiplies only its band: 2-3x fewer flops than a dense
product. Taps are computed once per (input size, output size) and cached.

Batches are processed a few frames at a time (2**18 input pixels, 2 MiB of float64): the
BLAS operands then stay in cache, which measured 3-4x faster than 100-frame chunks, and
memory stays bounded whatever ``n`` is. These products are small, and OpenBLAS threads
spinning on a busy machine made them 10x slower (2 shared cores), so BLAS is held to one
thread during a resize (``threadpoolctl``): parallelism belongs across channels and
processes, not inside a 32x32 resize.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

__all__ = ["check_frames", "resize_lanczos"]

#: Fractional bits of Pillow's fixed-point resampling coefficients (8 bits of result,
#: 2 bits of headroom for kernel lobes in a 32-bit int).
PRECISION_BITS = 32 - 8 - 2
#: Lanczos-3 kernel support, in input pixels at scale 1.
_LANCZOS_SUPPORT = 3.0
#: Input pixels per chunk: 2**18 px is 2 MiB as float64, about 12 frames of 192x108, small
#: enough for the BLAS operands to stay in cache.
_CHUNK_PIXELS = 1 << 18
#: Output pixels per band of taps (8 was the fastest of 4, 8 and 16 for 192 -> 32 px).
_BAND = 8


# --------------------------------------------------------------------------- validation


def check_frames(gray: np.ndarray, name: str = "gray") -> np.ndarray:
    """Return ``gray`` as an ndarray after checking it is a (n, H, W) uint8 batch."""
    if not isinstance(gray, np.ndarray):
        gray = np.asarray(gray)
    if gray.dtype != np.uint8:
        raise ValueError(
            f"{name} must be uint8 grey levels 0..255 (what PIL's 'L' mode holds), "
            f"got dtype {gray.dtype}"
        )
    if gray.ndim != 3:
        hint = "; pass a single frame as frame[None]" if gray.ndim == 2 else ""
        raise ValueError(
            f"{name} must be a batch of shape (n, height, width), got ndim={gray.ndim} "
            f"(shape {gray.shape}){hint}"
        )
    if gray.shape[1] < 1 or gray.shape[2] < 1:
        raise ValueError(f"{name} frames must be at least 1x1 px, got shape {gray.shape}")
    return gray


def _check_size(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int (pixels), got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- Lanczos resize


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    """A cached ``threadpoolctl.ThreadpoolController`` (3 ms to build)."""
    return ThreadpoolController()


def _one_blas_thread() -> contextlib.AbstractContextManager:
    """Limit BLAS to one thread for the block (about 13 us).

    Small products on a busy machine run 10x slower when OpenBLAS spreads them over threads.
    The limit is process-wide while it lasts, like any BLAS thread setting.
    """
    return _blas_controller().limit(limits=1, user_api="blas")


def _lanczos(x: float) -> float:
    """Pillow's ``lanczos_filter``: sinc(x) * sinc(x / 3) on [-3, 3), same float ops."""
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3)
    return 0.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


@dataclass(frozen=True)
class _Taps:
    """Pillow's fixed-point Lanczos taps for one axis, split into bands for BLAS.

    ``groups`` holds ``(in_a, in_b, out_a, out_b, k)``: outputs ``out_a:out_b`` read only
    inputs ``in_a:in_b`` and ``k`` is their ``(out_b - out_a, in_b - in_a)`` float64 block
    of integer taps (scaled by ``2**PRECISION_BITS``). ``first:last`` spans every input any
    output reads (Pillow's ``ybox_first``/``ybox_last``; zero taps at the ends are dropped,
    which changes nothing).
    """

    first: int
    last: int
    groups: tuple[tuple[int, int, int, int, np.ndarray], ...]


def _pillow_taps(in_size: int, out_size: int) -> np.ndarray:
    """Dense ``(out_size, in_size)`` int64 taps, as ``precompute_coeffs`` +
    ``normalize_coeffs_8bpc`` compute them for LANCZOS with the default box (0, 0, W, H).

    Line-by-line port in Python floats (IEEE double, like the C code) with ``math.sin``
    (the C library's ``sin``, which Pillow calls): numpy's vectorised ``sin`` may differ by
    an ulp, and a tap sitting on a rounding boundary would then change.
    """
    scale = float(in_size) / out_size  # (double)(in1 - in0) / outSize, in0 = 0.0f
    filterscale = max(scale, 1.0)
    support = _LANCZOS_SUPPORT * filterscale
    ss = 1.0 / filterscale
    one = float(1 << PRECISION_BITS)
    taps = np.zeros((out_size, in_size), dtype=np.int64)
    for xx in range(out_size):
        center = 0.0 + (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)  # C (int) cast truncates toward zero
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w = [_lanczos((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = 0.0
        for v in w:  # sequential sum, as in C
            ww += v
        if ww != 0.0:
            w = [v / ww for v in w]
        # round half away from zero, then truncate toward zero like the (int) cast
        taps[xx, xmin : xmin + xmax] = [
            int(-0.5 + v * one) if v < 0 else int(0.5 + v * one) for v in w
        ]
    return taps


@lru_cache(maxsize=64)
def _resample_taps(in_size: int, out_size: int) -> _Taps:
    """Cached :class:`_Taps` for one (input, output) size pair.

    The dense tap matrix is mostly zeros (each output reads about ``6 * in / out`` inputs),
    so outputs are grouped by ``_BAND`` and each group multiplies only its band of inputs:
    2-3x fewer flops than the dense product for 192 -> 32 px.
    """
    dense = _pillow_taps(in_size, out_size)
    used = np.flatnonzero(dense.any(axis=0))
    first, last = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 0)
    band = out_size if out_size <= _BAND + _BAND // 2 else _BAND
    groups = []
    for out_a in range(0, out_size, band):
        out_b = min(out_a + band, out_size)
        nz = np.flatnonzero(dense[out_a:out_b].any(axis=0))
        in_a, in_b = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (first, first)
        k = np.ascontiguousarray(dense[out_a:out_b, in_a:in_b], dtype=np.float64)
        k.setflags(write=False)
        groups.append((in_a, in_b, out_a, out_b, k))
    return _Taps(first, last, tuple(groups))


def _round_clip(acc: np.ndarray) -> np.ndarray:
    """Pillow's ``clip8((acc + 2**21) >> 22)``, in place on exact float64 integer sums."""
    acc *= 1.0 / (1 << PRECISION_BITS)  # exact: power-of-two scaling
    acc += 0.5  # exact: |acc| < 2**10 leaves room for all 22 fractional bits in 53
    np.floor(acc, out=acc)
    np.clip(acc, 0.0, 255.0, out=acc)
    return acc


def _pass_cols(a: np.ndarray, taps: _Taps) -> np.ndarray:
    """Resample the columns of 2-D ``a`` (rows are independent lines of pixels)."""
    out = np.empty((a.shape[0], taps.groups[-1][3]), dtype=np.float64)
    for in_a, in_b, out_a, out_b, k in taps.groups:
        np.matmul(a[:, in_a:in_b], k.T, out=out[:, out_a:out_b])
    return _round_clip(out)


def _pass_rows(a: np.ndarray, taps: _Taps, offset: int = 0) -> np.ndarray:
    """Resample the rows of 2-D ``a`` (its row ``i`` is input pixel ``i + offset``)."""
    out = np.empty((taps.groups[-1][3], a.shape[1]), dtype=np.float64)
    for in_a, in_b, out_a, out_b, k in taps.groups:
        np.matmul(k, a[in_a - offset : in_b - offset], out=out[out_a:out_b])
    return _round_clip(out)


def _vertical_first(in_w: int, in_h: int, width: int, height: int) -> bool:
    """Pillow >= 13 pass order (``ImagingResampleInner``, PR #9549).

    When the height loses more than twice as many pixels as the width, Pillow runs the
    vertical pass first (less work for the horizontal one). Rounding to 8 bits between the
    passes makes the order visible in the output, so it is copied too.
    """
    dy = in_h - height
    return dy > 0 and dy > (in_w - width) * 2


def _resize_chunk(chunk: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize one (m, H, W) uint8 chunk to (height, m, width) float64 integers 0..255.

    Works in (row, frame, column) layout so that both passes are single 2-D products:
    the horizontal pass contracts the last axis of (rows * m, W), the vertical pass the
    first axis of (H, m * width). The float64 conversion does the transpose for free.
    """
    m, in_h, in_w = chunk.shape
    need_h, need_v = width != in_w, height != in_h
    tv = _resample_taps(in_h, height) if need_v else None
    rows = slice(tv.first, tv.last) if tv is not None else slice(None)
    src = np.asarray(chunk[:, rows, :].transpose(1, 0, 2), dtype=np.float64, order="C")
    r = src.shape[0]
    if tv is None:  # horizontal only
        return _pass_cols(src.reshape(r * m, in_w), _resample_taps(in_w, width)).reshape(
            r, m, width
        )
    if not need_h:
        return _pass_rows(src.reshape(r, m * in_w), tv, tv.first).reshape(height, m, width)
    th = _resample_taps(in_w, width)
    if _vertical_first(in_w, in_h, width, height):
        tmp = _pass_rows(src.reshape(r, m * in_w), tv, tv.first)
        return _pass_cols(tmp.reshape(height * m, in_w), th).reshape(height, m, width)
    tmp = _pass_cols(src.reshape(r * m, in_w), th)
    return _pass_rows(tmp.reshape(r, m * width), tv, tv.first).reshape(height, m, width)


def resize_lanczos(gray: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a batch of grey frames exactly as Pillow's LANCZOS resize does.

    Equal, pixel for pixel, to
    ``np.asarray(Image.fromarray(g).resize((width, height), Image.Resampling.LANCZOS))``
    for every frame ``g`` (Pillow >= 13 pass order, see Notes), so that hashes built on it
    match ``imagehash`` bit for bit.

    Parameters
    ----------
    gray : np.ndarray
        ``(n, H, W)`` uint8 grey levels. Any strides (crops, mirrored views ``g[:, :, ::-1]``)
        are accepted; ``n`` may be 0.
    width, height : int
        Output size in pixels (PIL order: width first).

    Returns
    -------
    np.ndarray
        ``(n, height, width)`` uint8, C-contiguous. If the size does not change, a copy of
        the input (Pillow returns a copy too).

    Raises
    ------
    ValueError
        If ``gray`` is not a 3-D uint8 array with non-empty frames, or a size is not a
        positive int.

    Notes
    -----
    Separable; each pass is rounded and clipped to 8 bits, like ``ImagingResample``, and a
    pass whose size does not change is skipped, again like Pillow. The horizontal pass runs
    first unless the height loses more than twice as many pixels as the width (Pillow 13
    rule; older Pillow always went horizontal first, so with Pillow < 13 imagehash differs
    on such tall frames, e.g. portrait crops, but never for 32x32 or 9x8 hashes of
    landscape frames at least 32 px high). Each pass is a banded float64 matrix product
    with integer taps, exact because every sum stays below 2**31.
    """
    gray = check_frames(gray)
    width = _check_size(width, "width")
    height = _check_size(height, "height")
    n, in_h, in_w = gray.shape
    if (in_w, in_h) == (width, height):
        return np.array(gray, order="C", copy=True)
    out = np.empty((n, height, width), dtype=np.uint8)
    if n == 0:
        return out
    step = max(1, _CHUNK_PIXELS // (in_h * in_w))
    with _one_blas_thread():
        for i in range(0, n, step):  # a few frames at a time: float64 copies stay in cache
            chunk = _resize_chunk(gray[i : i + step], width, height)
            out[i : i + step] = chunk.transpose(1, 0, 2)
    return out
