"""When did a live sample's media air at its source? Bounds from the playlist snapshots.

A restream's delay to the channel is the difference between when the suspect aired a
moment of programme and when the channel did. The suspect's ``PROGRAM-DATE-TIME`` cannot
be trusted for that (restreamers pass the channel's own through, or stamp their clock), and
the capture's start is later than the sample's media by however far behind the live edge
the capture joined. What the capture does know: each live playlist snapshot was received at
a UTC instant, and every segment it lists was complete by then (live segments are
published once whole). So the sample's first segment began airing at most

    received - (durations of that segment and of every later one the snapshot lists)

and the tightest bound, over all the reloads a capture makes, is within one reload
interval of the truth when some reload caught a segment just published. A capture that
found its whole sample already published made no such reload, so :func:`probe_live_edge`
polls the playlist after the sample, briefly, until the next segment appears.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from .errors import CaptureError
from .evidence import Evidence
from .hls import HlsLimits, media_playlist
from .http import Fetcher
from .m3u8 import MediaPlaylist, parse_playlist

__all__ = ["EDGE_POLL_SECONDS", "live_edge_start", "probe_live_edge"]

#: Interval of the edge probe's reloads (s), bounded by a tenth of the target duration:
#: the precision of the airing time, at 5 requests per second at most, for one target
#: duration at most.
EDGE_POLL_SECONDS = (0.2, 0.5)


def probe_live_edge(fetcher: Fetcher, url: str, limits: HlsLimits) -> None:
    """Reload the live media playlist ``url`` until a segment newer than the last one
    seen appears (at most a target duration and a half, within the capture's deadline), so
    that a snapshot is taken right after a publication. Best effort: failures and a
    deadline too close end it silently; a finished (VOD) playlist is not polled."""
    seen = [p for p in fetcher.evidence.playlists if p.url == url and not p.truncated]
    if not seen:
        return
    try:
        last = parse_playlist(seen[-1].text, url)
    except CaptureError:
        return
    if not isinstance(last, MediaPlaylist) or last.endlist or not last.segments:
        return
    newest = last.segments[-1].sequence
    lo, hi = EDGE_POLL_SECONDS
    every = min(hi, max(lo, last.target_duration / 10))
    until = time.monotonic() + 1.5 * last.target_duration
    try:
        while time.monotonic() < until and fetcher.deadline.remaining() > 2 * every:
            fetcher.deadline.sleep(every, f"live playlist {url}")
            playlist = media_playlist(fetcher, url, limits)
            if playlist.endlist or (playlist.segments and playlist.segments[-1].sequence > newest):
                return
    except CaptureError:
        return


def live_edge_start(evidence: Evidence) -> datetime | None:
    """Latest UTC at which the capture's first segment can have begun airing (see the
    module docstring), or ``None`` when the capture was not of a live HLS playlist."""
    first = next((r for r in evidence.ranges if r.role == "segment"), None)
    if first is None or first.media_sequence is None:
        return None
    best: datetime | None = None
    for snap in evidence.playlists:
        if snap.truncated:
            continue
        try:
            playlist = parse_playlist(snap.text, snap.url)
        except CaptureError:
            continue
        if not isinstance(playlist, MediaPlaylist) or playlist.endlist:
            continue
        listed = [i for i, s in enumerate(playlist.segments) if s.uri == first.url]
        if not listed or playlist.segments[listed[0]].sequence != first.media_sequence:
            continue
        after = sum(s.duration for s in playlist.segments[listed[0] :])
        bound = datetime.fromisoformat(snap.fetched_utc.replace("Z", "+00:00"))
        bound -= timedelta(seconds=after)
        best = bound if best is None else min(best, bound)
    return best
