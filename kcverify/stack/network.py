"""Loopback ports. Every service binds 127.0.0.1 only: `localhost` may resolve to ::1 while a service
listens on IPv4 (a known Kafka pitfall), and nothing here should be reachable from other hosts."""

from __future__ import annotations

import contextlib
import socket
import time

HOST = "127.0.0.1"


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port and we could bind it now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def free_ports(count: int, avoid: set[int] | None = None) -> list[int]:
    """`count` distinct free ports, chosen by the kernel. All sockets stay bound until every port is
    picked, so the same port is never returned twice; another program may still take one before the
    service binds it, which the service's start then reports."""
    avoid = set(avoid or ())
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < count:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
            if port not in avoid and port not in ports:
                ports.append(port)
        return ports


def is_listening(port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connect to 127.0.0.1:port succeeds."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_listening(port: int, deadline: float, interval: float = 0.1) -> bool:
    """Poll until the port accepts connections or the monotonic deadline passes."""
    while time.monotonic() < deadline:
        if is_listening(port):
            return True
        time.sleep(interval)
    return is_listening(port)
