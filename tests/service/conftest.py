"""Fixtures of the CLI tests: the real ``vigie`` command, run in a subprocess."""

import os
import subprocess
import sys

import pytest


def run_vigie(data_dir, *args, check=True):
    """Run ``vigie ARGS`` with ``VIGIE_DATA_DIR=data_dir``; fail the test on error."""
    env = {**os.environ, "VIGIE_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"vigie {args} failed: {done.stderr}")
    return done


@pytest.fixture(scope="session")
def vigie():
    """The ``vigie`` command line, as a function: ``vigie(data_dir, *args, check=True)``."""
    return run_vigie
