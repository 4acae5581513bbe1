"""The jobs: run a scan, expand a playlist into scans, deliver a webhook.

A scan job claims its row (``queued`` -> ``sampling``, or a ``sampling``/``matching`` row
whose worker's lease ran out), captures, matches, and records the verdict, its matches
and its webhook messages in one transaction fenced by the attempt number: a worker that
lost its lease (it was presumed dead, another took over) cannot write a second result.
Messages are sent after that transaction commits; the sweeper re-sends any the process
did not live to send.

Leases are kept by :mod:`service.leases`; lost work is re-sent by :mod:`service.sweeper`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import timedelta

from sqlalchemy import or_, select, update

from fingerprinting.capture import CaptureError, CapturePlan, read_channel_list, redact_url

from . import webhooks
from .detect import ScanResult, sample_airing
from .evidence import StagedArtefacts, fingerprint_params, scan_record, stage_scan
from .incidents import raise_incident, record_matches
from .leases import LeaseKeeper, lease_seconds
from .logs import scan_id as scan_id_var
from .models import (
    DeliveryAttemptRow,
    DeliveryRow,
    IncidentRow,
    MatchRow,
    ScanGroupRow,
    ScanRow,
    utc,
    utc_now,
)
from .reindex_job import register_reindex
from .runtime import Runtime
from .scans import matches_of, new_scan, scan_dict
from .verdict import ChannelInfo, Earlier, Verdict, decide, stream_addresses

__all__ = ["MAX_SCAN_ATTEMPTS", "register", "run_scan"]

log = logging.getLogger("vigie.jobs")
#: A scan whose job died this many times is failed, not retried again (a stream that
#: crashes workers must not take the fleet down in a loop).
MAX_SCAN_ATTEMPTS = 3


def register(rt: Runtime) -> None:
    """Declare the jobs on the runtime's queue."""
    rt.queue.declare("scan", lambda scan_id: run_scan(rt, scan_id))
    rt.queue.declare("expand", lambda group_id: expand_group(rt, group_id))
    rt.queue.declare("deliver", lambda delivery_id: deliver(rt, delivery_id), time_limit_seconds=60)
    register_reindex(rt)


# --- scans ---------------------------------------------------------------------------


def claim(rt: Runtime, scan_id: int) -> ScanRow | None:
    """Take the scan for this worker; ``None`` when it is done, held, or not due yet."""
    now = utc_now()
    with rt.db.session() as s:
        row = s.get(ScanRow, scan_id)
        if row is None or row.status in ("done", "failed"):
            return None
        due = utc(row.not_before)
        if due is not None and due > now:
            rt.queue.send("scan", scan_id, delay_seconds=(due - now).total_seconds())
            return None
        if row.attempts >= MAX_SCAN_ATTEMPTS:
            row.status, row.message = "failed", f"gave up after {row.attempts} attempts"
            row.updated_at = row.finished_at = now
            return None
        taken = s.execute(
            update(ScanRow)
            .where(
                ScanRow.id == scan_id,
                ScanRow.attempts == row.attempts,
                or_(
                    ScanRow.status == "queued",
                    ScanRow.lease_until.is_(None),
                    ScanRow.lease_until < now,
                ),
            )
            .values(
                status="sampling",
                attempts=row.attempts + 1,
                lease_until=now + timedelta(seconds=lease_seconds(rt)),
                started_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken != 1:
            return None
        s.expire(row)
        s.refresh(row)
        return row


def _set_status(rt: Runtime, row: ScanRow, status: str) -> bool:
    with rt.db.session() as s:
        return (
            s.execute(
                update(ScanRow)
                .where(ScanRow.id == row.id, ScanRow.attempts == row.attempts)
                .values(status=status, updated_at=utc_now())
            ).rowcount
            == 1
        )


def run_scan(rt: Runtime, scan_id: int) -> None:
    """The scan job (idempotent: a duplicate or late message finds nothing to do)."""
    token = scan_id_var.set(scan_id)
    try:
        row = claim(rt, scan_id)
        if row is None:
            return
        log.info("scan claimed", extra={"attempt": row.attempts, "pid": os.getpid()})
        with LeaseKeeper(rt, row):
            try:
                _scan(rt, row)
            except Exception as exc:  # a bug or a broken index: fail the scan, keep the worker
                log.exception("scan failed")
                _fail(rt, row, f"{type(exc).__name__}: {exc}"[:500])
    finally:
        scan_id_var.reset(token)


def _fail(rt: Runtime, row: ScanRow, message: str) -> None:
    with rt.db.session() as s:
        s.execute(
            update(ScanRow)
            .where(ScanRow.id == row.id, ScanRow.attempts == row.attempts)
            .values(status="failed", message=message, updated_at=utc_now(), finished_at=utc_now())
        )


def _scan(rt: Runtime, row: ScanRow) -> None:
    settings = rt.settings
    modalities = row.modalities.split(",")
    pa, pv = rt.index.use(lambda ix: (ix.audio_params, ix.video_params))
    plan = CapturePlan(
        seconds=row.seconds,
        sample_rate=pa.sample_rate if "audio" in modalities else None,
        fps=pv.query_fps if "video" in modalities else None,
        frame_width=pv.frame_width,
        deadline_seconds=settings.capture_deadline_seconds,
        egress_note=settings.egress_note,
        keep_bytes=settings.evidence_max_bytes,
    )
    params = fingerprint_params(pa, pv)
    started = time.perf_counter()
    try:
        got = rt.capturer.sample(row.url, plan)
    except CaptureError as exc:
        rt.metrics.sample.observe(time.perf_counter() - started)
        evidence = exc.evidence.public() if exc.evidence is not None else None
        record = scan_record(None, "unreachable", reason=exc.reason, message=exc.message)
        staged = stage_scan(
            settings, row.id, row.attempts, evidence=exc.evidence, record=record, params=params
        )
        _finish(
            rt,
            row,
            None,
            Verdict("unreachable", (), None),
            evidence=evidence,
            sealed=exc.evidence.sealed() if exc.evidence is not None else None,
            reason=exc.reason,
            message=exc.message,
            sample_seconds=time.perf_counter() - started,
            artefacts=staged,
        )
        return
    sampled = time.perf_counter() - started
    rt.metrics.sample.observe(sampled)
    if not _set_status(rt, row, "matching"):
        return  # another worker took the scan over
    matched_from = time.perf_counter()
    aired, basis = sample_airing(got)
    shown = redact_url(got.evidence.requested_url)
    result: ScanResult = rt.matcher.match(
        got.pcm,
        got.frames,
        settings.suspect_confidence,
        shown,
        matched_from,
        aired=aired,
        basis=basis,
    )
    match_seconds = time.perf_counter() - matched_from
    rt.metrics.match.observe(match_seconds)
    channels = _channel_infos(rt, [m.channel_id for m in result.matches])
    earlier = _earlier(rt, row.confirms) if row.confirms else None
    verdict = decide(
        result.matches,
        channels,
        host=row.host,
        addresses=stream_addresses(got.evidence.public()),
        when=got.started_utc,
        at=aired,
        confirm_confidence=settings.match_confidence,
        suspect_confidence=settings.suspect_confidence,
        earlier=earlier,
        tolerance_seconds=settings.confirm_tolerance_seconds,
    )
    data = result.as_dict()
    data["sample"]["aired_utc"] = aired
    staged = stage_scan(
        settings,
        row.id,
        row.attempts,
        evidence=got.evidence,
        record=scan_record(data, verdict.verdict, note=verdict.note),
        params=params,
        sample=got,
        matches=result.matches,
        thumbnails=lambda c, q: rt.index.use(lambda ix: ix.thumbnails(c, q)),
        keep_media=bool(result.matches),
    )
    _finish(
        rt,
        row,
        data,
        verdict,
        evidence=got.evidence.public(),
        sealed=got.evidence.sealed(),
        sample_seconds=sampled,
        match_seconds=match_seconds,
        aired=aired,
        artefacts=staged,
    )


def _channel_infos(rt: Runtime, channel_ids: list[str]) -> dict[str, ChannelInfo]:
    infos = {}
    for ch in dict.fromkeys(channel_ids):
        channel = rt.catalog.get(ch)
        if channel is None:  # removed from the catalog since it was indexed
            continue
        group = rt.catalog.group_of(ch)
        members = [c.id for c in rt.catalog.group_members(group)] or [ch]
        distributors = tuple(d for member in members for d in rt.catalog.distributors(member))
        infos[ch] = ChannelInfo(group, channel.owner, distributors)
    return infos


def _earlier(rt: Runtime, first_id: int) -> Earlier | None:
    with rt.db.session() as s:
        first = s.get(ScanRow, first_id)
        if first is None or not first.channel_id or not first.result:
            return None
        lead = first.result["matches"][0]
        group = s.scalars(
            select(MatchRow.simulcast_group).where(
                MatchRow.scan_id == first_id, MatchRow.channel_id == first.channel_id
            )
        ).first()
        return Earlier(
            group=group or first.channel_id,
            reference=lead["reference"],
            offset_seconds=lead["offset_seconds"],
            delay_seconds=lead["delay_seconds"],
            at=first.result["sample"]["aired_utc"],
        )


def _finish(
    rt: Runtime,
    row: ScanRow,
    data: dict | None,
    verdict: Verdict,
    *,
    evidence: dict | None,
    sealed: dict | None,
    sample_seconds: float,
    match_seconds: float | None = None,
    reason: str | None = None,
    message: str | None = None,
    aired: float | None = None,
    artefacts: StagedArtefacts | None = None,
) -> None:
    """Record the verdict, its matches and incidents, the second sample and the webhook
    messages in one transaction (fenced by the attempt); then send what it queued. The
    scan's staged ``artefacts`` are published inside that transaction once the fence
    held, so a scan marked done has them (see :mod:`service.evidence.writer`)."""
    settings = rt.settings
    now = utc_now()
    lead = verdict.lead
    follow_up: ScanRow | None = None
    deliveries: list[int] = []
    with rt.db.session() as s:
        fenced = s.execute(
            update(ScanRow)
            .where(
                ScanRow.id == row.id,
                ScanRow.attempts == row.attempts,
                ScanRow.status.in_(("sampling", "matching")),
            )
            .values(
                status="done",
                verdict=verdict.verdict,
                reason=reason,
                message=message or verdict.note,
                channel_id=lead.match.channel_id if lead else None,
                confidence=lead.match.confidence if lead else None,
                delay_seconds=lead.match.delay_seconds if lead else None,
                result=data,
                evidence=evidence,
                evidence_sealed=sealed,
                sample_seconds=sample_seconds,
                match_seconds=match_seconds,
                updated_at=now,
                finished_at=now,
                lease_until=None,
            )
        ).rowcount
        if fenced != 1:
            log.warning("scan was taken over by another worker; result dropped")
            if artefacts is not None:
                artefacts.discard()
            return
        if artefacts is not None:
            artefacts.publish()
        record_matches(s, row.id, row.host, redact_url(row.url), verdict.matches, now)
        if verdict.confirm and settings.confirm_after_seconds >= 0:
            due = now + timedelta(seconds=settings.confirm_after_seconds)
            follow_up = new_scan(
                row.url,
                seconds=row.seconds,
                modalities=row.modalities.split(","),
                callback_url=None,
                labels=row.labels,
                key_id=row.key_id,
                confirms=row.id,
                not_before=due,
            )
            s.add(follow_up)
            s.flush()
            s.execute(
                update(ScanRow)
                .where(ScanRow.id == row.id)
                .values(
                    confirmation={
                        "scan_id": follow_up.id,
                        "due_at": due.isoformat(),
                        "state": "pending",
                    }
                )
            )
        if row.confirms:
            deliveries += _settle_first(s, row.confirms, verdict)
        deliveries += _queue_delivery(s, row.id)
    if follow_up is not None:
        rt.queue.send("scan", follow_up.id, delay_seconds=settings.confirm_after_seconds)
    for delivery_id in deliveries:
        rt.queue.send("deliver", delivery_id)
    log.info(
        "scan done",
        extra={"verdict": verdict.verdict, "channel_id": lead.match.channel_id if lead else None},
    )


def _settle_first(s, first_id: int, second: Verdict) -> list[int]:  # noqa: ANN001
    """The second sample decided: confirm the first scan (its lead match and incident too)
    or leave it suspected, with the note."""
    first = s.get(ScanRow, first_id)
    if first is None or first.confirmation is None:
        return []
    confirmation = dict(first.confirmation)
    if second.verdict == "confirmed":
        confirmation["state"] = "confirmed"
        first.verdict = "confirmed"
        lead = s.scalars(
            select(MatchRow).where(
                MatchRow.scan_id == first_id, MatchRow.channel_id == first.channel_id
            )
        ).first()
        if lead is not None:
            lead.verdict = "confirmed"
            incident = s.get(IncidentRow, lead.incident_id, with_for_update=True)
            raise_incident(incident, "confirmed", lead.confidence)
    else:
        confirmation["state"] = "not_confirmed"
        confirmation["note"] = second.note or f"the second sample found {second.verdict}"
    first.confirmation = confirmation
    first.updated_at = utc_now()
    return _queue_delivery(s, first_id)


# --- webhooks --------------------------------------------------------------------------


def _queue_delivery(s, scan_id: int) -> list[int]:  # noqa: ANN001
    """A webhook message with the scan as it now stands, if it asked for one."""
    scan = s.get(ScanRow, scan_id)
    if scan is None or not scan.callback_url:
        return []
    s.flush()
    body = scan_dict(scan, matches_of(s, [scan_id])[scan_id], admin=False, full=False)
    payload = {"type": "scan.verdict", "timestamp": utc_now().isoformat(), "data": body}
    now = utc_now()
    row = DeliveryRow(
        scan_id=scan_id,
        url=scan.callback_url,
        event="scan.verdict",
        message_id=webhooks.new_message_id(),
        payload=json.dumps(payload, default=str, separators=(",", ":")),
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    s.add(row)
    s.flush()
    return [row.id]


def _secret_of(s, scan_id: int) -> str | None:  # noqa: ANN001
    from .models import ApiKeyRow

    scan = s.get(ScanRow, scan_id)
    key = s.get(ApiKeyRow, scan.key_id) if scan and scan.key_id else None
    return key.webhook_secret if key else None


def deliver(rt: Runtime, delivery_id: int) -> None:
    """One attempt of a webhook delivery; a retryable failure schedules the next one."""
    with rt.db.session() as s:
        row = s.get(DeliveryRow, delivery_id)
        if row is None or row.status != "pending":
            return
        due = utc(row.next_attempt_at)
        if due is not None and due > utc_now() + timedelta(seconds=1):
            return  # an early duplicate; the scheduled message will come
        attempt = row.attempts + 1
        claimed = s.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id == delivery_id, DeliveryRow.attempts == row.attempts)
            .values(
                attempts=attempt,
                updated_at=utc_now(),
                next_attempt_at=utc_now() + timedelta(seconds=60),
            )
        ).rowcount
        if claimed != 1:
            return
        secret = _secret_of(s, row.scan_id)
        url, body, message_id = row.url, row.payload.encode(), row.message_id
    if secret is None:
        result = webhooks.DeliveryResult(
            False, None, "the submitting key no longer exists", 0.0, "", False
        )
    else:
        headers = webhooks.signed_headers(secret, message_id, body)
        with rt.client_factory() as client:
            result = webhooks.deliver(client, url, body, headers)
    retry_in = None
    with rt.db.session() as s:
        s.add(
            DeliveryAttemptRow(
                delivery_id=delivery_id,
                attempt=attempt,
                at=utc_now(),
                status_code=result.status_code,
                error=result.error,
                elapsed_seconds=result.elapsed_seconds,
            )
        )
        row = s.get(DeliveryRow, delivery_id)
        row.updated_at = utc_now()
        if result.ok:
            row.status, row.next_attempt_at = "delivered", None
        elif result.retryable and attempt < webhooks.MAX_ATTEMPTS:
            retry_in = webhooks.backoff_seconds(attempt, rt.settings.webhook_backoff_seconds)
            row.next_attempt_at = utc_now() + timedelta(seconds=retry_in)
        else:
            row.status, row.next_attempt_at = "failed", None
    if retry_in is not None:
        rt.queue.send("deliver", delivery_id, delay_seconds=retry_in)


# --- playlists -------------------------------------------------------------------------


def expand_group(rt: Runtime, group_id: int) -> None:
    """Fan a playlist out into one scan per entry (resumable: entries already turned into
    scans are skipped by their index, so a crash mid-way never duplicates one)."""
    with rt.db.session() as s:
        group = s.get(ScanGroupRow, group_id)
        if group is None or group.status != "expanding":
            return
        url, request, key_id = group.playlist_url, dict(group.request), group.key_id
        have = set(s.scalars(select(ScanRow.entry_index).where(ScanRow.group_id == group_id)))
    cap = rt.settings.max_playlist_entries
    created: list[int] = []
    status, reason, message, truncated, n = "ready", None, None, False, 0
    try:
        with rt.client_factory() as client:
            batch: list[ScanRow] = []
            for n, entry in enumerate(read_channel_list(url, client=client), start=1):
                if n > cap:
                    truncated, n = True, cap
                    break
                if n - 1 in have:
                    continue
                try:
                    from .schemas import check_stream_url

                    check_stream_url(entry.url)
                except ValueError:
                    continue
                batch.append(
                    new_scan(
                        entry.url,
                        seconds=request["seconds"],
                        modalities=request["modalities"],
                        callback_url=request.get("callback_url"),
                        labels=request.get("labels"),
                        key_id=key_id,
                        group_id=group_id,
                        entry_index=n - 1,
                        entry_name=(entry.name or None) and entry.name[:300],
                    )
                )
                if len(batch) >= 200:
                    created += _add_scans(rt, batch)
                    batch = []
            created += _add_scans(rt, batch)
    except CaptureError as exc:
        status, reason, message = ("failed" if not n else "ready"), exc.reason, exc.message
        truncated = bool(n)
    with rt.db.session() as s:
        group = s.get(ScanGroupRow, group_id)
        group.status, group.reason, group.message = status, reason, message
        group.truncated = truncated
        group.entries = s.query(ScanRow).filter(ScanRow.group_id == group_id).count()
        group.updated_at = utc_now()
    for scan_id in created:
        rt.queue.send("scan", scan_id)


def _add_scans(rt: Runtime, rows: list[ScanRow]) -> list[int]:
    if not rows:
        return []
    with rt.db.session() as s:
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


# --- the sweeper -----------------------------------------------------------------------
