"""A loopback HTTP(S) server for capture tests, with handlers that misbehave on purpose.

Tests register handlers on paths, point the client under test at :meth:`LoopbackServer.url`
and afterwards assert on :attr:`LoopbackServer.requests` (what the server saw). Handlers
write through a :class:`Responder`, which can also stall, truncate or reset the connection
the way hostile restream servers do.

Nothing leaves the machine: the server binds 127.0.0.1 (or ``::1``) on a free port.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.server
import itertools
import socket
import socketserver
import ssl
import struct
import sys
import termios
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    import trustme

__all__ = [
    "Handler",
    "LoopbackServer",
    "Request",
    "Responder",
    "big_body",
    "drip",
    "endless_redirects",
    "redirect",
    "reset_after",
    "static",
    "status",
    "truncated",
]

#: What a gone client raises in the server; never worth a traceback.
_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, ssl.SSLError, TimeoutError)

#: An MPEG-TS null packet (PID 0x1FFF), the filler :func:`drip` sends.
_TS_NULL = b"\x47\x1f\xff\x10" + b"\xff" * 184


@dataclass
class Request:
    """One request as the server saw it (header names lower-cased, repeated ones joined)."""

    method: str
    path: str  # without the query
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    target: str = ""  # the request target exactly as sent (path and query)


Handler = Callable[[Request, "Responder"], None]


class Responder:
    """What a handler answers through: a thin wrapper over the request handler's socket.

    Use :meth:`send` for a whole response, or :meth:`start` then :meth:`write` to stream
    a body; :meth:`reset` and :meth:`close` end the connection abruptly or early.
    """

    def __init__(self, handler: _RequestHandler, server: LoopbackServer) -> None:
        self._h = handler
        self._server = server
        self._head_only = handler.command == "HEAD"
        self.started = False  # headers sent
        self.chunked = False
        self.dead = False  # reset or closed by the handler

    @property
    def stopping(self) -> threading.Event:
        """Set when the server closes; slow handlers wait on it instead of sleeping."""
        return self._server.stopping

    def send(
        self,
        status: int,
        body: bytes = b"",
        *,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send a whole response, with its ``Content-Length``."""
        self.start(status, content_type=content_type, headers=headers, length=len(body))
        self.write(body)

    def start(
        self,
        status: int,
        *,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        length: int | None = None,
        chunked: bool = False,
    ) -> None:
        """Send the status line and headers only; the body follows with :meth:`write`.

        ``length`` sets ``Content-Length``; without it the body is chunked (``chunked``)
        or ends when the connection closes (``Connection: close``).
        """
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        h = self._h
        h.send_response(status)
        extra = dict(headers or {})
        names = {k.lower() for k in extra}
        if content_type is not None and "content-type" not in names:
            h.send_header("Content-Type", content_type)
        if length is not None and "content-length" not in names:
            h.send_header("Content-Length", str(length))
        elif length is None and "content-length" not in names:
            if chunked:
                self.chunked = True
                h.send_header("Transfer-Encoding", "chunked")
            elif status >= 200 and status not in (204, 304):
                h.close_connection = True
                h.send_header("Connection", "close")
        for name, value in extra.items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.flush()

    def write(self, data: bytes) -> None:
        """Send body bytes now (raises ``BrokenPipeError``/``ConnectionResetError`` if the
        client went away)."""
        if not self.started:
            raise RuntimeError("write() before start()")
        if self.dead:
            raise BrokenPipeError("the connection was closed by the handler")
        if self._head_only or not data:
            return
        if self.chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        self._h.wfile.write(data)
        self._h.wfile.flush()

    def reset(self) -> None:
        """Abort the TCP connection with a RST (``SO_LINGER`` 0), as a crashing server does.

        Waits (up to 2 s) for the bytes already written to leave the send queue first, so
        the client reliably gets them before the reset.
        """
        if self.dead:
            return
        self.dead = True
        h = self._h
        h.close_connection = True
        sock = h.connection
        with contextlib.suppress(OSError, ValueError):
            h.wfile.flush()
        _wait_sent(sock, 2.0)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        _hard_close(h)

    def close(self) -> None:
        """End the connection cleanly (FIN) now, whatever was announced."""
        if self.dead:
            return
        self.dead = True
        h = self._h
        h.close_connection = True
        with contextlib.suppress(OSError, ValueError):
            h.wfile.flush()
        with contextlib.suppress(OSError):
            h.connection.shutdown(socket.SHUT_WR)
        _hard_close(h)


def _wait_sent(sock: socket.socket, timeout: float) -> None:
    """Wait until the kernel has sent everything queued on ``sock`` (Linux only)."""
    deadline = time.monotonic() + timeout
    buf = bytearray(4)
    while time.monotonic() < deadline:
        try:
            fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)
        except (OSError, ValueError):
            return
        if struct.unpack("i", buf)[0] == 0:
            return
        time.sleep(0.002)


def _hard_close(h: http.server.BaseHTTPRequestHandler) -> None:
    """Really close the socket now (the file objects hold references that delay it)."""
    for f in (h.rfile, h.wfile):
        with contextlib.suppress(OSError, ValueError):
            f.close()
    with contextlib.suppress(OSError):
        h.connection.close()


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "VigieTest/1.0"
    timeout = 60  # an idle keep-alive connection or a stuck client is let go after this
    server: _HTTPServer

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: tests read LoopbackServer.requests instead

    def _dispatch(self) -> None:
        owner = self.server.owner
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        request = Request(
            method=self.command,
            path=split.path or "/",
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=headers,
            body=body,
            target=self.path,
        )
        owner._record(request)
        responder = Responder(self, owner)
        handler = owner._find(request.path)
        try:
            if handler is None:
                responder.send(404, b"not found\n", content_type="text/plain")
            else:
                handler(request, responder)
                if not responder.started:
                    responder.send(204)
                elif responder.chunked and not responder.dead:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
        except _GONE:
            self.close_connection = True  # the client went away: nothing to report
        except Exception as exc:  # a bug in a handler: keep it for the test, answer 500
            owner.errors.append(exc)
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            if not responder.started and not responder.dead:
                with contextlib.suppress(*_GONE, OSError):
                    responder.send(500, b"handler error\n", content_type="text/plain")
        if responder.dead:
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = _dispatch

    def handle(self) -> None:
        with contextlib.suppress(*_GONE, OSError, ValueError):
            super().handle()

    def finish(self) -> None:
        with contextlib.suppress(*_GONE, OSError, ValueError):
            super().finish()


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        family: int,
        owner: LoopbackServer,
        context: ssl.SSLContext | None,
    ) -> None:
        self.address_family = family
        self.owner = owner
        self.context = context
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        socketserver.TCPServer.server_bind(self)  # not HTTPServer's: its getfqdn() is slow
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), port

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:
        owner = self.owner
        owner._track(request, True)
        if self.context is not None:
            request.settimeout(10)  # a client that never finishes the handshake
            try:
                wrapped = self.context.wrap_socket(request, server_side=True)
            except OSError:  # ssl.SSLError included: the client refused our certificate
                owner._track(request, False)
                with contextlib.suppress(OSError):
                    request.close()
                return
            owner._track(request, False)  # its descriptor now belongs to the TLS socket
            request = wrapped
            owner._track(request, True)
        try:
            super().process_request_thread(request, client_address)
        finally:
            owner._track(request, False)

    def shutdown_request(self, request: socket.socket) -> None:
        with contextlib.suppress(OSError):
            request.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            request.close()

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # _GONE and the like
            return  # a client that went away is not an error of the test server
        traceback.print_exc(file=sys.stderr)


class LoopbackServer:
    """A threaded HTTP/1.1 server on a free loopback port, for one test.

    ``host="::1"`` serves IPv6; ``tls`` (a ``trustme.CA``) serves HTTPS with a
    certificate for 127.0.0.1, localhost and ::1 issued by that CA. Paths route exactly
    (:meth:`route`) or by longest prefix (:meth:`route_prefix`); other paths get 404.
    Handlers that raise are answered 500 and kept in :attr:`errors`.
    """

    def __init__(self, *, host: str = "127.0.0.1", tls: trustme.CA | None = None) -> None:
        self.host = host
        self.tls = tls
        self.requests: list[Request] = []
        self.errors: list[BaseException] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._routes: dict[str, Handler] = {}
        self._prefixes: list[tuple[str, Handler]] = []
        self._connections: set[socket.socket] = set()
        context = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.issue_cert("127.0.0.1", "localhost", "::1").configure_cert(context)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._httpd = _HTTPServer((host, 0), family, self, context)
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"loopback-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._closed = False

    # -- routing ----------------------------------------------------------------------

    def route(self, path: str, handler: Handler) -> None:
        """Serve ``path`` (exact, query ignored) with ``handler``; replaces an earlier one."""
        with self._lock:
            self._routes[path] = handler

    def route_prefix(self, prefix: str, handler: Handler) -> None:
        """Serve every path starting with ``prefix`` (the longest matching prefix wins;
        exact routes come first)."""
        with self._lock:
            self._prefixes = [(p, h) for p, h in self._prefixes if p != prefix]
            self._prefixes.append((prefix, handler))
            self._prefixes.sort(key=lambda ph: len(ph[0]), reverse=True)

    def _find(self, path: str) -> Handler | None:
        with self._lock:
            if path in self._routes:
                return self._routes[path]
            for prefix, handler in self._prefixes:
                if path.startswith(prefix):
                    return handler
        return None

    def url(self, path: str = "/") -> str:
        """The absolute URL of ``path`` on this server."""
        if not path.startswith("/"):
            path = "/" + path
        scheme = "https" if self.tls is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{path}"

    # -- bookkeeping ------------------------------------------------------------------

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _track(self, sock: socket.socket, alive: bool) -> None:
        with self._lock:
            if alive:
                self._connections.add(sock)
            else:
                self._connections.discard(sock)

    def paths(self) -> list[str]:
        """The paths requested so far, in arrival order."""
        with self._lock:
            return [r.path for r in self.requests]

    # -- life -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop serving, wake slow handlers and drop open connections; returns promptly."""
        if self._closed:
            return
        self._closed = True
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                # the plain socket's shutdown: SSLSocket's would drop its TLS state under
                # the thread still reading it
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- ready-made handlers ------------------------------------------------------------------


def static(
    body: bytes,
    content_type: str = "application/octet-stream",
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Handler:
    """Always answer ``body`` with that status and type."""

    def handler(request: Request, r: Responder) -> None:
        r.send(status, body, content_type=content_type, headers=headers)

    return handler


def redirect(location: str, status: int = 302) -> Handler:
    """Redirect to ``location`` (absolute or relative, sent as given)."""

    def handler(request: Request, r: Responder) -> None:
        r.send(status, b"", headers={"Location": location})

    return handler


def status(code: int, body: bytes = b"") -> Handler:
    """Answer a bare status (403, 404, 500, 503...) with an optional text body."""

    def handler(request: Request, r: Responder) -> None:
        r.send(code, body, content_type="text/plain")

    return handler


def drip(total: int, bytes_per_second: float, content_type: str = "video/mp2t") -> Handler:
    """Announce ``Content-Length: total``, then send it one byte at a time at that rate
    (byte ``i`` at ``(i + 1) / bytes_per_second`` s: a tiny rate is "headers, then
    nothing"), as a slow-loris server does; the bytes are MPEG-TS null packets. Stops
    quietly when the client leaves or the server closes."""
    interval = 1.0 / bytes_per_second
    fill = itertools.cycle(_TS_NULL)

    def handler(request: Request, r: Responder) -> None:
        r.start(200, content_type=content_type, length=total)
        t0 = time.monotonic()
        for i in range(total):
            delay = t0 + (i + 1) * interval - time.monotonic()
            if delay > 0 and r.stopping.wait(delay):
                r.close()
                return
            if r.stopping.is_set():
                r.close()
                return
            try:
                r.write(bytes((next(fill),)))
            except _GONE:
                return

    return handler


def reset_after(body: bytes, n: int, content_type: str = "video/mp2t") -> Handler:
    """Announce all of ``body``, send its first ``n`` bytes, then reset the connection."""

    def handler(request: Request, r: Responder) -> None:
        r.start(200, content_type=content_type, length=len(body))
        r.write(body[:n])
        r.reset()

    return handler


def truncated(body: bytes, n: int, content_type: str = "video/mp2t") -> Handler:
    """Announce all of ``body``, send its first ``n`` bytes, then close cleanly (FIN)."""

    def handler(request: Request, r: Responder) -> None:
        r.start(200, content_type=content_type, length=len(body))
        r.write(body[:n])
        r.close()

    return handler


def endless_redirects(server: LoopbackServer, prefix: str = "/loop/") -> None:
    """Register ``prefix``: ``{prefix}N`` redirects (302, path-absolute) to ``{prefix}N+1``
    forever; start at ``server.url(prefix + "0")``."""

    def handler(request: Request, r: Responder) -> None:
        tail = request.path[len(prefix) :]
        n = int(tail) if tail.isdigit() else 0
        r.send(302, b"", headers={"Location": f"{prefix}{n + 1}"})

    server.route_prefix(prefix, handler)


def _generate(size: int, head: bytes, line: bytes, chunk: int = 1 << 16) -> Iterator[bytes]:
    """``size`` bytes: ``head`` then ``line`` repeated, in blocks of about ``chunk``."""
    block = line * max(1, chunk // max(1, len(line)))
    first = head[:size]
    yield first
    left = size - len(first)
    while left > 0:
        piece = block[:left]
        left -= len(piece)
        yield piece


def big_body(
    size: int,
    content_type: str = "application/vnd.apple.mpegurl",
    line: bytes = b"#EXTINF:2,\nseg.ts\n",
) -> Handler:
    """A ``size``-byte body made on the fly (never held in memory): ``#EXTM3U\\n`` then
    ``line`` repeated, with its ``Content-Length``; for byte-cap tests."""

    def handler(request: Request, r: Responder) -> None:
        r.start(200, content_type=content_type, length=size)
        for piece in _generate(size, b"#EXTM3U\n", line):
            if r.stopping.is_set():
                r.close()
                return
            try:
                r.write(piece)
            except _GONE:
                return

    return handler
