"""Start and stop a local PostgreSQL, Redis and single-node Kafka (KRaft) for the real-stack target,
without Docker. `up()` writes the connection settings to <state_dir>/stack.json; other commands read
them with `load_settings()`. See docs/stack.md.

The names below are imported on first use (PEP 562): the services' modules import psycopg and
confluent-kafka, and a module that needs only `kcverify.stack.network` (the processes target's
launcher, loaded to list the target) must not pay for them."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kcverify.stack.errors import PrerequisiteMissing, ServiceStartError, StackError, StackNotRunning
    from kcverify.stack.kafka import DEFAULT_TOPICS
    from kcverify.stack.lifecycle import DownResult, ServiceStatus, UpResult, down, prepare, status, up
    from kcverify.stack.state import ENV_STATE_DIR, load_settings, resolve_state_dir

_WHERE = {
    "PrerequisiteMissing": "errors", "ServiceStartError": "errors", "StackError": "errors",
    "StackNotRunning": "errors", "DEFAULT_TOPICS": "kafka", "DownResult": "lifecycle",
    "ServiceStatus": "lifecycle", "UpResult": "lifecycle", "down": "lifecycle", "prepare": "lifecycle",
    "status": "lifecycle", "up": "lifecycle", "ENV_STATE_DIR": "state", "load_settings": "state",
    "resolve_state_dir": "state",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
