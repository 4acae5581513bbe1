"""Installation of audfprint into its own virtualenv, and the ffmpeg it decodes with.

audfprint is never vendored into this repository. :func:`ensure_installed`
installs the PyPI package ``audfprint2`` (a maintained fork of audfprint
with HDF5 databases) into a separate virtualenv at run time, along with
``imageio-ffmpeg``, whose bundled ffmpeg binary audfprint uses to decode
every input file, WAV included. :func:`child_env` is the environment every
audfprint subprocess runs in.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = [
    "AUDFPRINT_REQUIREMENT",
    "FFMPEG_REQUIREMENT",
    "DEFAULT_VENV_DIR",
    "child_env",
    "ensure_installed",
    "ffmpeg_exe",
    "output_tail",
]

#: Exact pin: :func:`.audfprint.match` parses this version's log format.
AUDFPRINT_REQUIREMENT = "audfprint2==0.1.2"
#: Provides the ffmpeg binary audfprint decodes with (pinned for reproducible resampling).
FFMPEG_REQUIREMENT = "imageio-ffmpeg==0.8.1"
#: Default venv location, ``<repo>/.bench-venvs/audfprint`` (git-ignored).
DEFAULT_VENV_DIR = Path(__file__).resolve().parents[2] / ".bench-venvs" / "audfprint"

_PROBE = (
    "import json, importlib.metadata as m, importlib.util as u, imageio_ffmpeg\n"
    "assert u.find_spec('audfprint2') is not None\n"
    "print(json.dumps({'audfprint2': m.version('audfprint2'),"
    " 'imageio-ffmpeg': m.version('imageio-ffmpeg'),"
    " 'ffmpeg': imageio_ffmpeg.get_ffmpeg_exe()}))\n"
)


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


def output_tail(text: str, lines: int = 25) -> str:
    """The last ``lines`` lines of a subprocess's output, for error messages."""
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
                    f"{output_tail(proc.stdout + proc.stderr)}"
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
                f"in {venv_dir} (exit {proc.returncode}):\n{output_tail(proc.stdout + proc.stderr)}"
            )
        info = _probe(python)
        if not _is_complete(info):
            raise RuntimeError(
                f"audfprint venv at {venv_dir} is still incomplete after pip install: {info}"
            )
    assert info is not None
    _link_ffmpeg(venv_dir, Path(info["ffmpeg"]))
    ffmpeg_exe.cache_clear()
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
def ffmpeg_exe(venv_python: str) -> str:
    """Path of the ffmpeg binary bundled in the venv of ``venv_python`` (cached)."""
    info = _probe(Path(venv_python))
    if info is None or not Path(info.get("ffmpeg", "")).is_file():
        raise RuntimeError(
            f"{venv_python} cannot import audfprint2 and imageio_ffmpeg; "
            "call ensure_installed() first"
        )
    return info["ffmpeg"]


def child_env(venv_python: Path) -> dict[str, str]:
    """Environment for audfprint: ffmpeg on PATH, one BLAS thread, UTF-8 logs."""
    ffmpeg = ffmpeg_exe(str(venv_python))
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
