"""The HTTP client every target talks to services with.

Each request goes out on a kept-alive `http.client` connection of the calling thread, and the answer
comes back as an `httpx.Response` (errors as httpx's exceptions), so callers see httpx's types. Why not
an `httpx.Client`: measured against one local service, a request cost the client about 0.9 ms of CPU
through `httpx.Client`, 0.45 through httpcore's pool, 0.23 through `http.client` and 0.35 through this
module. The bench sends about five requests per purchase from one interpreter: at 100 purchases a
second httpx alone would take most of a core, and the load generator, not the system under test, would
set the latency.

Nagle's algorithm: a request's head and body leave in one write, and the socket has TCP_NODELAY
(http.client sets it), so no write waits for the server's delayed acknowledgement, which would add up
to 40 ms to an answer; the services set it on their side too (kcverify/reference/http.py).

An idle kept-alive connection is given up after `KEEPALIVE_SECONDS`, before any common server closes it
(uvicorn and Node after 5 s, gunicorn after 2 s). With a client that keeps it as long as the server, a
request sent on a connection just as the server closed it got no answer ("Server disconnected without
sending a response"): the bench counted it as a create with no response, and a POST is not retried. A
server that waits longer than its clients cannot race them that way.

Nothing is carried from one request to the next but the connection: no cookies (a verifier's requests
stand for many students, and one's cookie must not ride along with another's), no redirects followed
(an API's redirect is an answer to judge). Services are reached directly: proxy variables of the
environment are not read (the httpx client used before, built with a transport of its own, did not read
them either).
"""

from __future__ import annotations

import functools
import http.client
import json as jsonlib
import select
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

KEEPALIVE_SECONDS = 1.5
_DEFAULT_HEADERS = {"User-Agent": "kcverify", "Accept": "*/*"}  # unless the caller sets them
_SAFE = "/?&=%:@!$'()*+,;~[]"  # kept as they are in a request target (with unreserved letters, digits, -._)


class HttpClient:
    """`request`, `get` and `close`, with the connections of each calling thread its own.

    One pool shared by many threads (the bench's 48) spent most of its time in the pool's lock: in a
    `py-spy` profile of the bench at 35 purchases a second, 78% of its threads' samples waited for it.
    A thread's connections are its own, and nothing is waited for."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._local = threading.local()
        self._threads: dict[threading.Thread, _ThreadConnections] = {}
        self._lock = threading.Lock()
        self._closed = False

    def request(self, method: str, url: str, *, content: bytes | None = None, json: Any = None,
                headers: dict[str, str] | None = None, timeout: float | None = None) -> httpx.Response:
        """One request; raises httpx.HTTPError (a subclass) when no answer came."""
        if json is not None:
            content = jsonlib.dumps(json, allow_nan=False).encode()
            if not any(name.lower() == "content-type" for name in headers or {}):
                headers = {"Content-Type": "application/json", **(headers or {})}
        return self._own().send(method, url, content, headers or {}, self._timeout if timeout is None else timeout)

    def get(self, url: str, *, headers: dict[str, str] | None = None, timeout: float | None = None) -> httpx.Response:
        return self.request("GET", url, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close every thread's connections (idempotent); a request after it raises RuntimeError."""
        with self._lock:
            owned, self._threads, self._closed = list(self._threads.values()), {}, True
        for connections in owned:
            connections.close()

    def _own(self) -> _ThreadConnections:
        own: _ThreadConnections | None = getattr(self._local, "connections", None)
        if own is None:
            own = _ThreadConnections()
            with self._lock:
                if self._closed:
                    raise RuntimeError("the HTTP client is closed")
                # the connections of threads that ended (a bench step's pool) are closed here: their
                # sockets would otherwise stay open until close(), a step's worth of them at every step
                for thread in [t for t in self._threads if not t.is_alive()]:
                    self._threads.pop(thread).close()
                self._threads[threading.current_thread()] = own
            self._local.connections = own
        elif self._closed:
            raise RuntimeError("the HTTP client is closed")
        return own

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ThreadConnections:
    """One thread's kept-alive connections, one per origin, each with the time it was last used.

    A connection is opened explicitly (so a refused connect, a TLS handshake that fails or times out, is
    a connect error, never a write error) and never reopens by itself (`auto_open` off: a connection
    `close()` shut under a request fails that request instead of opening a socket nobody closes)."""

    def __init__(self) -> None:
        self._connections: dict[tuple[str, str, int], tuple[http.client.HTTPConnection, float]] = {}

    def send(self, method: str, url: str, content: bytes | None, headers: dict[str, str],
             timeout: float) -> httpx.Response:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError as exc:
            raise httpx.UnsupportedProtocol(f"bad port in {url!r}: {exc}") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise httpx.UnsupportedProtocol(f"not an http(s) URL: {url!r}")
        origin = (parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80))
        # as httpx sends them: characters a request line cannot carry (a space, non-ASCII) percent-encoded
        target = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe=_SAFE)
        given = {name.lower() for name in headers}
        sent = {**{k: v for k, v in _DEFAULT_HEADERS.items() if k.lower() not in given}, **headers}
        conn = self._connection(origin, timeout)
        try:
            try:
                conn.request(method, target, body=content, headers=sent)
            except OSError as exc:
                raise httpx.WriteError(f"{type(exc).__name__}: {exc}") from exc
            except (http.client.HTTPException, ValueError) as exc:  # a header value no request can carry
                raise httpx.LocalProtocolError(f"{type(exc).__name__}: {exc}") from exc
            try:
                answer = conn.getresponse()
                body = answer.read()
            except TimeoutError as exc:
                raise httpx.ReadTimeout(f"no answer within {timeout:g} s") from exc
            except http.client.RemoteDisconnected as exc:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.") from exc
            except (http.client.HTTPException, OSError) as exc:
                raise httpx.ReadError(f"{type(exc).__name__}: {exc}") from exc
            if answer.status < 200:  # http.client skips only 100 Continue; what follows is this answer's
                raise httpx.RemoteProtocolError(f"informational answer {answer.status} before the final one")
        except httpx.HTTPError:
            self._drop(origin, conn)
            raise
        if answer.will_close:
            self._drop(origin, conn)
        else:
            self._connections[origin] = (conn, time.monotonic())
        # header bytes as they came (latin-1 is what http.client decoded them with): httpx decodes them
        headers_raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.getheaders()]
        return httpx.Response(answer.status, headers=headers_raw, content=body)

    def _connection(self, origin: tuple[str, str, int], timeout: float) -> http.client.HTTPConnection:
        kept = self._connections.get(origin)
        if kept is not None:
            conn, used = kept
            sock = conn.sock
            if sock is not None and time.monotonic() - used <= KEEPALIVE_SECONDS and not _readable(sock):
                try:
                    sock.settimeout(timeout)
                    return conn
                except OSError:
                    pass  # closed under us
            # idle too long (the server may be closing it right now), or closed by the server already (an
            # idle connection with something to read has an end of file or a reset waiting)
            self._drop(origin, conn)
        scheme, host, port = origin
        conn = (http.client.HTTPSConnection(host, port, timeout=timeout, context=_tls_context())
                if scheme == "https" else http.client.HTTPConnection(host, port, timeout=timeout))
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            raise httpx.ConnectTimeout(f"no connection to {host}:{port} within {timeout:g} s") from exc
        except OSError as exc:  # refused, unreachable, name unknown, TLS handshake failed
            conn.close()
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        conn.auto_open = 0
        self._connections[origin] = (conn, time.monotonic())
        return conn

    def _drop(self, origin: tuple[str, str, int], conn: http.client.HTTPConnection) -> None:
        conn.close()
        if self._connections.get(origin, (None, 0.0))[0] is conn:
            del self._connections[origin]

    def close(self) -> None:
        for conn, _ in list(self._connections.values()):
            conn.close()
        self._connections.clear()


def _readable(sock: socket.socket) -> bool:
    """Whether an idle socket has something to read: for a kept connection, the server's end of file or
    reset (httpcore checks the same before it reuses one)."""
    try:
        poller = select.poll()
    except AttributeError:  # no poll() on this platform
        return bool(select.select([sock], [], [], 0)[0])
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every connection: loading the CA bundle costs milliseconds of CPU."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def http_client(timeout: float) -> HttpClient:
    """A client whose connections send each request in one write and are dropped before a server drops
    them, kept per calling thread (see the module's docstring)."""
    return HttpClient(timeout)
