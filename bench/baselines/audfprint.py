"""Side-by-side baseline: Dan Ellis's audfprint landmark fingerprinter.

audfprint (the PyPI fork ``audfprint2``) is never vendored into this
repository: :func:`ensure_installed` installs it, with the ffmpeg it decodes
every input with, into a separate virtualenv at run time.

Everything runs as subprocesses of the venv's interpreter
(``python -m audfprint2 ...``), so audfprint's dependencies never meet
ours. Wall time, CPU time (user + system, including the ffmpeg decoders
it spawns) and peak RSS are measured per call with :func:`os.wait4`.

Typical use::

    py = ensure_installed(Path(".bench-venvs/audfprint"))
    stats = build_index(refs, Path("work/audfprint.hdf"), py)
    results = match(queries, Path("work/audfprint.hdf"), py)

The venv and ffmpeg set-up live in :mod:`.audfprint_install`; the command
lines and the parsing of audfprint's log (offsets have 0.1 s resolution) in
:mod:`.audfprint_cli`.

Every run allocates audfprint's fixed hash table, 2**hashbits buckets of
bucketsize uint32 entries (400 MiB by default), and writes or reads all of
it, so peak RSS is about 0.5 GiB whatever the amount of audio. Times are
stored modulo maxtime frames (16384 x 256/11025 s = 380 s by default), so
offsets into longer references wrap.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import struct
import tempfile
import time
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..measure import run_measured
from .audfprint_cli import (
    BUCKETSIZE,
    DENSITY,
    HASHBITS,
    MATCH_WIN,
    MAX_MATCHES,
    MAXTIME,
    MIN_COUNT,
    SAMPLERATE,
    SAVED_FPRINTS,
    SEARCH_DEPTH,
    best_matches,
    check_db_path,
    check_ok,
    index_command,
    match_command,
    parse_match_runs,
    write_list,
)
from .audfprint_install import (
    AUDFPRINT_REQUIREMENT,
    DEFAULT_VENV_DIR,
    FFMPEG_REQUIREMENT,
    child_env,
    ensure_installed,
)

__all__ = [
    "AUDFPRINT_REQUIREMENT",
    "FFMPEG_REQUIREMENT",
    "DEFAULT_VENV_DIR",
    "build_index",
    "ensure_installed",
    "fingerprint_speed",
    "index_command",
    "match",
    "match_command",
    "match_with_stats",
    "wav_duration_seconds",
]


def wav_duration_seconds(path: Path) -> float:
    """Return a WAV file's duration from its RIFF header.

    Works for any sample format (PCM, float, WAVE_FORMAT_EXTENSIBLE). A
    data chunk whose size field is unset (``0`` or ``0xFFFFFFFF``, as
    written by streaming encoders) is measured to the end of the file.

    Parameters
    ----------
    path : Path
        A RIFF/WAVE file.

    Returns
    -------
    float
        Duration in seconds.

    Raises
    ------
    ValueError
        If the file is not a RIFF/WAVE file or lacks ``fmt `` / ``data`` chunks.
    """
    path = Path(path)
    file_size = path.stat().st_size
    with path.open("rb") as fh:
        header = fh.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            raise ValueError(f"{path} is not a RIFF/WAVE file")
        sample_rate = block_align = 0
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                break
            chunk_id, size = struct.unpack("<4sI", chunk)
            if chunk_id == b"fmt ":
                fmt = fh.read(size)
                _, _, sample_rate, _, block_align = struct.unpack("<HHIIH", fmt[:14])
                fh.seek(size % 2, os.SEEK_CUR)
            elif chunk_id == b"data":
                if not sample_rate or not block_align:
                    raise ValueError(f"{path}: data chunk before fmt chunk")
                available = file_size - fh.tell()
                if size in (0, 0xFFFFFFFF) or size > available:
                    size = available
                return (size // block_align) / sample_rate
            else:
                fh.seek(size + size % 2, os.SEEK_CUR)
    raise ValueError(f"{path}: no fmt/data chunk found")


def _run_new(
    ref_wavs: Sequence[Path],
    db_path: Path,
    venv_python: Path,
    **options: Any,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="audfprint-") as tmp:
        list_file = write_list(ref_wavs, tmp)
        cmd = index_command(venv_python, db_path, list_file, **options)
        run = run_measured(cmd, child_env(venv_python))
    check_ok(run, "new", cmd)
    if not db_path.exists():
        raise RuntimeError(f"audfprint new exited 0 but wrote no {db_path}")
    run["cmd"] = cmd
    return run


def build_index(
    ref_wavs: list[Path],
    db_path: Path,
    venv_python: Path | str,
    *,
    density: float = DENSITY,
    hashbits: int = HASHBITS,
    bucketsize: int = BUCKETSIZE,
    maxtime: int = MAXTIME,
    ncores: int = 1,
) -> dict[str, float]:
    """Index reference files with ``audfprint new`` in one subprocess.

    An existing database at ``db_path`` is overwritten. References are
    recorded under ``os.fspath(path)`` exactly as given, which is the name
    :func:`match` reports back.

    Parameters
    ----------
    ref_wavs : list of Path
        Reference WAV files (anything ffmpeg decodes works; durations are
        read from WAV headers).
    db_path : Path
        Database to write; its suffix picks the format: ``.hdf`` (HDF5,
        gzip) or ``.pkl``/``.pklz`` (gzipped pickle).
    venv_python : Path or str
        Interpreter returned by :func:`ensure_installed`.
    density, hashbits, bucketsize, maxtime, ncores
        See :func:`index_command`; defaults are audfprint's.

    Returns
    -------
    dict
        ``seconds`` (wall), ``cpu_seconds`` (user + system of audfprint and
        its ffmpeg decoders), ``peak_rss_mb`` (MiB, largest single process
        of the tree; with ``ncores > 1`` this is not the sum over workers),
        ``audio_seconds`` (total reference duration), plus
        ``hashes_stored``, ``dropped_percent`` (hashes lost to full buckets)
        and ``db_bytes``.

    Raises
    ------
    ValueError
        If ``ref_wavs`` is empty or ``db_path`` has an unsupported suffix.
    RuntimeError
        If audfprint fails.
    """
    if not ref_wavs:
        raise ValueError("build_index needs at least one reference file")
    db_path = check_db_path(db_path)
    audio_seconds = sum(wav_duration_seconds(p) for p in ref_wavs)
    run = _run_new(
        ref_wavs,
        db_path,
        Path(venv_python),
        density=density,
        hashbits=hashbits,
        bucketsize=bucketsize,
        maxtime=maxtime,
        ncores=ncores,
    )
    saved = SAVED_FPRINTS.search(run["stderr"])
    return {
        "seconds": run["seconds"],
        "cpu_seconds": run["cpu_seconds"],
        "peak_rss_mb": run["peak_rss_mb"],
        "audio_seconds": audio_seconds,
        "hashes_stored": float(saved.group(1)) if saved else float("nan"),
        "dropped_percent": float(saved.group(2)) if saved else float("nan"),
        "db_bytes": float(db_path.stat().st_size),
    }


def match_with_stats(
    query_wavs: list[Path],
    db_path: Path,
    venv_python: Path | str,
    *,
    density: float = DENSITY,
    min_count: int = MIN_COUNT,
    max_matches: int = MAX_MATCHES,
    match_win: int = MATCH_WIN,
    search_depth: int = SEARCH_DEPTH,
    exact_count: bool = False,
    ncores: int = 1,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Like :func:`match`, also returning the resource use of the match run.

    Parameters
    ----------
    query_wavs, db_path, venv_python, density, min_count, max_matches, match_win, \
search_depth, exact_count, ncores
        See :func:`match`.

    Returns
    -------
    results : list of dict
        As returned by :func:`match`.
    stats : dict
        ``seconds`` (wall, all processes), ``cpu_seconds`` (summed over
        processes, database loading included), ``peak_rss_mb`` (largest
        single process; with ``ncores > 1`` several run at once),
        ``processes`` and ``query_audio_seconds`` (from the WAV headers;
        NaN if some query is not a WAV file).
    """
    if ncores < 1:
        raise ValueError(f"ncores must be >= 1, got {ncores}")
    empty = {"seconds": 0.0, "cpu_seconds": 0.0, "peak_rss_mb": 0.0, "processes": 0.0}
    if not query_wavs:
        return [], {**empty, "query_audio_seconds": 0.0}
    db_path = Path(db_path)
    if not db_path.exists():
        raise FileNotFoundError(db_path)
    python = Path(venv_python)
    env = child_env(python)
    unique = list(dict.fromkeys(os.fspath(q) for q in query_wavs))
    nproc = min(ncores, len(unique))
    size = -(-len(unique) // nproc)
    chunks = [unique[i : i + size] for i in range(0, len(unique), size)]

    def run_chunk(chunk: list[str]) -> tuple[list[str], dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="audfprint-") as tmp:
            list_file = write_list([Path(c) for c in chunk], tmp)
            cmd = match_command(
                python,
                db_path,
                list_file,
                density=density,
                min_count=min_count,
                max_matches=max_matches,
                match_win=match_win,
                search_depth=search_depth,
                exact_count=exact_count,
            )
            run = run_measured(cmd, env)
        check_ok(run, "match", cmd)
        return chunk, run

    start = time.perf_counter()
    if len(chunks) == 1:
        runs = [run_chunk(chunks[0])]
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(chunks)) as pool:
            runs = list(pool.map(run_chunk, chunks))
    seconds = time.perf_counter() - start

    results = best_matches(query_wavs, parse_match_runs(runs))
    try:
        query_audio = sum(wav_duration_seconds(Path(q)) for q in unique)
    except (ValueError, OSError):
        query_audio = float("nan")
    stats = {
        "seconds": seconds,
        "cpu_seconds": sum(run["cpu_seconds"] for _, run in runs),
        "peak_rss_mb": max(run["peak_rss_mb"] for _, run in runs),
        "processes": float(len(runs)),
        "query_audio_seconds": query_audio,
    }
    return results, stats


def match(
    query_wavs: list[Path],
    db_path: Path,
    venv_python: Path | str,
    *,
    density: float = DENSITY,
    min_count: int = MIN_COUNT,
    max_matches: int = MAX_MATCHES,
    match_win: int = MATCH_WIN,
    search_depth: int = SEARCH_DEPTH,
    exact_count: bool = False,
    ncores: int = 1,
) -> list[dict[str, Any]]:
    """Identify query files against a database with ``audfprint match``.

    All queries go to one audfprint process (or, with ``ncores > 1``, to
    ``ncores`` concurrent single-core processes, each on a contiguous slice
    of the queries and each loading the whole database).

    Parameters
    ----------
    query_wavs : list of Path
        Query audio files (any format ffmpeg decodes). Names are matched
        back by ``os.fspath``; duplicates are run once.
    db_path : Path
        Database built by :func:`build_index`.
    venv_python : Path or str
        Interpreter returned by :func:`ensure_installed`.
    density, min_count, max_matches, match_win, search_depth, exact_count
        See :func:`match_command`; defaults are audfprint's. ``density``
        must equal the value used to index.
    ncores : int
        Concurrent audfprint processes (default 1, for a one-core comparison).

    Returns
    -------
    list of dict
        One dict per query, in input order: ``query`` (the Path given),
        ``match`` (reference Path as stored at indexing, or None),
        ``offset_seconds`` (where the query starts in the reference,
        0.1 s resolution, or None), ``hashes`` (time-aligned common hashes
        of the best match, 0 if none), ``raw_common_hashes`` (common hashes
        with that reference at any alignment), ``query_hashes`` (hashes
        extracted from the query), ``query_seconds`` (audfprint's estimate)
        and ``candidates`` (all reported matches, best first, each with
        ``ref``, ``offset_seconds``, ``hashes``, ``raw_common_hashes`` and
        ``rank``; more than one only when ``max_matches > 1``).

    Raises
    ------
    FileNotFoundError
        If ``db_path`` does not exist.
    RuntimeError
        If audfprint fails (e.g. a query cannot be decoded) or reports
        nothing for some query.
    """
    results, _ = match_with_stats(
        query_wavs,
        db_path,
        venv_python,
        density=density,
        min_count=min_count,
        max_matches=max_matches,
        match_win=match_win,
        search_depth=search_depth,
        exact_count=exact_count,
        ncores=ncores,
    )
    return results


def _write_tone(path: Path, seconds: float = 1.0, sample_rate: int = SAMPLERATE) -> Path:
    """Write a quiet two-tone 16-bit mono WAV (audfprint divides by zero on no audio)."""
    n = int(seconds * sample_rate)
    samples = (
        int(
            3000
            * (
                math.sin(2 * math.pi * 440 * i / sample_rate)
                + math.sin(2 * math.pi * 1250 * i / sample_rate)
            )
        )
        for i in range(n)
    )
    with wave.open(os.fspath(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


def fingerprint_speed(
    ref_wavs: list[Path],
    venv_python: Path | str,
    workdir: Path,
) -> dict[str, float]:
    """Measure audfprint's indexing speed on one core, in multiples of real time.

    Runs ``audfprint new`` (``--ncores 1``) on ``ref_wavs``, and once on a
    1 s tone to measure the fixed cost of a run (interpreter start,
    imports, allocating, compressing and saving the 400 MiB hash table);
    audfprint cannot index an empty list.

    Parameters
    ----------
    ref_wavs : list of Path
        Reference WAV files.
    venv_python : Path or str
        Interpreter returned by :func:`ensure_installed`.
    workdir : Path
        Scratch directory for the databases and the tone (created if missing).

    Returns
    -------
    dict
        ``x_realtime`` (audio seconds per CPU second of the whole run,
        ffmpeg decoding included), ``x_realtime_net`` (the same with the
        1 s run's CPU time subtracted; ``inf`` if nothing is left),
        ``audio_seconds``, ``cpu_seconds``, ``seconds``,
        ``overhead_cpu_seconds`` and ``peak_rss_mb``.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    python = Path(venv_python)
    tone = _write_tone(workdir / "audfprint-tone.wav")
    overhead = build_index([tone], workdir / "audfprint-overhead.hdf", python, ncores=1)
    stats = build_index(list(ref_wavs), workdir / "audfprint-speed.hdf", python, ncores=1)
    cpu = stats["cpu_seconds"]
    net = cpu - overhead["cpu_seconds"]
    audio = stats["audio_seconds"]
    return {
        "x_realtime": audio / cpu if cpu > 0 else float("inf"),
        "x_realtime_net": audio / net if net > 0 else float("inf"),
        "audio_seconds": audio,
        "cpu_seconds": cpu,
        "seconds": stats["seconds"],
        "overhead_cpu_seconds": overhead["cpu_seconds"],
        "peak_rss_mb": stats["peak_rss_mb"],
    }
