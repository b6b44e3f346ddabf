"""One local stack (PostgreSQL, Kafka, Redis) for the integration tests that only use it: started once per
session instead of once per module (each start and purge costs seconds of a CI run). Every test
namespaces what it makes (student-id prefixes, fresh topic names), so they share it the way a team's
tests share one environment. Tests that break the stack itself (killing the broker, the stack's own
lifecycle) keep a stack of their own.

$KCVERIFY_STATE_DIR, when set, names a stack that is already running; it is used and left running."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kcverify import stack


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The state directory of a running stack: $KCVERIFY_STATE_DIR's, or one started here and purged at
    the end of the session."""
    given = os.environ.get(stack.ENV_STATE_DIR)
    if given:
        yield Path(given)
        return
    directory = tmp_path_factory.mktemp("stack") / "state"
    try:
        stack.up(directory, timeout=180)
        yield directory
    finally:
        stack.down(directory, purge=True)
