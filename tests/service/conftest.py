"""Fixtures of the service tests: the real ``vigie`` command in a subprocess, and the two
back ends (``backend``: ``embedded`` SQLite + in-process broker, ``scaleout`` PostgreSQL +
Redis; see :mod:`tests.service.backends`)."""

import os
import subprocess
import sys

import pytest

from tests.service import backends


def run_vigie(data_dir, *args, check=True, env=None):
    """Run ``vigie ARGS`` with ``VIGIE_DATA_DIR=data_dir`` (and ``env``, e.g. the scale-out
    ``VIGIE_DATABASE_URL``); fail the test on error."""
    full_env = {**os.environ, "VIGIE_DATA_DIR": str(data_dir), **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=full_env,
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


@pytest.fixture(scope="session")
def scaleout_services():
    """PostgreSQL and Redis of this machine (checked once, a few seconds at most), or the
    sentence saying which is missing."""
    return backends.find_services()


def require_services(found):
    """The services, or skip the test naming the missing one. Under CI (``CI=true``) a
    missing service fails the test instead: CI must not pass without the scale-out suite."""
    if isinstance(found, backends.Services):
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"scale-out services are required under CI: {found}")
    pytest.skip(f"scale-out back end unavailable: {found}")


@pytest.fixture
def pg_database(scaleout_services):
    """A fresh PostgreSQL database (its SQLAlchemy URL), dropped after the test."""
    services = require_services(scaleout_services)
    url = backends.create_database(services.postgres)
    try:
        yield url
    finally:
        backends.drop_database(services.postgres, url)


@pytest.fixture
def redis_broker_url(scaleout_services):
    """``VIGIE_BROKER_URL`` of a Redis key namespace of this test's own, deleted after."""
    services = require_services(scaleout_services)
    namespace = backends.new_namespace()
    try:
        yield backends.broker_url(services.redis, namespace)
    finally:
        backends.flush_namespace(services.redis, namespace)


@pytest.fixture(params=["embedded", "scaleout"])
def backend(request):
    """The back end a service test runs on: ``backend.overrides(data_dir)`` are the
    ``Settings`` fields, ``backend.start_workers`` goes to ``create_app``."""
    if request.param == "embedded":
        return backends.Backend("embedded")
    return backends.Backend(
        "scaleout",
        database_url=request.getfixturevalue("pg_database"),
        broker_url=request.getfixturevalue("redis_broker_url"),
    )
