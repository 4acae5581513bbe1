"""Batched frame hashes must equal imagehash / Pillow bit for bit (synthetic and real frames)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import av
import imagehash
import numpy as np
import PIL
import pytest
from PIL import Image

from fingerprinting import framehash as fh
from fingerprinting import lanczos

SHARED_MEDIA = Path(__file__).resolve().parents[3] / "shared" / "media"
BUNNY = SHARED_MEDIA / "video" / "big_buck_bunny_0_30.webm"
PILLOW_13 = int(PIL.__version__.split(".")[0]) >= 13
LANCZOS = Image.Resampling.LANCZOS

# Sizes (width, height) frames arrive at: landscape video downscales, odd sizes, a portrait
# crop (height shrinks more than width: Pillow 13 resizes it vertically first).
SIZES = [(160, 90), (192, 108), (97, 61), (320, 180), (96, 54), (241, 137), (90, 160)]


# --------------------------------------------------------------------------- frame makers


def synthetic_frames(n: int, width: int, height: int, seed: int) -> np.ndarray:
    """(n, height, width) uint8 of varied content: ramps, shapes, noise, text-like blocks,
    flat and saturated frames (median ties, Lanczos overshoot clipped at 0 and 255)."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    yy = (np.arange(height, dtype=f32) / height)[None, :, None]
    xx = (np.arange(width, dtype=f32) / width)[None, None, :]

    def per_frame(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, (n, 1, 1)).astype(f32)

    angle = per_frame(0, 2 * np.pi)
    gain = per_frame(40, 250)
    img = (np.cos(angle) * gain) * xx + (np.sin(angle) * gain) * yy + per_frame(-40, 160)
    for _ in range(2):  # an ellipse and a rectangle per round
        cx, cy, rx, ry = (
            per_frame(0, 1),
            per_frame(0, 1),
            per_frame(0.05, 0.4),
            per_frame(0.05, 0.4),
        )
        level = per_frame(-150, 150)
        img += level * ((((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2) < 1)
        img -= level * ((np.abs(xx - cy) < rx / 2) & (np.abs(yy - cx) < ry / 2))
    # text-like rows of small blocks (tickers, subtitles) on every third frame
    cells = rng.random((n, 8, 24)) < 0.4
    text = cells[:, (yy[0, :, 0] * 8).astype(int)][:, :, (xx[0, 0] * 24).astype(int)]
    text &= ((yy > 0.75) & (yy < 0.9)) & (np.arange(n) % 3 == 0)[:, None, None]
    img[text] = 255.0
    img += rng.standard_normal(img.shape, dtype=f32) * per_frame(0, 40)
    out = np.clip(img, 0, 255).astype(np.uint8)
    k = np.arange(n)
    out[k % 17 == 5] = rng.integers(0, 256)  # flat frames: DCT all ~0 but DC
    out[k % 19 == 7] = rng.integers(0, 256, (height, width), dtype=np.uint8)
    checker = ((np.indices((height, width)).sum(axis=0) % 2) * 255).astype(np.uint8)
    out[k % 23 == 11] = checker
    return out


def encoded_frames(n: int, width: int, height: int) -> np.ndarray:
    """Synthetic frames through a real MPEG-4 encode/decode round trip (blocking, ringing)."""
    src = synthetic_frames(n, width, height, seed=99)
    k = np.arange(n)[:, None, None]
    cols = (np.arange(width)[None, None, :] - 2 * k) % width  # pan 2 px per frame
    shift = np.ascontiguousarray(src[k, np.arange(height)[None, :, None], cols])
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 300_000
        for g in shift:
            frame = av.VideoFrame.from_ndarray(g, format="gray").reformat(format="yuv420p")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    buf.seek(0)
    with av.open(buf) as inp:
        return np.stack([f.to_ndarray(format="gray") for f in inp.decode(video=0)])


def views(frames: np.ndarray) -> list[np.ndarray]:
    """Non-contiguous inputs callers pass: mirrored, flipped and cropped views."""
    _, h, w = frames.shape
    return [
        frames[:, :, ::-1],
        frames[:, ::-1, :],
        frames[:, h // 8 : h - h // 6, w // 10 : w - w // 7],
        frames[:, 1::2, ::-1],
    ]


# --------------------------------------------------------------------------- references


def pil_resize(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.stack(
        [
            np.asarray(Image.fromarray(np.ascontiguousarray(g)).resize((width, height), LANCZOS))
            for g in frames
        ]
    )


def reference_hashes(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images = [Image.fromarray(np.ascontiguousarray(g)) for g in frames]
    p = [int(str(imagehash.phash(im)), 16) for im in images]
    d = [int(str(imagehash.dhash(im)), 16) for im in images]
    return np.array(p, dtype=np.uint64), np.array(d, dtype=np.uint64)


def needs_pillow_13(width: int, height: int, out_w: int, out_h: int) -> bool:
    """Cases where Pillow < 13 runs the passes in the other order than we (and 13) do."""
    return lanczos._vertical_first(width, height, out_w, out_h) and out_w != width


def hashes_need_pillow_13(frames: np.ndarray) -> bool:
    _, h, w = frames.shape
    return needs_pillow_13(w, h, 32, 32) or needs_pillow_13(w, h, 9, 8)


def assert_hashes_match(frames: np.ndarray) -> int:
    p_ref, d_ref = reference_hashes(frames)
    p, d = fh.phash(frames), fh.dhash(frames)
    assert p.dtype == d.dtype == np.uint64 and p.shape == d.shape == (len(frames),)
    bad = np.flatnonzero((p != p_ref) | (d != d_ref))
    assert bad.size == 0, f"{bad.size} of {len(frames)} frames differ, first {bad[:5]}"
    return len(frames)


# --------------------------------------------------------------------------- identity


@pytest.fixture(scope="module")
def synthetic_set() -> list[np.ndarray]:
    """1,140 frames: 120 per size, an encoded clip, and non-contiguous views."""
    sets = [synthetic_frames(120, w, h, seed=i) for i, (w, h) in enumerate(SIZES)]
    sets.append(encoded_frames(60, 192, 108))
    sets += views(sets[3][:40])  # views of 320x180 frames
    sets += views(sets[1][:20])
    return sets


def test_phash_dhash_equal_imagehash_on_synthetic_frames(synthetic_set):
    if not PILLOW_13:
        synthetic_set = [s for s in synthetic_set if not hashes_need_pillow_13(s)]
    total = sum(assert_hashes_match(frames) for frames in synthetic_set)
    assert total >= 1000


def test_resize_equals_pillow_on_synthetic_frames(synthetic_set):
    checked = 0
    rng = np.random.default_rng(5)
    for frames in synthetic_set:
        _, h, w = frames.shape
        # the hash sizes on every frame, other shrinks/stretches on a few frames per set
        targets = [(32, 32, frames), (9, 8, frames)]
        for tw, th in [(w, max(1, h // 3)), (w // 2 + 1, h), (w + 7, h + h // 2 + 1)]:
            targets.append((tw, th, frames[:6]))
        targets.append((int(rng.integers(1, 2 * w)), int(rng.integers(1, 2 * h)), frames[:6]))
        for tw, th, sub in targets:
            if not PILLOW_13 and needs_pillow_13(w, h, tw, th):
                continue
            got = fh.resize_lanczos(sub, tw, th)
            assert got.shape == (len(sub), th, tw) and got.dtype == np.uint8
            assert got.flags.c_contiguous
            np.testing.assert_array_equal(got, pil_resize(sub, tw, th), f"{w}x{h}->{tw}x{th}")
        checked += len(frames)
    assert checked >= 1000


@pytest.mark.parametrize(
    "width, height, out_w, out_h",
    [
        (1, 1, 32, 32),  # upscale from a single pixel
        (5, 3, 9, 8),
        (40, 300, 32, 32),  # very tall: vertical pass first in Pillow 13
        (300, 40, 32, 32),
        (100, 200, 32, 32),
        (2000, 7, 32, 32),  # very wide
        (64, 64, 64, 1),
        (33, 32, 32, 32),
    ],
)
def test_resize_edge_shapes(width, height, out_w, out_h):
    if not PILLOW_13 and needs_pillow_13(width, height, out_w, out_h):
        pytest.skip("Pillow < 13 always resizes horizontally first")
    frames = synthetic_frames(6, width, height, seed=width * height)
    np.testing.assert_array_equal(
        fh.resize_lanczos(frames, out_w, out_h), pil_resize(frames, out_w, out_h)
    )
    if PILLOW_13 or not hashes_need_pillow_13(frames):
        assert_hashes_match(frames)


def test_same_size_returns_a_copy():
    frames = synthetic_frames(3, 32, 32, seed=1)[:, :, ::-1]
    got = fh.resize_lanczos(frames, 32, 32)
    np.testing.assert_array_equal(got, frames)
    assert got.flags.c_contiguous and not np.shares_memory(got, frames)


def test_batch_split_does_not_change_hashes():
    frames = synthetic_frames(40, 320, 180, seed=3)  # several internal chunks
    whole = fh.phash(frames)
    parts = np.concatenate([fh.phash(frames[i : i + 7]) for i in range(0, 40, 7)])
    np.testing.assert_array_equal(whole, parts)


def decode_bunny(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` frames of Big Buck Bunny, grey, at 320x180 and at 192x108."""
    big, small = [], []
    with av.open(str(BUNNY)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            big.append(frame.to_ndarray(width=320, height=180, format="gray"))
            small.append(frame.to_ndarray(width=192, height=108, format="gray"))
            if len(big) == count:
                break
    return np.stack(big), np.stack(small)


@pytest.mark.media
@pytest.mark.skipif(not BUNNY.is_file(), reason=f"real media {BUNNY} is absent on this machine")
def test_identity_on_real_decoded_frames():
    big, small = decode_bunny(10_000)  # all 720 frames (30 s at 24 fps) at two sizes
    crops = big[::3, 20:160, 30:280][:, :, ::-1]  # mirrored crops, non-contiguous
    total = sum(assert_hashes_match(frames) for frames in (big, small, crops))
    assert len(big) >= 500 and total >= 1000
    sub = big[::6]
    np.testing.assert_array_equal(fh.resize_lanczos(sub, 192, 108), pil_resize(sub, 192, 108))
    # consecutive frames of one shot are near-duplicates, a mirrored copy is not
    p = fh.phash(small)
    assert np.median(fh.hamming(p[1:], p[:-1])) <= 6
    assert np.median(fh.hamming(p, fh.phash(small[:, :, ::-1]))) > 16


# --------------------------------------------------------------------------- edge cases


def test_empty_batches():
    empty = np.zeros((0, 108, 192), dtype=np.uint8)
    assert fh.resize_lanczos(empty, 32, 32).shape == (0, 32, 32)
    for f in (fh.phash, fh.dhash):
        out = f(empty)
        assert out.shape == (0,) and out.dtype == np.uint64


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((2, 90, 160), dtype=np.float32), "uint8"),
        (np.zeros((2, 90, 160), dtype=np.uint16), "uint8"),
        (np.zeros((2, 90, 160), dtype=bool), "uint8"),
        (np.zeros((90, 160), dtype=np.uint8), r"ndim=2.*frame\[None\]"),
        (np.zeros((2, 90, 160, 3), dtype=np.uint8), "ndim=4"),
        (np.zeros((2, 0, 160), dtype=np.uint8), "1x1"),
    ],
)
def test_bad_frames_raise(bad, message):
    for f in (fh.phash, fh.dhash, lambda g: fh.resize_lanczos(g, 32, 32)):
        with pytest.raises(ValueError, match=message):
            f(bad)


@pytest.mark.parametrize("size", [0, -3, 2.5, True, None])
def test_bad_sizes_raise(size):
    frames = np.zeros((1, 10, 10), dtype=np.uint8)
    with pytest.raises(ValueError, match="width"):
        fh.resize_lanczos(frames, size, 5)
    with pytest.raises(ValueError, match="height"):
        fh.resize_lanczos(frames, 5, size)


# --------------------------------------------------------------------------- hamming


def py_hamming(a: int, b: int) -> int:
    return bin((int(a) ^ int(b)) & (2**64 - 1)).count("1")


def test_hamming_matches_python_with_broadcasting():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 2**64, (5, 1), dtype=np.uint64, endpoint=False)
    b = rng.integers(0, 2**64, (1, 6), dtype=np.uint64, endpoint=False)
    a[0, 0], b[0, 0] = 2**64 - 1, 0
    d = fh.hamming(a, b)
    assert d.shape == (5, 6) and d.dtype == np.uint8
    expected = [[py_hamming(x, y) for y in b[0]] for x in a[:, 0]]
    np.testing.assert_array_equal(d, expected)
    assert d[0, 0] == 64
    np.testing.assert_array_equal(fh._popcount_lut(a ^ b), d)  # numpy < 2 path
    assert fh.hamming(np.uint64(0b1011), np.uint64(0b0001)) == 2
    assert fh._popcount_lut(np.uint64(0b1011)) == 3


def test_hamming_without_bitwise_count(monkeypatch):
    rng = np.random.default_rng(9)
    a = rng.integers(0, 2**64, (4, 3), dtype=np.uint64)
    expected = fh.hamming(a, a[::-1])
    monkeypatch.setattr(fh, "_HAS_BITWISE_COUNT", False)  # numpy < 2.0
    got = fh.hamming(a, a[::-1])
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.uint8


def test_hamming_empty_and_dtypes():
    empty = np.zeros(0, dtype=np.uint64)
    assert fh.hamming(empty, empty).shape == (0,)
    assert fh._popcount_lut(empty).shape == (0,)
    assert fh.hamming(np.array([-1], dtype=np.int64), np.array([0], dtype=np.uint64))[0] == 64
    with pytest.raises(ValueError, match="integer"):
        fh.hamming(np.zeros(3), np.zeros(3, dtype=np.uint64))
    with pytest.raises(ValueError, match="integer"):
        fh.hamming(np.zeros(3, dtype=np.uint64), np.array(["a", "b", "c"]))


def test_hashes_agree_with_imagehash_distance():
    frames = synthetic_frames(20, 192, 108, seed=8)
    p = fh.phash(frames)
    ref = [imagehash.phash(Image.fromarray(g)) for g in frames]
    np.testing.assert_array_equal(
        fh.hamming(p[:-1], p[1:]), [x - y for x, y in zip(ref, ref[1:], strict=False)]
    )


# --------------------------------------------------------------------------- PDQ (optional)


def test_pdq_matches_pdqhash():
    pdqhash = pytest.importorskip("pdqhash")
    frames = synthetic_frames(8, 160, 90, seed=4)[:, :, ::-1]
    words, quality = fh.pdq(frames)
    assert words.shape == (8, 4) and words.dtype == np.uint64 and quality.shape == (8,)
    for g, w, q in zip(frames, words, quality, strict=True):
        vec, q_ref = pdqhash.compute(np.ascontiguousarray(np.stack([g, g, g], axis=2)))
        value = int("".join(str(int(b)) for b in vec), 2)
        assert [int(x) for x in w] == [(value >> (64 * (3 - i))) & (2**64 - 1) for i in range(4)]
        assert q == q_ref
    assert fh.hamming(words, words[::-1]).sum(axis=-1).shape == (8,)
    w0, q0 = fh.pdq(np.zeros((0, 90, 160), dtype=np.uint8))
    assert w0.shape == (0, 4) and q0.shape == (0,)


def test_pdq_without_pdqhash_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pdqhash", None)
    with pytest.raises(ImportError, match="pip install pdqhash"):
        fh.pdq(np.zeros((1, 64, 64), dtype=np.uint8))
