"""Installation of Meta ThreatExchange's vPDQ (video PDQ) into its own virtualenv.

vPDQ is never vendored into this repository. :func:`ensure_installed` builds the
PyPI package ``vpdq`` (a Cython binding around the C++ reference implementation,
published as a source distribution only) into a separate virtualenv at run time.
The build needs CMake, a C++ compiler, pkg-config and FFmpeg's libav* development
libraries, which are installed with ``apt-get`` when missing (the benchmark runs
as root on Debian). Decoding is done by those libav* libraries in-process: vpdq
0.2.x never runs an ``ffmpeg`` binary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "APT_PACKAGES",
    "DEFAULT_VENV_DIR",
    "VPDQ_REQUIREMENT",
    "child_env",
    "ensure_installed",
    "installed_version",
    "missing_apt_packages",
    "venv_python",
]

#: Exact pin: the worker calls this version's ``computeHash(..., thread_count=...)``.
VPDQ_REQUIREMENT = "vpdq==0.2.5"
#: Debian packages the sdist build needs (vpdq's own apt-requirements.txt, minus the
#: ``ffmpeg`` binary, which 0.2.x no longer calls, plus the C++ toolchain).
APT_PACKAGES: tuple[str, ...] = (
    "g++",
    "make",
    "cmake",
    "pkg-config",
    "libavcodec-dev",
    "libavdevice-dev",
    "libavfilter-dev",
    "libavformat-dev",
    "libavutil-dev",
    "libswresample-dev",
    "libswscale-dev",
)
#: Default venv location, ``<repo>/.bench-venvs/vpdq`` (git-ignored).
DEFAULT_VENV_DIR = Path(__file__).resolve().parents[2] / ".bench-venvs" / "vpdq"

_PROBE = (
    "import json, importlib.metadata as m, vpdq\n"
    "assert callable(vpdq.computeHash)\n"
    "print(json.dumps({'vpdq': m.version('vpdq')}))\n"
)
#: Seconds allowed for each step; building vpdq from source takes ~1-3 min on 2 cores.
_APT_TIMEOUT = 1800.0
_PIP_TIMEOUT = 1800.0


def venv_python(venv_dir: Path = DEFAULT_VENV_DIR) -> Path:
    """Path of the interpreter of the vPDQ venv at ``venv_dir`` (it may not exist)."""
    return Path(venv_dir).absolute() / "bin" / "python"


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _run(cmd: Sequence[str], timeout: float, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``cmd``; (exit code, stdout + stderr). A missing program or a timeout is code 127/124."""
    try:
        proc = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    except FileNotFoundError as exc:
        return 127, str(exc)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"") + (exc.stderr or b"")
        text = out.decode("utf-8", "replace") if isinstance(out, bytes) else str(out)
        return 124, f"timed out after {timeout:.0f} s\n{text}"
    return proc.returncode, proc.stdout + proc.stderr


def installed_version(python: Path) -> str | None:
    """Version of vpdq importable by ``python``, or None if it cannot ``import vpdq``."""
    if not Path(python).exists():
        return None
    code, out = _run([str(python), "-c", _PROBE], timeout=120.0)
    if code != 0:
        return None
    try:
        return str(json.loads(out.strip().splitlines()[-1])["vpdq"])
    except (ValueError, IndexError, KeyError, TypeError):
        return None


def _pinned_version() -> str:
    return VPDQ_REQUIREMENT.split("==", 1)[1]


def missing_apt_packages(packages: Sequence[str] = APT_PACKAGES) -> list[str]:
    """Debian packages among ``packages`` that dpkg does not report as installed."""
    if shutil.which("dpkg-query") is None:
        return list(packages)
    missing = []
    for pkg in packages:
        code, out = _run(["dpkg-query", "-W", "-f=${Status}", pkg], timeout=60.0)
        if code != 0 or "install ok installed" not in out:
            missing.append(pkg)
    return missing


def _apt_install(packages: list[str]) -> None:
    """``apt-get install -y`` the packages, running ``apt-get update`` once if that fails."""
    if shutil.which("apt-get") is None:
        raise RuntimeError(
            f"vPDQ needs the Debian packages {' '.join(packages)} but apt-get is not available"
        )
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise RuntimeError(
            f"vPDQ needs the Debian packages {' '.join(packages)}; install them as root "
            f"(apt-get install -y {' '.join(packages)})"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    code, out = _run(install, _APT_TIMEOUT, env)
    if code == 0:
        return
    upd_code, upd_out = _run(["apt-get", "update"], _APT_TIMEOUT, env)
    if upd_code != 0:
        raise RuntimeError(
            f"apt-get install {' '.join(packages)} failed and apt-get update failed too "
            f"(exit {upd_code}):\n{_tail(out)}\n---\n{_tail(upd_out)}"
        )
    code, out = _run(install, _APT_TIMEOUT, env)
    if code != 0:
        raise RuntimeError(
            f"apt-get install {' '.join(packages)} failed (exit {code}):\n{_tail(out)}"
        )


def child_env() -> dict[str, str]:
    """Environment for the vPDQ worker: UTF-8 output, unbuffered, no stray thread pools."""
    env = dict(os.environ)
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONUNBUFFERED"] = "1"
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    return env


def ensure_installed(venv_dir: Path = DEFAULT_VENV_DIR) -> Path:
    """Create the vPDQ virtualenv if needed and return its interpreter.

    Fast path: if ``<venv_dir>/bin/python`` already imports the pinned vpdq,
    nothing else is done (one interpreter start, well under a second). Otherwise:

    1. ``apt-get install -y --no-install-recommends`` whichever of
       :data:`APT_PACKAGES` dpkg lacks (``apt-get update`` once, then a retry,
       if that fails, e.g. on stale package lists);
    2. ``python -m venv venv_dir`` with the interpreter running this code;
    3. ``pip install vpdq==<pin>``: pip builds the sdist with scikit-build-core,
       Cython and CMake, linking against the system libav* libraries
       (takes 1-3 min on 2 cores);
    4. probe that ``import vpdq`` works and reports the pinned version.

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
        If a system package, the venv, the build or the import fails; the
        message says which step and ends with the tail of its output.
    """
    venv_dir = Path(venv_dir).absolute()
    python = venv_python(venv_dir)
    pinned = _pinned_version()
    if installed_version(python) == pinned:
        return python

    missing = missing_apt_packages()
    if missing:
        _apt_install(missing)
        still = missing_apt_packages(missing)
        if still:
            raise RuntimeError(f"apt-get reported success but {' '.join(still)} is not installed")

    if not python.exists():
        code, out = _run([sys.executable, "-m", "venv", str(venv_dir)], timeout=300.0)
        if code != 0 or not python.exists():
            raise RuntimeError(f"could not create the vPDQ venv at {venv_dir}:\n{_tail(out)}")

    code, out = _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            VPDQ_REQUIREMENT,
        ],
        _PIP_TIMEOUT,
        dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL=str(min(2, os.cpu_count() or 1))),
    )
    if code != 0:
        raise RuntimeError(
            f"pip install {VPDQ_REQUIREMENT} failed in {venv_dir} (exit {code}); it builds "
            f"from source and needs {' '.join(APT_PACKAGES)}:\n{_tail(out, 40)}"
        )
    version = installed_version(python)
    if version != pinned:
        code, out = _run([str(python), "-c", "import vpdq"], timeout=120.0)
        raise RuntimeError(
            f"vPDQ venv at {venv_dir}: pip install {VPDQ_REQUIREMENT} succeeded but "
            f"`import vpdq` gives version {version!r} (exit {code}):\n{_tail(out)}"
        )
    return python
