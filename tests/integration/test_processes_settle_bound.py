"""The processes target honours `settle: {timeout}` in real seconds: with the broker refusing every
publish, a settle bounded to one second ends not quiet within a fraction of a second of its bound, and
the records this scenario injects are the ones the evidence leaves out (their broker offsets).

Runs on the session's shared stack (tests/integration/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kcverify.reference import domain
from kcverify.targets.base import INJECTED_HEADER
from kcverify.targets.processes import ProcessesTarget

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

OVERSHOOT = 0.75  # resume, one last look at the pending work, hold: well under a poll cycle or two


@pytest.fixture(scope="module")
def target(stack_dir: Path) -> Iterator[ProcessesTarget]:
    with ProcessesTarget.from_state(stack_dir) as processes:
        processes.start(seed=0)
        yield processes


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
