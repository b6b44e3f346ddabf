"""The HTTP client every target talks to services with.

httpx sends a request's head and its body in two writes. With Nagle's algorithm on (the default of a
client socket), the body may wait until the server acknowledges the head, which the server's kernel can
delay by up to 40 ms, and the bench would report that wait as the service's latency. (Measured with a
plain client: the first POST on a new connection took about 60 ms, on a kept one about 8.) TCP_NODELAY
sends the body at once, as browsers and load tools do; the services set it on their side too
(kcverify/reference/http.py).

An idle kept-alive connection is given up after `KEEPALIVE_SECONDS`, before any common server closes it
(uvicorn and Node after 5 s, gunicorn after 2 s). With httpx's default of 5 s, as long as uvicorn's, a
request sent on a connection just as the server closed it got no answer ("Server disconnected without
sending a response"): the bench counted it as a create with no response, and a POST is not retried. A
server that waits longer than its clients cannot race them that way.
"""

from __future__ import annotations

import functools
import socket
import ssl
import threading
from typing import Any

import httpx

NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
KEEPALIVE_SECONDS = 1.5


class HttpClient:
    """httpx's `request`, `get` and `close`, with one httpx.Client per calling thread.

    One client shared by many threads (the bench's 48) spent most of its time in httpcore's pool lock:
    every request and every response's close takes it and walks all connections and waiting requests
    under it. In a `py-spy` profile of the bench at 35 purchases a second, 78% of its threads' samples
    were waiting for that lock, and the bench took 70% of a core. A client per thread has a pool per
    thread, and nothing to wait for."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._local = threading.local()
        self._clients: dict[threading.Thread, httpx.Client] = {}
        self._lock = threading.Lock()
        self._closed = False

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            limits = httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS)
            client = httpx.Client(timeout=self._timeout, transport=httpx.HTTPTransport(
                socket_options=NO_DELAY, limits=limits, verify=_tls_context()))
            with self._lock:
                if self._closed:
                    client.close()
                    raise RuntimeError("the HTTP client is closed")
                # the clients of threads that ended (a bench step's pool) are closed here: their sockets
                # would otherwise stay open until close(), a step's worth of them at every step
                for thread in [t for t in self._clients if not t.is_alive()]:
                    self._clients.pop(thread).close()
                self._clients[threading.current_thread()] = client
            self._local.client = client
        return client

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._client().request(method, url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._client().get(url, **kwargs)

    def close(self) -> None:
        """Close every thread's client (idempotent)."""
        with self._lock:
            clients, self._clients, self._closed = list(self._clients.values()), {}, True
        for client in clients:
            client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every client: httpx would load the CA bundle again for each (milliseconds of
    CPU per client, and a client per thread)."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def http_client(timeout: float) -> HttpClient:
    """A client whose connections send each write at once and are dropped before a server drops them
    (see the module's docstring), one pool per calling thread (HttpClient)."""
    return HttpClient(timeout)
