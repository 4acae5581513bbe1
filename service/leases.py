"""A worker's hold on a scan: leased for ``lease_seconds`` and renewed every third of that
while the job runs, so a worker killed mid-capture lets go of its scan within
``lease_seconds``; the next sweep (every ``sweep_seconds``, in every worker process, see
:mod:`service.sweeper`) re-sends it and another worker takes it over. Renewal stops after
the capture deadline plus :data:`LEASE_MARGIN_SECONDS`: a job wedged past that loses its
scan as a dead one would.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import update

from .models import ScanRow, utc_now
from .runtime import Runtime

__all__ = ["LEASE_MARGIN_SECONDS", "LeaseKeeper", "hold_seconds", "lease_seconds", "renew_lease"]

log = logging.getLogger("vigie.jobs")
#: Seconds a worker may go on renewing its lease beyond the capture deadline (matching and
#: recording the verdict) before its scan is presumed stuck and let go.
LEASE_MARGIN_SECONDS = 120.0


def lease_seconds(rt: Runtime) -> float:
    return rt.settings.lease_seconds


def hold_seconds(rt: Runtime) -> float:
    """Longest a worker may keep a scan by renewing its lease, in seconds."""
    return rt.settings.capture_deadline_seconds + LEASE_MARGIN_SECONDS


def renew_lease(rt: Runtime, scan_id: int, attempt: int, until: datetime) -> bool:
    """Extend attempt ``attempt``'s lease on the scan to ``until``; ``False`` once the scan
    is finished or was taken over (then there is nothing left to renew)."""
    with rt.db.session() as s:
        return (
            s.execute(
                update(ScanRow)
                .where(
                    ScanRow.id == scan_id,
                    ScanRow.attempts == attempt,
                    ScanRow.status.in_(("sampling", "matching")),
                )
                .values(lease_until=until)
            ).rowcount
            == 1
        )


class LeaseKeeper(threading.Thread):
    """Renews a claimed scan's lease every third of ``lease_seconds`` while the job runs
    (``with LeaseKeeper(rt, row): ...``), never past claim + :func:`hold_seconds`."""

    def __init__(self, rt: Runtime, row: ScanRow) -> None:
        super().__init__(name=f"vigie-lease-{row.id}", daemon=True)
        self.rt, self.scan_id, self.attempt = rt, row.id, row.attempts
        self.cap = utc_now() + timedelta(seconds=hold_seconds(rt))
        self.done = threading.Event()

    def __enter__(self) -> LeaseKeeper:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join()

    def run(self) -> None:
        lease = lease_seconds(self.rt)
        while not self.done.wait(lease / 3.0):
            now = utc_now()
            if now >= self.cap:
                return
            until = min(now + timedelta(seconds=lease), self.cap)
            try:
                if not renew_lease(self.rt, self.scan_id, self.attempt, until):
                    return
            except Exception:  # the database is away: retry next time, the lease may lapse
                log.warning("lease renewal failed", exc_info=True)
