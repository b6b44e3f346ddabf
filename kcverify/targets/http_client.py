"""The HTTP client every target talks to services with.

httpx sends a request's head and its body in two writes. With Nagle's algorithm on (the default of a
client socket), the body may wait until the server acknowledges the head, which the server's kernel can
delay by up to 40 ms, and the bench would report that wait as the service's latency. (Measured with a
plain client: the first POST on a new connection took about 60 ms, on a kept one about 8.) TCP_NODELAY
sends the body at once, as browsers and load tools do; the services set it on their side too
(kcverify/reference/http.py).
"""

from __future__ import annotations

import socket

import httpx

NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def http_client(timeout: float) -> httpx.Client:
    """A client whose connections send each write at once (see the module's docstring)."""
    return httpx.Client(timeout=timeout, transport=httpx.HTTPTransport(socket_options=NO_DELAY))
