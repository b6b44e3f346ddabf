"""Start and stop a local PostgreSQL, Redis and single-node Kafka (KRaft) for the real-stack target,
without Docker. `up()` writes the connection settings to <state_dir>/stack.json; other commands read
them with `load_settings()`. See docs/stack.md."""

from __future__ import annotations

from kcverify.stack.errors import PrerequisiteMissing, ServiceStartError, StackError, StackNotRunning
from kcverify.stack.kafka import DEFAULT_TOPICS
from kcverify.stack.lifecycle import DownResult, ServiceStatus, UpResult, down, prepare, status, up
from kcverify.stack.state import ENV_STATE_DIR, load_settings, resolve_state_dir

__all__ = [
    "DEFAULT_TOPICS",
    "ENV_STATE_DIR",
    "DownResult",
    "PrerequisiteMissing",
    "ServiceStartError",
    "ServiceStatus",
    "StackError",
    "StackNotRunning",
    "UpResult",
    "down",
    "load_settings",
    "prepare",
    "resolve_state_dir",
    "status",
    "up",
]
