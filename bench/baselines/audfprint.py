"""Side-by-side baseline: Dan Ellis's audfprint landmark fingerprinter.

audfprint is never vendored into this repository. :func:`ensure_installed`
installs the PyPI package ``audfprint2`` (a maintained fork of audfprint
with HDF5 databases) into a separate virtualenv at run time, along with
``imageio-ffmpeg``, whose bundled ffmpeg binary audfprint uses to decode
every input file, WAV included.

Everything runs as subprocesses of the venv's interpreter
(``python -m audfprint2 ...``), so audfprint's dependencies never meet
ours. Wall time, CPU time (user + system, including the ffmpeg decoders
it spawns) and peak RSS are measured per call with :func:`os.wait4`.

Typical use::

    py = ensure_installed(Path(".bench-venvs/audfprint"))
    stats = build_index(refs, Path("work/audfprint.hdf"), py)
    results = match(queries, Path("work/audfprint.hdf"), py)

Notes
-----
The audfprint command lines are built by :func:`index_command` and
:func:`match_command`. All options come before ``--`` and the
subcommand, and file names are passed in a list file (``--list``),
because audfprint2 0.1.2's argparse rejects files after options
(``audfprint new --dbase x a.wav`` fails with "unrecognized arguments")
and a list file has no argv length limit.

Match results are only printed with ``--verbose`` (they go to stderr
through :mod:`logging`, as ``DEBUG:audfprint2:Matched ...``), and
audfprint prints offsets with 0.1 s resolution.

Every run allocates audfprint's fixed hash table, 2**hashbits buckets of
bucketsize uint32 entries (400 MiB by default), and writes or reads all of
it, so peak RSS is about 0.5 GiB whatever the amount of audio. Times are
stored modulo maxtime frames (16384 x 256/11025 s = 380 s by default), so
offsets into longer references wrap.
"""

from __future__ import annotations

import ast
import concurrent.futures
import functools
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..measure import run_measured

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

#: Exact pin: :func:`match` parses this version's log format.
AUDFPRINT_REQUIREMENT = "audfprint2==0.1.2"
#: Provides the ffmpeg binary audfprint decodes with (pinned for reproducible resampling).
FFMPEG_REQUIREMENT = "imageio-ffmpeg==0.8.1"
#: Default venv location, ``<repo>/.bench-venvs/audfprint`` (git-ignored).
DEFAULT_VENV_DIR = Path(__file__).resolve().parents[2] / ".bench-venvs" / "audfprint"

# audfprint's own defaults, spelled out so every run states its parameters.
DENSITY = 20.0  # target hashes per second
HASHBITS = 20  # 2**20 hash buckets ...
BUCKETSIZE = 100  # ... of 100 uint32 entries each: a 400 MiB table
MAXTIME = 16384  # time field wraps after 16384 frames of 256/11025 s (~380 s)
SAMPLERATE = 11025
INDEX_SHIFTS = 1  # audfprint's default for new/add
MATCH_SHIFTS = 4  # audfprint's default for match
MATCH_WIN = 2
MIN_COUNT = 5
MAX_MATCHES = 1
SEARCH_DEPTH = 100

_DB_SUFFIXES = (".hdf", ".pkl", ".pklz")
_LOG_PREFIX = re.compile(r"^[A-Z]+:audfprint2?:")
_QUERY_SEP = re.compile(r" (\d+\.\d) sec (\d+) raw hashes(?: as |$)")
_MATCH_TAIL = re.compile(
    r"^(?P<ref>.+) at\s+(?P<offset>-?\d+\.\d) s with\s+(?P<aligned>\d+) of\s+(?P<raw>\d+)"
    r" common hashes at rank\s+(?P<rank>\d+)$"
)
_DROPPED = re.compile(r"Saved fprints for \d+ files \((\d+) hashes\).*\(([\d.]+)% dropped\)")

_PROBE = (
    "import json, importlib.metadata as m, importlib.util as u, imageio_ffmpeg\n"
    "assert u.find_spec('audfprint2') is not None\n"
    "print(json.dumps({'audfprint2': m.version('audfprint2'),"
    " 'imageio-ffmpeg': m.version('imageio-ffmpeg'),"
    " 'ffmpeg': imageio_ffmpeg.get_ffmpeg_exe()}))\n"
)


# --------------------------------------------------------------------------- install


def _venv_python(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "python"


def _probe(python: Path) -> dict[str, str] | None:
    """Return installed versions and the ffmpeg path, or None if the venv is unusable."""
    if not python.exists():
        return None
    proc = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def _pinned_version(requirement: str) -> str:
    return requirement.split("==", 1)[1]


def _is_complete(info: dict[str, str] | None) -> bool:
    return (
        info is not None
        and info.get("audfprint2") == _pinned_version(AUDFPRINT_REQUIREMENT)
        and info.get("imageio-ffmpeg") == _pinned_version(FFMPEG_REQUIREMENT)
        and Path(info.get("ffmpeg", "")).is_file()
    )


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def ensure_installed(venv_dir: Path = DEFAULT_VENV_DIR) -> Path:
    """Create the audfprint virtualenv if needed and return its interpreter.

    Installs :data:`AUDFPRINT_REQUIREMENT` and :data:`FFMPEG_REQUIREMENT`
    from the package index pip is configured with, and links the bundled
    ffmpeg as ``<venv_dir>/ffmpeg-bin/ffmpeg``. Idempotent: a venv that
    already has both pinned versions is left untouched.

    Parameters
    ----------
    venv_dir : Path
        Directory of the virtualenv (created if missing).

    Returns
    -------
    Path
        The venv's ``bin/python``.

    Raises
    ------
    RuntimeError
        If the venv cannot be created or the packages cannot be installed.
    """
    venv_dir = Path(venv_dir).absolute()
    python = _venv_python(venv_dir)
    info = _probe(python)
    if not _is_complete(info):
        if not python.exists():
            proc = subprocess.run(
                [sys.executable, "-m", "venv", str(venv_dir)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0 or not python.exists():
                raise RuntimeError(
                    f"could not create the audfprint venv at {venv_dir}:\n"
                    f"{_tail(proc.stdout + proc.stderr)}"
                )
        proc = subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
                AUDFPRINT_REQUIREMENT,
                FFMPEG_REQUIREMENT,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"pip install {AUDFPRINT_REQUIREMENT} {FFMPEG_REQUIREMENT} failed "
                f"in {venv_dir} (exit {proc.returncode}):\n{_tail(proc.stdout + proc.stderr)}"
            )
        info = _probe(python)
        if not _is_complete(info):
            raise RuntimeError(
                f"audfprint venv at {venv_dir} is still incomplete after pip install: {info}"
            )
    assert info is not None
    _link_ffmpeg(venv_dir, Path(info["ffmpeg"]))
    _ffmpeg_exe.cache_clear()
    return python


def _link_ffmpeg(venv_dir: Path, ffmpeg: Path) -> Path:
    bin_dir = venv_dir / "ffmpeg-bin"
    bin_dir.mkdir(exist_ok=True)
    link = bin_dir / "ffmpeg"
    if not (link.is_symlink() and link.resolve() == ffmpeg.resolve()):
        link.unlink(missing_ok=True)
        link.symlink_to(ffmpeg)
    return link


@functools.lru_cache(maxsize=8)
def _ffmpeg_exe(venv_python: str) -> str:
    info = _probe(Path(venv_python))
    if info is None or not Path(info.get("ffmpeg", "")).is_file():
        raise RuntimeError(
            f"{venv_python} cannot import audfprint2 and imageio_ffmpeg; "
            "call ensure_installed() first"
        )
    return info["ffmpeg"]


# --------------------------------------------------------------------------- helpers


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


def _check_db_path(db_path: Path) -> Path:
    db_path = Path(db_path)
    if db_path.suffix.lower() not in _DB_SUFFIXES:
        # audfprint would silently write <stem>.hdf instead of the name given.
        raise ValueError(f"db_path must end in one of {_DB_SUFFIXES}, got {db_path}")
    return db_path


def _write_list(paths: Sequence[Path], directory: str) -> Path:
    names = [os.fspath(p) for p in paths]
    for name in names:
        if "\n" in name or "\r" in name:
            raise ValueError(f"audfprint list files cannot hold a newline in a path: {name!r}")
    list_file = Path(directory) / "files.txt"
    list_file.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
    return list_file


def _child_env(venv_python: Path) -> dict[str, str]:
    """Environment for audfprint: ffmpeg on PATH, one BLAS thread, UTF-8 logs."""
    ffmpeg = _ffmpeg_exe(str(venv_python))
    env = dict(os.environ)
    link_dir = venv_python.parent.parent / "ffmpeg-bin"
    path_dir = str(link_dir) if (link_dir / "ffmpeg").exists() else str(Path(ffmpeg).parent)
    env["PATH"] = path_dir + os.pathsep + env.get("PATH", "")
    env["AUDFPRINT_FFMPEG"] = ffmpeg
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONUNBUFFERED"] = "1"
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    return env


def _run_measured(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd``; return its exit code, output and resource use (see ``bench.measure``)."""
    return run_measured(cmd, env)


def _check_ok(run: dict[str, Any], what: str, cmd: list[str]) -> None:
    if run["returncode"] != 0:
        raise RuntimeError(
            f"audfprint {what} failed (exit {run['returncode']}): {' '.join(cmd)}\n"
            f"{_tail(run['stderr'] + run['stdout'])}"
        )


def _log_payloads(text: str) -> list[str]:
    """Messages audfprint logged, one per line, prefixes stripped.

    With ``--ncores > 1`` audfprint logs each query's message list as a
    Python list repr; those are unpacked.
    """
    messages: list[str] = []
    for line in text.splitlines():
        payload = _LOG_PREFIX.sub("", line, count=1)
        if payload.startswith("[") and payload.endswith("]"):
            try:
                items = ast.literal_eval(payload)
            except (ValueError, SyntaxError):
                items = None
            if isinstance(items, list) and all(isinstance(i, str) for i in items):
                messages.extend(items)
                continue
        messages.append(payload)
    return messages


# --------------------------------------------------------------------------- commands


def index_command(
    venv_python: Path | str,
    db_path: Path,
    list_file: Path,
    *,
    density: float = DENSITY,
    hashbits: int = HASHBITS,
    bucketsize: int = BUCKETSIZE,
    maxtime: int = MAXTIME,
    ncores: int = 1,
) -> list[str]:
    """Return the ``audfprint new`` command line used by :func:`build_index`.

    Parameters
    ----------
    venv_python : Path or str
        Interpreter of the audfprint venv.
    db_path : Path
        Database to create (``.hdf``, ``.pkl`` or ``.pklz``).
    list_file : Path
        Text file naming one reference audio file per line.
    density : float
        Target landmark hashes per second of audio.
    hashbits : int
        log2 of the number of hash buckets.
    bucketsize : int
        Entries per bucket (older entries are randomly replaced past it).
    maxtime : int
        Largest stored time in frames (a power of 2; longer tracks wrap).
    ncores : int
        Worker processes audfprint uses.

    Returns
    -------
    list of str
        The argv list.
    """
    python = Path(venv_python)
    return [
        str(python), "-m", "audfprint2",
        "--dbase", os.fspath(db_path),
        "--density", repr(float(density)),
        "--hashbits", str(hashbits),
        "--bucketsize", str(bucketsize),
        "--maxtime", str(maxtime),
        "--samplerate", str(SAMPLERATE),
        "--shifts", str(INDEX_SHIFTS),
        "--ncores", str(ncores),
        "--ffmpeg-path", _ffmpeg_exe(str(python)),
        "--verbose",
        "--list",
        "--", "new", os.fspath(list_file),
    ]  # fmt: skip


def match_command(
    venv_python: Path | str,
    db_path: Path,
    list_file: Path,
    *,
    density: float = DENSITY,
    min_count: int = MIN_COUNT,
    max_matches: int = MAX_MATCHES,
    match_win: int = MATCH_WIN,
    search_depth: int = SEARCH_DEPTH,
    exact_count: bool = False,
) -> list[str]:
    """Return the ``audfprint match`` command line used by :func:`match`.

    Always ``--ncores 1``: audfprint's multi-process match pickles the
    whole hash table (400 MiB by default) for every query, which made it
    over ten times slower than one process. :func:`match` parallelises by
    running several of these commands on slices of the query list instead.

    Parameters
    ----------
    venv_python : Path or str
        Interpreter of the audfprint venv.
    db_path : Path
        Database built by :func:`build_index`.
    list_file : Path
        Text file naming one query audio file per line.
    density : float
        Target hashes per second; must equal the density used to index.
    min_count : int
        Minimum time-aligned common hashes for a match.
    max_matches : int
        Matches reported per query.
    match_win : int
        Tolerated time skew, in frames, when counting aligned hashes.
    search_depth : int
        How many candidate references (by raw common hashes) are aligned.
    exact_count : bool
        Use audfprint's slower exact aligned-hash counting (``-X``).

    Returns
    -------
    list of str
        The argv list.
    """
    python = Path(venv_python)
    cmd = [
        str(python), "-m", "audfprint2",
        "--dbase", os.fspath(db_path),
        "--density", repr(float(density)),
        "--samplerate", str(SAMPLERATE),
        "--shifts", str(MATCH_SHIFTS),
        "--match-win", str(match_win),
        "--min-count", str(min_count),
        "--max-matches", str(max_matches),
        "--search-depth", str(search_depth),
        "--ncores", "1",
        "--ffmpeg-path", _ffmpeg_exe(str(python)),
        "--verbose",
        "--list",
    ]  # fmt: skip
    if exact_count:
        cmd.append("--exact-count")
    return [*cmd, "--", "match", os.fspath(list_file)]


def _run_new(
    ref_wavs: Sequence[Path],
    db_path: Path,
    venv_python: Path,
    **options: Any,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="audfprint-") as tmp:
        list_file = _write_list(ref_wavs, tmp)
        cmd = index_command(venv_python, db_path, list_file, **options)
        run = _run_measured(cmd, _child_env(venv_python))
    _check_ok(run, "new", cmd)
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
    db_path = _check_db_path(db_path)
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
    saved = _DROPPED.search(run["stderr"])
    return {
        "seconds": run["seconds"],
        "cpu_seconds": run["cpu_seconds"],
        "peak_rss_mb": run["peak_rss_mb"],
        "audio_seconds": audio_seconds,
        "hashes_stored": float(saved.group(1)) if saved else float("nan"),
        "dropped_percent": float(saved.group(2)) if saved else float("nan"),
        "db_bytes": float(db_path.stat().st_size),
    }


def _split_query(rest: str, known: set[str]) -> tuple[str, re.Match[str]] | None:
    """Split ``"<query> <dur> sec <n> raw hashes[ as ...]"`` at a known query name."""
    for sep in _QUERY_SEP.finditer(rest):
        name = rest[: sep.start()]
        if name in known:
            return name, sep
    return None


def _parse_match_output(text: str, known: set[str]) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for message in _log_payloads(text):
        if message.startswith("Matched "):
            split = _split_query(message[len("Matched ") :], known)
            if split is None:
                continue
            name, sep = split
            tail = _MATCH_TAIL.match(message[len("Matched ") + sep.end() :])
            if tail is None:
                raise RuntimeError(f"unparsed audfprint match line: {message!r}")
            entry = results.setdefault(
                name,
                {
                    "query_seconds": float(sep.group(1)),
                    "query_hashes": int(sep.group(2)),
                    "candidates": [],
                },
            )
            entry["candidates"].append(
                {
                    "ref": Path(tail["ref"]),
                    "offset_seconds": float(tail["offset"]),
                    "hashes": int(tail["aligned"]),
                    "raw_common_hashes": int(tail["raw"]),
                    "rank": int(tail["rank"]),
                }
            )
        elif message.startswith("NOMATCH: "):
            split = _split_query(message[len("NOMATCH: ") :], known)
            if split is None:
                continue
            name, sep = split
            results.setdefault(
                name,
                {
                    "query_seconds": float(sep.group(1)),
                    "query_hashes": int(sep.group(2)),
                    "candidates": [],
                },
            )
    return results


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
    env = _child_env(python)
    unique = list(dict.fromkeys(os.fspath(q) for q in query_wavs))
    nproc = min(ncores, len(unique))
    size = -(-len(unique) // nproc)
    chunks = [unique[i : i + size] for i in range(0, len(unique), size)]

    def run_chunk(chunk: list[str]) -> tuple[list[str], dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="audfprint-") as tmp:
            list_file = _write_list([Path(c) for c in chunk], tmp)
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
            run = _run_measured(cmd, env)
        _check_ok(run, "match", cmd)
        return chunk, run

    start = time.perf_counter()
    if len(chunks) == 1:
        runs = [run_chunk(chunks[0])]
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(chunks)) as pool:
            runs = list(pool.map(run_chunk, chunks))
    seconds = time.perf_counter() - start

    parsed: dict[str, dict[str, Any]] = {}
    for chunk, run in runs:
        known = set(chunk)
        got = _parse_match_output(run["stderr"], known)
        missing = sorted(known - got.keys())
        if missing:
            raise RuntimeError(
                f"audfprint match reported nothing for {len(missing)} queries "
                f"(first: {missing[0]}):\n{_tail(run['stderr'])}"
            )
        parsed.update(got)

    results: list[dict[str, Any]] = []
    for query in query_wavs:
        entry = parsed[os.fspath(query)]
        best = entry["candidates"][0] if entry["candidates"] else None
        results.append(
            {
                "query": query,
                "match": best["ref"] if best else None,
                "offset_seconds": best["offset_seconds"] if best else None,
                "hashes": best["hashes"] if best else 0,
                "raw_common_hashes": best["raw_common_hashes"] if best else 0,
                "query_hashes": entry["query_hashes"],
                "query_seconds": entry["query_seconds"],
                "candidates": list(entry["candidates"]),
            }
        )
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
