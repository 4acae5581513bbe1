"""audfprint's command line: the argv of ``new`` and ``match``, and the log they print.

The audfprint command lines are built by :func:`index_command` and
:func:`match_command`. All options come before ``--`` and the
subcommand, and file names are passed in a list file (``--list``),
because audfprint2 0.1.2's argparse rejects files after options
(``audfprint new --dbase x a.wav`` fails with "unrecognized arguments")
and a list file has no argv length limit.

Match results are only printed with ``--verbose`` (they go to stderr
through :mod:`logging`, as ``DEBUG:audfprint2:Matched ...``), and
audfprint prints offsets with 0.1 s resolution. :func:`parse_match_runs`
and :func:`best_matches` read them back.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .audfprint_install import ffmpeg_exe, output_tail

__all__ = [
    "DENSITY",
    "HASHBITS",
    "BUCKETSIZE",
    "MAXTIME",
    "SAMPLERATE",
    "MATCH_WIN",
    "MIN_COUNT",
    "MAX_MATCHES",
    "SEARCH_DEPTH",
    "SAVED_FPRINTS",
    "best_matches",
    "check_db_path",
    "check_ok",
    "index_command",
    "match_command",
    "parse_match_runs",
    "write_list",
]

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
SAVED_FPRINTS = re.compile(r"Saved fprints for \d+ files \((\d+) hashes\).*\(([\d.]+)% dropped\)")


def check_ok(run: dict[str, Any], what: str, cmd: list[str]) -> None:
    if run["returncode"] != 0:
        raise RuntimeError(
            f"audfprint {what} failed (exit {run['returncode']}): {' '.join(cmd)}\n"
            f"{output_tail(run['stderr'] + run['stdout'])}"
        )


def check_db_path(db_path: Path) -> Path:
    db_path = Path(db_path)
    if db_path.suffix.lower() not in _DB_SUFFIXES:
        # audfprint would silently write <stem>.hdf instead of the name given.
        raise ValueError(f"db_path must end in one of {_DB_SUFFIXES}, got {db_path}")
    return db_path


def write_list(paths: Sequence[Path], directory: str) -> Path:
    names = [os.fspath(p) for p in paths]
    for name in names:
        if "\n" in name or "\r" in name:
            raise ValueError(f"audfprint list files cannot hold a newline in a path: {name!r}")
    list_file = Path(directory) / "files.txt"
    list_file.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
    return list_file


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
    """Return the ``audfprint new`` command line used by :func:`.audfprint.build_index`.

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
        "--ffmpeg-path", ffmpeg_exe(str(python)),
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
        Database built by :func:`.audfprint.build_index`.
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
        "--ffmpeg-path", ffmpeg_exe(str(python)),
        "--verbose",
        "--list",
    ]  # fmt: skip
    if exact_count:
        cmd.append("--exact-count")
    return [*cmd, "--", "match", os.fspath(list_file)]


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


def parse_match_runs(
    runs: Sequence[tuple[list[str], dict[str, Any]]],
) -> dict[str, dict[str, Any]]:
    """Parse the log of each ``(queries, run)`` pair; every query must be reported."""
    parsed: dict[str, dict[str, Any]] = {}
    for chunk, run in runs:
        known = set(chunk)
        got = _parse_match_output(run["stderr"], known)
        missing = sorted(known - got.keys())
        if missing:
            raise RuntimeError(
                f"audfprint match reported nothing for {len(missing)} queries "
                f"(first: {missing[0]}):\n{output_tail(run['stderr'])}"
            )
        parsed.update(got)
    return parsed


def best_matches(
    query_wavs: Sequence[Path], parsed: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One result per query, in input order, as returned by :func:`.audfprint.match`."""
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
    return results
