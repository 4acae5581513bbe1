"""Time and memory of a child process, measured so that the parent's size does not leak in.

``ru_maxrss`` of a child counts the parent's pages it had at ``fork``, and Linux carries that
high-water mark across ``exec``: a child of a 1 GB benchmark process reports >= 1 GB whatever
it does. ``VmHWM`` in ``/proc/PID/status`` belongs to the address space and restarts at
``exec``, so we poll it for the child and its descendants until the child exits.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["run_measured"]


def _hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        out.extend(int(k) for k in kids)
        todo.extend(int(k) for k in kids)
    return out


def run_measured(cmd: list[str], env: dict[str, str] | None = None, poll: float = 0.02) -> dict:
    """Run ``cmd`` to completion; exit code, output, wall and CPU seconds, peak RSS (MiB).

    CPU seconds come from ``wait4`` (the child and every descendant it waited for); the peak
    RSS is the largest ``VmHWM`` seen in the process tree (the biggest single process).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        peak: dict[int, int] = {}
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                for p in [proc.pid, *_descendants(proc.pid)]:
                    peak[p] = max(peak.get(p, 0), _hwm_kib(p))
                time.sleep(poll)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    return {
        "returncode": proc.returncode,
        "stdout": stdout,
        "stderr": stderr,
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": max(peak.values(), default=0) / 1024.0,
    }
