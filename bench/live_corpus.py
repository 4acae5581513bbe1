"""Material of the live-index benchmark (``bench.live_index``): programmes, chunks, postings.

* :func:`programmes` makes synthetic A/V programmes (``service.media``: 320 x 180 H.264 at
  10 fps + AAC, one seed each), decodes them once as the ingester and a scan would (PCM at
  8 kHz, frames of width 192 at the reference 5 fps and the query 2 fps) and caches the
  decoded arrays, so simulated hours reuse them without decoding again;
* :func:`chunk_slices` cuts a programme into the 6 s chunks a live feed delivers, and
  :func:`live_chunk` stamps one with a simulated UTC;
* :func:`live_prints` fingerprints a programme exactly as :class:`FeedLoop` does (one
  :class:`AudioStream` with live blocks, pictures per chunk);
* :class:`Tiler` makes a channel-hour of postings from those prints (see its docstring for
  how content is varied while the key distribution stays that of real fingerprints), and
  :func:`build_index` writes channels x hours of them into a live index;
* :func:`rss` and :class:`FingerprintCpu` measure memory (MB) and fingerprinting CPU (s).
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from fingerprinting import video
from fingerprinting.capture import Evidence, LiveChunk
from fingerprinting.params import AudioParams, VideoParams
from fingerprinting.peaks import LIVE_BLOCK_FRAMES
from fingerprinting.stream import AudioStream
from fingerprinting.types import FrameBatch
from reference_index.index import Index
from reference_index.live import feed_source
from reference_index.mih import chunk_keys

SR = 8000
CHUNK_SECONDS = 6.0
SOURCE_FPS = 10.0
SOURCE_SIZE = (320, 180)
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "vigie-bench-live"


@dataclass(frozen=True)
class Programme:
    """One decoded programme: ``seconds`` of PCM at 8 kHz and frames at 5 and 2 fps."""

    seed: int
    seconds: float
    pcm: np.ndarray  # float32, exactly seconds * SR samples
    ref: FrameBatch  # 5 fps, times in seconds from the programme's start
    query: FrameBatch  # 2 fps


def _make(args: tuple[int, float, str]) -> str:
    """Encode and decode one programme into the cache (runs in a worker); returns its path."""
    from fingerprinting.decode import decode_audio, decode_frames
    from service.media import synth_pictures, synth_programme, write_video

    seed, seconds, cache = args
    out = Path(cache) / f"prog-s{seed}-{seconds:g}s.npz"
    if out.exists():
        return str(out)
    src = out.with_suffix(".ts")
    pics = synth_pictures(seconds, SOURCE_FPS, seed, *SOURCE_SIZE)
    write_video(
        src, pics, SOURCE_FPS, synth_programme(seconds, seed), 22050, keyframe_seconds=1.0,
        preset="ultrafast",
    )  # fmt: skip
    pcm = decode_audio(src, SR)
    n = int(round(seconds * SR))
    pcm = np.pad(pcm[:n], (0, max(0, n - pcm.size))).astype(np.float32)
    ref, query = decode_frames(src, 5.0, width=192), decode_frames(src, 2.0, width=192)
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, pcm=pcm, rt=ref.times, rg=ref.gray, qt=query.times, qg=query.gray)
    tmp.replace(out)
    src.unlink()
    return str(out)


def programmes(
    seeds: list[int], seconds: float, cache: Path = DEFAULT_CACHE, workers: int = 2
) -> list[Programme]:
    """Decoded programmes of ``seconds`` (a multiple of 6) for ``seeds``, made in
    ``workers`` processes the first time and read from ``cache`` afterwards."""
    cache.mkdir(parents=True, exist_ok=True)
    jobs = [(s, float(seconds), str(cache)) for s in seeds]
    missing = [j for j in jobs if not (cache / f"prog-s{j[0]}-{seconds:g}s.npz").exists()]
    if missing and workers > 1:
        with mp.get_context("spawn").Pool(min(workers, len(missing))) as pool:
            pool.map(_make, missing)
    paths = [_make(j) for j in jobs]
    out = []
    for seed, path in zip(seeds, paths, strict=True):
        z = np.load(path)
        out.append(
            Programme(
                seed, float(seconds), z["pcm"], FrameBatch(z["rt"], z["rg"]),
                FrameBatch(z["qt"], z["qg"]),
            )
        )  # fmt: skip
    return out


def chunk_slices(prog: Programme) -> list[tuple[np.ndarray, FrameBatch]]:
    """The programme as consecutive 6 s chunks: ``(pcm, frames)`` with frame times from the
    chunk's start (views of the programme's arrays, not copies)."""
    out = []
    step = int(CHUNK_SECONDS * SR)
    for i in range(int(round(prog.seconds / CHUNK_SECONDS))):
        start = i * CHUNK_SECONDS
        a, b = np.searchsorted(prog.ref.times, [start, start + CHUNK_SECONDS])
        frames = FrameBatch(prog.ref.times[a:b] - start, prog.ref.gray[a:b])
        out.append((prog.pcm[i * step : (i + 1) * step], frames))
    return out


def live_chunk(
    pcm: np.ndarray, frames: FrameBatch, utc: float, seq: int, discontinuity: bool = False
) -> LiveChunk:
    """A :class:`LiveChunk` of 6 s whose first sample aired at UTC ``utc`` (epoch s)."""
    return LiveChunk(
        utc_start=datetime.fromtimestamp(utc, UTC),
        pcm=pcm,
        frames=frames,
        seconds=CHUNK_SECONDS,
        sequences=(seq, seq),
        discontinuity=discontinuity,
        evidence=Evidence(requested_url="http://ref.example/live.m3u8"),
    )


@dataclass(frozen=True)
class Prints:
    """Live postings of one programme: keys and frames from its start (audio frames of
    32 ms, video frames of 0.2 s)."""

    audio_keys: np.ndarray  # uint32
    audio_frames: np.ndarray  # int64
    video_hashes: np.ndarray  # uint64
    video_frames: np.ndarray  # int64


def live_prints(
    prog: Programme, ap: AudioParams = AudioParams(), vp: VideoParams = VideoParams()
) -> Prints:
    """Fingerprint ``prog`` as :meth:`FeedLoop.ingest` does: audio through one live
    :class:`AudioStream`, pictures per 6 s chunk."""
    stream = AudioStream(ap, block_frames=LIVE_BLOCK_FRAMES)
    ak, af, vh, vf = [], [], [], []
    for i, (pcm, frames) in enumerate(chunk_slices(prog)):
        a = stream.push(pcm)
        ak.append(a.hashes)
        af.append(a.frames.astype(np.int64))
        v = video.fingerprint_frames([frames], vp)
        vh.append(v.hashes)
        vf.append(v.frames.astype(np.int64) + int(round(i * CHUNK_SECONDS / vp.hop_seconds)))
    a = stream.finish()
    ak.append(a.hashes)
    af.append(a.frames.astype(np.int64))
    return Prints(np.concatenate(ak), np.concatenate(af), np.concatenate(vh), np.concatenate(vf))


def _low_bit_masks(ap: AudioParams, low: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Per hash field: its shift in the packed key and a mask of its ``low`` lowest bits."""
    shifts, masks, at = [], [], 0
    for _, bits in reversed(ap.hash_fields):  # the last field is packed lowest
        shifts.append(at)
        masks.append((1 << min(low, bits)) - 1)
        at += bits
    return np.array(shifts, np.uint32), np.array(masks, np.uint32)


class Tiler:
    """Channel-hours of synthetic live postings with the density and key distribution of
    real fingerprints.

    An hour is tiled with programmes (chosen at random among ``prints``, each started at a
    random 6 s chunk, wrapping around). So that no two tiles hold the same content:

    * audio: ``perturb`` (50 %) of a tile's keys are XORed with a random value of the two
      lowest bits of every hash field (frequency steps, time ratio, anchor band, span):
      each such key becomes a neighbouring triplet shape, so the marginal distribution of
      every field stays that of real triplets while exact keys no longer repeat;
    * video: every hash of a tile is XORed with one random 64-bit value: pictures change,
      but Hamming distances inside the tile (scenes of near-identical frames) are kept.
    """

    def __init__(
        self,
        prints: list[Prints],
        seconds: float,
        ap: AudioParams = AudioParams(),
        vp: VideoParams = VideoParams(),
        perturb: float = 0.5,
    ):
        self.prints, self.seconds, self.perturb = prints, seconds, perturb
        self.a_hop, self.v_hop = ap.hop_seconds, vp.hop_seconds
        self.shifts, self.masks = _low_bit_masks(ap)

    def _jitter(self, rng: np.random.Generator, keys: np.ndarray) -> np.ndarray:
        pick = rng.random(keys.size) < self.perturb
        m = np.zeros(int(pick.sum()), np.uint32)
        for shift, mask in zip(self.shifts, self.masks, strict=True):
            m |= rng.integers(0, int(mask) + 1, m.size).astype(np.uint32) << shift
        out = keys.copy()
        out[pick] ^= m
        return out

    def hour(
        self, rng: np.random.Generator, seconds: float = 3600.0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``seconds`` of postings: ``(audio keys, audio frames, video hashes, video
        frames)``, frames counted from the hour's start."""
        ak, af, vh, vf = [], [], [], []
        t = 0.0
        while t < seconds:
            p = self.prints[int(rng.integers(len(self.prints)))]
            shift = float(rng.integers(int(self.seconds / CHUNK_SECONDS))) * CHUNK_SECONDS
            span = min(self.seconds, seconds - t)
            for keys, frames, hop, out_k, out_f, kind in (
                (p.audio_keys, p.audio_frames, self.a_hop, ak, af, "a"),
                (p.video_hashes, p.video_frames, self.v_hop, vh, vf, "v"),
            ):
                rel = (frames * hop - shift) % self.seconds  # seconds into the tile
                keep = rel < span
                out_f.append(np.floor((t + rel[keep]) / hop + 0.5).astype(np.int64))
                k = keys[keep]
                if kind == "a":
                    out_k.append(self._jitter(rng, k))
                else:
                    out_k.append(k ^ rng.integers(0, 2**64, dtype=np.uint64))
            t += span
        return tuple(np.concatenate(x) for x in (ak, af, vh, vf))  # type: ignore[return-value]


def build_index(
    root: Path, t0: float, channels: int, hours: int, tiler: Tiler, real: Prints,
    slot_start: float, target: int,
) -> dict:  # fmt: skip
    """Write ``channels`` x ``hours`` of synthetic live postings from UTC ``t0`` (hour
    segments; the last hour as six 10-minute flushes) and put ``real`` (the sample's
    programme prints) on channel ``target`` from UTC ``slot_start``."""
    index = Index(root)
    a_hop, v_hop = index.audio_params.hop_seconds, index.video_params.hop_seconds
    ta = [index.live_track("audio", f"ch{c:03d}", feed_source(c + 1), t0) for c in range(channels)]
    tv = [index.live_track("video", f"ch{c:03d}", feed_source(c + 1), t0) for c in range(channels)]
    rng = np.random.default_rng(7)
    wall0, per_hour = time.perf_counter(), []
    for h in range(hours):
        start = t0 + 3600.0 * h
        content = [list(tiler.hour(rng)) for _ in range(channels)]
        if slot_start >= start and h == hours - 1:
            rel = slot_start - start
            ak, af, vh, vf = content[target]
            span = tiler.seconds
            a_out = (af * a_hop < rel) | (af * a_hop >= rel + span)
            v_out = (vf * v_hop < rel) | (vf * v_hop >= rel + span)
            content[target] = [
                np.concatenate([ak[a_out], real.audio_keys]),
                np.concatenate([af[a_out], real.audio_frames + int(round(rel / a_hop))]),
                np.concatenate([vh[v_out], real.video_hashes]),
                np.concatenate([vf[v_out], real.video_frames + int(round(rel / v_hop))]),
            ]
        blocks = 6 if h == hours - 1 else 1
        for b in range(blocks):
            lo, hi = 3600.0 * b / blocks, 3600.0 * (b + 1) / blocks
            for c, (ak, af, vh, vf) in enumerate(content):
                sel = (af * a_hop >= lo) & (af * a_hop < hi)
                index.audio.append(ta[c].id, ak[sel], af[sel] + int(round(3600 * h / a_hop)))
                sel = (vf * v_hop >= lo) & (vf * v_hop < hi)
                keys = chunk_keys(vh[sel], index.video_params.chunk_bits)
                index.video.append(tv[c].id, keys, vf[sel] + int(round(3600 * h / v_hop)))
            spans = [(start + lo, start + hi)]
            index.flush_live(
                {"audio": {t.id: spans for t in ta}, "video": {t.id: spans for t in tv}}
            )
        per_hour.append(time.perf_counter() - wall0)
        print(f"  built hour {h + 1}/{hours} at {per_hour[-1]:.0f} s", flush=True)
    return {"build_s": round(per_hour[-1], 1), "peak_rss_mb": rss()["VmHWM"]}


def rss() -> dict:
    """This process's resident memory from /proc/self/status, in MB (total, anonymous, file
    mappings: memory-mapped segments count in the last)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = round(int(val.split()[0]) * 1024 / 1e6, 1)
    return out


def tree_bytes(root: Path) -> int:
    """Bytes of every file under ``root``."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


class FingerprintCpu:
    """CPU seconds spent in AudioStream.push/finish and video.fingerprint_frames (wrapped
    while in use: ``live.py`` calls them through their module and class)."""

    def __enter__(self) -> FingerprintCpu:
        self.cpu = {"audio": 0.0, "video": 0.0}
        self._orig = (AudioStream.push, AudioStream.finish, video.fingerprint_frames)

        def wrap(fn, kind):
            def timed(*a, **kw):
                t = time.process_time()
                try:
                    return fn(*a, **kw)
                finally:
                    self.cpu[kind] += time.process_time() - t

            return timed

        AudioStream.push = wrap(self._orig[0], "audio")
        AudioStream.finish = wrap(self._orig[1], "audio")
        video.fingerprint_frames = wrap(self._orig[2], "video")
        return self

    def __exit__(self, *exc) -> None:
        AudioStream.push, AudioStream.finish, video.fingerprint_frames = self._orig
