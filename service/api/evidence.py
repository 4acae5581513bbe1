"""``/v1/matches/{id}/evidence.zip`` and ``/v1/evidence/public-key``: signed evidence.

A match's bundle holds its scan's artefacts (capture record, playlists and media as
received, the sample's sound and frames, reference frames, alignment, result), the match
record and review log, a manifest listing each with its SHA-256, the manifest's detached
Ed25519 signature, the public key, and a signed entry for each later review (see
:mod:`service.evidence`). The manifest is made at the first export and never changes, so
every download carries the same signed bytes. ``vigie evidence verify`` checks a bundle
offline; the public key published here lets a third party check that the key inside the
bundle is this installation's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Path
from fastapi.responses import Response, StreamingResponse

from ..evidence import EvidenceUnavailable, evidence_key, export_bundle
from ..problems import Problem
from .deps import RuntimeDep, require
from .responses import AUTH_ERRORS, ERRORS, problem

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["evidence"])
Reader = require("matches:read")
Id = Annotated[int, Path(ge=1, le=2**62)]
ZIP = "application/zip"
PEM = "application/x-pem-file"
#: Bundles larger than this are spooled to disk while being assembled, bytes.
_SPOOL_BYTES = 8 << 20
_CHUNK = 1 << 20


@router.get(
    "/matches/{match_id}/evidence.zip",
    summary="The match's signed evidence bundle (zip)",
    response_class=Response,
    responses={
        200: {
            "description": "The bundle: `manifest.json`, `manifest.sig`, `public_key.pem`, "
            "the artefacts the manifest lists, and `reviews/NNNN.json|sig`.",
            "content": {ZIP: {"schema": {"type": "string", "format": "binary"}}},
            "headers": {
                "Content-Disposition": {
                    "description": "`attachment; filename=vigie-match-<id>-evidence.zip`.",
                    "schema": {"type": "string"},
                }
            },
        },
        **ERRORS,
        409: problem(409, "The match's scan has no stored artefacts (why is in `detail`)."),
    },
)
def evidence_zip(match_id: Id, rt: RuntimeDep, key: Reader) -> Response:
    # closed by _chunks once streamed (or below when there is nothing to stream)
    out = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
    try:
        export_bundle(rt.db, rt.settings, match_id, out)
    except LookupError:
        out.close()
        raise Problem(404, f"no match {match_id}") from None
    except EvidenceUnavailable as exc:
        out.close()
        raise Problem(409, str(exc)) from None
    except BaseException:
        out.close()
        raise
    size = out.tell()
    out.seek(0)
    return StreamingResponse(
        _chunks(out),
        media_type=ZIP,
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f"attachment; filename=vigie-match-{match_id}-evidence.zip",
            "Cache-Control": "private, no-store",
        },
    )


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    with f:
        yield from iter(lambda: f.read(_CHUNK), b"")


@router.get(
    "/evidence/public-key",
    summary="The public key that signs evidence bundles (PEM)",
    response_class=Response,
    responses={
        200: {
            "description": "Ed25519 SubjectPublicKeyInfo PEM; its SHA-256 (of the DER form) "
            "is the `signing_key.public_key_sha256` of every manifest this Vigie signs.",
            "content": {PEM: {"schema": {"type": "string"}}},
        },
        **AUTH_ERRORS,
    },
)
def public_key(rt: RuntimeDep, key: Reader) -> Response:
    signing = evidence_key(rt.settings)
    return Response(
        signing.public_pem,
        media_type=PEM,
        headers={"X-Key-SHA256": signing.public_sha256},
    )
