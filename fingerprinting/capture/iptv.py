"""IPTV channel lists fetched through the guarded client, parsed as they download.

A pirate panel's ``get.php?…&type=m3u_plus`` answers tens of megabytes for thousands of
channels; entries are yielded while the body streams, so memory holds one line at a time.
Each entry becomes one scan in the service.
"""

from __future__ import annotations

from collections.abc import Iterator

from .evidence import Evidence
from .http import Fetcher, GuardedClient
from .limits import ByteBudget, Deadline
from .options import StreamOptions, split_kodi_url
from .playlists import PlaylistEntry, iter_m3u_bytes

__all__ = ["MAX_PLAYLIST_BYTES", "read_channel_list"]

#: Largest channel list read (bytes): the biggest panels' lists are 20-50 MB.
MAX_PLAYLIST_BYTES = 50 * 1024 * 1024


def read_channel_list(
    url: str,
    *,
    client: GuardedClient,
    deadline_seconds: float = 120.0,
    max_bytes: int = MAX_PLAYLIST_BYTES,
    options: StreamOptions | None = None,
    evidence: Evidence | None = None,
) -> Iterator[PlaylistEntry]:
    """Yield the entries of the M3U channel list at ``url`` as it downloads.

    Raises :class:`~.errors.CaptureError` (``too_large`` past ``max_bytes``, ``timeout``
    past the deadline, and the network reasons) — possibly after some entries were
    yielded, so a caller that fans out scans knows the list was cut.
    """
    url, suffix = split_kodi_url(url)
    evidence = evidence or Evidence(requested_url=url)
    fetcher = Fetcher(
        client,
        deadline=Deadline(deadline_seconds),
        budget=ByteBudget(max_bytes),
        evidence=evidence,
        options=(options or StreamOptions()).merged(suffix),
    )
    with fetcher.open(url, what="channel list") as opened:
        yield from iter_m3u_bytes(opened.chunks)
