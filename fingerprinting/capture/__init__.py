"""Safe capture of suspect streams: guarded HTTP, HLS, IPTV channel lists, evidence.

``sample(url, plan) -> Sample`` is the entry point; everything a capture requests passes
the network policy (:mod:`.netguard`), the capture's deadline and byte caps
(:mod:`.limits`), and is recorded in its :class:`Evidence`.
"""

from .errors import REASONS, CaptureError
from .evidence import ByteRange, Evidence, Hop, PlaylistSnapshot
from .follow import LiveChunk, follow
from .hls import HlsLimits
from .http import DEFAULT_USER_AGENT, Fetcher, GuardedClient
from .iptv import MAX_PLAYLIST_BYTES, read_channel_list
from .limits import ByteBudget, Deadline, HostLimiter
from .netguard import BLOCKED_NETWORKS, NetworkPolicy, check_scheme, system_resolver
from .options import StreamOptions, split_kodi_url
from .playlists import PlaylistEntry, PlaylistError, iter_m3u, iter_m3u_bytes, looks_like_hls
from .redact import Redactor, redact_url
from .sample import CapturePlan, Sample, sample
from .shared_limits import SharedHostLimiter
from .timing import live_edge_start

__all__ = [
    "BLOCKED_NETWORKS",
    "DEFAULT_USER_AGENT",
    "MAX_PLAYLIST_BYTES",
    "REASONS",
    "ByteBudget",
    "ByteRange",
    "CaptureError",
    "CapturePlan",
    "Deadline",
    "Evidence",
    "Fetcher",
    "GuardedClient",
    "HlsLimits",
    "Hop",
    "LiveChunk",
    "HostLimiter",
    "NetworkPolicy",
    "PlaylistEntry",
    "PlaylistError",
    "PlaylistSnapshot",
    "Redactor",
    "Sample",
    "SharedHostLimiter",
    "StreamOptions",
    "check_scheme",
    "follow",
    "iter_m3u",
    "iter_m3u_bytes",
    "live_edge_start",
    "looks_like_hls",
    "read_channel_list",
    "redact_url",
    "sample",
    "split_kodi_url",
    "system_resolver",
]
