"""The contract fuzz of test_api_fuzz.py at depth: at least THOUSAND generated cases per operation and
pass (positive and negative), through `kcverify fuzz`'s package against the embedded reference, with 0
mismatches between contract and service. A file of its own because it takes minutes
(docs/measurements.md, docs/fuzz.md): test_api_fuzz.py is the quick pass of the edit loop, this one the
depth the suite promises (`make deep`).

The contract's own formats: `metadata.timezone` is an enum of IANA zone names, so generated bodies are
valid for the service without a custom generator."""

from __future__ import annotations

import pytest

from kcverify.contracts import openapi_path
from kcverify.contracts.openapi import SERVICES
from kcverify.fuzz.runner import Fuzzer, FuzzOptions, PassResult, ServiceDocument
from kcverify.targets.embedded import EmbeddedTarget

# minutes of CPU: a measurement (`make deep`), not part of the test command.
pytestmark = pytest.mark.deep

THOUSAND = 1000


@pytest.fixture(scope="module")
def passes() -> list[PassResult]:
    target = EmbeddedTarget()
    target.start(seed=0)
    try:
        documents = [ServiceDocument(service, openapi_path(service)) for service in SERVICES]
        return Fuzzer(target, documents, FuzzOptions(max_examples=THOUSAND)).run()
    finally:
        target.stop()


def test_a_thousand_cases_per_operation_and_pass_without_a_mismatch(passes: list[PassResult]) -> None:
    broken = [(p.mode, p.operation, f.check, f.title, f.curl) for p in passes for f in p.findings]
    assert broken == [], broken
    assert all(not p.error for p in passes), [p.error for p in passes]
    for result in passes:
        if result.operation != "GET /health":  # no input at all: one request to make, nothing to negate
            assert result.cases >= THOUSAND, (result.mode, result.operation, result.cases)
    print("\n" + "\n".join(f"{p.mode:8} {p.operation:55} {p.cases} cases" for p in passes))
