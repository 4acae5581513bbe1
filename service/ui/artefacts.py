"""What a match page shows from the scan's stored artefacts (:mod:`service.evidence`):
the suspect frames beside the reference frames at the matched offsets, the alignment
plot, and the frame images themselves (served only through :func:`frame`, which checks
the session and resolves paths with :meth:`ScanArtefacts.path`, so no path escapes the
scan's folder).

Only the JPEG frames are served: the other artefacts (captured playlists and segments)
are the stream as received, tokens included, and are for the evidence bundle, not for a
browser.
"""

from __future__ import annotations

import mimetypes
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, Response

from ..evidence import ScanArtefacts
from ..settings import Settings
from .auth import CurrentSession, runtime
from .plot import alignment_svg
from .web import BASE, UiError

__all__ = ["FRAME_PREFIXES", "artefacts_view", "frame_url", "router"]

router = APIRouter(include_in_schema=False)
#: Artefact folders whose files the UI serves (frames only).
FRAME_PREFIXES = ("sample/frames/", "reference/")
#: A suspect frame pairs with a reference frame when their query times differ by at most
#: this many seconds.
PAIR_TOLERANCE_SECONDS = 1.0


def frame_url(scan_id: int, relpath: str) -> str:
    return f"{BASE}/scans/{scan_id}/frames/{relpath}"


def artefacts_view(settings: Settings, scan_id: int, channel_id: str, *, live: bool) -> dict | None:
    """Frame pairs (query seconds, reference seconds, both image URLs) and the plot of
    ``channel_id``'s match in scan ``scan_id``; ``None`` for a scan stored before
    artefacts were kept."""
    stored = ScanArtefacts.open(settings, scan_id)
    if stored is None:
        return None
    suspects = stored.suspect_frames()
    pairs = []
    for query_s, reference_s, relpath in stored.reference_frames(channel_id):
        nearest = min(suspects, key=lambda f: abs(f[0] - query_s), default=None)
        if nearest is not None and abs(nearest[0] - query_s) > PAIR_TOLERANCE_SECONDS:
            nearest = None
        pairs.append(
            {
                "query_seconds": query_s,
                "reference_seconds": reference_s,
                "reference": frame_url(scan_id, relpath),
                "suspect": frame_url(scan_id, nearest[1]) if nearest else None,
                "suspect_seconds": nearest[0] if nearest else None,
            }
        )
    return {
        "pairs": pairs,
        "suspects": [{"seconds": t, "url": frame_url(scan_id, rel)} for t, rel in suspects],
        "plot": alignment_svg(stored.alignment(channel_id), live=live),
    }


@router.get("/scans/{scan_id}/frames/{relpath:path}")
def frame(
    request: Request,
    scan_id: Annotated[int, Path(ge=1, le=2**62)],
    relpath: str,
    session: CurrentSession,
) -> Response:
    parts = relpath.split("/")
    if (
        not relpath.startswith(FRAME_PREFIXES)
        or not relpath.endswith(".jpg")
        or any(p in ("", ".", "..") for p in parts)
        or "\\" in relpath
    ):
        raise UiError(404, f"no frame {relpath!r} in scan {scan_id}")
    stored = ScanArtefacts.open(runtime(request).settings, scan_id)
    if stored is None:
        raise UiError(404, f"scan {scan_id} has no stored artefacts")
    try:
        path = stored.path(relpath)
    except KeyError:
        raise UiError(404, f"no frame {relpath!r} in scan {scan_id}") from None
    if not path.is_file():
        raise UiError(404, f"no frame {relpath!r} in scan {scan_id}")
    return FileResponse(
        path,
        media_type=mimetypes.types_map[".jpg"],
        headers={
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=3600",  # artefacts never change once written
        },
    )
