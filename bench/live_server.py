"""The loopback server of :mod:`bench.live`: N live HLS channels of one looped programme."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

SOURCE_SECONDS = 60.0
WINDOW_SEGMENTS = 5


def serve(
    conn: object, stop: object, channels: int, segment_seconds: float, lockstep: bool
) -> None:
    """Child process: make the media, serve ``channels`` live channels, send back their URLs;
    when ``stop`` is set, send back what the server saw (requests, handler errors).

    Channels are started one after the other over one segment duration, so that they
    publish their segments at evenly spread moments, as independent channels do;
    ``lockstep`` starts them all at once (every feed gets its segment at the same instant:
    the worst burst)."""
    from tests.fingerprinting.capture.hls_media import LiveHls, make_source, segment
    from tests.fingerprinting.capture.servers import LoopbackServer

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = make_source(
            root / "broadcast.ts",
            SOURCE_SECONDS,
            seed=5,
            size=(640, 360),
            keyframe_seconds=2.0,
            preset="veryfast",
        )
        media = segment(source, root / "hls", segment_seconds, "mpegts")
        server = LoopbackServer()
        urls = []
        began = time.monotonic()
        for i in range(channels):
            if not lockstep:
                time.sleep(max(0.0, began + i * segment_seconds / channels - time.monotonic()))
            live = LiveHls(server, media, name=f"ch{i:03d}", window=WINDOW_SEGMENTS)
            urls.append(live.playlist_url)
        conn.send(
            {
                "urls": urls,
                "segments": len(media.segments),
                "segment_bytes_median": int(statistics.median(map(len, media.segments))),
                "segment_seconds": [round(d, 3) for d in media.durations],
            }
        )
        stop.wait()
        conn.send(
            {
                "requests": len(server.requests),
                "handler_errors": [repr(e) for e in server.errors[:20]],
                "handler_error_count": len(server.errors),
            }
        )
        server.close()
