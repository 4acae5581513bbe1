"""From a scan's matches to the verdict a rights holder acts on.

=============  ==========================================================================
verdict        when
=============  ==========================================================================
confirmed      the best match is above ``confirm_confidence`` in two samples of the stream
               taken ``confirm_after_seconds`` apart, on the same simulcast group, and the
               two agree in time (same delay to live, or progress through a recording at
               the wall clock's pace). One sample can be a coincidence or a clip; a stream
               that keeps showing the channel at a steady delay is a restream.
suspected      a match above ``suspect_confidence`` that is not (yet) confirmed: the first
               of the two samples, a weaker match, or a second sample that disagreed.
authorized     the stream's host, address or ASN belongs to an authorized distributor of
               the matched channel's simulcast group, valid at the time of the scan.
no_match       nothing above ``suspect_confidence``.
unreachable    no sample could be captured (the capture's ``reason`` says why).
=============  ==========================================================================

Thresholds are calibrated confidences (1 - probability that an alignment this strong
arises by chance, measured on non-matching queries), so 0.999 means one chance alignment
in a thousand scans, whatever the index size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from reference_index.distributors import Distributor, authorized

from .detect import Match

__all__ = ["ChannelInfo", "Earlier", "MatchVerdict", "Verdict", "decide", "stream_addresses"]


@dataclass(frozen=True)
class ChannelInfo:
    """What the verdict needs to know of a matched channel."""

    group: str
    owner: str | None
    distributors: tuple[Distributor, ...]  # of every channel of the group


@dataclass(frozen=True)
class Earlier:
    """The first sample's best match, which a second sample may confirm.

    ``at``: UTC epoch seconds when that sample's media aired (or was captured).
    """

    group: str
    reference: str
    offset_seconds: float
    delay_seconds: float | None
    at: float


@dataclass(frozen=True)
class MatchVerdict:
    match: Match
    verdict: str
    group: str
    owner: str | None
    distributor: Distributor | None = None


@dataclass(frozen=True)
class Verdict:
    """A scan's verdict.

    ``lead``: the match the verdict is about (``None`` for no_match); ``matches``: every
    match worth recording, best first; ``confirm``: schedule a second sample; ``note``:
    why a second sample did not confirm (``None`` otherwise).
    """

    verdict: str
    matches: tuple[MatchVerdict, ...]
    lead: MatchVerdict | None
    confirm: bool = False
    note: str | None = None


def stream_addresses(evidence: Mapping | None) -> list[str]:
    """Every address the capture connected to or resolved (from its evidence record)."""
    found: list[str] = []
    for hop in (evidence or {}).get("hops", []):
        found += [_bare(a) for a in [hop.get("address"), *hop.get("resolved", [])] if a]
    return list(dict.fromkeys(found))


def _bare(address: str) -> str:
    """``"192.0.2.1:80"`` / ``"[2001:db8::1]:443"`` / ``"2001:db8::1"`` -> the IP alone."""
    if address.startswith("["):
        return address[1 : address.index("]")]
    if address.count(":") == 1:
        return address.split(":", 1)[0]
    return address


def consistent(lead: Match, group: str, at: float, earlier: Earlier, tolerance: float) -> bool:
    """Does the second sample (``lead``, aired at ``at``) show the same restream?"""
    if group != earlier.group or lead.reference != earlier.reference:
        return False
    if lead.reference == "live":
        if lead.delay_seconds is None or earlier.delay_seconds is None:
            return abs((lead.offset_seconds - earlier.offset_seconds) - (at - earlier.at)) <= (
                tolerance
            )
        return abs(lead.delay_seconds - earlier.delay_seconds) <= tolerance
    progress = (at - earlier.at) * lead.speed
    return abs((lead.offset_seconds - earlier.offset_seconds) - progress) <= tolerance


def decide(
    matches: Iterable[Match],
    channels: Mapping[str, ChannelInfo],
    *,
    host: str | None,
    addresses: Iterable[str],
    when: datetime,
    at: float,
    confirm_confidence: float,
    suspect_confidence: float,
    earlier: Earlier | None = None,
    tolerance_seconds: float = 10.0,
) -> Verdict:
    """The verdict of one sample.

    Parameters
    ----------
    matches : iterable of Match
        The scan's matches, most confident first (:func:`service.detect.fuse`).
    channels : mapping
        :class:`ChannelInfo` by channel id, for every matched channel.
    host, addresses
        The stream URL's host and the addresses the capture reached (authorization).
    when : datetime
        Time of the scan (distributors' validity).
    at : float
        UTC epoch seconds when the sample's media aired (or was captured).
    earlier : Earlier or None
        For a second sample: the first sample's best match. ``None``: a first sample.
    """
    addresses = list(addresses)
    kept: list[MatchVerdict] = []
    for m in matches:
        if m.confidence < suspect_confidence or m.channel_id not in channels:
            continue
        info = channels[m.channel_id]
        licensee = authorized(info.distributors, host=host, addresses=addresses, when=when)
        verdict = "authorized" if licensee else "suspected"
        kept.append(MatchVerdict(m, verdict, info.group, info.owner, licensee))
    if not kept:
        return Verdict("no_match", (), None)
    lead = kept[0]
    if lead.verdict == "authorized":
        return Verdict("authorized", tuple(kept), lead)
    strong = lead.match.confidence >= confirm_confidence
    if earlier is None:
        return Verdict("suspected", tuple(kept), lead, confirm=strong)
    if strong and consistent(lead.match, lead.group, at, earlier, tolerance_seconds):
        confirmed = MatchVerdict(lead.match, "confirmed", lead.group, lead.owner)
        return Verdict("confirmed", (confirmed, *kept[1:]), confirmed)
    why = (
        "the second sample's match is below the confirmation threshold"
        if not strong
        else "the second sample does not agree with the first in channel or timing"
    )
    return Verdict("suspected", tuple(kept), lead, note=why)
