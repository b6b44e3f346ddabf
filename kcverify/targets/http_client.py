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

import socket

import httpx

NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
KEEPALIVE_SECONDS = 1.5


def http_client(timeout: float) -> httpx.Client:
    """A client whose connections send each write at once and are dropped before a server drops them
    (see the module's docstring)."""
    limits = httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS)
    return httpx.Client(timeout=timeout, transport=httpx.HTTPTransport(socket_options=NO_DELAY, limits=limits))
