"""Outgoing webhooks signed per Standard Webhooks, delivered through the SSRF guard.

`Standard Webhooks <https://www.standardwebhooks.com/>`_ is an open specification (by
the Svix team, with reference libraries in a dozen languages) of how a sender signs a
webhook so any receiver can check it with a stock library instead of our own code:

* three headers: ``webhook-id`` (a message id that stays the same across retries, so the
  receiver can drop duplicates), ``webhook-timestamp`` (integer Unix seconds of this
  attempt, so a captured request cannot be replayed later) and ``webhook-signature``;
* the signed content is ``{id}.{timestamp}.{body}`` — the raw body bytes as sent, so a
  receiver must verify before parsing the JSON;
* the signature is HMAC-SHA256 with a shared secret, written ``v1,<base64>``; the header
  may carry several, space-separated, so a secret can be rotated without downtime (sign
  with the old and the new one for a while);
* the secret is shown to users as ``whsec_`` + base64 of at least 24 random bytes;
* a receiver accepts a timestamp within 5 minutes of its clock and compares signatures in
  constant time (a plain ``==`` leaks how many leading bytes matched).

Why this module is shaped as it is:

* It is implemented here with :mod:`hmac`, :mod:`hashlib` and :mod:`base64` (a few dozen
  lines) rather than by depending on the ``standardwebhooks`` package; the tests check the
  reference library's published test vector, which is what proves interoperability.
* Callback URLs come from bots, so they are as untrusted as the stream URLs we capture: a
  webhook to ``http://169.254.169.254/`` must not reach the cloud metadata service. Every
  delivery goes through the capture's :class:`~fingerprinting.capture.GuardedClient`
  (resolve once, refuse internal addresses unless allow-listed, connect to the checked
  address) with a total wall-clock deadline and a cap on the bytes read back.
* Redirects are never followed: the spec advises against it (the receiver should fix its
  URL), and re-sending a signed body to wherever a ``Location`` points would let anyone
  who controls a receiver's redirect bounce our POST elsewhere.
* :func:`deliver` makes one attempt and never raises for network trouble; it says whether
  a retry could help (:attr:`DeliveryResult.retryable`) and :func:`backoff_seconds` says
  when. Scheduling the retries (and the jitter the spec recommends) is the job queue's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from fingerprinting.capture import (
    ByteBudget,
    CaptureError,
    Deadline,
    Evidence,
    Fetcher,
    GuardedClient,
    StreamOptions,
    redact_url,
)

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "MAX_ATTEMPTS",
    "SECRET_PREFIX",
    "USER_AGENT",
    "DeliveryResult",
    "WebhookVerificationError",
    "backoff_seconds",
    "deliver",
    "new_message_id",
    "new_secret",
    "secret_bytes",
    "sign",
    "signed_headers",
    "verify",
]

#: How a symmetric (HMAC) secret is written for users, per the spec.
SECRET_PREFIX = "whsec_"
#: Random bytes in a new secret: the spec's minimum (192 bits), what Svix issues.
_SECRET_BYTES = 24
#: Accepted secret sizes in bytes: the spec asks for 192 to 512 bits.
_SECRET_MIN, _SECRET_MAX = 24, 64
#: Signature version of HMAC-SHA256 signatures (``v1a`` would be ed25519, not supported).
_VERSION = "v1"
#: Seconds a receiver accepts between the ``webhook-timestamp`` and its own clock.
DEFAULT_TOLERANCE_SECONDS = 300
#: The User-Agent of deliveries (the capture's player-like default would be a lie here).
USER_AGENT = "Vigie-Webhooks/1 (+https://www.standardwebhooks.com/)"

#: Attempts per message in all, the first one included (1 + 7 retries, as Svix makes).
MAX_ATTEMPTS = 8
#: Delay before retry n, in units of the first delay: Svix's schedule of 5 s, 5 min,
#: 30 min, 2 h, 5 h, 10 h, 10 h divided by 5 s.
_SCHEDULE = (1, 60, 360, 1440, 3600, 7200, 7200)

_DIGITS = re.compile(r"[0-9]{1,15}")  # a Unix time in seconds, ASCII digits only
#: Statuses worth retrying: a timeout, a rate limit, or trouble on the receiver's side.
_RETRYABLE_STATUS = {408, 429}
#: Capture failures worth retrying: the network may come back. A refused address or
#: scheme will not change by waiting, so it is a permanent failure.
_RETRYABLE_REASONS = {"unreachable", "dns", "timeout"}
#: Bytes a single read may bring beyond the response cap before reading stops.
_CHUNK_SLACK = 1 << 20


class WebhookVerificationError(ValueError):
    """A webhook that must be rejected; the message says which check failed."""


def new_secret() -> str:
    """A new signing secret, ``whsec_`` + base64 of 24 random bytes (one per endpoint).

    Returns
    -------
    str
        E.g. ``"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"``; show it to the endpoint's owner
        once and store it as a secret.
    """
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def secret_bytes(secret: str) -> bytes:
    """The HMAC key a secret stands for.

    Parameters
    ----------
    secret : str
        Standard base64, with or without the ``whsec_`` prefix (receivers are often
        handed the bare base64); missing ``=`` padding is tolerated.

    Returns
    -------
    bytes
        The decoded key, 24 to 64 bytes.

    Raises
    ------
    ValueError
        When the text is not base64 or decodes to fewer than 24 or more than 64 bytes
        (the spec's 192 to 512 bits). The message never repeats the secret.
    """
    if not isinstance(secret, str):
        raise ValueError(f"webhook secret must be a str, got {type(secret).__name__}")
    text = secret.strip()
    text = text.removeprefix(SECRET_PREFIX)
    if not text:
        raise ValueError("webhook secret is empty")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"webhook secret is not standard base64 (expected {SECRET_PREFIX!r} followed "
            "by base64 of random bytes)"
        ) from None
    if not _SECRET_MIN <= len(key) <= _SECRET_MAX:
        raise ValueError(
            f"webhook secret decodes to {len(key)} bytes; Standard Webhooks secrets are "
            f"{_SECRET_MIN} to {_SECRET_MAX} bytes"
        )
    return key


def _signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    """Raw HMAC-SHA256 of ``{id}.{timestamp}.{body}`` (the body as bytes, unchanged)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value of one message attempt.

    Parameters
    ----------
    secret : str
        The endpoint's secret (see :func:`secret_bytes`).
    msg_id : str
        The message id, the same on every retry. It may not contain ``.`` (nor spaces or
        control characters): the signed content is ``id.timestamp.body`` and a dot in the
        id would make two different messages sign the same bytes.
    timestamp : int
        Unix time of this attempt, in seconds.
    body : bytes
        The request body exactly as it will be sent.

    Returns
    -------
    str
        ``"v1,<base64 of the HMAC-SHA256>"``.
    """
    if not msg_id or "." in msg_id or not msg_id.isascii() or not msg_id.isprintable():
        raise ValueError(f"message id {msg_id!r}: must be printable ASCII without '.'")
    if " " in msg_id:
        raise ValueError(f"message id {msg_id!r}: must not contain spaces")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError(f"timestamp must be a non-negative int of Unix seconds, got {timestamp!r}")
    digest = _signature(secret_bytes(secret), msg_id, str(timestamp), bytes(body))
    return f"{_VERSION},{base64.b64encode(digest).decode('ascii')}"


def new_message_id() -> str:
    """A new message id: ``msg_`` + 128 random bits, URL-safe base64 (never a ``.``)."""
    return "msg_" + secrets.token_urlsafe(16)


def signed_headers(
    secret: str, msg_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The headers of one delivery attempt: the three ``webhook-*`` and the content type.

    Parameters
    ----------
    secret : str
        The endpoint's secret.
    msg_id : str
        The message id (keep it across retries: it is the receiver's idempotency key).
    body : bytes
        The JSON body exactly as it will be sent.
    timestamp : int or None
        Unix seconds of this attempt; ``None`` is now. Sign each retry afresh: a retry
        hours later with the first attempt's timestamp would be refused as a replay.

    Returns
    -------
    dict of str to str
        ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``, ``content-type``.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
        "content-type": "application/json",
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check a received webhook as a Standard Webhooks receiver does; raise if it fails.

    Parameters
    ----------
    secret : str
        The endpoint's secret.
    headers : mapping of str to str
        The request headers; names are matched case-insensitively.
    body : bytes
        The raw request body, before any JSON parsing.
    tolerance_seconds : int
        Largest accepted distance between ``webhook-timestamp`` and ``now``, in seconds,
        either way (5 minutes by default, as in the spec's libraries): bounds replays,
        and tolerates clock skew.
    now : float or None
        Unix time to judge the timestamp against; ``None`` is the clock (tests pin it).

    Raises
    ------
    WebhookVerificationError
        Naming the failed check: a missing header, a timestamp that is not an integer,
        too old or too new, or no ``v1`` signature matching (several space-separated
        ones are tried, for secret rotation; each is compared in constant time).
    ValueError
        When ``secret`` itself is malformed (a configuration error, not a bad webhook).
    """
    key = secret_bytes(secret)
    lower = {str(name).lower(): value for name, value in headers.items()}
    found = {}
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        value = lower.get(name)
        if not value or not str(value).strip():
            raise WebhookVerificationError(f"missing header {name}")
        found[name] = str(value).strip()
    msg_id, stamp, signatures = (
        found["webhook-id"],
        found["webhook-timestamp"],
        found["webhook-signature"],
    )
    if not _DIGITS.fullmatch(stamp):
        raise WebhookVerificationError(
            f"webhook-timestamp {stamp[:40]!r} is not an integer Unix time in seconds"
        )
    clock = time.time() if now is None else now
    age = clock - int(stamp)
    if age > tolerance_seconds:
        raise WebhookVerificationError(
            f"webhook-timestamp too old: {age:.0f} s before now, over the "
            f"{tolerance_seconds} s tolerance"
        )
    if -age > tolerance_seconds:
        raise WebhookVerificationError(
            f"webhook-timestamp too new: {-age:.0f} s ahead of now, over the "
            f"{tolerance_seconds} s tolerance"
        )
    expected = _signature(key, msg_id, stamp, bytes(body))
    checked = 0
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        if version != _VERSION:
            continue  # v1a (ed25519) or a future scheme: not ours to judge
        checked += 1
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, candidate):
            return
    raise WebhookVerificationError(
        f"no matching signature in webhook-signature ({checked} v1 signature(s) checked)"
    )


def backoff_seconds(attempt: int, base_seconds: float = 5.0) -> float:
    """Seconds to wait before retry number ``attempt`` of a failed delivery.

    The schedule is Svix's, which the Standard Webhooks spec cites as its example: 5 s,
    5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 27.5 hours in all), scaled so that the
    first delay is ``base_seconds``. It starts fast because most failures are a blip (a
    deploy, a dropped connection), then backs off steeply so a receiver that is down for
    hours is not hammered, and still delivers after an overnight outage. Together with
    the first attempt that is :data:`MAX_ATTEMPTS` attempts; the caller stops there (and
    should tell the endpoint's owner another way). Jitter, which the spec recommends so
    retries of many messages do not arrive in lockstep, is the scheduler's to add.

    Parameters
    ----------
    attempt : int
        1 for the first retry (the second attempt), up to ``MAX_ATTEMPTS - 1``. Larger
        numbers get the last, longest delay: the schedule is capped, not extrapolated.
    base_seconds : float
        The first delay, in seconds (5 s in production; tests use 0.05 s).

    Returns
    -------
    float
        The delay in seconds, non-decreasing in ``attempt``.

    Raises
    ------
    ValueError
        For ``attempt < 1`` (attempt 0 is the first delivery, sent at once) or a
        negative ``base_seconds``.
    """
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"retry attempt numbers start at 1, got {attempt!r}")
    if base_seconds < 0:
        raise ValueError(f"base_seconds must be >= 0, got {base_seconds}")
    return float(base_seconds * _SCHEDULE[min(attempt, len(_SCHEDULE)) - 1])


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one delivery attempt.

    Attributes
    ----------
    ok : bool
        The receiver answered 2xx (the spec's only success).
    status_code : int or None
        The HTTP status, or None when no answer came (refused, unreachable, timeout).
    error : str or None
        One line for the delivery log: ``"http 500"``, ``"redirect not followed: ..."``,
        or a capture failure as ``"<reason>: <message>"`` (``"refused_address: ..."``,
        ``"timeout: ..."``); None when ``ok``.
    elapsed_seconds : float
        Wall-clock seconds the attempt took, resolution included.
    response_excerpt : str
        The first 500 characters at most of the response body (UTF-8, undecodable bytes
        replaced), for the owner of the endpoint to debug with.
    retryable : bool
        Whether trying again later could succeed: network failures, timeouts, 408, 429
        and 5xx are; a 3xx (fix the URL) or another 4xx is not — the receiver has refused
        this request and resending the same bytes will not change its mind. A 410 Gone
        means the receiver unsubscribed: stop sending to that endpoint and disable it.
    """

    ok: bool
    status_code: int | None
    error: str | None
    elapsed_seconds: float
    response_excerpt: str
    retryable: bool


_EXCERPT_CHARS = 500


def _one_line(text: str) -> str:
    return " ".join(text.split())


def deliver(
    client: GuardedClient,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    deadline_seconds: float = 10.0,
    max_response_bytes: int = 65536,
) -> DeliveryResult:
    """POST one signed webhook to its callback URL through the SSRF guard; never raises
    for network trouble.

    Parameters
    ----------
    client : GuardedClient
        Its :class:`~fingerprinting.capture.NetworkPolicy` decides which addresses may be
        contacted (internal ones only if allow-listed).
    url : str
        The callback URL (http or https; anything else fails as ``unsupported_scheme``).
    body : bytes
        The body, exactly the bytes that were signed.
    headers : mapping of str to str
        Usually :func:`signed_headers`; hop-by-hop and framing headers (``Host``,
        ``Content-Length``...) are set by the client and dropped from here.
    deadline_seconds : float
        Total wall-clock budget in seconds for resolving, connecting, sending and reading
        the answer (read timeouts restart on every byte, so only a deadline bounds a
        receiver that drips). The spec suggests receivers get 15-30 s; 10 s keeps a
        worker from being held long by one slow endpoint.
    max_response_bytes : int
        Bytes of the response body read at most; the rest is not read.

    Returns
    -------
    DeliveryResult
        ``ok`` for 2xx. Redirects are not followed (a failure, not retryable).
    """
    started = time.monotonic()
    user_agent = next((v for k, v in headers.items() if k.lower() == "user-agent"), USER_AGENT)
    fetcher = Fetcher(
        client,
        deadline=Deadline(deadline_seconds),
        budget=ByteBudget(max_response_bytes + _CHUNK_SLACK),
        evidence=Evidence(requested_url=redact_url(url)),
        # StreamOptions drops header values with CR/LF and the headers the client sets.
        options=StreamOptions(user_agent=user_agent, headers=tuple(headers.items())),
    )

    def result(
        status: int | None, error: str | None, excerpt: str, retryable: bool
    ) -> DeliveryResult:
        return DeliveryResult(
            ok=error is None,
            status_code=status,
            error=None if error is None else _one_line(error),
            elapsed_seconds=round(time.monotonic() - started, 4),
            response_excerpt=excerpt,
            retryable=retryable,
        )

    try:
        answer = fetcher.post(url, bytes(body), max_bytes=max_response_bytes, what="webhook")
    except CaptureError as exc:
        return result(None, str(exc), "", exc.reason in _RETRYABLE_REASONS)
    code = answer.status
    excerpt = answer.body.decode("utf-8", "replace")[:_EXCERPT_CHARS]
    if 200 <= code < 300:
        return result(code, None, excerpt, False)
    if 300 <= code < 400:
        location = answer.headers.get("location")
        where = f" to {redact_url(location)}" if location else ""
        return result(code, f"redirect not followed: http {code}{where}", excerpt, False)
    if code == 410:
        return result(code, "http 410 (gone: the receiver unsubscribed)", excerpt, False)
    retryable = code in _RETRYABLE_STATUS or code >= 500
    return result(code, f"http {code}", excerpt, retryable)
