"""The runner: steps -> evidence -> checks -> results, emitted as events. It never prints.

Per scenario: a fresh system on the target; each step is carried out and followed by a snapshot and
the checks' `after_step`; then a final settle, a final read of every involved student's learning view
(the last hop of the metadata check, and the last chance for a stale view to show), and the checks'
`finish`. A scenario that needs a capability the target lacks is skipped with the reason.

What happens to the target outside the steps: a component process killed from outside by no step of
the scenario (the target's `incidents()`) ends the scenario as ERROR, its verdict unknown; one that ended
by itself fails the step it was seen in (the system's own failure) and ends the scenario there; a target
whose infrastructure is gone (TargetUnreachable) stops the whole run, exit 2."""

from __future__ import annotations

import shlex
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from kcverify.core.errors import TargetUnreachable
from kcverify.core.status import Status
from kcverify.engine import steps as step_kinds
from kcverify.evidence.events import (
    CheckFinished,
    Event,
    Handler,
    RunFinished,
    RunStarted,
    ScenarioFinished,
    ScenarioStarted,
    StepFinished,
)
from kcverify.evidence.evidence import Evidence, Exchange, Settle
from kcverify.evidence.results import COMPONENT_DIED, CheckResult, Failure, RunResult, ScenarioResult, StepResult
from kcverify.scenario.model import RESPONSE_STEPS, Scenario
from kcverify.spec.policy import SPEC_CONVENTIONS, Conventions
from kcverify.targets.base import Incident, Target


@dataclass
class RunOptions:
    seed: int = 0
    fail_fast: bool = False
    # What the checks judge by where the rules leave room for configuration: the spec's defaults; later a
    # user's profile's declared conventions. Never the target's own settings.
    conventions: Conventions = SPEC_CONVENTIONS
    target_name: str = "embedded"
    # Words the reproduce line needs to build the same target (e.g. `--defect NAME`): the caller built it.
    extra_reproduce: tuple[str, ...] = field(default_factory=tuple)


class CheckInstance(Protocol):
    def after_step(self, step: int) -> None: ...

    def finish(self) -> None: ...

    def result(self) -> CheckResult: ...


class CheckType(Protocol):
    """What the Runner needs of a check class (kcverify.checks.Check is one): its name, the rules it
    judges, the capabilities it needs, and an instance per scenario built on that scenario's evidence."""

    @property
    def name(self) -> str: ...

    @property
    def rules(self) -> tuple[str, ...]: ...

    @property
    def needs(self) -> frozenset[str]: ...

    def __call__(self, evidence: Evidence) -> CheckInstance: ...


class Runner:
    """Runs the checks it is given (e.g. `kcverify.checks.select()`); it knows no check by name."""

    def __init__(self, target: Target, handlers: Sequence[Handler] = (), options: RunOptions | None = None, *,
                 checks: Sequence[CheckType]) -> None:
        self.target = target
        self.handlers = list(handlers)
        self.options = options or RunOptions()
        self.checks = tuple(checks)

    def emit(self, event: Event) -> None:
        for handler in self.handlers:
            handler.handle(event)

    def run(self, scenarios: Sequence[Scenario]) -> RunResult:
        started = time.time()
        self.emit(RunStarted(self.options.target_name, self.options.seed, len(scenarios)))
        results: list[ScenarioResult] = []
        try:
            for index, scenario in enumerate(scenarios, start=1):
                self.emit(ScenarioStarted(scenario.name, scenario.path, index, len(scenarios)))
                try:
                    result = self.run_scenario(scenario)
                except TargetUnreachable as exc:
                    raise TargetUnreachable(f"{exc} (the run stopped early, in scenario {index} of "
                                            f"{len(scenarios)}: {scenario.name})") from exc
                results.append(result)
                self.emit(ScenarioFinished(result))
                if self.options.fail_fast and result.status in (Status.FAILED, Status.ERROR):
                    break
        finally:
            # A target that holds resources across scenarios (the stack target's processes) frees them
            # once, here; `close` is optional in the Target protocol.
            close = getattr(self.target, "close", None)
            if callable(close):
                close()
        run = RunResult(self.options.target_name, self.options.seed, started, time.time() - started, tuple(results))
        self.emit(RunFinished(run))
        return run

    def reproduce(self, scenario: Scenario) -> str:
        words = ["kcverify", "run", scenario.path, "--seed", str(self.options.seed)]
        if self.options.target_name != "embedded":
            words += ["--target", self.options.target_name]
        words += list(self.options.extra_reproduce)
        return shlex.join(words)

    def run_scenario(self, scenario: Scenario) -> ScenarioResult:
        started = time.perf_counter()
        info = self.target.info

        def finished(status: Status, steps: tuple[StepResult, ...] = (), checks: tuple[CheckResult, ...] = (),
                     reason: str = "") -> ScenarioResult:
            return ScenarioResult(scenario.name, scenario.path, scenario.title, scenario.covers, scenario.tags, status,
                                  time.perf_counter() - started, self.options.seed, self.reproduce(scenario),
                                  steps, checks, reason)

        missing = sorted(set(scenario.capabilities_needed()) - info.capabilities)
        if missing:
            return finished(Status.SKIPPED, reason=f"needs {', '.join(missing)} (target {info.name} lacks it)")
        bound = scenario.freshness_bound if scenario.freshness_bound is not None else info.freshness_bound
        evidence = Evidence(info, bound, conventions=self.options.conventions)
        for i, step in enumerate(scenario.steps, start=1):
            evidence.step_titles[i] = step_kinds.title(step)
            evidence.step_actions[i] = (step.kind, dict(step.args))
        evidence.step_titles[len(scenario.steps) + 1] = "final settle and reads"
        active = [check(evidence) for check in self.checks if not (check.needs - info.capabilities)]
        inactive = [CheckResult(check.name, check.rules, Status.SKIPPED,
                                f"needs {', '.join(sorted(check.needs - info.capabilities))}")
                    for check in self.checks if check.needs - info.capabilities]
        ctx = step_kinds.Context(self.target, evidence, seed=self.options.seed, scenario=scenario.name)
        step_results: list[StepResult] = []
        try:
            self.target.start(seed=self.options.seed)
        except TargetUnreachable:
            raise
        except Exception as exc:
            return finished(Status.ERROR, reason=f"target {info.name} did not start: {exc}")
        error = ""
        died: list[Failure] = []  # components that ended by themselves: the system's own failure
        unattached: list[Failure] = []  # of those, the ones seen after their step's result was made
        try:
            for i in range(1, len(scenario.steps) + 1):
                result = self._run_step(ctx, scenario, i, active)
                incident, own = self._incidents(f"step {i}", i, result.title)
                if incident:
                    result = replace(result, status=Status.ERROR, reason=incident)
                elif own:
                    result = replace(result, status=Status.FAILED, failures=result.failures + own)
                step_results.append(result)
                self.emit(StepFinished(scenario.name, result))
                if result.status == Status.ERROR:
                    error = incident or f"step {i} ({result.title}): {result.reason}"
                    break
                if own:  # what follows would judge a restarted component: the death is the verdict
                    died = list(own)
                    break
            if not error and not died:
                final = len(scenario.steps) + 1
                self._final(ctx, final)
                error, own = self._incidents("the final settle and reads", final, "final settle and reads")
                died = unattached = list(own)
                if not error and not died:
                    for check in active:
                        check.finish()
        except TargetUnreachable:
            raise
        except Exception as exc:
            # a step that broke because a process died under it: the death is the news, not the symptom
            error, own = self._incidents(f"step {ctx.step}", ctx.step, evidence.step_titles.get(ctx.step, ""))
            died = unattached = list(own)
            if not error and not died:
                error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
        finally:
            self.target.stop()
        check_results = tuple(c.result() for c in active) + tuple(inactive)
        for check_result in check_results:
            self.emit(CheckFinished(scenario.name, check_result))
        if unattached and not error:
            emitted = {r.index for r in step_results}
            step_results = _with_failures(step_results, scenario, unattached)
            for result in step_results:
                if result.index not in emitted:  # the step that raised: reporters learn of it as of any step
                    self.emit(StepFinished(scenario.name, result))
        step_results = _mark_steps(step_results, check_results)
        if error:
            return finished(Status.ERROR, tuple(step_results), check_results, error)
        failed = any(s.status == Status.FAILED for s in step_results) or any(
            c.status == Status.FAILED for c in check_results)
        return finished(Status.FAILED if failed else Status.PASSED, tuple(step_results), check_results)

    def _incidents(self, where: str, step: int, title: str) -> tuple[str, tuple[Failure, ...]]:
        """What the target reports happened outside the scenario's steps, seen by the end of `where`
        (step number `step`, titled `title`): the error text of those killed from outside ("" when none,
        or when the target does not watch): "the purchase-worker process exited (signal 9) during step
        3; restarted"; and a failure for each component that ended by itself."""
        incidents = getattr(self.target, "incidents", None)
        found: list[Incident] = incidents() if callable(incidents) else []

        def told(i: Incident) -> str:
            return f"{i.what} during {where}" + (f"; {i.action}" if i.action else "")

        # killed from outside, the verdict is unknown: own deaths seen with it are told in the same error
        error = "; ".join(told(i) for i in found) if any(not i.own for i in found) else ""
        own = () if error else tuple(
            Failure(COMPONENT_DIED, ("I3",), f"{told(i)}. No step of the scenario stopped or killed it: a component "
                    "must answer what it cannot handle (a problem response, a dead letter) and keep going",
                    step=step, step_title=title or None, source="step")
            for i in found if i.own)
        return error, own

    def _run_step(self, ctx: step_kinds.Context, scenario: Scenario, index: int,
                  checks: list[CheckInstance]) -> StepResult:
        step = scenario.steps[index - 1]
        ctx.step = index
        ctx.failures = []
        t0 = time.perf_counter()
        title = ctx.evidence.step_titles.get(index) or step_kinds.title(step)
        try:
            step_kinds.STEPS[step.kind](ctx, step)
            if step.expect and step.kind not in RESPONSE_STEPS:
                step_kinds.assert_state(ctx, step.expect)
            ctx.evidence.snapshots.append((index, self.target.snapshot()))
            for check in checks:
                check.after_step(index)
        except step_kinds.StepError as exc:
            return StepResult(index, step.kind, title, Status.ERROR, time.perf_counter() - t0, step.line, str(exc))
        status = Status.FAILED if ctx.failures else Status.PASSED
        return StepResult(index, step.kind, title, status, time.perf_counter() - t0, step.line,
                          failures=tuple(ctx.failures))

    def _final(self, ctx: step_kinds.Context, index: int) -> None:
        """The final settle, then one read per involved student, as that student."""
        ctx.step = index
        started = self.target.now()
        quiet = self.target.settle(None)
        ctx.evidence.settles.append(Settle(index, started, self.target.now(), quiet, ctx.evidence.tick()))
        for student in sorted({p.student for p in ctx.evidence.payments.values()}):
            path = f"/api/v1/students/{student}/learning"
            headers = {"Authorization": "Bearer " + self.target.token(student, "student")}
            t0, seq = self.target.now(), ctx.evidence.tick()
            reply = self.target.http("student-service", "GET", path, headers=headers)
            ctx.evidence.exchanges.append(Exchange(0, "probe", "student-service", "GET", path, b"", t0,
                                                   self.target.now(), reply, student, seq, (student, "student"),
                                                   cache=step_kinds.observe_cache(self.target, student, reply),
                                                   shown=step_kinds.observe_display(self.target, reply)))
        ctx.evidence.snapshots.append((index, self.target.snapshot()))


def _with_failures(steps: list[StepResult], scenario: Scenario, failures: list[Failure]) -> list[StepResult]:
    """Failures seen after the step results were made (in the final settle, or under a step that raised),
    told on the step they name; the final settle's on the last step."""
    out = list(steps)
    index = failures[0].step
    for n, step in enumerate(out):
        if step.index == index:
            out[n] = replace(step, status=Status.FAILED, failures=step.failures + tuple(failures))
            return out
    if index is not None and 1 <= index <= len(scenario.steps):  # the step that raised: no result yet
        step_def = scenario.steps[index - 1]
        out.append(StepResult(index, step_def.kind, failures[0].step_title or step_def.kind, Status.FAILED, 0.0,
                              step_def.line, failures=tuple(failures)))
    elif out:
        out[-1] = replace(out[-1], status=Status.FAILED, failures=out[-1].failures + tuple(failures))
    return out


def _mark_steps(steps: list[StepResult], checks: tuple[CheckResult, ...]) -> list[StepResult]:
    """A step where a check first saw a problem is marked failed too, so reports point at it."""
    by_step: dict[int, list[Failure]] = {}
    for check in checks:
        for failure in check.failures:
            if failure.step is not None:
                by_step.setdefault(failure.step, []).append(failure)
    out = []
    for step in steps:
        if step.index in by_step and step.status == Status.PASSED:
            step = StepResult(step.index, step.kind, step.title, Status.FAILED, step.duration, step.line, step.reason,
                              step.failures)
        out.append(step)
    return out
