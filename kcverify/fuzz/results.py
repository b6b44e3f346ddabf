"""The fuzzer's passes as the results model every reporter of `kcverify run` reads: one "scenario"
per operation and mode, holding one step (the pass: its cases and the statuses they got) whose
failures are the distinct findings, each with its curl line; the scenario's reproduce command runs
that pass again. The consumer passes are entries of the same kind: one per property, whose failure is
the shrunk case and whose reproduce command replays the scenario file written for it."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from kcverify.core.status import Status
from kcverify.evidence.results import Failure, RunResult, ScenarioResult, StepResult
from kcverify.fuzz.consumer import EventPassResult
from kcverify.fuzz.judge import OWN_CHECKS, rules_of
from kcverify.fuzz.runner import Finding, PassResult
from kcverify.fuzz.stateful import RULES as FLOW_RULES
from kcverify.fuzz.stateful import FlowPassResult


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
               paths: dict[str, str], reproduce: Sequence[str],
               events: Sequence[ScenarioResult] = ()) -> RunResult:
    """The HTTP passes, then the consumer passes (`events`, from `event_scenario_of`)."""
    return RunResult(target=target, seed=seed, started_at=started_at, duration=duration,
                     scenarios=(*(scenario_of(r, seed=seed, path=paths.get(r.service, ""), reproduce=reproduce)
                                  for r in results), *events))


# --- the consumer passes (consumer.py) ---------------------------------------------------------------------

def outcomes_text(result: EventPassResult) -> str:
    """'purchase x100, dead letter schema_violation x204' by count, largest first."""
    return ", ".join(f"{what} x{count}" for what, count in result.outcomes.most_common())


def event_scenario_of(result: EventPassResult, *, seed: int, path: str, reproduce: Sequence[str],
                      replay: Sequence[str]) -> ScenarioResult:
    """One consumer pass as one entry. Its reproduce command replays the shrunk failure's scenario file
    (`replay` + the file) when one was written, else runs the pass again (`reproduce` + its selection)."""
    prop = result.prop
    title = f"{result.cases} cases: {outcomes_text(result) or 'nothing observed'}"
    failures: tuple[Failure, ...] = ()
    if result.shrunk is not None:
        case = result.shrunk.case
        records = "; ".join(f"{d.label}" + (f" x{d.copies}" if d.copies > 1 else "") for d in case.drafts)
        message = "\n".join((*result.shrunk.messages, f"{'shrunk' if result.shrinks else 'failing'} case: {records}"))
        if result.scenario_file:
            message += f"\nscenario file: {result.scenario_file}"
        failures = (Failure(check="consumer", rules=prop.rules, message=message, step=1,
                            step_title=f"{prop.name}: {prop.summary}",
                            details={"operation": result.operation, "mode": result.mode, "property": prop.name,
                                     "records": [d.label for d in case.drafts],
                                     "scenario_file": result.scenario_file}),)
        title += f"; {result.failing_cases} failing ({'shrunk' if result.shrinks else 'as generated, not shrunk'})"
    skipped = result.error.startswith("skipped: ")
    status = Status.SKIPPED if skipped else Status.ERROR if result.error else \
        Status.FAILED if failures else Status.PASSED
    reason = result.error.removeprefix("skipped: ")
    step = StepResult(index=1, kind="fuzz", title=title, status=status, duration=result.duration, reason=reason,
                      failures=failures)
    command = shlex.join([*replay, result.scenario_file]) if result.scenario_file else \
        shlex.join([*reproduce, "--operations", result.operation, "--modes", result.mode])
    return ScenarioResult(name=f"{result.mode} {result.operation}: {prop.name}", path=path, title=title,
                          covers=prop.rules, tags=("fuzz", result.mode, "events"), status=status,
                          duration=result.duration, seed=seed, reproduce=command, steps=(step,), reason=reason)


# --- the flow pass (stateful.py) ---------------------------------------------------------------------------

def flow_outcomes_text(result: FlowPassResult) -> str:
    """'confirm 200 x47, purchase in the view (succeeded) x20' by count, largest first, zeros left out."""
    return ", ".join(f"{what} x{count}" for what, count in result.outcomes.most_common() if count)


def flow_scenario_of(result: FlowPassResult, *, seed: int, path: str, reproduce: Sequence[str]) -> ScenarioResult:
    """The flow pass as one entry: its failure is the shrunk sequence, with the steps it made and what broke;
    its reproduce command runs the pass again (the same seed draws the same sequences)."""
    title = f"{result.cases} sequences: {flow_outcomes_text(result) or 'nothing observed'}"
    failures: tuple[Failure, ...] = ()
    if result.messages:
        message = "\n".join((*result.messages, "shrunk sequence: " + "; ".join(result.steps)))
        failures = (Failure(check="flow", rules=FLOW_RULES, message=message, step=1,
                            step_title="stateful sequence: create, confirm (signed), settle, learning view",
                            details={"operation": result.operation, "mode": result.mode,
                                     "steps": list(result.steps), "messages": list(result.messages)}),)
        title += f"; {result.failing_cases} failing (shrunk)"
    status = Status.ERROR if result.error else Status.FAILED if failures else Status.PASSED
    step = StepResult(index=1, kind="fuzz", title=title, status=status, duration=result.duration,
                      reason=result.error, failures=failures)
    command = shlex.join([*reproduce, "--operations", result.operation, "--modes", result.mode])
    return ScenarioResult(name=f"{result.mode} {result.operation}: stateful sequences", path=path, title=title,
                          covers=FLOW_RULES, tags=("fuzz", result.mode, "flow"), status=status,
                          duration=result.duration, seed=seed, reproduce=command, steps=(step,), reason=result.error)
