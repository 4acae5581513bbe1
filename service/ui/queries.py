"""The incidents queue: filters, order and keyset paging of the incidents page.

Order: the *new confirmed* incidents first (verdict ``confirmed``, not reviewed yet: what
an analyst must act on), then every other incident; within each section the most
recently seen first. Pages are keyset-paged (the cursor is the last row's section,
``last_seen`` and id), so page 200 costs what page 1 costs: each section is one index
range (``ix_incidents_verdict_review_last_seen`` for the first, ``ix_incidents_last_seen``
for the rest) read up to the page size, never an OFFSET over the rows before it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, and_, func, not_, or_, select
from sqlalchemy.orm import Session

from ..models import REVIEW_STATES, VERDICTS, IncidentRow, utc
from .web import UiError

__all__ = ["STALE_CURSOR", "IncidentFilters", "incident_page", "is_new"]

#: What a page says of a cursor it did not hand out (edited, or from an older version).
STALE_CURSOR = "cursor: not one this page gave out (start from the first page)"

#: Rows a page may ask for.
LIMITS = (10, 25, 50, 100, 200)
_NEW = and_(IncidentRow.verdict == "confirmed", IncidentRow.review_state == "unreviewed")


def is_new(row: IncidentRow) -> bool:
    """A confirmed incident no analyst has reviewed yet (the top section)."""
    return row.verdict == "confirmed" and row.review_state == "unreviewed"


def _text(name: str, value: str | None, longest: int) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    if len(value) > longest:
        raise UiError(422, f"{name}: at most {longest} characters")
    return value


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    if value not in allowed:
        raise UiError(422, f"{name}: must be one of {', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class IncidentFilters:
    """What the incidents page was asked to show (each ``None``: any)."""

    channel_id: str | None = None
    host: str | None = None
    owner: str | None = None
    verdict: str | None = None
    review_state: str | None = None
    limit: int = 50
    applied: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(
        cls,
        *,
        channel_id: str | None,
        host: str | None,
        owner: str | None,
        verdict: str | None,
        review_state: str | None,
        limit: str | None,
    ) -> IncidentFilters:
        """Filters from query parameters; :class:`UiError` 422 naming a bad one."""
        if limit in (None, ""):
            rows = 50
        elif limit.isdigit() and int(limit) in LIMITS:
            rows = int(limit)
        else:
            raise UiError(422, f"limit: must be one of {', '.join(map(str, LIMITS))}")
        host_value = _text("host", host, 255)
        values = {
            "channel_id": _text("channel_id", channel_id, 64),
            "host": host_value.lower() if host_value else None,
            "owner": _text("owner", owner, 200),
            "verdict": _choice("verdict", verdict, VERDICTS),
            "review_state": _choice("review_state", review_state, REVIEW_STATES),
        }
        applied = {k: v for k, v in values.items() if v is not None}
        if rows != 50:
            applied["limit"] = str(rows)
        return cls(**values, limit=rows, applied=applied)

    def query(self) -> Select:
        q = select(IncidentRow)
        for column, value in (
            (IncidentRow.channel_id, self.channel_id),
            (IncidentRow.host, self.host),
            (IncidentRow.owner, self.owner),
            (IncidentRow.verdict, self.verdict),
            (IncidentRow.review_state, self.review_state),
        ):
            if value is not None:
                q = q.where(column == value)
        return q


def _encode(section: int, last_seen: datetime, row_id: int) -> str:
    raw = json.dumps({"s": section, "t": utc(last_seen).isoformat(), "i": row_id})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> tuple[int, datetime | None, int | None]:
    if not cursor:
        return 1, None, None
    try:
        if len(cursor) > 200:
            raise ValueError
        data = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
        section, row_id = data["s"], data["i"]
        last_seen = utc(datetime.fromisoformat(data["t"]))
        if section not in (0, 1) or not isinstance(row_id, int) or isinstance(row_id, bool):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise UiError(422, STALE_CURSOR) from None
    return section, last_seen, row_id


def incident_page(
    s: Session, filters: IncidentFilters, cursor: str | None
) -> tuple[list[IncidentRow], str | None, int]:
    """One page of incidents in queue order, the cursor of the next page (``None`` on the
    last) and how many incidents match the filters in all."""
    base = filters.query()
    start_section, last_seen, last_id = _decode(cursor)
    rows: list[IncidentRow] = []
    for section in (1, 0):
        if section > start_section:
            continue
        q = base.where(_NEW if section else not_(_NEW))
        if section == start_section and last_seen is not None:
            q = q.where(
                or_(
                    IncidentRow.last_seen < last_seen,
                    and_(IncidentRow.last_seen == last_seen, IncidentRow.id < last_id),
                )
            )
        wanted = filters.limit + 1 - len(rows)
        rows += s.scalars(
            q.order_by(IncidentRow.last_seen.desc(), IncidentRow.id.desc()).limit(wanted)
        )
        if len(rows) > filters.limit:
            break
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    total = s.scalar(select(func.count()).select_from(base.subquery())) or 0
    if not (more and rows):
        return rows, None, total
    last = rows[-1]
    return rows, _encode(int(is_new(last)), last.last_seen, last.id), total
