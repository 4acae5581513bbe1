"""The detection service: HTTP API, jobs, verdicts and the command line."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vigie")
except PackageNotFoundError:  # running from a checkout that was not installed
    __version__ = "0.0.0"
