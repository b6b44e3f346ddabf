"""The processes target honours `settle: {timeout}` in real seconds: with the broker refusing every
publish, a settle bounded to one second ends not quiet within a fraction of a second of its bound, and
the records this scenario injects are the ones the evidence leaves out (their broker offsets).

Uses the stack in $KCVERIFY_STATE_DIR when that is set; otherwise brings one up in a temporary
directory (and down at the end)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kcverify import stack
from kcverify.reference import domain
from kcverify.targets.base import INJECTED_HEADER
from kcverify.targets.processes import ProcessesTarget

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

OVERSHOOT = 0.75  # resume, one last look at the pending work, hold: well under a poll cycle or two


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessesTarget]:
    given = os.environ.get(stack.ENV_STATE_DIR)
    directory = Path(given) if given else tmp_path_factory.mktemp("settle-bound") / "state"
    if not given:
        stack.up(directory, timeout=180)
    try:
        with ProcessesTarget.from_state(directory) as processes:
            processes.start(seed=0)
            yield processes
    finally:
        if not given:
            stack.down(directory, purge=True)


def test_a_stuck_settle_ends_at_its_timeout(target: ProcessesTarget) -> None:
    student = target.student_id("s1")
    target.publish(domain.TOPIC_CONFIRMED, student, b"{not json")  # work for the worker: a dead letter
    target.fail("bus", 1_000, "publish")  # ... which the broker refuses, over and over
    started = time.monotonic()
    quiet = target.settle(1.0)
    took = time.monotonic() - started
    assert quiet is False and target.last_settle_pending
    assert 1.0 <= took <= 1.0 + OVERSHOOT, took


def test_publish_returns_where_the_record_landed_and_marks_it(target: ProcessesTarget) -> None:
    student = target.student_id("s2")
    produced = target.publish(domain.TOPIC_CONFIRMED, student, b"{}", ((INJECTED_HEADER, "step-1-copy-1"),))
    records = target.snapshot().topics[domain.TOPIC_CONFIRMED]
    [record] = [r for r in records if (r.partition, r.offset) == (produced.partition, produced.offset)]
    assert record.key == student and record.value == b"{}"
    assert (INJECTED_HEADER, "step-1-copy-1") in record.headers
