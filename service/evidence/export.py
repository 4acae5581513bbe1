"""A match's evidence as the API gives it: seal on first export, append reviews, zip.

The database is read in one short session (the match, its scan's verdict, its audit
entries); the files are then sealed, extended and zipped outside any transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import BinaryIO

from sqlalchemy import select

from ..db import Database
from ..models import AuditRow, MatchRow, ScanRow, utc
from ..settings import Settings
from .bundle import write_bundle
from .manifest import MatchFacts, SealedMatch, seal_match
from .reviews import KeyChanged, append_reviews, match_lock
from .signing import EvidenceKey, load_or_create_key

__all__ = ["evidence_key", "export_bundle", "record_reviews"]

log = logging.getLogger("vigie.evidence")


def evidence_key(settings: Settings) -> EvidenceKey:
    """The installation's signing key (made on first use)."""
    return load_or_create_key(settings.evidence_key_path)


def export_bundle(db: Database, settings: Settings, match_id: int, out: BinaryIO) -> SealedMatch:
    """Write match ``match_id``'s bundle to ``out``, sealing the match first if this is
    its first export and signing entries for reviews not yet in its chain.

    Raises ``LookupError`` for an unknown match and
    :class:`~service.evidence.manifest.EvidenceUnavailable` (saying why) when it has no
    bundle to give.
    """
    facts = _facts(db, match_id)
    if facts is None:
        raise LookupError(f"no match {match_id}")
    key = evidence_key(settings)
    with match_lock(settings, match_id):
        sealed = seal_match(settings, facts, key)
        _append(sealed, key, facts.review_log)
    write_bundle(sealed, out)
    return sealed


def record_reviews(db: Database, settings: Settings, match_id: int) -> int:
    """After a review was committed: sign its entry when the match is sealed (a match
    not exported yet gets its reviews in the review log it is sealed with). Returns the
    number of entries added.

    A failure here is logged, not raised: the review is recorded already, and the next
    export of the match signs every review its chain lacks.
    """
    try:
        if SealedMatch.load(settings, match_id) is None:
            return 0
        facts = _facts(db, match_id)
        if facts is None:
            return 0
        key = evidence_key(settings)
        with match_lock(settings, match_id):
            sealed = SealedMatch.load(settings, match_id)
            return _append(sealed, key, facts.review_log) if sealed is not None else 0
    except Exception:
        log.exception("the review's evidence entry was not written; the next export will")
        return 0


def _append(sealed: SealedMatch, key: EvidenceKey, audit: list[dict]) -> int:
    try:
        return append_reviews(sealed, key, audit)
    except KeyChanged as exc:
        log.warning("review entries not signed: %s", exc)
        return 0


def _facts(db: Database, match_id: int) -> MatchFacts | None:
    with db.session() as s:
        m = s.get(MatchRow, match_id)
        if m is None:
            return None
        scan = s.get(ScanRow, m.scan_id)
        audit = s.scalars(
            select(AuditRow).where(AuditRow.target == f"match:{m.id}").order_by(AuditRow.id)
        )
        return MatchFacts(
            match_id=m.id,
            scan_id=m.scan_id,
            channel_id=m.channel_id,
            verdict=m.verdict,
            scan_verdict=scan.verdict if scan is not None else None,
            match=_match_record(m),
            review_log=[_audit_record(a) for a in audit],
        )


def _iso(t: datetime | None) -> str | None:
    t = utc(t)
    return None if t is None else t.isoformat().replace("+00:00", "Z")


def _match_record(m: MatchRow) -> dict:
    """The match row as JSON (its URL is the masked one the row keeps in ``data``)."""
    return {
        "id": m.id,
        "scan_id": m.scan_id,
        "incident_id": m.incident_id,
        "channel_id": m.channel_id,
        "simulcast_group": m.simulcast_group,
        "owner": m.owner,
        "host": m.host,
        "verdict": m.verdict,
        "confidence": m.confidence,
        "reference": m.reference,
        "offset_seconds": m.offset_seconds,
        "delay_seconds": m.delay_seconds,
        "audio_score": m.audio_score,
        "video_score": m.video_score,
        "distributor_id": m.distributor_id,
        "data": m.data or {},
        "review_state": m.review_state,
        "created_at": _iso(m.created_at),
    }


def _audit_record(a: AuditRow) -> dict:
    return {
        "id": a.id,
        "at": _iso(a.at),
        "actor": a.actor,
        "action": a.action,
        "target": a.target,
        "note": a.note,
        "data": a.data or {},
    }
