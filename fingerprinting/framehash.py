"""Perceptual frame hashes (pHash, dHash, optional PDQ), batched with numpy.

Video fingerprints compare small, already-downscaled grey frames (typically 96-320 px wide,
sometimes crops or mirrored copies) of a suspect restream with the reference channels.
``imagehash`` is the reference implementation, but it hashes one PIL image at a time
(``Image.fromarray``, a C resize, a 32x32 DCT and a hex string per frame), and per-frame
Python overhead then costs as much as the arithmetic. Here every step works on a whole batch
``(n, H, W)``, with results **bit-identical to imagehash** so that hashes mix with ones made
elsewhere (older indexes, third-party tools) and published thresholds apply unchanged.

* **Resize**: :func:`fingerprinting.lanczos.resize_lanczos`, exactly Pillow's Lanczos.
* **pHash** is ``imagehash.phash``: 32x32 resize, ``scipy.fftpack.dct`` (type II, no
  normalisation) along axis 0 then axis 1, the low 8x8 block compared with its median. We
  call the same pocketfft DCT, only along a batch axis; each 1-D transform runs the same code
  on the same numbers, so the float64 coefficients, and thus the median comparisons, are
  identical. (A DCT written as a matrix product would differ in the last bits and could flip
  a bit whose coefficient sits on the median, e.g. on flat frames.)
* **dHash** is ``imagehash.dhash``: 9 wide x 8 high resize, bit = right pixel > left pixel.
* Hashes are packed into ``uint64`` with the first bit of imagehash's row-major bit array
  as the most significant bit, so ``int(str(imagehash.phash(img)), 16)`` equals our value
  and :func:`hamming` is a popcount of an XOR.
"""

from __future__ import annotations

import numpy as np
import scipy.fftpack

from .lanczos import check_frames, resize_lanczos

__all__ = ["FRAME_HASHES", "dhash", "hamming", "pdq", "phash", "resize_lanczos"]

#: imagehash defaults: 8x8 hash bits, pHash resizes to 4x that before the DCT.
_HASH_SIZE = 8
_PHASH_SIZE = 4 * _HASH_SIZE

_HAS_BITWISE_COUNT = hasattr(np, "bitwise_count")  # numpy >= 2.0
_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


# --------------------------------------------------------------------------- hashes


def _pack64(bits: np.ndarray) -> np.ndarray:
    """Pack (n, 64) bools into (n,) uint64, first bit = most significant (imagehash's hex)."""
    packed = np.packbits(bits.reshape(bits.shape[0], 64), axis=1)  # (n, 8) uint8, MSB first
    return packed.view(">u8").reshape(-1).astype(np.uint64)


def phash(gray: np.ndarray) -> np.ndarray:
    """64-bit perceptual hashes (DCT low frequencies vs their median), like imagehash.

    ``phash(gray)[i] == int(str(imagehash.phash(Image.fromarray(gray[i]))), 16)``: the same
    Lanczos resize to 32x32, the same ``scipy.fftpack.dct`` (type II) along axis 0 then
    axis 1 of each frame, the low 8x8 block thresholded at its median. Kept identical to
    imagehash so that fingerprints mix with hashes computed elsewhere and Hamming thresholds
    tuned on imagehash values apply unchanged.

    Parameters
    ----------
    gray : np.ndarray
        ``(n, H, W)`` uint8 grey frames, any strides, ``n`` may be 0.

    Returns
    -------
    np.ndarray
        ``(n,)`` uint64. Bit 63 is the DC coefficient's (set for any frame that is not
        black: DC is the largest coefficient), then row-major over the 8x8 block.

    Raises
    ------
    ValueError
        If ``gray`` is not a 3-D uint8 array with non-empty frames.
    """
    gray = check_frames(gray)
    n = gray.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    small = resize_lanczos(gray, _PHASH_SIZE, _PHASH_SIZE)  # (n, 32, 32) uint8
    # Same calls as imagehash (uint8 -> float64 inside fftpack). Only the first 8 outputs of
    # the first DCT feed the block, and the second DCT transforms each of those rows
    # independently, so transforming just those rows gives the same numbers.
    d = scipy.fftpack.dct(small, axis=1)[:, :_HASH_SIZE, :]
    block = scipy.fftpack.dct(d, axis=2)[:, :, :_HASH_SIZE].reshape(n, -1)
    med = np.median(block, axis=1, keepdims=True)
    return _pack64(block > med)


def dhash(gray: np.ndarray) -> np.ndarray:
    """64-bit horizontal gradient hashes, like ``imagehash.dhash``.

    ``dhash(gray)[i] == int(str(imagehash.dhash(Image.fromarray(gray[i]))), 16)``: Lanczos
    resize to 9 wide x 8 high, bit ``(r, c)`` set when pixel ``(r, c + 1)`` is brighter than
    pixel ``(r, c)``, row-major, first bit most significant. Cheaper than pHash (no DCT,
    smaller resize), and Vigie's frame hash: it finds more transformed frames at the same
    chance rate (measured, see ``VideoParams.frame_hash``).

    Parameters
    ----------
    gray : np.ndarray
        ``(n, H, W)`` uint8 grey frames, any strides, ``n`` may be 0.

    Returns
    -------
    np.ndarray
        ``(n,)`` uint64.

    Raises
    ------
    ValueError
        If ``gray`` is not a 3-D uint8 array with non-empty frames.
    """
    gray = check_frames(gray)
    n = gray.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    small = resize_lanczos(gray, _HASH_SIZE + 1, _HASH_SIZE)  # (n, 8, 9)
    return _pack64(small[:, :, 1:] > small[:, :, :-1])


def _popcount_lut(x: np.ndarray) -> np.ndarray:
    """Bits set in each uint64 of ``x`` through a byte table (numpy < 2 fallback)."""
    flat = np.ascontiguousarray(x, dtype=np.uint64).reshape(-1)
    counts = _POPCOUNT8[flat.view(np.uint8).reshape(-1, 8)].sum(axis=1, dtype=np.uint8)
    return counts.reshape(np.shape(x))


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between 64-bit hashes: popcount of ``a ^ b``, with broadcasting.

    Parameters
    ----------
    a, b : np.ndarray
        Integer arrays of hashes (uint64; other integer dtypes are reinterpreted as uint64,
        two's complement for negatives). Broadcast together, e.g. ``hamming(q[:, None],
        ref[None, :])`` for all pairs.

    Returns
    -------
    np.ndarray
        uint8 array of the broadcast shape, values 0..64 (differing bits per word). uint8
        keeps all-pairs matrices small; cast before subtracting distances. For multi-word
        hashes such as PDQ's ``(n, 4)`` words, sum over the last axis.

    Raises
    ------
    ValueError
        If an input is not an integer array.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    for name, v in (("a", a), ("b", b)):
        if v.dtype.kind not in "ui":
            raise ValueError(f"{name} must hold integer hashes (uint64), got dtype {v.dtype}")
    x = np.bitwise_xor(a.astype(np.uint64, copy=False), b.astype(np.uint64, copy=False))
    if _HAS_BITWISE_COUNT:
        return np.bitwise_count(x)
    return _popcount_lut(x)


def pdq(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """256-bit PDQ hashes (Meta's ThreatExchange) and their quality, via ``pdqhash``.

    PDQ is the 256-bit hash platforms exchange for known-content matching, so it lets us
    compare with hash lists made elsewhere. ``pdqhash`` hashes one image per call, so this
    loops over frames in Python (the hashing itself is C++); it is an optional dependency,
    imported here so the rest of the module works without it.

    Parameters
    ----------
    gray : np.ndarray
        ``(n, H, W)`` uint8 grey frames, any strides, ``n`` may be 0. Each frame is given to
        ``pdqhash.compute`` as an RGB image with three equal channels, whose luma is exactly
        the grey level.

    Returns
    -------
    words : np.ndarray
        ``(n, 4)`` uint64; word 0 holds the most significant 64 bits of the hash as PDQ
        prints it in hex. Distances: ``hamming(w1, w2).sum(axis=-1)`` (0..256).
    quality : np.ndarray
        ``(n,)`` int32, PDQ's 0..100 quality score (from the image gradients); flat frames
        score low and their hashes are unreliable.

    Raises
    ------
    ImportError
        If ``pdqhash`` is not installed (``pip install pdqhash``, builds from source).
    ValueError
        If ``gray`` is not a 3-D uint8 array with non-empty frames.
    """
    gray = check_frames(gray)
    try:
        import pdqhash
    except ImportError as exc:
        raise ImportError(
            "pdq() needs the optional 'pdqhash' package (pip install pdqhash; it builds from "
            "source with a C++ compiler)"
        ) from exc
    n = gray.shape[0]
    bits = np.zeros((n, 256), dtype=bool)
    quality = np.zeros(n, dtype=np.int32)
    for i in range(n):  # pdqhash.compute takes one (H, W, 3) image
        rgb = np.repeat(gray[i][:, :, None], 3, axis=2)
        vec, quality[i] = pdqhash.compute(rgb)
        bits[i] = vec  # most significant bit first
    words = np.packbits(bits, axis=1).view(">u8").astype(np.uint64)
    return words.reshape(n, 4), quality


#: The 64-bit frame hashes by name (``VideoParams.frame_hash``).
FRAME_HASHES = {"dhash": dhash, "phash": phash}
