"""Pirate-variant video transformations for the Vigie benchmark.

A :class:`Clip` is a constant-frame-rate run of RGB ``uint8`` frames cut from a reference at a
known time. Transformations are pure functions ``Clip -> Clip`` (input frames are read-only),
vectorised over frames with numpy/OpenCV, and deterministic: all randomness comes from their
``rng``. Sizes are in pixels, times in seconds, rates in frames/s and bit rates in bit/s. All
keep ``start_seconds`` and the duration, so a query's truth offset stays ``start_seconds``;
only ``fps30`` changes the frame count (the duration is kept within half a frame).

:data:`VIDEO_TRANSFORMS` maps the benchmark variant names to :class:`VideoTransform` entries,
callable as ``f(clip, rng, other) -> clip2`` and carrying the bit rate to encode the query at.
:func:`read_clip` and :func:`write_clip` decode and encode clips with PyAV; they and
:class:`Clip` live in :mod:`bench.video_clips` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np
import scipy.ndimage

from service.media import synth_pictures

from .video_clips import Clip, _even, read_clip, write_clip

__all__ = [
    "DEFAULT_BITRATE",
    "POSITIONS",
    "VIDEO_TRANSFORMS",
    "Clip",
    "VideoTransform",
    "color_shift",
    "crop_scale",
    "letterbox",
    "mirror",
    "overlay_logos",
    "picture_in_picture",
    "pillarbox",
    "read_clip",
    "resample_fps",
    "scale_to_height",
    "scrolling_text",
    "synthetic_clip",
    "write_clip",
]

DEFAULT_BITRATE = 1_000_000
"""Bit rate (bit/s) at which queries are encoded unless their variant says otherwise."""

POSITIONS = ("top_left", "top_right", "bottom_left", "bottom_right", "centre")
"""Overlay positions: the four corners (with a margin) and the centre."""

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_PIRATE_NAMES = ("IPTV", "LIVE HD", "STREAM", "4K TV", "FREE TV", "SPORT+")
_TICKER_WORDS = ("BREAKING", "NEWS", "LIVE", "MARKETS", "WEATHER", "SPORT", "UPDATE", "TODAY")


def _resize(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize every frame (area filter when shrinking, bilinear otherwise); no copy if same."""
    n, h, w, _ = frames.shape
    if (w, h) == (width, height):
        return frames
    interp = cv2.INTER_AREA if width <= w and height <= h else cv2.INTER_LINEAR
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        out[i] = cv2.resize(frames[i], (width, height), interpolation=interp)
    return out


def _box(position: str, width: int, height: int, bw: int, bh: int, margin: float) -> tuple:
    """Top-left ``(x, y)`` of a ``bw x bh`` box at ``position``, ``margin`` from the edges."""
    mx, my = round(margin * width), round(margin * height)
    x = {"left": mx, "right": width - bw - mx}.get(position.split("_")[-1], (width - bw) // 2)
    y = {"top": my, "bottom": height - bh - my}.get(position.split("_")[0], (height - bh) // 2)
    return max(x, 0), max(y, 0)


def _black(rng: np.random.Generator, n: int, height: int, width: int, noise: int) -> np.ndarray:
    """Near-black frames: grey noise uniform in ``[0, noise]`` levels, new on every frame."""
    grey = rng.integers(0, noise + 1, size=(n, height, width, 1), dtype=np.uint8)
    return np.repeat(grey, 3, axis=3)


# --------------------------------------------------------------------------- #
# Transformations (each returns a new Clip with the same fps and start_seconds unless noted)
# --------------------------------------------------------------------------- #


def scale_to_height(clip: Clip, height: int = 360) -> Clip:
    """Scale to ``height`` lines keeping the aspect ratio (width rounded to even)."""
    return replace(
        clip, frames=_resize(clip.frames, _even(clip.width * height / clip.height), _even(height))
    )


def resample_fps(clip: Clip, fps: float = 30.0) -> Clip:
    """Frame-rate conversion to ``fps`` by nearest-frame resampling in time.

    Output frame ``k`` (at ``k / fps``) is input frame ``round(k * clip.fps / fps)``; there are
    ``round(n * fps / clip.fps)`` of them, so content timing and duration are unchanged.
    """
    n = max(1, round(clip.n_frames * fps / clip.fps))
    idx = np.minimum(np.floor(np.arange(n) * clip.fps / fps + 0.5 + 1e-9), clip.n_frames - 1)
    return replace(clip, frames=clip.frames[idx.astype(np.intp)], fps=fps)


def letterbox(clip: Clip, rng: np.random.Generator, aspect: float = 4 / 3, noise: int = 6) -> Clip:
    """Put the (16:9) picture, unscaled, in the middle of a taller ``aspect`` canvas.

    The canvas keeps the width and is ``width / aspect`` tall (640x360 -> 640x480 with two bars
    of 60 lines); a picture not wider than ``aspect`` gets a canvas 4/3 as tall as itself. The
    bars are near black as left by low-bitrate encoders: grey noise uniform in ``[0, noise]``
    levels, drawn from ``rng`` for every pixel and frame.
    """
    height = _even(max(clip.width / aspect, clip.height * 4 / 3))
    out = _black(rng, clip.n_frames, height, clip.width, noise)
    top = (height - clip.height) // 2
    out[:, top : top + clip.height] = clip.frames
    return replace(clip, frames=out)


def pillarbox(
    clip: Clip,
    rng: np.random.Generator,
    picture_aspect: float = 4 / 3,
    canvas_aspect: float = 16 / 9,
    noise: int = 6,
) -> Clip:
    """A 4:3 channel shown in a 16:9 frame: centre cut, unstretched, with bars left and right.

    This is what relaying a 4:3 SD feed of a 16:9 programme produces (rather than a squeezed
    picture): the full-height ``picture_aspect`` centre cut (640x360 -> 480x360, 12.5 % of the
    width lost on each side) is placed unscaled in a ``canvas_aspect`` canvas of the same
    height (640x360 again), with near-black noisy bars as in :func:`letterbox`.
    """
    pw = min(clip.width, _even(clip.height * picture_aspect))
    width = max(clip.width, _even(clip.height * canvas_aspect))
    out = _black(rng, clip.n_frames, clip.height, width, noise)
    x0, left = (clip.width - pw) // 2, (width - pw) // 2
    out[:, :, left : left + pw] = clip.frames[:, :, x0 : x0 + pw]
    return replace(clip, frames=out)


def crop_scale(clip: Clip, fraction: float) -> Clip:
    """Centred crop keeping ``1 - fraction`` of each dimension, scaled back to the input size.

    ``fraction=0.05`` removes 2.5 % of the width and of the height on each side (rounded to
    whole pixels) and upscales (bilinear) by about ``1 / 0.95``: a point at ``d`` pixels from
    the centre moves to ``d / 0.95``.
    """
    x0, y0 = round(clip.width * fraction / 2), round(clip.height * fraction / 2)
    cropped = clip.frames[:, y0 : clip.height - y0, x0 : clip.width - x0]
    return replace(clip, frames=_resize(cropped, clip.width, clip.height))


def overlay_logos(
    clip: Clip,
    rng: np.random.Generator,
    blur_size: tuple[float, float] = (0.15, 0.12),
    logo_size: tuple[float, float] = (0.18, 0.08),
    margin: float = 0.03,
) -> Clip:
    """Hide the broadcaster logo under a blurred box and stamp an opaque pirate logo.

    The blurred box (``blur_size`` = width, height as fractions of the frame; Gaussian blur of
    that region with sigma = box height / 4) is in a top corner drawn from ``rng``, where
    channel logos live. The static pirate logo (``logo_size``: a filled ellipse in a random
    colour with a white name drawn by ``cv2.putText``) is in one of the three other corners.
    ``margin`` is the distance to the frame edges as a fraction of each dimension.
    """
    w, h = clip.width, clip.height
    blur_at = POSITIONS[int(rng.integers(2))]
    logo_at = str(rng.choice([p for p in POSITIONS[:4] if p != blur_at]))
    out = clip.frames.copy()
    bw, bh = max(1, round(blur_size[0] * w)), max(1, round(blur_size[1] * h))
    x, y = _box(blur_at, w, h, bw, bh, margin)
    sigma = max(bh / 4, 1.0)
    region = out[:, y : y + bh, x : x + bw].astype(np.float32)
    region = scipy.ndimage.gaussian_filter(region, (0, sigma, sigma, 0), mode="nearest")
    out[:, y : y + bh, x : x + bw] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    lw, lh = max(4, round(logo_size[0] * w)), max(4, round(logo_size[1] * h))
    logo, mask = np.zeros((lh, lw, 3), np.uint8), np.zeros((lh, lw), np.uint8)
    colour = tuple(int(c) for c in rng.integers(60, 256, 3))
    for img, col in ((logo, colour), (mask, 255)):
        cv2.ellipse(img, (lw // 2, lh // 2), (lw // 2 - 1, lh // 2 - 1), 0, 0, 360, col, -1)
    name = str(rng.choice(_PIRATE_NAMES))
    (tw, th), _ = cv2.getTextSize(name, _FONT, 1.0, 1)
    scale = min(0.6 * lw / tw, 0.55 * lh / th)
    (tw, th), _ = cv2.getTextSize(name, _FONT, scale, 1)
    cv2.putText(
        logo, name, ((lw - tw) // 2, (lh + th) // 2), _FONT, scale, (255,) * 3, 1, cv2.LINE_AA
    )
    x, y = _box(logo_at, w, h, lw, lh, margin)
    part = out[:, y : y + lh, x : x + lw]
    part[:] = np.where(mask[None, :, :, None] > 0, logo, part)
    return replace(clip, frames=out)


def scrolling_text(
    clip: Clip,
    rng: np.random.Generator,
    band: float = 0.10,
    speed: float = 0.2,
    text: str | None = None,
) -> Clip:
    """News ticker: an opaque band at the bottom with text scrolling right to left.

    The band is ``band`` of the frame height, in a dark colour drawn from ``rng``; the text
    (``None``: random capitalised words from ``rng``) enters from the right edge at frame 0
    and moves left at ``speed`` frame widths per second (positions rounded to whole pixels),
    looping after it has gone by.
    """
    w, h, n = clip.width, clip.height, clip.n_frames
    bh = _even(band * h)
    if text is None:
        text = " +++ ".join(str(s) for s in rng.choice(_TICKER_WORDS, 8)) + " +++ "
    scale = 0.6 * bh / cv2.getTextSize("H", _FONT, 1.0, 1)[0][1]
    thick = max(1, round(scale * 1.5))
    (tw, th), _ = cv2.getTextSize(text, _FONT, scale, thick)
    strip = np.empty((bh, w + tw, 3), np.uint8)
    strip[:] = rng.integers(0, 70, 3).astype(np.uint8)
    cv2.putText(strip, text, (w, (bh + th) // 2), _FONT, scale, (255, 255, 230), thick, cv2.LINE_AA)
    shift = np.round(np.arange(n) * speed * w / clip.fps).astype(np.intp)
    cols = (np.arange(w)[None, :] + shift[:, None]) % strip.shape[1]
    out = clip.frames.copy()
    out[:, h - bh :] = strip[:, cols].transpose(1, 0, 2, 3)
    return replace(clip, frames=out)


def mirror(clip: Clip) -> Clip:
    """Horizontal (left-right) flip."""
    return replace(clip, frames=clip.frames[:, :, ::-1])


def picture_in_picture(
    clip: Clip, other: Clip, position: str = "centre", scale: float = 0.6, margin: float = 0.04
) -> Clip:
    """The channel scaled by ``scale`` over another programme scaled to the full frame.

    ``other`` is resized (stretched) to the clip's size and followed in time (its frame
    ``floor(t * other.fps)`` at clip time ``t``), looped if shorter. The inset (even
    dimensions) is at ``position`` (one of :data:`POSITIONS`), ``margin`` (fraction of each
    dimension) from the edges.
    """
    w, h = clip.width, clip.height
    pw, ph = _even(w * scale), _even(h * scale)
    idx = np.floor(np.arange(clip.n_frames) * other.fps / clip.fps + 1e-9).astype(np.intp)
    used, inverse = np.unique(idx % other.n_frames, return_inverse=True)
    out = _resize(other.frames[used], w, h)[inverse]
    x, y = _box(position, w, h, pw, ph, margin)
    out[:, y : y + ph, x : x + pw] = _resize(clip.frames, pw, ph)
    return replace(clip, frames=out)


def color_shift(clip: Clip, gamma: float, contrast: float, saturation: float) -> Clip:
    """Gamma, then contrast around mid-grey, then saturation around the BT.601 luma.

    On values ``x`` in [0, 1]: ``x ** gamma`` (``> 1`` darkens), ``(x - 0.5) * contrast + 0.5``
    (both as one 8-bit look-up table), then ``Y + saturation * (x - Y)`` (0 gives grey),
    clipped and rounded to 8 bits.
    """
    lut = np.clip(((np.arange(256) / 255) ** gamma - 0.5) * contrast + 0.5, 0, 1)
    lut = np.round(lut * 255).astype(np.uint8)
    out = np.empty_like(clip.frames)
    for i, frame in enumerate(clip.frames):
        x = cv2.LUT(frame, lut)
        grey = cv2.cvtColor(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        out[i] = cv2.addWeighted(x, saturation, grey, 1.0 - saturation, 0.0)
    return replace(clip, frames=out)


# --------------------------------------------------------------------------- #
# Synthetic source
# --------------------------------------------------------------------------- #


def synthetic_clip(
    seconds: float = 10.0, fps: float = 25.0, width: int = 320, height: int = 180, seed: int = 0
) -> Clip:
    """Synthetic programme (:func:`service.media.synth_pictures`): drifting colour gradients,
    moving shapes and scene cuts; different seeds give unrelated content. Returns
    ``round(seconds * fps)`` frames of ``height x width`` pixels with ``start_seconds=0``."""
    return Clip(synth_pictures(seconds, fps, seed, width, height), fps, 0.0)


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #

TransformFn = Callable[[Clip, np.random.Generator, Clip | None], Clip]
"""Signature of a transformation: ``f(clip, rng, other) -> clip2``."""


@dataclass(frozen=True)
class VideoTransform:
    """Registry entry: a transformation and the bit rate (bit/s) to encode its query at."""

    fn: TransformFn
    bitrate: int = DEFAULT_BITRATE

    def __call__(self, clip: Clip, rng: np.random.Generator, other: Clip | None = None) -> Clip:
        return self.fn(clip, rng, other)


def _pip(clip, rng, other) -> Clip:
    if other is None:
        raise ValueError("the 'pip' transform needs an unrelated clip (other=None)")
    return picture_in_picture(clip, other, POSITIONS[int(rng.integers(len(POSITIONS)))])


def _color(clip, rng, other) -> Clip:
    gamma, contrast, saturation = rng.uniform((0.7, 0.7, 0.5), (1.4, 1.3, 1.5))
    return color_shift(clip, gamma, contrast, saturation)


def _combo(clip, rng, other) -> Clip:
    return scale_to_height(overlay_logos(crop_scale(clip, 0.05), rng), 360)


VIDEO_TRANSFORMS: dict[str, VideoTransform] = {
    "clean": VideoTransform(lambda clip, rng, other: clip),
    "reencode_360p": VideoTransform(lambda clip, rng, other: scale_to_height(clip, 360), 300_000),
    "fps30": VideoTransform(lambda clip, rng, other: resample_fps(clip, 30.0)),
    "letterbox": VideoTransform(lambda clip, rng, other: letterbox(clip, rng)),
    "pillarbox": VideoTransform(lambda clip, rng, other: pillarbox(clip, rng)),
    "crop5": VideoTransform(lambda clip, rng, other: crop_scale(clip, 0.05)),
    "crop10": VideoTransform(lambda clip, rng, other: crop_scale(clip, 0.10)),
    "logo": VideoTransform(lambda clip, rng, other: overlay_logos(clip, rng)),
    "scrolling_text": VideoTransform(lambda clip, rng, other: scrolling_text(clip, rng)),
    "mirror": VideoTransform(lambda clip, rng, other: mirror(clip)),
    "pip": VideoTransform(_pip),
    "color": VideoTransform(_color),
    "combo": VideoTransform(_combo, 300_000),
}
"""Pirate variants: name -> :class:`VideoTransform`; call ``entry(clip, rng, other)``, then
``write_clip(path, clip2, bitrate=entry.bitrate)``.

``clean`` returns the clip itself (the query's re-encode is the only change);
``reencode_360p`` scales to 360 lines, encoded at 300 kbit/s; ``fps30`` resamples to 30 fps;
``crop5``/``crop10`` crop 5 %/10 % of each dimension; ``pip`` puts the channel at a position
drawn from ``rng`` over ``other`` (required: ``ValueError`` if ``None``); ``color`` draws gamma
in [0.7, 1.4], contrast in [0.7, 1.3], saturation in [0.5, 1.5]; ``combo`` is crop5, then logo,
then 360 lines at 300 kbit/s. The other variants are encoded at :data:`DEFAULT_BITRATE`."""
