"""A throwaway Redis: loopback only, no persistence (--save "" --appendonly no), daemonized by
redis-server itself with a pidfile, so it outlives the `kcverify` command. Nothing is kept between
starts: the cache is meant to start empty."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import redis as redis_client
from redis.backoff import NoBackoff
from redis.retry import Retry

from kcverify.stack import daemons
from kcverify.stack.errors import ServiceStartError, StackError
from kcverify.stack.network import HOST


def url(port: int) -> str:
    return f"redis://{HOST}:{port}/0"


class RedisService:
    """See the module docstring."""

    name = "redis"
    port_names: tuple[str, ...] = ("redis",)
    stop_signal = signal.SIGTERM
    stop_grace = 10.0

    def __init__(self, state_dir: Path, redis_server: str | None = None) -> None:
        self.state_dir = state_dir
        self.redis_server = redis_server

    @property
    def home(self) -> Path:
        return self.state_dir / "redis"

    @property
    def log_path(self) -> Path:
        return self.home / "redis.log"

    @property
    def pidfile(self) -> Path:
        return self.home / "redis.pid"

    def marker(self, ports: Mapping[str, int]) -> str:
        # redis-server rewrites its process title to "redis-server 127.0.0.1:<port>"
        return f"{HOST}:{ports['redis']}"

    def has_valid_data(self) -> bool:
        return False  # nothing to reuse: the cache starts empty

    def reset(self) -> None:
        self.pidfile.unlink(missing_ok=True)

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.pidfile.unlink(missing_ok=True)

    def launch(self, ports: Mapping[str, int], timeout: float) -> int:
        if self.redis_server is None:
            raise StackError("redis-server was not located")
        argv = [self.redis_server, "--port", str(ports["redis"]), "--bind", HOST, "--protected-mode", "yes",
                "--save", "", "--appendonly", "no", "--daemonize", "yes", "--pidfile", str(self.pidfile),
                "--logfile", str(self.log_path), "--dir", str(self.home), "--loglevel", "warning"]
        out = subprocess.run(argv, cwd=self.home, capture_output=True, text=True, timeout=timeout,
                             check=False, stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            raise ServiceStartError(self.name, f"redis-server exited {out.returncode}: "
                                    f"{(out.stdout + out.stderr).strip()}",
                                    daemons.tail(self.log_path), str(self.log_path))
        # the daemonized child writes the pidfile just after the fork
        deadline = time.monotonic() + min(timeout, 10.0)
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                return int(self.pidfile.read_text().strip())
            time.sleep(0.05)
        raise ServiceStartError(self.name, f"redis-server wrote no pidfile ({self.pidfile})",
                                daemons.tail(self.log_path), str(self.log_path))

    def _ping(self, port: int, timeout: float) -> bool:
        # no retries: redis-py retries timeouts 3 times with backoff by default, which turns a 2 s
        # probe of a hung server into half a minute
        client = redis_client.Redis(host=HOST, port=port, socket_timeout=timeout,
                                    socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))
        try:
            return bool(client.ping())
        except redis_client.RedisError:
            return False
        finally:
            client.close()

    def wait_ready(self, pid: int, ports: Mapping[str, int], deadline: float) -> None:
        while time.monotonic() < deadline:
            if not daemons.is_alive(pid):
                raise ServiceStartError(self.name, f"redis-server (pid {pid}) exited while starting",
                                        daemons.tail(self.log_path), str(self.log_path))
            if self._ping(ports["redis"], 1.0):
                return
            time.sleep(0.05)
        raise ServiceStartError(self.name, f"no PING reply from {url(ports['redis'])} in time",
                                daemons.tail(self.log_path), str(self.log_path))

    def healthy(self, ports: Mapping[str, int]) -> bool:
        return self._ping(ports["redis"], 2.0)
