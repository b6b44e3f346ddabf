"""A component process of the processes target binds port 0 and reports where it listens; the launcher
reads that, so no port is chosen free by one process and bound later by another (the race that made a
component exit with status 2 under load)."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from kcverify.reference.component_process import write_ports_file
from kcverify.targets.processes.launcher import BY_NAME, ManagedProcess, ProcessFailed

# A stand-in for `kcverify serve`: binds port 0 for its control endpoint (and its service), reports the
# ports with the real write_ports_file, and answers GET /health on both.
CHILD = """
import http.server, socket, sys, threading
from pathlib import Path
from kcverify.reference.component_process import write_ports_file

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *args):
        pass

servers = [http.server.HTTPServer(("127.0.0.1", 0), Health) for _ in range(int(sys.argv[2]))]
for server in servers:
    threading.Thread(target=server.serve_forever, daemon=True).start()
control = servers[0].socket
service = servers[1].socket if len(servers) > 1 else None
write_ports_file(Path(sys.argv[1]), service, control)
threading.Event().wait()
"""


class _Stand_in(ManagedProcess):
    def command(self) -> list[str]:
        return [sys.executable, "-c", CHILD, str(self.ports_file), "2" if self.spec.service else "1"]


def _process(tmp_path: Path, name: str) -> ManagedProcess:
    return _Stand_in(BY_NAME[name], tmp_path, tmp_path, tmp_path / "faults.json", httpx.Client())


def test_the_launcher_asks_for_port_0_and_a_ports_file(tmp_path: Path) -> None:
    process = ManagedProcess(BY_NAME["payment"], tmp_path, tmp_path, tmp_path / "faults.json", httpx.Client())
    command = process.command()
    assert command[command.index("--control-port") + 1] == "0"
    assert command[command.index("--port") + 1] == "0"
    assert command[command.index("--ports-file") + 1] == str(process.ports_file)
    assert process.service_port is None and process.control_port is None  # nothing chosen in advance


@pytest.mark.parametrize("name", ["payment", "payment-relay"])
def test_wait_ready_learns_the_ports_the_child_bound(tmp_path: Path, name: str) -> None:
    process = _process(tmp_path, name)
    try:
        process.spawn(frozenset())
        process.wait_ready(time.monotonic() + 30)
        assert process.control_port is not None
        assert httpx.get(f"{process.control_url}/health").status_code == 200
        if process.spec.service:
            assert process.service_port not in (None, process.control_port)
            assert httpx.get(f"{process.service_url}/health").status_code == 200
        first = process.control_port
        process.kill()
        process.spawn(frozenset())  # a restart listens where its own ports file says, not the old one's
        process.wait_ready(time.monotonic() + 30)
        assert process.control_port is not None
        assert httpx.get(f"{process.control_url}/health").status_code == 200
        assert first is not None
    finally:
        process.kill()


def test_a_ports_file_left_by_an_earlier_start_is_not_read_as_this_ones(tmp_path: Path) -> None:
    import json

    class _Quiet(ManagedProcess):  # a start that has not reported yet
        def command(self) -> list[str]:
            return [sys.executable, "-c", "import time; time.sleep(30)"]

    process = _Quiet(BY_NAME["payment-relay"], tmp_path, tmp_path, tmp_path / "faults.json", httpx.Client())
    process.ports_file.write_text(json.dumps({"service": None, "control": 1, "pid": 1}))
    try:
        process.spawn(frozenset())
        assert not process.ports_file.exists()  # a new start removes what the last one reported
        process.ports_file.write_text(json.dumps({"service": None, "control": 1, "pid": 1}))  # not this start's
        assert not process._read_ports() and process.control_port is None
        assert process.popen is not None
        process.ports_file.write_text(json.dumps({"service": None, "control": 4242, "pid": process.popen.pid}))
        assert process._read_ports() and process.control_url.endswith(":4242")
    finally:
        process.kill()


def test_a_child_that_exits_before_reporting_its_ports_is_reported(tmp_path: Path) -> None:
    class _Dies(ManagedProcess):
        def command(self) -> list[str]:
            return [sys.executable, "-c", "raise SystemExit(2)"]

    process = _Dies(BY_NAME["payment-relay"], tmp_path, tmp_path, tmp_path / "faults.json", httpx.Client())
    process.spawn(frozenset())
    with pytest.raises(ProcessFailed, match="exited with status 2 while starting"):
        process.wait_ready(time.monotonic() + 30)


def test_write_ports_file_names_the_bound_ports_and_the_writer(tmp_path: Path) -> None:
    import json
    import os

    with socket.socket() as control:
        control.bind(("127.0.0.1", 0))
        path = tmp_path / "ports.json"
        write_ports_file(path, None, control)
        assert json.loads(path.read_text()) == {"service": None, "control": control.getsockname()[1],
                                                "pid": os.getpid()}
        assert [p.name for p in tmp_path.iterdir()] == ["ports.json"]  # no temporary left behind
