"""The targets' HTTP client gives an idle connection up before a server closes it: a request is never
sent on a connection the server is closing at that very moment (kcverify/targets/http_client.py)."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from kcverify.reference.component_process import KEEP_ALIVE_SECONDS
from kcverify.targets.http_client import KEEPALIVE_SECONDS, http_client


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps connections alive

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
        self.send_response(status)
        for name, value in headers or []:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


class _Answer(_Quiet):
    def do_GET(self) -> None:
        self._send(200, str(self.client_address[1]).encode())  # the client's port: which connection carried it


def _serving(handler: type[BaseHTTPRequestHandler], suffix: str = "") -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.handle_error = lambda *args: None  # type: ignore[method-assign]  # an answer to a client gone
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}{suffix}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server() -> Iterator[str]:
    yield from _serving(_Answer, "/")


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
        ((conn, _),) = client._own()._connections.values()
        assert conn.sock is not None
        assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


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
        (ended,) = client._threads.values()
        ((conn, _),) = ended._connections.values()
        client.get(server)  # the main thread's first call
        assert conn.sock is None and list(client._threads) == [threading.current_thread()]
    finally:
        client.close()


class _Echo(_Quiet):
    """POST: answers what it was sent (JSON: method, path, headers, body); GET /gzip: a gzip-encoded
    body; GET /slow: answers after a second."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._send(200, json.dumps({"method": "POST", "path": self.path, "body": body.decode(),
                                    "headers": {k.lower(): v for k, v in self.headers.items()}}).encode(),
                   [("Content-Type", "application/json"), ("Set-Cookie", "session=one")])

    def do_GET(self) -> None:
        if self.path == "/gzip":
            self._send(200, gzip.compress(b'{"zipped": true}'), [("Content-Encoding", "gzip")])
        elif self.path == "/slow":
            time.sleep(1.0)
            self._send(200, b"late", [])
        else:
            self._send(200, json.dumps({"path": self.path, "cookie": self.headers.get("Cookie")}).encode(), [])


@pytest.fixture
def echo() -> Iterator[str]:
    yield from _serving(_Echo)


def test_a_request_carries_its_body_and_headers_and_the_answer_its_own(echo: str) -> None:
    with http_client(5.0) as client:
        answer = client.request("POST", f"{echo}/api/x?a=1", content=b'{"k":1}',
                                headers={"X-Signature": "t=1,v1=ab", "Content-Type": "application/json"})
        seen = answer.json()
        assert (answer.status_code, seen["path"], seen["body"]) == (200, "/api/x?a=1", '{"k":1}')
        assert seen["headers"]["x-signature"] == "t=1,v1=ab" and seen["headers"]["content-length"] == "7"
        assert answer.headers["content-type"] == "application/json"
        posted = client.request("POST", f"{echo}/j", json={"a": [1, 2]}).json()
        assert json.loads(posted["body"]) == {"a": [1, 2]} and posted["headers"]["content-type"] == "application/json"


def test_no_cookie_is_carried_to_the_next_request(echo: str) -> None:
    with http_client(5.0) as client:
        assert client.request("POST", f"{echo}/login", content=b"").headers["set-cookie"] == "session=one"
        assert client.get(f"{echo}/next").json()["cookie"] is None


def test_a_gzip_encoded_answer_is_decoded(echo: str) -> None:
    with http_client(5.0) as client:
        assert client.get(f"{echo}/gzip").json() == {"zipped": True}


def test_no_answer_raises_httpx_errors_and_the_next_request_works(echo: str) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: refused
    with http_client(5.0) as client:
        with pytest.raises(httpx.ConnectError):
            client.get(f"http://127.0.0.1:{port}/")
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"{echo}/slow", timeout=0.2)
        assert client.get(f"{echo}/after").json()["path"] == "/after"  # a fresh connection, not the timed-out one
        with pytest.raises(httpx.UnsupportedProtocol):
            client.get("ftp://127.0.0.1/")


def test_a_header_the_caller_sets_replaces_the_default_whatever_its_case(echo: str) -> None:
    with http_client(5.0) as client:
        seen = client.request("POST", f"{echo}/h", content=b"", headers={"user-agent": "mine"}).json()["headers"]
        assert seen["user-agent"] == "mine" and seen["accept"] == "*/*"


class _Raw:
    """A one-connection-at-a-time server that answers each request with the next of `answers` (raw
    bytes), then closes the connection when `close_after` answers were sent on it."""

    def __init__(self, answers: list[bytes], close_after: int = 99) -> None:
        self.answers, self.close_after = answers, close_after
        self.paths: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                for _ in range(self.close_after):
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        head += chunk
                    if not head or not self.answers:
                        break
                    self.paths.append(head.split(b" ")[1].decode())
                    conn.sendall(self.answers.pop(0))

    def close(self) -> None:
        self._listener.close()


def _ok(body: bytes, *extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + b"".join(h + b"\r\n" for h in extra) + \
        b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_a_header_value_that_is_not_ascii_comes_back_as_httpx_reads_it() -> None:
    raw = _Raw([_ok(b"{}", "X-Name: café".encode())])
    with http_client(5.0) as client:
        assert client.get(raw.url + "/").headers["x-name"] == "café"
    raw.close()


def test_a_path_is_sent_percent_encoded_and_a_header_no_request_can_carry_is_refused_alone() -> None:
    raw = _Raw([_ok(b"a"), _ok(b"b")])
    with http_client(5.0) as client:
        assert client.get(raw.url + "/students/a b/é?x=1 2").text == "a"
        with pytest.raises(httpx.LocalProtocolError):
            client.get(raw.url + "/", headers={"X-Bad": "one\r\nInjected: yes"})
        assert client.get(raw.url + "/after").text == "b"  # the connection of the refused one is not stuck
    assert raw.paths == ["/students/a%20b/%C3%A9?x=1%202", "/after"]
    raw.close()


def test_a_kept_connection_the_server_closed_is_not_used_again() -> None:
    raw = _Raw([_ok(b"first"), _ok(b"second")], close_after=1)  # closes each connection after one answer
    with http_client(5.0) as client:
        assert client.get(raw.url + "/").text == "first"
        time.sleep(0.2)  # the server's close reaches the client
        assert client.request("POST", raw.url + "/", content=b"x").text == "second"
    raw.close()


def test_an_informational_answer_is_an_error_not_the_answer() -> None:
    raw = _Raw([b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + _ok(b"final"), _ok(b"next")])
    with http_client(5.0) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(raw.url + "/")
        assert client.get(raw.url + "/").text == "next"  # on a new connection, not the old one's leftovers
    raw.close()


def test_https_to_a_server_that_does_not_speak_tls_is_a_connect_error(server: str) -> None:
    with http_client(1.0) as client, pytest.raises((httpx.ConnectError, httpx.ConnectTimeout)):
        client.get(server.replace("http://", "https://"))
