"""What the catalog routers (channels, feeds, distributors, assets, re-indexing jobs) share:
scopes, path parameters, documented errors, and the catalog-to-HTTP mapping.

Reads take ``matches:read`` (analysts need to know what is monitored); writes take
``admin``. Feed URLs and asset sources carry subscriber credentials (Xtream user and
password, tokens), so every key but an admin one sees them redacted, and the audit log
only ever stores the redacted form (it is append-only: a leaked secret could never be
scrubbed from it).

Validation mirrors ``vigie channels ...`` (:mod:`service.cli_channels`): the request
models run the catalog's own checks (:func:`check_source`, host pattern and CIDR
normalisation) so that a 422 names the offending field; what only the catalog can decide
is mapped from its :class:`CatalogError` by :func:`refused` — "no such ..." to 404,
"already exists" to 409, anything else to 422.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Path
from pydantic import StringConstraints

from reference_index.catalog import CatalogError
from reference_index.catalog_records import check_source
from reference_index.index import MODALITIES, Index
from reference_index.store.base import ParamsMismatch, Track

from ..keys import ApiKey
from ..models import AuditRow, utc_now
from ..problems import Problem
from ..runtime import Runtime
from .deps import require
from .responses import BODY_ERRORS, ERRORS, WRITE_ERRORS

__all__ = [
    "BODY_ERRORS",
    "ERRORS",
    "ID_PATTERN",
    "MAX_SOURCE_CHARS",
    "TAGS",
    "WRITE_ERRORS",
    "Admin",
    "ChannelPath",
    "Id",
    "Reader",
    "Text200",
    "audit",
    "channel_or_404",
    "checked_source",
    "hide_tracks",
    "refused",
]

#: One OpenAPI tag for the whole catalog, as before it was split into routers.
TAGS = ["channels"]
Reader = require("matches:read")
Admin = require("admin")
Id = Annotated[int, Path(ge=1, le=2**62)]
ChannelPath = Annotated[str, Path(min_length=1, max_length=64, description="Channel id.")]

#: A channel id (and a simulcast group, which is named like a channel): the catalog's rule.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
#: Longest feed URL or asset source accepted, in characters.
MAX_SOURCE_CHARS = 4096

Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def checked_source(value: str, what: str) -> str:
    """``value`` if it passes the catalog's source rule (http(s) URL with a host, or an
    absolute path), else a pydantic ``ValueError``, so the 422 names the field; messages
    show the URL redacted."""
    try:
        return check_source(value, what)
    except CatalogError as exc:
        raise ValueError(str(exc)) from None


def refused(exc: CatalogError) -> Problem:
    """A catalog refusal as the HTTP error it is (see the module docstring)."""
    message = str(exc)
    if message.startswith("no "):
        return Problem(404, message.split(";")[0])  # drop the CLI hint ("add it with ...")
    if "already exists" in message:
        return Problem(409, message)
    return Problem(422, message)


def channel_or_404(rt: Runtime, channel_id: str) -> None:
    """Raise a 404 problem unless the catalog holds ``channel_id``."""
    if rt.catalog.get(channel_id) is None:
        raise Problem(404, f"no channel {channel_id!r}")


def audit(rt: Runtime, key: ApiKey, action: str, target: str, data: dict) -> None:
    """Append the decision to the audit log (never with an unredacted URL in ``data``)."""
    with rt.db.session() as s:
        s.add(
            AuditRow(
                at=utc_now(),
                actor=key.id,
                action=action,
                target=target[:80],
                data={**data, "key_name": key.name},
            )
        )


def hide_tracks(rt: Runtime, wanted: Callable[[Track], bool]) -> int:
    """Hide the index tracks ``wanted`` selects from queries at once (their postings are
    dropped at the next compaction, as ``vigie channels remove`` does); returns how many."""

    def hide(index: Index) -> int:
        hidden = 0
        for modality in MODALITIES:
            store = index.store(modality)
            ids = [t.id for t in store.tracks().values() if wanted(t)]
            if ids:
                store.remove_tracks(ids)
            hidden += len(ids)
        return hidden

    try:
        return rt.index.use(hide)
    except ParamsMismatch:
        return 0  # nothing of that index is searched anyway until it is rebuilt
