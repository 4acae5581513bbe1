"""The re-indexing job: fingerprint a channel's recordings into the index, in the background.

``POST /v1/channels/{id}/reindex`` stores a :class:`~service.models.JobRow` (``queued``)
and sends ``reindex(job_id)``; the row is the source of truth, the message only says "look
at job N" (see :mod:`service.queue`). The job

* claims the row with one conditional UPDATE (``queued`` -> ``running``, or a ``running``
  row whose lease ran out: its worker is presumed dead), so a duplicate message does
  nothing. The claim's ``started_at`` is the fence: every later write names it, so a worker
  that lost its lease (another re-claimed the job) can no longer write, and stops;
* keeps the lease alive from a heartbeat thread (a single recording of many hours can take
  longer to fingerprint than any fixed lease), so only a dead process loses it;
* runs :func:`reference_index.batch.reindex` on its own :class:`Index` (not the runtime's
  shared one, whose lock would stall every scan for the length of the job), writing
  ``progress`` after each recording. ``batch.reindex`` stages each recording durably and
  publishes them all at the end, so a re-claimed job resumes where the dead one stopped
  and queries never see a half-indexed channel;
* ends ``done`` (recordings that fail to decode are counted in ``progress.failed`` and
  listed in ``progress.failures``, but skipped), or ``failed`` with ``error`` when nothing
  could be indexed, the channel is gone, or the job broke.

Visibility: the job publishes into the current generation of the index; it never swaps
generations. The runtime's :class:`~service.runtime.IndexHolder` keeps its :class:`Index`
open, and that is enough: every read of an embedded store (``tracks()``, ``lookup()``)
first reloads the store's manifest when its file changed on disk (new inode after the
atomic rename), so the next scan sees the new postings without reopening anything.

Nothing re-sends a lost message on its own: :func:`sweep_reindex` does, and the service's
sweeper (and start-up) should call it, as it does for scans.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from fingerprinting.capture import redact_url
from fingerprinting.capture.redact import redact_text, url_secrets
from reference_index.batch import IndexedFile, expand_sources, reindex
from reference_index.index import Index

from .models import JobRow, utc_now
from .runtime import Runtime

__all__ = [
    "HEARTBEAT_SECONDS",
    "LEASE_SECONDS",
    "MAX_FAILURES_SHOWN",
    "TIME_LIMIT_SECONDS",
    "claim_reindex",
    "empty_progress",
    "public_source",
    "register_reindex",
    "run_reindex",
    "sweep_reindex",
]

log = logging.getLogger("vigie.jobs")

#: How long a claim holds a job without news from its worker, in seconds. Short, because
#: the heartbeat renews it: a crashed worker's job may be taken over five minutes later.
LEASE_SECONDS = 300.0
#: How often the heartbeat renews the lease, in seconds (well inside the lease, so a slow
#: database write or a GC pause never lets it lapse).
HEARTBEAT_SECONDS = 30.0
#: Longest a re-indexing job may run, in seconds (a day: hundreds of hours of recordings
#: on one core at ~50x real time). Past it the queue interrupts it and it is ``failed``;
#: submitting it again resumes it.
TIME_LIMIT_SECONDS = 86400.0
#: Failed recordings listed in ``progress.failures`` (all are counted in ``failed``).
MAX_FAILURES_SHOWN = 20
#: Longest ``error`` stored, in characters.
MAX_ERROR_CHARS = 1000


class LeaseLost(Exception):
    """Another worker re-claimed the job: this one must stop writing."""


class ChannelGone(Exception):
    """The channel was removed while its recordings were being indexed."""


def public_source(source: str) -> str:
    """A recording or feed as shown to keys without ``admin``: URLs with their credentials
    masked; local paths as they are (they hold no secret, and :func:`redact_url` would take
    a ``/a/b/c.ts`` path for an Xtream ``/live/user/pass/1.ts`` one and mask it)."""
    return redact_url(source) if "://" in source else source


def empty_progress() -> dict:
    """Progress of a job that has not started: counts of recordings and seconds of media."""
    return {"files_total": 0, "files_done": 0, "seconds_done": 0.0, "failed": 0, "failures": []}


def register_reindex(rt: Runtime) -> None:
    """Declare the ``reindex`` job on the runtime's queue (before its workers start)."""
    rt.queue.declare(
        "reindex", lambda job_id: run_reindex(rt, job_id), time_limit_seconds=TIME_LIMIT_SECONDS
    )


def claim_reindex(rt: Runtime, job_id: int) -> datetime | None:
    """Take job ``job_id`` for this worker; returns the claim's fence (its ``started_at``),
    or ``None`` when the job is finished, held by a live worker, or not a reindex job."""
    now = utc_now()
    with rt.db.session() as s:
        taken = s.execute(
            update(JobRow)
            .where(
                JobRow.id == job_id,
                JobRow.kind == "reindex",
                or_(
                    JobRow.status == "queued",
                    and_(
                        JobRow.status == "running",
                        or_(JobRow.lease_until.is_(None), JobRow.lease_until < now),
                    ),
                ),
            )
            .values(
                status="running",
                started_at=now,
                lease_until=now + timedelta(seconds=LEASE_SECONDS),
                progress=empty_progress(),  # a resumed job re-reports what was staged before
                error=None,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
    return now if taken == 1 else None


def _write(rt: Runtime, job_id: int, fence: datetime, **values: object) -> bool:
    """Update the job if this worker still holds it (fenced by the claim's ``started_at``)."""
    with rt.db.session() as s:
        return (
            s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.started_at == fence)
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount
            == 1
        )


class _Heartbeat(threading.Thread):
    """Renews the lease every :data:`HEARTBEAT_SECONDS` until stopped or the claim is lost."""

    def __init__(self, rt: Runtime, job_id: int, fence: datetime) -> None:
        super().__init__(name=f"reindex-{job_id}-lease", daemon=True)
        self.rt, self.job_id, self.fence = rt, job_id, fence
        self.done = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        while not self.done.wait(HEARTBEAT_SECONDS):
            try:
                until = utc_now() + timedelta(seconds=LEASE_SECONDS)
                if not _write(self.rt, self.job_id, self.fence, lease_until=until):
                    self.lost.set()
                    return
            except Exception:  # a database hiccup: the lease has minutes to spare
                log.warning("job %s: could not renew its lease", self.job_id, exc_info=True)

    def stop(self) -> None:
        self.done.set()


def run_reindex(rt: Runtime, job_id: int) -> None:
    """The ``reindex`` job (idempotent: a duplicate or late message finds nothing to do)."""
    fence = claim_reindex(rt, job_id)
    if fence is None:
        return
    with rt.db.session() as s:
        row = s.get(JobRow, job_id)
        channel_id, params = row.channel_id, dict(row.params or {})
    sources = [str(x) for x in params.get("sources", [])]
    heartbeat = _Heartbeat(rt, job_id, fence)
    heartbeat.start()
    try:
        status, error, progress = _run(rt, job_id, fence, channel_id, sources, params, heartbeat)
    except LeaseLost:
        log.warning("job %s: another worker took it over; stopping", job_id)
        return
    except Exception as exc:  # a bug, a broken index: fail the job, keep the worker
        log.exception("job %s failed", job_id)
        status, error, progress = "failed", _scrub(f"{type(exc).__name__}: {exc}", sources), None
    except BaseException as exc:
        # The queue's time limit (or shutdown) interrupted the job. Left ``running``, it
        # would be re-claimed forever; failed, it can be resubmitted and resumes.
        if not isinstance(exc, KeyboardInterrupt | SystemExit):
            _write(
                rt,
                job_id,
                fence,
                status="failed",
                lease_until=None,
                finished_at=utc_now(),
                error=f"interrupted: {type(exc).__name__}",
            )
        raise
    finally:
        heartbeat.stop()
    values: dict = {"status": status, "error": error, "finished_at": utc_now(), "lease_until": None}
    if progress is not None:
        values["progress"] = progress
    _write(rt, job_id, fence, **values)


def _scrub(text: str, sources: list[str]) -> str:
    """``text`` without the credentials of any source URL, cut to :data:`MAX_ERROR_CHARS`."""
    secrets = [s for src in sources if "://" in src for s in url_secrets(src)]
    return redact_text(text, secrets)[:MAX_ERROR_CHARS]


def _run(
    rt: Runtime,
    job_id: int,
    fence: datetime,
    channel_id: str | None,
    sources: list[str],
    params: dict,
    heartbeat: _Heartbeat,
) -> tuple[str, str | None, dict | None]:
    """Index the recordings; returns ``(status, error, progress)``."""
    if channel_id is None or rt.catalog.get(channel_id) is None:
        return "failed", f"no channel {channel_id!r} (removed after the job was submitted?)", None
    files = expand_sources(sources)
    if not files:
        return "failed", _scrub("no media files found in " + ", ".join(sources), sources), None
    progress = {**empty_progress(), "files_total": len(files)}
    if not _write(rt, job_id, fence, progress=progress):
        raise LeaseLost

    def on_done(done: IndexedFile) -> None:
        progress["files_done"] += 1
        if done.tracks:
            progress["seconds_done"] = round(progress["seconds_done"] + done.seconds, 3)
        else:
            progress["failed"] += 1
            if len(progress["failures"]) < MAX_FAILURES_SHOWN:
                why = done.error or "no audio or video in it"
                progress["failures"].append(
                    {"source": public_source(done.source), "error": _scrub(why, [done.source])}
                )
        if heartbeat.lost.is_set() or not _write(
            rt, job_id, fence, progress={**progress, "failures": list(progress["failures"])}
        ):
            raise LeaseLost  # stops batch.reindex; what it staged stays for the new holder
        if rt.catalog.get(channel_id) is None:
            raise ChannelGone  # before publishing: its postings would belong to no channel

    jobs = max(1, min(int(params.get("jobs", 1)), 8))
    index = Index(rt.settings.index_dir)
    try:
        results = reindex(index, channel_id, files, jobs=jobs, on_done=on_done)
    except ChannelGone:
        return "failed", f"channel {channel_id!r} was removed while indexing", progress
    if not any(r.tracks for r in results):
        first = next((f["error"] for f in progress["failures"]), "no recording")
        return "failed", f"none of the {len(files)} recordings could be indexed: {first}", progress
    return "done", None, progress


def sweep_reindex(rt: Runtime, *, send: Callable[[int], None] | None = None) -> int:
    """Re-send the messages of re-indexing jobs that no live worker holds: ``queued`` for
    more than ``requeue_seconds`` (the message was lost, e.g. an in-process
    broker that restarted) or ``running`` past their lease (the worker died; the job
    resumes). Call it at start-up and periodically; returns how many were re-sent."""
    now = utc_now()
    stale = now - timedelta(seconds=rt.settings.requeue_seconds)
    with rt.db.session() as s:
        ids = list(
            s.scalars(
                select(JobRow.id).where(
                    JobRow.kind == "reindex",
                    or_(
                        and_(JobRow.status == "queued", JobRow.created_at < stale),
                        and_(JobRow.status == "running", JobRow.lease_until < now),
                    ),
                )
            )
        )
    for job_id in ids:
        (send or (lambda i: rt.queue.send("reindex", i)))(job_id)
    return len(ids)
