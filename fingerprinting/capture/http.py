"""Guarded HTTP: every request of a capture — redirects, playlists, segments, keys — passes here.

For each hop the host is resolved once, every address is checked against the
:class:`~.netguard.NetworkPolicy`, and the request goes to the checked address (the URL's
host is replaced by it; ``Host`` and TLS SNI keep the name, so certificates are verified
against the name). A second lookup, which DNS rebinding would answer with an internal
address, never happens. Redirects are followed here, not by httpx, so each is checked too.

The capture's :class:`~.limits.Deadline` bounds connecting, waiting for the rate limit and
reading: a watchdog shuts the socket down when it passes, because read timeouts restart on
every byte and a drip-feed would never trip them.

Captures GET; :meth:`Fetcher.post` sends the one POST the service makes (a signed webhook
to a bot's callback URL, which is as untrusted as a stream URL), with the same guards.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from .errors import CaptureError
from .evidence import Evidence, Hop, utc_now
from .limits import ByteBudget, Deadline, HostLimiter
from .netguard import (
    IPAddress,
    NetworkPolicy,
    Resolver,
    check_scheme,
    resolve_checked,
    system_resolver,
)
from .options import StreamOptions
from .redact import redact_url
from .shared_limits import SharedHostLimiter

__all__ = ["DEFAULT_USER_AGENT", "Fetched", "Fetcher", "GuardedClient", "Opened"]

#: What we say we are when a stream names no User-Agent: a common player, because pirate
#: panels refuse unknown clients (our identity is in the evidence's egress note instead).
DEFAULT_USER_AGENT = "VLC/3.0.20 LibVLC/3.0.20"
_REDIRECTS = {301, 302, 303, 307, 308}
#: Headers a stream's options may not set: we set them, or they frame the message.
_OURS = {"host", "content-length", "transfer-encoding", "connection", "te", "upgrade"}
_SHARED_LIMITER = HostLimiter()


class GuardedClient:
    """An httpx client behind the network policy; one per process, shared by captures.

    Parameters
    ----------
    policy : NetworkPolicy or None
        Addresses we may contact; ``None`` reads ``VIGIE_ALLOW_NETWORKS``.
    limiter : HostLimiter, SharedHostLimiter or None
        Per-host concurrency and rate limits (default: one shared by the process).
    resolver : callable
        ``(host, port) -> [address]``; injectable for tests of DNS answers.
    transport : httpx.BaseTransport or None
        Injectable (``httpx.MockTransport``) so tests swap the network, not monkeypatch.
    verify : bool, str or ssl.SSLContext
        TLS verification as httpx takes it. Pirate panels often have broken certificates;
        verification stays on by default and a failure is reported as ``unreachable``.
    connect_timeout, read_timeout : float
        Seconds for a TCP/TLS connect and between two reads (both also capped by the
        capture's deadline).
    max_redirects : int
        Redirect hops followed per request before ``redirect_loop``.
    """

    def __init__(
        self,
        policy: NetworkPolicy | None = None,
        *,
        limiter: HostLimiter | SharedHostLimiter | None = None,
        resolver: Resolver = system_resolver,
        transport: httpx.BaseTransport | None = None,
        verify: bool | str | ssl.SSLContext = True,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        max_redirects: int = 5,
    ) -> None:
        self.policy = policy if policy is not None else NetworkPolicy.from_env()
        self.limiter = limiter or _SHARED_LIMITER
        self.resolver = resolver
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_redirects = max_redirects
        self._http = httpx.Client(
            transport=transport,
            verify=verify,
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: it would bypass the policy
            # No keep-alive: a pooled connection is keyed by the address we send to, so it
            # would carry one name's verified TLS session to another name on the same
            # address, and a reused connection is only watched once its headers are in.
            # A new connection per request costs a round trip per segment.
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=0),
        )
        self._dns = ThreadPoolExecutor(8, thread_name_prefix="vigie-dns")

    def resolve(self, host: str, port: int, deadline: Deadline, shown: str) -> list:
        """Resolve and check ``host`` within the deadline: ``getaddrinfo`` has no timeout
        of its own, so it runs on a worker thread that is abandoned when time is up."""
        job = self._dns.submit(
            resolve_checked, host, port, self.policy, url=shown, resolver=self.resolver
        )
        try:
            return job.result(timeout=deadline.check(f"resolving {host} for {shown}"))
        except FutureTimeout:
            raise CaptureError(
                "timeout",
                f"{shown}: resolving {host} outlasted the {deadline.seconds:g} s capture deadline",
            ) from None

    def send(
        self,
        url: httpx.URL,
        headers: dict[str, str],
        extensions: dict,
        *,
        method: str = "GET",
        content: bytes | None = None,
    ) -> httpx.Response:
        """Send one request as given (no redirects followed), its body left to stream."""
        request = self._http.build_request(
            method, url, headers=headers, content=content, extensions=extensions
        )
        return self._http.send(request, stream=True)

    def close(self) -> None:
        self._http.close()
        self._dns.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> GuardedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Opened:
    """A response whose headers arrived and whose body is still to be read."""

    url: str
    status: int
    headers: httpx.Headers
    hop: Hop
    chunks: Iterator[bytes]


@dataclass
class Fetched:
    """A whole response body, read within its caps."""

    url: str
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


class _Watchdog:
    """Shuts a socket down when the deadline passes, waking a read blocked inside httpcore."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.fired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(deadline.remaining(), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if self.fired:
                self._shutdown()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._sock is not None:
            # The plain socket's shutdown, also for TLS sockets: SSLSocket.shutdown would
            # drop its SSL object under the reading thread's feet.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


class Fetcher:
    """The requests of one capture: its deadline, byte budget, stream options and evidence.

    Parameters
    ----------
    client : GuardedClient
    deadline : Deadline
    budget : ByteBudget
        Bytes the whole sample may download.
    evidence : Evidence
        Every hop is appended to it.
    options : StreamOptions
        User-Agent, Referer and headers the stream needs.
    """

    def __init__(
        self,
        client: GuardedClient,
        *,
        deadline: Deadline,
        budget: ByteBudget,
        evidence: Evidence,
        options: StreamOptions | None = None,
    ) -> None:
        self.client = client
        self.deadline = deadline
        self.budget = budget
        self.evidence = evidence
        self.options = options or StreamOptions()
        headers = {
            k: v for k, v in self.options.request_headers().items() if k.lower() not in _OURS
        }
        headers.setdefault("User-Agent", DEFAULT_USER_AGENT)
        self.headers = headers
        # Checked addresses per (host, port), for this capture: a playlist's segments on
        # one host are resolved once (and a rebinding answer has no second chance).
        self._addresses: dict[tuple[str, int], list[IPAddress]] = {}
        evidence.user_agent = headers["User-Agent"]

    def forget_addresses(self) -> None:
        """Resolve hosts afresh from the next request on (a feed followed for days must
        see its CDN move)."""
        self._addresses.clear()

    def get(
        self, url: str, *, max_bytes: int, what: str, headers: dict[str, str] | None = None
    ) -> Fetched:
        """GET ``url`` whole (playlists, segments, keys); ``too_large`` past ``max_bytes``."""
        with self.open(url, what=what, headers=headers) as opened:
            length = opened.headers.get("content-length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise CaptureError(
                    "too_large",
                    f"{what} {redact_url(opened.url)}: announces {int(length):,} bytes, "
                    f"over the {max_bytes:,} byte cap",
                )
            parts, size = [], 0
            for chunk in opened.chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise CaptureError(
                        "too_large",
                        f"{what} {redact_url(opened.url)}: body over the {max_bytes:,} byte cap",
                    )
                parts.append(chunk)
            body = b"".join(parts)
            opened.hop.sha256 = hashlib.sha256(body).hexdigest()
            return Fetched(opened.url, opened.status, opened.headers, body)

    def post(
        self,
        url: str,
        body: bytes,
        *,
        max_bytes: int,
        what: str,
        headers: dict[str, str] | None = None,
    ) -> Fetched:
        """POST ``body`` to ``url`` once and return the answer, whatever its status.

        For webhooks: a redirect is not followed (its ``Location`` is the caller's to judge:
        a webhook sender must not re-send a signed body elsewhere) and 3xx/4xx/5xx are not
        raised, because the caller decides what each status means. The response body is
        read up to ``max_bytes`` and the rest dropped rather than refused, since only an
        excerpt of a receiver's answer is kept. Everything else is as for :meth:`get`:
        scheme, address policy, deadline and byte budget, and the hop in the evidence.

        Raises
        ------
        CaptureError
            On a refused scheme or address, a network failure or the deadline.
        """
        check_scheme(url)
        with self._request(url, what, headers, method="POST", content=body) as (
            response,
            hop,
            watchdog,
        ):
            self.evidence.final_url = self.evidence.final_url or url
            parts, size, whole = [], 0, True
            with contextlib.closing(self._chunks(response, hop, watchdog, url, what)) as chunks:
                for chunk in chunks:
                    parts.append(chunk[: max_bytes - size])
                    size += len(parts[-1])
                    if size >= max_bytes:
                        whole = False  # stop reading; closing the response drops the rest
                        break
            kept = b"".join(parts)
            if whole:
                hop.sha256 = hashlib.sha256(kept).hexdigest()
            return Fetched(url, response.status_code, response.headers, kept)

    @contextmanager
    def open(
        self, url: str, *, what: str, headers: dict[str, str] | None = None
    ) -> Iterator[Opened]:
        """GET ``url`` following checked redirects; the body streams from ``chunks``.

        Every chunk counts against the sample's byte budget and the deadline. Raises
        :class:`CaptureError` with the reason (``http_status`` for 4xx/5xx answers).
        """
        visited: list[str] = []
        current = url
        while True:
            check_scheme(current)
            if current in visited:
                raise CaptureError(
                    "redirect_loop",
                    f"{what} {redact_url(url)}: redirects come back to {redact_url(current)}",
                    self.evidence,
                )
            if len(visited) > self.client.max_redirects:
                raise CaptureError(
                    "redirect_loop",
                    f"{what} {redact_url(url)}: more than {self.client.max_redirects} redirects",
                    self.evidence,
                )
            visited.append(current)
            with self._request(current, what, headers) as (response, hop, watchdog):
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    # Joined to the URL as named, not as sent (to the address): the
                    # target's host is resolved and checked again on the next turn.
                    target = str(httpx.URL(current).join(response.headers["location"]))
                    hop.redirect_to = target
                    current = target
                    continue
                if response.status_code >= 400:
                    raise CaptureError(
                        "http_status",
                        f"{what} {redact_url(current)}: HTTP {response.status_code} "
                        f"{response.reason_phrase}".rstrip(),
                        self.evidence,
                    )
                self.evidence.final_url = self.evidence.final_url or current
                yield Opened(
                    current,
                    response.status_code,
                    response.headers,
                    hop,
                    self._chunks(response, hop, watchdog, current, what),
                )
                return

    @contextmanager
    def _request(
        self,
        url: str,
        what: str,
        extra: dict[str, str] | None,
        *,
        method: str = "GET",
        content: bytes | None = None,
    ) -> Iterator[tuple[httpx.Response, Hop, _Watchdog]]:
        """One checked request to the address we resolved, recorded as a hop."""
        shown = redact_url(url)
        try:
            parsed = httpx.URL(url)
            host = parsed.host
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
        except (httpx.InvalidURL, ValueError) as exc:
            raise CaptureError(
                "unreachable", f"{what} {shown}: malformed URL ({exc})", self.evidence
            ) from None
        if not host:
            raise CaptureError("unreachable", f"{what} {shown}: URL has no host", self.evidence)
        hop = self.evidence.add_hop(Hop(url=url, method=method, started_utc=utc_now()))
        if (host, port) not in self._addresses:
            self._addresses[host, port] = self.client.resolve(host, port, self.deadline, shown)
        addresses = self._addresses[host, port]
        hop.resolved = [str(a) for a in addresses]
        address = addresses[0]
        hop.address = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
        headers = dict(self.headers) | (extra or {})
        headers["Host"] = parsed.netloc.decode("ascii")
        hop.request_headers = sorted(headers.items())
        left = self.deadline.check(f"{what} {shown}")
        timeout = httpx.Timeout(
            connect=min(self.client.connect_timeout, left),
            read=min(self.client.read_timeout, left),
            write=min(self.client.read_timeout, left),
            pool=left,
        )
        watchdog = _Watchdog(self.deadline)

        def trace(event: str, info: dict) -> None:
            if event.endswith((".connect_tcp.complete", ".start_tls.complete")):
                _describe_stream(info["return_value"], hop, watchdog)

        extensions: dict = {"trace": trace, "timeout": timeout.as_dict()}
        if parsed.scheme == "https":
            extensions["sni_hostname"] = host
        started = time.monotonic()
        response = None
        try:
            with self.client.limiter.slot(host, self.deadline, f"{what} {shown}"):
                try:
                    target = parsed.copy_with(host=str(address))
                    response = self.client.send(
                        target, headers, extensions, method=method, content=content
                    )
                except httpx.HTTPError as exc:
                    raise self._network_error(exc, watchdog, what, shown) from None
                stream = response.extensions.get("network_stream")
                if stream is not None:
                    _describe_stream(stream, hop, watchdog)
                hop.status = response.status_code
                hop.http_version = response.http_version
                hop.response_headers = [(k, v) for k, v in response.headers.multi_items()]
                yield response, hop, watchdog
        except CaptureError as exc:
            hop.error = f"{exc.reason}: {exc.message}"
            if exc.evidence is None:
                exc.evidence = self.evidence
            raise
        finally:
            hop.elapsed_seconds = round(time.monotonic() - started, 4)
            watchdog.cancel()
            if response is not None:
                response.close()

    def _chunks(
        self, response: httpx.Response, hop: Hop, watchdog: _Watchdog, url: str, what: str
    ) -> Iterator[bytes]:
        shown = redact_url(url)
        hop.bytes = 0
        try:
            for chunk in response.iter_bytes():
                hop.bytes += len(chunk)
                self.budget.take(len(chunk), f"{what} {shown}")
                self.deadline.check(f"{what} {shown} (after {hop.bytes:,} bytes)")
                yield chunk
        except httpx.HTTPError as exc:
            raise self._network_error(exc, watchdog, what, shown, hop.bytes) from None

    def _network_error(
        self,
        exc: httpx.HTTPError,
        watchdog: _Watchdog,
        what: str,
        shown: str,
        received: int | None = None,
    ) -> CaptureError:
        """Name a transport failure: our deadline, a timeout, a TLS failure or a lost link."""
        where = f"{what} {shown}"
        if received is not None:
            where += f" (after {received:,} bytes)"
        if watchdog.fired or self.deadline.expired:
            return CaptureError(
                "timeout",
                f"{where}: the {self.deadline.seconds:g} s capture deadline passed",
                self.evidence,
            )
        if isinstance(exc, httpx.TimeoutException):
            return CaptureError("timeout", f"{where}: no answer in time ({exc})", self.evidence)
        text = str(exc) or type(exc).__name__
        if "CERTIFICATE" in text.upper():
            text = f"TLS certificate not trusted ({text})"
        return CaptureError("unreachable", f"{where}: {text}", self.evidence)


def _describe_stream(stream: object, hop: Hop, watchdog: _Watchdog) -> None:
    """Record our side of the connection and the server's TLS certificate, and arm the
    watchdog on the socket."""
    get = getattr(stream, "get_extra_info", None)
    if get is None:  # a mock transport has no sockets
        return
    sock = get("socket")
    watchdog.watch(sock)
    local = get("client_addr")
    if local:
        hop.local_address = f"{local[0]}:{local[1]}"
    tls = get("ssl_object")
    if tls is not None:
        der = tls.getpeercert(True)
        if der:
            hop.tls_certificate_sha256 = hashlib.sha256(der).hexdigest()
        hop.tls_version = tls.version()
