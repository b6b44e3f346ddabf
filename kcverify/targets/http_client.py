"""The HTTP client every target talks to services with.

httpx sends a request's head and its body in two writes. With Nagle's algorithm on (the default of a
client socket), the body waits until the server acknowledges the head, and the server's kernel delays
that acknowledgement by up to 40 ms: every POST took 40 ms more than the service did, which the bench
then reported as the service's latency. TCP_NODELAY sends the body at once, as browsers and load tools do.
"""

from __future__ import annotations

import socket

import httpx

NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def http_client(timeout: float) -> httpx.Client:
    """A client whose connections send each write at once (see the module's docstring)."""
    return httpx.Client(timeout=timeout, transport=httpx.HTTPTransport(socket_options=NO_DELAY))
