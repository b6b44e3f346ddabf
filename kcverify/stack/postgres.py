"""A throwaway PostgreSQL server: initdb into the state directory, start with `pg_ctl -w`, trust
authentication on 127.0.0.1 only, no Unix socket, fsync off. Creates payments_db and courses_db.

Running as root: PostgreSQL refuses to run as root (initdb and postgres both exit), so when kcverify
runs as root the server runs as an unprivileged system user: $KCVERIFY_PG_USER if set, else `postgres`
(created by Debian's postgresql packages), else `nobody`. Its directory is chown'ed to that user. That
user must be able to reach the directory: when an ancestor is private (pytest's temporary root is
0700), the data lives in a 0700 directory under the system temp dir instead and
`<state>/postgres` is a symlink to it. When not root, everything runs as the current user."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg

from kcverify.stack import daemons
from kcverify.stack.errors import ServiceStartError, StackError
from kcverify.stack.network import HOST

DATABASES = ("payments_db", "courses_db")
SUPERUSER = "postgres"

# Speed over durability: the stack holds test data only.
_CONF = """
# --- kcverify stack: throwaway local server, loopback only, tuned for speed over durability ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 100
"""
_HBA = """# kcverify stack: trust on IPv4 loopback only; no Unix socket, no other address
host    all    all    127.0.0.1/32    trust
"""


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account PostgreSQL runs under when kcverify runs as root."""

    user: str
    uid: int
    gid: int


def run_as() -> RunAs | None:
    """None when not root (run directly); otherwise the account to drop to."""
    if os.geteuid() != 0:
        return None
    for name in (os.environ.get("KCVERIFY_PG_USER"), "postgres", "nobody"):
        if not name:
            continue
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        if pw.pw_uid != 0:
            return RunAs(name, pw.pw_uid, pw.pw_gid)
    raise StackError("running as root, but found no unprivileged user (postgres, nobody) to run "
                     "PostgreSQL as; create one (useradd --system postgres) or set KCVERIFY_PG_USER")


def dsn(port: int, database: str) -> str:
    return f"postgresql://{SUPERUSER}@{HOST}:{port}/{database}"


def _chown_tree(path: Path, who: RunAs) -> None:
    os.chown(path, who.uid, who.gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), who.uid, who.gid)


class PostgresService:
    """See the module docstring."""

    name = "postgres"
    port_names: tuple[str, ...] = ("postgres",)
    # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM ("smart") waits for every client to disconnect.
    stop_signal = signal.SIGINT
    stop_grace = 30.0

    def __init__(self, state_dir: Path, bindir: Path | None = None, version: str | None = None) -> None:
        self.state_dir = state_dir
        self.bindir = bindir
        self.major = version.split(".")[0] if version else None
        self.who = run_as()

    # --- paths ---------------------------------------------------------------------------------
    @property
    def link(self) -> Path:
        return self.state_dir / "postgres"

    @property
    def home(self) -> Path:
        """The real directory (resolved through the symlink, if any)."""
        return self.link.resolve()

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_path(self) -> Path:
        return self.home / "postgres.log"

    def _tool(self, name: str) -> str:
        if self.bindir is None:
            raise StackError("PostgreSQL binaries were not located")  # lifecycle checks first
        return str(self.bindir / name)

    def marker(self, ports: Mapping[str, int]) -> str:
        return str(self.data_dir)

    # --- running commands as the right user ---------------------------------------------------
    def _run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        who = self.who
        return subprocess.run(argv, cwd=self.home, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL,
                              user=who.uid if who else None, group=who.gid if who else None,
                              extra_groups=[] if who else None)

    def _can_write(self, path: Path) -> bool:
        if self.who is None:
            return os.access(path, os.W_OK | os.X_OK)
        probe = subprocess.run(["test", "-w", str(path), "-a", "-x", str(path)], check=False,
                               user=self.who.uid, group=self.who.gid, extra_groups=[])
        return probe.returncode == 0

    def _ensure_home(self) -> None:
        """Create <state>/postgres, owned by the run-as user and reachable by it (see module doc)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.link.is_symlink():
            target = self.link.resolve()
            target.mkdir(mode=0o700, parents=True, exist_ok=True)
        else:
            self.link.mkdir(exist_ok=True)
        if self.who is None:
            return
        os.chown(self.home, self.who.uid, self.who.gid)
        if self._can_write(self.home):
            return
        if self.link.is_symlink():
            raise StackError(f"user {self.who.user} cannot write {self.home}")
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
        fallback = Path(tempfile.gettempdir()) / f"kcverify-pg-{digest}"
        fallback.mkdir(mode=0o700, exist_ok=True)
        os.chown(fallback, self.who.uid, self.who.gid)
        if not self._can_write(fallback):
            raise StackError(f"user {self.who.user} can write neither {self.link} nor {fallback}")
        shutil.rmtree(self.link)
        self.link.symlink_to(fallback, target_is_directory=True)

    # --- lifecycle ----------------------------------------------------------------------------
    def has_valid_data(self) -> bool:
        version_file = self.data_dir / "PG_VERSION"
        if not version_file.exists() or not (self.data_dir / "global" / "pg_control").exists():
            return False
        # a data directory from another major version cannot be opened: start fresh instead
        return self.major is None or version_file.read_text().strip() == self.major

    def reset(self) -> None:
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)

    def prepare(self) -> None:
        self._ensure_home()
        if self.has_valid_data():
            if self.who is not None and self.data_dir.stat().st_uid != self.who.uid:
                _chown_tree(self.data_dir, self.who)  # made by another user: postgres would refuse it
            return
        self.reset()
        out = self._run([self._tool("initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, "-A", "trust",
                         "-E", "UTF8", "--no-locale", "--no-sync"], timeout=300)
        if out.returncode != 0:
            raise ServiceStartError(self.name, f"initdb failed (exit {out.returncode})",
                                    (out.stdout + out.stderr)[-3000:], "initdb output")
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(_CONF)
        (self.data_dir / "pg_hba.conf").write_text(_HBA)

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            return int(first)
        except (OSError, IndexError, ValueError):
            return None

    def launch(self, ports: Mapping[str, int], timeout: float) -> int:
        port = ports["postgres"]
        self.log_path.touch()
        if self.who is not None:
            os.chown(self.log_path, self.who.uid, self.who.gid)
        argv = [self._tool("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path), "-w",
                "-t", str(max(1, int(timeout))), "-o", f"-p {port}", "start"]
        try:
            out = self._run(argv, timeout=timeout + 10)
        except subprocess.TimeoutExpired:
            out = None
        pid = self._postmaster_pid()
        if out is None or out.returncode != 0 or pid is None:
            if pid is not None:
                daemons.stop(pid, self.stop_signal, grace=10)
            reason = "pg_ctl start timed out" if out is None else f"pg_ctl start failed (exit {out.returncode})"
            detail = "" if out is None else (out.stdout + out.stderr).strip()
            raise ServiceStartError(self.name, f"{reason}; {detail}".rstrip("; "),
                                    daemons.tail(self.log_path), str(self.log_path))
        return pid

    def _connect(self, port: int, database: str = "postgres", timeout: int = 3) -> psycopg.Connection[
            tuple[object, ...]]:
        return psycopg.connect(dsn(port, database), connect_timeout=timeout, autocommit=True)

    def wait_ready(self, pid: int, ports: Mapping[str, int], deadline: float) -> None:
        port = ports["postgres"]
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not daemons.is_alive(pid):
                raise ServiceStartError(self.name, f"postgres (pid {pid}) exited while starting",
                                        daemons.tail(self.log_path), str(self.log_path))
            try:
                with self._connect(port) as conn:
                    existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
                    for database in DATABASES:
                        if database not in existing:
                            conn.execute(f'CREATE DATABASE "{database}"')
                return
            except psycopg.Error as exc:
                last = exc
                time.sleep(0.2)
        raise ServiceStartError(self.name, f"no connection to {dsn(port, 'postgres')} in time ({last})",
                                daemons.tail(self.log_path), str(self.log_path))

    def healthy(self, ports: Mapping[str, int]) -> bool:
        with contextlib.suppress(psycopg.Error), self._connect(ports["postgres"], DATABASES[0]) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
        return False
