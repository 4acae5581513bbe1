"""The sweeper: re-sends work whose message was lost or whose worker died. The database
rows say what is unfinished; messages only carry ids, so re-sending costs nothing when the
work turns out done."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import or_, select, update

from .models import DeliveryRow, ScanGroupRow, ScanRow, utc_now
from .reindex_job import sweep_reindex
from .runtime import Runtime

__all__ = ["Sweeper"]

log = logging.getLogger("vigie.jobs")


class Sweeper(threading.Thread):
    """Re-sends work whose message was lost: scans queued (and due) for a while, scans
    whose worker's lease expired, webhook deliveries past due, playlists still expanding.
    Runs once at start-up (what a killed process left) and then every ``every`` seconds
    (default: the ``sweep_seconds`` setting)."""

    def __init__(self, rt: Runtime, every: float | None = None) -> None:
        super().__init__(name="vigie-sweeper", daemon=True)
        self.rt = rt
        self.every = rt.settings.sweep_seconds if every is None else every

    def run(self) -> None:
        first = True
        while not self.rt.stopping.is_set():
            try:
                self.sweep(startup=first)
            except Exception:
                log.exception("sweep failed")
            first = False
            self.rt.stopping.wait(self.every)

    def sweep(self, *, startup: bool = False) -> dict[str, int]:
        now = utc_now()
        stale = now - timedelta(seconds=0 if startup else self.rt.settings.requeue_seconds)
        with self.rt.db.session() as s:
            if startup and self.rt.queue.in_process:
                # With the in-process broker no other process runs scans: whatever is in
                # flight at start-up was left by a process that died. Take it over now
                # rather than waiting out its lease.
                s.execute(
                    update(ScanRow)
                    .where(ScanRow.status.in_(("sampling", "matching")))
                    .values(lease_until=now - timedelta(seconds=1))
                )
            queued = list(
                s.scalars(
                    select(ScanRow.id).where(
                        ScanRow.status == "queued",
                        ScanRow.updated_at <= stale,
                        or_(ScanRow.not_before.is_(None), ScanRow.not_before <= now),
                    )
                )
            )
            orphaned = list(
                s.scalars(
                    select(ScanRow.id).where(
                        ScanRow.status.in_(("sampling", "matching")), ScanRow.lease_until < now
                    )
                )
            )
            if queued:
                s.execute(update(ScanRow).where(ScanRow.id.in_(queued)).values(updated_at=now))
            pending = list(
                s.scalars(
                    select(DeliveryRow.id).where(
                        DeliveryRow.status == "pending", DeliveryRow.next_attempt_at <= now
                    )
                )
            )
            expanding = list(
                s.scalars(
                    select(ScanGroupRow.id).where(
                        ScanGroupRow.status == "expanding", ScanGroupRow.updated_at <= stale
                    )
                )
            )
            if startup and self.rt.queue.in_process:
                # Scheduled second samples lost with the in-process broker. (Redis keeps
                # its delayed messages: re-sending them at every worker start would only
                # pile up copies.)
                later = list(
                    s.scalars(
                        select(ScanRow.id).where(
                            ScanRow.status == "queued", ScanRow.not_before > now
                        )
                    )
                )
            else:
                later = []
        for scan_id in queued + orphaned:
            self.rt.queue.send("scan", scan_id)
        for scan_id in later:
            self.rt.queue.send("scan", scan_id, delay_seconds=1.0)
        for delivery_id in pending:
            self.rt.queue.send("deliver", delivery_id)
        for group_id in expanding:
            self.rt.queue.send("expand", group_id)
        counts = {
            "reindex": sweep_reindex(self.rt),
            "queued": len(queued),
            "orphaned": len(orphaned),
            "deliveries": len(pending),
            "playlists": len(expanding),
        }
        if any(counts.values()):
            log.info("sweep re-sent work", extra=counts)
        return counts
