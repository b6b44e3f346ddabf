"""The state directory and `stack.json`, the one file other commands read to reach the stack.

Layout (default `.kcverify/stack` under the current directory; `--state-dir`, $KCVERIFY_STATE_DIR):
    stack.json           connection settings, pids, ports, versions (written atomically)
    stack.lock           held while `up`/`down` run, so two of them never race
    postgres/            data/ and postgres.log (may be a symlink, see postgres.py)
    redis/               redis.log, redis.pid, working dir
    kafka/               data/, kafka.log, server.properties, log4j2.properties
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kcverify.stack.errors import StackError, StackNotRunning

STATE_FILE = "stack.json"
ENV_STATE_DIR = "KCVERIFY_STATE_DIR"
DEFAULT_STATE_DIR = Path(".kcverify") / "stack"


def resolve_state_dir(state_dir: str | os.PathLike[str] | None = None) -> Path:
    """The absolute state directory: the argument, else $KCVERIFY_STATE_DIR, else ./.kcverify/stack.
    Absolute, because services are started with other working directories."""
    chosen = state_dir or os.environ.get(ENV_STATE_DIR) or DEFAULT_STATE_DIR
    return Path(chosen).expanduser().absolute()


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """stack.json as a dict, or None when there is none."""
    path = state_dir / STATE_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StackError(f"{path} is not valid JSON ({exc}); remove it and run `kcverify stack up`") from exc
    if not isinstance(data, dict):
        raise StackError(f"{path} does not hold a JSON object; remove it and run `kcverify stack up`")
    return data


def write_state(state_dir: Path, state: dict[str, Any]) -> None:
    """Write stack.json atomically: a reader never sees half a file."""
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / f".{STATE_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, state_dir / STATE_FILE)


def load_settings(state_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The connection settings of a running stack (payments_dsn, courses_dsn, kafka_bootstrap,
    redis_url, pids, ports, started_at, ...). Raises StackNotRunning when it was never started or
    has been stopped. It does not probe the services: `kcverify stack status` does."""
    directory = resolve_state_dir(state_dir)
    state = read_state(directory)
    if state is None or not state.get("pids"):
        raise StackNotRunning(f"no running stack in {directory}; start one with `kcverify stack up`"
                              + (f" --state-dir {directory}" if state_dir else ""))
    return state


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the state directory (blocks while another up/down runs)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "stack.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
