"""The targets' HTTP client gives an idle connection up before a server closes it: a request is never
sent on a connection the server is closing at that very moment (kcverify/targets/http_client.py)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kcverify.reference.component_process import KEEP_ALIVE_SECONDS
from kcverify.targets.http_client import KEEPALIVE_SECONDS, http_client


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps connections alive

    def do_GET(self) -> None:
        body = str(self.client_address[1]).encode()  # the client's port: which connection carried it
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_connection_idle_longer_than_the_expiry_is_not_reused(server: str) -> None:
    with http_client(5.0) as client:
        first = client.get(server).text
        assert client.get(server).text == first, "a connection used again at once is kept"
        time.sleep(KEEPALIVE_SECONDS + 0.3)
        assert client.get(server).text != first, "an idle connection past the expiry must be replaced"


def test_the_reference_keeps_connections_longer_than_the_client_does() -> None:
    assert KEEP_ALIVE_SECONDS > 2 * KEEPALIVE_SECONDS


def test_the_client_sends_without_nagle(server: str) -> None:
    with http_client(5.0) as client:
        client.get(server)
        pool = client._client()._transport._pool  # type: ignore[attr-defined]
        stream = pool.connections[0]._connection._network_stream
        sock = stream.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_each_thread_has_a_pool_of_its_own_and_close_closes_them_all(server: str) -> None:
    client = http_client(5.0)
    ports: dict[str, str] = {}

    def call(name: str) -> None:
        ports[name] = client.get(server).text

    threads = [threading.Thread(target=call, args=(f"t{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    call("main")
    assert len(set(ports.values())) == 4, ports  # a connection per thread: no pool (and no lock) shared
    assert client.get(server).text == ports["main"]  # a thread's own connection is kept
    client.close()
    with pytest.raises(RuntimeError):  # the main thread's client is closed
        client.get(server)
    late: list[BaseException] = []

    def fresh_thread() -> None:
        try:
            client.get(server)
        except RuntimeError as exc:
            late.append(exc)

    thread = threading.Thread(target=fresh_thread)
    thread.start()
    thread.join()
    assert late, "a thread's first call after close() must not open a new client"


def test_the_clients_of_threads_that_ended_are_closed_when_another_thread_starts_one(server: str) -> None:
    client = http_client(5.0)
    try:
        first = threading.Thread(target=client.get, args=(server,))
        first.start()
        first.join()
        (ended,) = client._clients.values()
        client.get(server)  # the main thread's first call
        assert ended.is_closed and list(client._clients) == [threading.current_thread()]
    finally:
        client.close()
