"""A consumer-fuzz case that raised once and passed when run again is an error that names what it
raised: the verdict is unknown, and the reader needs the exception to know why."""

from __future__ import annotations

from kcverify.fuzz.consumer import EventFuzzer, EventFuzzOptions
from kcverify.targets.base import Snapshot
from kcverify.targets.embedded import EmbeddedTarget


class _OnceBroken(EmbeddedTarget):
    """The first snapshot of the run fails, as a real target's read of its topics can time out once."""

    failed = False

    def snapshot(self) -> Snapshot:
        if not _OnceBroken.failed:
            _OnceBroken.failed = True
            raise TimeoutError("topics not read to their end in 10 s")
        return super().snapshot()


def test_a_case_that_raised_once_is_an_error_naming_the_exception() -> None:
    results = EventFuzzer(_OnceBroken(), EventFuzzOptions(max_examples=2, seed=1, modes=("positive",))).run()
    [result] = results
    assert "a failing case passed when run again" in result.error
    assert "raised TimeoutError: topics not read to their end in 10 s" in result.error
