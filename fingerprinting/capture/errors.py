"""Why a capture failed, in a form a machine can branch on and a person can read."""

from __future__ import annotations

__all__ = ["REASONS", "CaptureError"]

#: Every ``CaptureError.reason``, with what it means.
REASONS: dict[str, str] = {
    "unreachable": "the server could not be reached, or closed the connection mid-response",
    "dns": "the host name does not resolve",
    "refused_address": "the URL leads to an address we never contact (internal, loopback…)",
    "http_status": "the server answered with an error status",
    "timeout": "the sample's wall-clock deadline passed",
    "stalled": "a live stream stopped advancing",
    "too_large": "a response or the sample went over its byte cap",
    "redirect_loop": "redirects or playlists loop, or go on for too many hops",
    "not_media": "the server sent something that is not audio or video",
    "no_audio_no_video": "the stream decodes but has none of the media asked for",
    "decrypt_failed": "an encrypted segment could not be decrypted",
    "unsupported_scheme": "the URL scheme is not one we capture",
}


class CaptureError(Exception):
    """A capture that could not produce a usable sample.

    Attributes
    ----------
    reason : str
        One of :data:`REASONS` (stable: the service and bots branch on it).
    message : str
        One line for a person, naming the URL (redacted) and what went wrong.
    evidence : object or None
        What was seen until the failure (an ``Evidence`` record), for the report.
    """

    def __init__(self, reason: str, message: str, evidence: object | None = None) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown capture failure reason {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.evidence = evidence

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"

    def __reduce__(self) -> tuple:
        # Captures run in other processes (service.capture_process): the error crosses back
        # pickled, and Exception's own reduce would rebuild it from the message alone.
        return (type(self), (self.reason, self.message, self.evidence))
