"""Structured JSON logs: one object per line, carrying the request id and the scan id.

The ids travel in context variables, so every log line written while handling a request
or running a scan job carries them without being passed around. Stream URLs in messages
must already be redacted by the caller (:func:`fingerprinting.capture.redact_url`).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

__all__ = ["JsonFormatter", "request_id", "scan_id", "setup_logging"]

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
scan_id: ContextVar[int | None] = ContextVar("scan_id", default=None)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", "request_id"?, "scan_id"?, ...extra}``."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if (rid := request_id.get()) is not None:
            out["request_id"] = rid
        if (sid := scan_id.get()) is not None:
            out["scan_id"] = sid
        for k, v in record.__dict__.items():
            if k not in _STANDARD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(level: str = "INFO") -> None:
    """Send every log record to stderr as JSON (called by ``vigie serve`` / ``worker``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "dramatiq", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
