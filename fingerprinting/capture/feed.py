"""Bytes from the network to the decoder: a file object PyAV reads, fed piece by piece.

The decoder pulls: a piece is fetched only when the decoder wants more bytes, so capture
stops downloading the moment the sample is long enough. A capture failure (deadline,
stall, lost connection) ends the current run as an end of file instead of an exception
inside FFmpeg's read callback; the decoder then flushes what it has, and the sampler
decides whether that is enough (see :attr:`PieceFeed.error`).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

from .errors import CaptureError
from .hls import Piece

__all__ = ["PieceFeed"]


class PieceFeed(io.RawIOBase):
    """A non-seekable binary stream over :class:`~.hls.Piece` objects, in runs.

    A piece flagged ``new_run`` ends the current run (reads return end of file) and opens
    the next one, started by :meth:`next_run`: the decoder is restarted there, as players
    do at an HLS discontinuity.
    """

    def __init__(self, pieces: Iterator[Piece], cancel: threading.Event | None = None) -> None:
        super().__init__()
        self._pieces = pieces
        self._cancel = cancel
        self._buf = memoryview(b"")
        self._pending: Piece | None = None
        self.error: CaptureError | None = None
        self.run_seconds = 0.0
        self.run_bytes = 0
        self.total_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:
        while not self._buf:
            if not self._advance():
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def _advance(self) -> bool:
        if self._pending is not None and self.run_bytes == 0:
            piece, self._pending = self._pending, None
        elif self._pending is not None or self.error is not None:
            return False
        elif self._cancel is not None and self._cancel.is_set():
            return False  # the other half of the capture failed: this half stops too
        else:
            try:
                piece = next(self._pieces)
            except StopIteration:
                return False
            except CaptureError as exc:
                self.error = exc
                return False
            except Exception as exc:  # a bug or a library surprise on hostile input
                self.error = CaptureError(
                    "not_media", f"unexpected failure reading the stream ({exc!r})"
                )
                return False
            if piece.new_run and self.run_bytes:
                self._pending = piece
                return False
        self._buf = memoryview(piece.data)
        self.run_bytes += len(piece.data)
        self.total_bytes += len(piece.data)
        self.run_seconds += piece.seconds
        return True

    def reader(self) -> io.BufferedReader:
        """A buffered reader for one run (what the decoder opens). Closing it, as PyAV and
        the garbage collector do, leaves the feed open for the next run."""
        return io.BufferedReader(_RunView(self), buffer_size=64 * 1024)

    def next_run(self) -> bool:
        """Open the next run; ``False`` when the source has nothing more."""
        if self._pending is None:
            return False
        self.run_seconds = 0.0
        self.run_bytes = 0
        return True

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()  # stop a live playlist loop that is still waiting for segments
        super().close()


class _RunView(io.RawIOBase):
    """Reads through to a :class:`PieceFeed`; closing the view does not close the feed."""

    def __init__(self, feed: PieceFeed) -> None:
        super().__init__()
        self._feed = feed

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:
        return self._feed.readinto(b)
