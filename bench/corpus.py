"""The benchmark's media: references, held-out negatives, pirate queries written as WAV files.

Sources: ``../shared/media/audio`` and the cache that ``../shared/media/get-more.sh`` fills
(``media-cache/``: ~2 h of orchestral game music, ~1.2 h of Czech speech, arcade music).
References, calibration negatives and evaluation negatives are disjoint, by a fixed rule, so
the negatives that test false matches never tuned anything.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.media import write_audio

from .dataset import SPEED_OF, TRANSFORMS, load_audio

SR = 22050  # rate at which pirate variants are made and written (audfprint resamples too)
ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "media"


@dataclass(frozen=True)
class Query:
    """One query file and its truth (``channel`` None for negatives)."""

    path: Path
    transform: str
    seconds: float
    channel: str | None
    offset: float | None


@dataclass(frozen=True)
class Corpus:
    """Files of each role."""

    refs: list[Path]
    calibration_negatives: list[Path]
    eval_negatives: list[Path]
    speech: list[Path]


def channel_of(path: Path) -> str:
    """Channel id the benchmark gives a reference file."""
    return "ch-" + "".join(c if c.isalnum() else "-" for c in path.stem)[:40].strip("-")


def find_corpus(cache: Path) -> Corpus:
    """Locate (fetching if needed) the media and split it into roles."""
    if not SHARED.is_dir():
        raise SystemExit(f"bench needs {SHARED} (the project's shared media); it is absent")
    if not (cache / "music").is_dir() or not any((cache / "music").iterdir()):
        subprocess.run(["bash", str(SHARED / "get-more.sh"), str(cache)], check=True)
    shared = sorted((SHARED / "audio").glob("*.ogg"))
    music = sorted((cache / "music").glob("*.ogg"))
    speech = sorted((cache / "speech").glob("*.ogg"))
    arcade = sorted((cache / "music2").glob("*.mp3"))
    soundtracks = [SHARED / "video" / n for n in ("big_buck_bunny_0_30.webm", "chaplin.mp4")]
    # The game soundtrack's pieces quote each other (shared themes and stems), and the game's
    # voice-over ships the same recordings under several names: each set is either all
    # reference or all negative. Both are negatives, split between calibration and test.
    refs = shared + arcade
    calib = music[0::2] + [_concat_wav(speech[0:400], cache / "bench-speech-calib.wav")]
    evaluation = (
        music[1::2]
        + [p for p in soundtracks if p.exists()]
        + [_concat_wav(speech[400:800], cache / "bench-speech-eval.wav")]
    )
    return Corpus(refs, calib, evaluation, speech[800:])


def _concat_wav(paths: list[Path], out: Path) -> Path:
    """Join short speech files into one long negative (the clips are ~5 s each)."""
    if not out.exists():
        write_audio(out, np.concatenate([load_audio(p, SR) for p in paths]), SR)
    return out


def make_queries(
    corpus: Corpus,
    out: Path,
    transforms: list[str],
    lengths: list[float],
    per_cell: int,
    negatives: int,
    seed: int = 7,
) -> list[Query]:
    """Write ``per_cell`` pirate queries per (transform, length) and ``negatives`` per length."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    refs = {p: load_audio(p, SR) for p in corpus.refs}
    long_refs = [p for p, y in refs.items() if y.size > 20 * SR]
    speech = np.concatenate([load_audio(p, SR) for p in corpus.speech[:60]])
    queries: list[Query] = []
    for name in transforms:
        factor = SPEED_OF[name]
        for seconds in lengths:
            for i in range(per_cell):
                ref = long_refs[int(rng.integers(len(long_refs)))]
                y = refs[ref]
                # Enough source that the variant still lasts `seconds` after a speed-up.
                span = seconds * factor + 1.0
                start = float(rng.uniform(0.5, y.size / SR - span - 0.5))
                piece = y[int(start * SR) : int((start + span) * SR)]
                z = TRANSFORMS[name](piece, SR, rng, speech)[: int(seconds * SR)]
                path = out / f"{name}_{seconds:g}s_{i:03d}.wav"
                write_audio(path, z, SR)
                queries.append(Query(path, name, seconds, channel_of(ref), start))
    neg = {p: load_audio(p, SR) for p in corpus.eval_negatives}
    pool = [p for p, y in neg.items() if y.size > 11 * SR]
    for seconds in lengths:
        for i in range(negatives):
            src = pool[i % len(pool)]
            y = neg[src]
            start = float(rng.uniform(0, y.size / SR - seconds))
            z = y[int(start * SR) : int((start + seconds) * SR)]
            path = out / f"negative_{seconds:g}s_{i:03d}.wav"
            write_audio(path, z, SR)
            queries.append(Query(path, "negative", seconds, None, None))
    return queries
