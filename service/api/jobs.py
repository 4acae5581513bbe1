"""``POST /v1/channels/{id}/reindex`` and ``/v1/jobs``: batch re-indexing jobs, which
fingerprint recordings into a channel in the background (:mod:`service.reindex_job`
runs them), and their progress.

Submitting the same recordings of the same channel while a job over them is unfinished
returns that job (200) instead of racing it with a second one.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path as FsPath
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.orm import Session

from fingerprinting.capture import CaptureError, redact_url
from fingerprinting.capture.netguard import resolve_checked
from reference_index.batch import expand_sources

from ..models import JOB_STATES, AuditRow, JobRow, utc, utc_now
from ..problems import Problem
from ..reindex_job import empty_progress, public_source
from ..runtime import Runtime
from ..scans import CursorError, page
from .catalog_common import (
    BODY_ERRORS,
    ERRORS,
    MAX_SOURCE_CHARS,
    TAGS,
    Admin,
    ChannelPath,
    Id,
    Reader,
    channel_or_404,
    checked_source,
)
from .deps import RuntimeDep, SessionDep
from .responses import location

__all__ = ["JobOut", "JobPage", "ReindexIn", "job_dict", "router"]

router = APIRouter(prefix="/v1", tags=TAGS)
#: Most recordings one re-indexing request may name (folders count as one).
MAX_REINDEX_SOURCES = 1000
#: Most worker processes one re-indexing job may use (each takes a core).
MAX_REINDEX_JOBS = 8


#: One recording of a re-indexing request, checked item by item so a 422 names
#: ``sources[i]``.
SourceItem = Annotated[
    str,
    StringConstraints(max_length=MAX_SOURCE_CHARS),
    AfterValidator(lambda value: checked_source(value, "source")),
]


class ReindexIn(BaseModel):
    """Recordings to fingerprint into the channel. Re-indexing a recording replaces its
    earlier postings (never duplicates); the job is resumable, so the same request after
    a crash continues where it stopped."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"sources": ["/srv/recordings/tf1/2026-12-01/", "/srv/vod/tf1/jt.mp4"], "jobs": 4}
            ]
        },
    )

    sources: list[SourceItem] = Field(
        min_length=1,
        max_length=MAX_REINDEX_SOURCES,
        description="Absolute paths of files or folders on the server (folders: their media "
        "files, recursively), or http(s) URLs.",
    )
    jobs: int = Field(
        1,
        ge=1,
        le=MAX_REINDEX_JOBS,
        strict=True,
        description="Worker processes (one core each) for decoding and fingerprinting.",
    )


class ReindexParams(BaseModel):
    sources: list[str] = Field(description="As submitted; credentials masked unless admin.")
    jobs: int


class JobFailure(BaseModel):
    source: str = Field(description="The recording, credentials masked.")
    error: str


class JobProgress(BaseModel):
    files_total: int = Field(description="Recordings to index (folders expanded); 0 until run.")
    files_done: int = Field(description="Recordings finished, indexed or failed.")
    seconds_done: float = Field(description="Seconds of media indexed so far.")
    failed: int = Field(description="Recordings that could not be indexed (skipped).")
    failures: list[JobFailure] = Field(description="The first of those, with their errors.")


class JobOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "kind": "reindex",
                    "channel_id": "tf1-hd",
                    "status": "running",
                    "params": {"sources": ["/srv/recordings/tf1/"], "jobs": 4},
                    "progress": {
                        "files_total": 24,
                        "files_done": 9,
                        "seconds_done": 32400.0,
                        "failed": 0,
                        "failures": [],
                    },
                    "error": None,
                    "created_at": "2026-12-01T10:00:00Z",
                    "started_at": "2026-12-01T10:00:01Z",
                    "finished_at": None,
                }
            ]
        }
    )

    id: int
    kind: Literal["reindex"]
    channel_id: str | None
    status: Literal[JOB_STATES]  # type: ignore[valid-type]
    params: ReindexParams
    progress: JobProgress
    error: str | None = Field(description="Why the job failed.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(BaseModel):
    """A page of jobs, newest first; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[JobOut]
    next_cursor: str | None


def job_dict(row: JobRow, *, admin: bool) -> dict:
    """A job as the API shows it: sources redacted unless ``admin``, progress complete."""
    params = dict(row.params or {})
    sources = [str(s) for s in params.get("sources", [])]
    return {
        "id": row.id,
        "kind": row.kind,
        "channel_id": row.channel_id,
        "status": row.status,
        "params": {
            "sources": sources if admin else [public_source(s) for s in sources],
            "jobs": int(params.get("jobs", 1)),
        },
        "progress": {**empty_progress(), **(row.progress or {})},
        "error": row.error,
        "created_at": utc(row.created_at),
        "started_at": utc(row.started_at),
        "finished_at": utc(row.finished_at),
    }


def _check_sources(rt: Runtime, sources: list[str]) -> None:
    """Refuse, naming the entry, a local path that does not exist (or a folder without
    media), and a URL whose host the capture policy blocks. The job decodes URLs with
    FFmpeg directly, so this resolve-time check is the only address check they get."""
    for i, src in enumerate(sources):
        field = f"sources[{i}]"
        if "://" in src:
            parts = urlsplit(src)
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
            shown = redact_url(src)
            try:
                resolve_checked(parts.hostname or "", port, rt.policy, url=shown)
            except CaptureError as exc:
                raise Problem(422, f"{field}: {exc.message}", field=field) from None
            continue
        path = FsPath(src)
        if not path.exists():
            raise Problem(
                422, f"{field}: no such file or folder {src!r} on the server", field=field
            )
        if path.is_dir() and not expand_sources([src]):
            raise Problem(422, f"{field}: folder {src!r} holds no media files", field=field)


def _running_twin(s: Session, channel_id: str, sources: list[str]) -> JobRow | None:
    """An unfinished job over the same recordings of the same channel: it is the same
    batch job (same job file), so running both at once would race."""
    rows = s.scalars(
        select(JobRow).where(
            JobRow.kind == "reindex",
            JobRow.channel_id == channel_id,
            JobRow.status.in_(("queued", "running")),
        )
    )
    wanted = sorted(sources)
    return next((r for r in rows if sorted(r.params.get("sources", [])) == wanted), None)


@router.post(
    "/channels/{channel_id}/reindex",
    status_code=202,
    response_model=JobOut,
    summary="Fingerprint recordings into a channel (a background job)",
    responses={
        **ERRORS,
        **BODY_ERRORS,
        200: {
            **location("The same recordings are already being indexed: that job."),
            "model": JobOut,
        },
        202: location("Accepted; `Location` points at the job."),
    },
)
def submit_reindex(
    channel_id: ChannelPath, body: ReindexIn, rt: RuntimeDep, key: Admin, response: Response
) -> dict:
    channel_or_404(rt, channel_id)
    _check_sources(rt, body.sources)
    with rt.db.session() as s:
        twin = _running_twin(s, channel_id, body.sources)
        if twin is not None:
            response.status_code = 200
            response.headers["Location"] = f"/v1/jobs/{twin.id}"
            return job_dict(twin, admin=True)
        row = JobRow(
            kind="reindex",
            channel_id=channel_id,
            status="queued",
            params={"sources": list(body.sources), "jobs": body.jobs},
            progress=empty_progress(),
            key_id=key.id,
            created_at=utc_now(),
        )
        s.add(row)
        s.flush()
        out = job_dict(row, admin=True)
        s.add(
            AuditRow(
                at=utc_now(),
                actor=key.id,
                action="reindex.submit",
                target=f"channel:{channel_id}"[:80],
                data={
                    "job_id": row.id,
                    "sources": [public_source(x) for x in body.sources],
                    "jobs": body.jobs,
                    "key_name": key.name,
                },
            )
        )
    rt.queue.send("reindex", out["id"])  # after the commit: the worker must find the row
    response.headers["Location"] = f"/v1/jobs/{out['id']}"
    return out


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="A batch job and its progress",
    responses=ERRORS,
)
def get_job(job_id: Id, s: SessionDep, key: Reader) -> dict:
    row = s.get(JobRow, job_id)
    if row is None or row.kind != "reindex":
        raise Problem(404, f"no job {job_id}")
    return job_dict(row, admin=key.allows("admin"))


@router.get(
    "/jobs", response_model=JobPage, summary="List batch jobs, newest first", responses=ERRORS
)
def list_jobs(
    s: SessionDep,
    key: Reader,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(JOB_STATES) + ")$")] = None,
    channel_id: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict:
    q = select(JobRow).where(JobRow.kind == "reindex")
    if status is not None:
        q = q.where(JobRow.status == status)
    if channel_id is not None:
        q = q.where(JobRow.channel_id == channel_id)
    try:
        rows, next_cursor = page(s, q, JobRow.id, cursor, limit)
    except CursorError as exc:
        raise Problem(422, f"cursor: {exc}") from None
    admin = key.allows("admin")
    return {"items": [job_dict(r, admin=admin) for r in rows], "next_cursor": next_cursor}
