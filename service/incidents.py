"""Recording a scan's matches: one match row per (scan, channel), grouped into incidents.

An incident is one pirate stream of one channel: every detection of a channel on a stream
host, with first and last seen. Analysts then see one row per pirate stream, however many
times bots rescan it. Verdicts only rise within an incident (authorized < suspected <
confirmed): a later weak sample does not undo a confirmation.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import IncidentRow, MatchRow
from .verdict import MatchVerdict

__all__ = ["RANK", "raise_incident", "record_matches"]

#: Order of verdicts within an incident.
RANK = {"authorized": 1, "suspected": 2, "confirmed": 3}


def _incident(s: Session, host: str, mv: MatchVerdict, when: datetime) -> IncidentRow:
    """The incident of (host, channel), created if new. Insert-or-ignore, then read, so two
    workers recording the same new pirate at once end with one incident."""
    values = {
        "host": host,
        "channel_id": mv.match.channel_id,
        "simulcast_group": mv.group,
        "owner": mv.owner,
        "verdict": mv.verdict,
        "confidence": mv.match.confidence,
        "first_seen": when,
        "last_seen": when,
        "matches": 0,
        "review_state": "unreviewed",
    }
    dialect = s.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    s.execute(insert(IncidentRow).values(**values).on_conflict_do_nothing())
    # Locked until the transaction ends (PostgreSQL; SQLite has one writer at a time anyway):
    # two workers folding matches into one incident must not lose each other's counts.
    return s.scalars(
        select(IncidentRow)
        .where(IncidentRow.host == host, IncidentRow.channel_id == mv.match.channel_id)
        .with_for_update()
    ).one()


def raise_incident(incident: IncidentRow, verdict: str, confidence: float) -> None:
    if RANK.get(verdict, 0) > RANK.get(incident.verdict, 0):
        incident.verdict = verdict
    incident.confidence = max(incident.confidence, confidence)


def record_matches(
    s: Session, scan_id: int, host: str, url: str, found: tuple[MatchVerdict, ...], when: datetime
) -> list[MatchRow]:
    """Add a match row per matched channel and fold it into its incident."""
    rows = []
    # Lock the incidents in one order (by channel) whatever the order of the matches, so
    # that two transactions recording the same channels cannot deadlock.
    incidents = {
        mv.match.channel_id: _incident(s, host, mv, when)
        for mv in sorted(found, key=lambda mv: mv.match.channel_id)
    }
    for mv in found:
        m = mv.match
        incident = incidents[m.channel_id]
        data = m.as_dict()
        data["url"] = url
        row = MatchRow(
            scan_id=scan_id,
            incident_id=incident.id,
            channel_id=m.channel_id,
            simulcast_group=mv.group,
            owner=mv.owner,
            host=host,
            verdict=mv.verdict,
            confidence=m.confidence,
            reference=m.reference,
            offset_seconds=m.offset_seconds,
            delay_seconds=m.delay_seconds,
            audio_score=m.audio.score if m.audio else None,
            video_score=m.video.score if m.video else None,
            distributor_id=mv.distributor.id if mv.distributor else None,
            data=data,
            review_state="unreviewed",
            created_at=when,
        )
        s.add(row)
        s.flush()
        incident.matches += 1
        incident.last_seen = when
        incident.last_match_id = row.id
        raise_incident(incident, mv.verdict, m.confidence)
        rows.append(row)
    return rows
