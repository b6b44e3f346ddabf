"""The fuzzer's passes as the results model every reporter of `kcverify run` reads: one "scenario"
per operation and mode, holding one step (the pass: its cases and the statuses they got) whose
failures are the distinct findings, each with its curl line; the scenario's reproduce command runs
that pass again."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from kcverify.core.status import Status
from kcverify.evidence.results import Failure, RunResult, ScenarioResult, StepResult
from kcverify.fuzz.judge import OWN_CHECKS, rules_of
from kcverify.fuzz.runner import Finding, PassResult


def statuses_text(result: PassResult) -> str:
    """'201 x657, 422 x138' in status order."""
    return ", ".join(f"{status} x{count}" for status, count in sorted(result.statuses.items()))


def failure_of(finding: Finding, result: PassResult) -> Failure:
    answered = "no answer" if finding.status is None else f"answered {finding.status}"
    message = f"{finding.title}\n{finding.message.strip()}\ncurl: {finding.curl}"
    return Failure(check=finding.check, rules=finding.rules or rules_of(finding.check), message=message, step=1,
                   step_title=f"case {finding.case} of {result.cases}, {answered}",
                   details={"operation": finding.operation, "mode": finding.mode, "status": finding.status,
                            "curl": finding.curl, "case": finding.case})


def scenario_of(result: PassResult, *, seed: int, path: str, reproduce: Sequence[str]) -> ScenarioResult:
    failures = tuple(failure_of(f, result) for f in result.findings)
    status = Status.ERROR if result.error else Status.FAILED if failures else Status.PASSED
    title = f"{result.cases} cases: {statuses_text(result) or 'no answer'}"
    if result.failing_cases:
        title += f"; {result.failing_cases} failing"
    step = StepResult(index=1, kind="fuzz", title=title, status=status, duration=result.duration,
                      reason=result.error, failures=failures)
    command = shlex.join([*reproduce, "--operations", result.operation, "--modes", result.mode])
    rules = tuple(sorted({r for check in (*OWN_CHECKS, "ignored_auth", "status_code_conformance")
                          for r in rules_of(check)}))
    return ScenarioResult(name=f"{result.mode} {result.operation}", path=path, title=title, covers=rules,
                          tags=("fuzz", result.mode, result.service), status=status, duration=result.duration,
                          seed=seed, reproduce=command, steps=(step,), reason=result.error)


def run_result(results: Sequence[PassResult], *, target: str, seed: int, started_at: float, duration: float,
               paths: dict[str, str], reproduce: Sequence[str]) -> RunResult:
    return RunResult(target=target, seed=seed, started_at=started_at, duration=duration,
                     scenarios=tuple(scenario_of(r, seed=seed, path=paths.get(r.service, ""), reproduce=reproduce)
                                     for r in results))
