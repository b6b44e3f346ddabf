"""Process helpers: start a service so that it outlives the `kcverify` command, tell whether a recorded
pid is still that service, and stop it (signal, wait, then SIGKILL).

Services are detached through a short-lived launcher process, so they are never children of the
process that called `up()` (a test run, say): a child that dies stays a zombie until its parent
reaps it, and a zombie still answers `kill(pid, 0)`. Zombies are also checked for explicitly,
because PID 1 in a container does not always reap orphans."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# Runs in the launcher process: start argv[2:] in a new session with output appended to argv[1],
# print its pid, exit. The service is then re-parented away from the caller.
_LAUNCHER = """
import subprocess, sys
with open(sys.argv[1], "ab") as log:
    p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True, close_fds=True)
print(p.pid)
"""


def spawn_detached(argv: Sequence[str], log_path: Path, cwd: Path,
                   env: Mapping[str, str] | None = None) -> int:
    """Start argv detached from the caller, stdout+stderr appended to log_path; return its pid."""
    out = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(log_path), *argv],
        cwd=cwd, env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise OSError(f"could not start {argv[0]}: {out.stderr.strip() or out.stdout.strip()}")
    return int(out.stdout.strip())


def _proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/<pid>/stat, or None when /proc cannot tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name is in parentheses and may contain spaces: the state follows the last ')'
    return stat.rsplit(")", 1)[-1].split()[0]


def is_alive(pid: int | None) -> bool:
    """True when pid names a running (not zombie) process."""
    if not pid or pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        # our own child that already exited: reap it, it is gone
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        if exc.errno == errno.EPERM:  # exists, owned by another user
            return _proc_state(pid) not in ("Z", "X")
        return False
    return _proc_state(pid) not in ("Z", "X")


def cmdline(pid: int) -> str | None:
    """The process's command line joined by spaces, or None when /proc is not available."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def is_service(pid: int | None, marker: str) -> bool:
    """True when pid is alive and its command line contains marker. Guards against pid reuse: after
    a reboot or a long time the recorded pid may belong to an unrelated process."""
    if pid is None or not is_alive(pid):
        return False
    line = cmdline(pid)
    return line is None or marker in line


def stop(pid: int, sig: signal.Signals = signal.SIGTERM, grace: float = 30.0) -> bool:
    """Send sig, wait up to grace seconds, then SIGKILL. Returns True if it stopped within grace."""
    if not is_alive(pid):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return False


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file ('' when it does not exist): errors quote it so the cause is on
    screen, not behind a path."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            data = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
