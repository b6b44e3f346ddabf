"""Deterministic simulation: search schedules of the flow for one that breaks a check, then shrink it.

A *schedule* is an ordinary scenario (see `program.py`) run by the ordinary Runner on the embedded
target: one process, a manual clock, seeded ids, no threads and no wall clock, so a schedule's whole
history (every HTTP exchange, every record, every trace, every verdict) is a function of its steps.
A generator seeded by `--seed` draws the programs (program.random_program), so one seed decides every
schedule tried, in order, and therefore the finding, its shrinking and the file written. The built-in checks
are the oracle: their `after_step` judges each step, and the final settle lets the eventual ones (I1-I3,
S3 freshness) judge the end state, exactly as `kcverify run` does for a hand-written scenario.

When a schedule fails, shrink.py shrinks its program (deleting and simplifying actions) while it still
fails *with the same check*; with `--defect` a candidate must also pass on the reference without the
defect, so a finding is always the defect's doing. A last pass deletes single steps and repetitions of
the compiled scenario and renames what is left. The result is written as a scenario file, loaded back
through the loader and replayed by a fresh Runner to prove it reproduces."""

from __future__ import annotations

import hashlib
import random
import re
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from kcverify.checks import REGISTRY, select
from kcverify.core import interrupt
from kcverify.core.status import Status
from kcverify.engine.runner import Runner, RunOptions
from kcverify.evidence.results import Failure, ScenarioResult
from kcverify.explore import program as prog
from kcverify.explore.canonical import canonical
from kcverify.explore.scenario_file import render, step_lines
from kcverify.explore.shrink import shrink_program, shrink_steps
from kcverify.scenario.loader import load_scenario
from kcverify.targets.base import Target

# The system's own seed (its ids). Fixed, so that `kcverify run FILE` (seed 0 by default) replays a
# finding byte for byte; `--seed` steers the search, which is what varies between explorations.
RUN_SEED = 0
DEFAULT_BUDGET_SECONDS = 60.0
DEFAULT_MAX_STEPS = 10
DEFAULT_SHRINK_SECONDS = 30.0
# Draws in a row that only repeat schedules already run end the search: the space is exhausted (only
# small --max-steps can get there).
MAX_REPEATED_DRAWS = 10_000
RULE_ID = re.compile(r"^(P[1-5]|W[1-8]|S[1-5]|F[1-2]|I[1-4])$")
RULE_ORDER = "PWSFI"


class ObservingTarget(Target, Protocol):
    """The target a search runs schedules on: a deterministic system (one process, manual clock, seeded
    ids) that also keeps what each schedule observed, for the history digest and the coverage table."""

    evidence: Any  # a running hashlib digest of everything the schedule observed
    fired: list[tuple[str, str]]  # (component, crash point) of every crash
    injected: Counter[str]  # "resource.op" -> calls that failed
    left_down: frozenset[str]  # components down after the final settle

    def reset(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ExploreTargets:
    """Where an exploration runs: `search` makes the observing target schedules run on; `replay` a plain
    target for the written finding's replay, as `kcverify run` would reach the system. The CLI wires
    the embedded reference in; the explorer never builds a system itself."""

    search: Callable[[frozenset[str]], ObservingTarget]  # built with these named defects switched on
    replay: Callable[[frozenset[str]], Target]


@dataclass(frozen=True)
class Budget:
    """How long to search: seconds of wall time, or a number of schedules (deterministic)."""

    seconds: float | None = None
    schedules: int | None = None

    @staticmethod
    def parse(text: str) -> Budget:
        """`60s`, `2m`, `1h` or `1.5m` are a time; a bare integer is a number of schedules."""
        value = text.strip().lower()
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|h)", value)
        if match:
            seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]
            if seconds <= 0:
                raise ValueError("a time budget must be more than 0 s")
            return Budget(seconds=seconds)
        if value.isdigit() and int(value) > 0:
            return Budget(schedules=int(value))
        raise ValueError(f"budget {text!r} is neither a time (60s, 2m) nor a number of schedules (500)")

    def __str__(self) -> str:
        if self.schedules is not None:
            return f"{self.schedules} schedules"
        return f"{self.seconds:g} s"

    def spent(self, schedules: int, seconds: float) -> float:
        """The share of the budget used after `schedules` in `seconds`, 0..1 (the search stops at 1)."""
        if self.schedules is not None:
            return min(1.0, schedules / self.schedules)
        return min(1.0, seconds / self.seconds) if self.seconds else 1.0


@dataclass(frozen=True)
class ExploreOptions:
    seed: int = 0
    defect: str | None = None
    budget: Budget = field(default_factory=lambda: Budget(seconds=DEFAULT_BUDGET_SECONDS))
    max_steps: int = DEFAULT_MAX_STEPS  # actions per generated program (the compiled scenario adds restarts)
    out_dir: Path = Path("explore-findings")
    shrink_seconds: float = DEFAULT_SHRINK_SECONDS  # shrinking stops trying new schedules after this


@dataclass(frozen=True)
class Verdict:
    """What one schedule came to: failing checks in the order their first failure was reported
    (`error` first when the run broke)."""

    status: Status
    checks: tuple[str, ...]
    failures: tuple[Failure, ...]
    reason: str = ""
    left_down: tuple[str, ...] = ()  # components the schedule left down: it fails for a reason it gave itself

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAILED, Status.ERROR)

    @property
    def finding(self) -> bool:
        """Failed with every component running at the end. The invariants assume a running system, so a
        schedule that leaves a component down (a shrink candidate that dropped a restart) proves nothing."""
        return self.failed and not self.left_down

    @property
    def primary(self) -> str:
        return self.checks[0] if self.checks else ""

    @staticmethod
    def of(result: ScenarioResult) -> Verdict:
        checks = list(dict.fromkeys(f.check for f in result.failures))
        if result.status == Status.ERROR:
            checks.insert(0, "error")
        return Verdict(result.status, tuple(checks), result.failures, result.reason)


@dataclass
class Coverage:
    """How often the search exercised each part of the vocabulary, and what it made happen."""

    steps: Counter[str] = field(default_factory=Counter)
    components: Counter[str] = field(default_factory=Counter)  # `run` steps per component
    crashed: Counter[str] = field(default_factory=Counter)  # components that died at a crash point
    points_armed: Counter[str] = field(default_factory=Counter)
    points_fired: Counter[str] = field(default_factory=Counter)
    faults_armed: Counter[str] = field(default_factory=Counter)  # resource.op
    faults_injected: Counter[str] = field(default_factory=Counter)  # calls that failed
    checks_judged: Counter[str] = field(default_factory=Counter)  # schedules a check passed or failed
    checks_failed: Counter[str] = field(default_factory=Counter)

    def add(self, steps: Sequence[prog.Planned], target: ObservingTarget, result: ScenarioResult) -> None:
        for step in steps:
            self.steps[step.kind] += 1
            if step.kind == "run":
                self.components[step.args["component"]] += 1
            elif step.kind == "crash":
                self.points_armed[step.args["at"]] += 1
            elif step.kind == "fail":
                self.faults_armed[f"{step.args['resource']}.{step.args['op']}"] += 1
        for component, point in target.fired:
            self.crashed[component] += 1
            self.points_fired[point] += 1
        self.faults_injected.update(target.injected)
        for check in result.checks:
            if check.status != Status.SKIPPED:
                self.checks_judged[check.name] += 1
            if check.status == Status.FAILED:
                self.checks_failed[check.name] += 1

    def rows(self) -> list[tuple[str, str, int, int | None]]:
        """(area, name, times in steps, times it happened) for every known name, zeros included, so a
        part of the vocabulary the search never reached shows as a 0."""
        rows: list[tuple[str, str, int, int | None]] = []
        kinds = dict.fromkeys((*prog.ACTION_KINDS, "finish_read"))
        rows += [("step", kind, self.steps[kind], None) for kind in kinds]
        rows += [("component", c, self.components[c], self.crashed[c]) for c in prog.COMPONENTS]
        rows += [("crash point", p, self.points_armed[p], self.points_fired[p]) for p in prog.CRASH_POINTS]
        rows += [("fault", f"{r}.{o}", self.faults_armed[f"{r}.{o}"], self.faults_injected[f"{r}.{o}"])
                 for r, o in prog.FAULTS]
        rows += [("check", name, self.checks_judged[name], self.checks_failed[name]) for name in REGISTRY]
        return rows


@dataclass(frozen=True)
class Finding:
    check: str  # the failing check the shrunk scenario keeps failing (`expect`, `settle`, `error` too)
    rules: tuple[str, ...]
    message: str
    found_after: int  # schedules tried when the first failing one ran
    found_seconds: float
    original_steps: int
    steps: tuple[prog.Planned, ...]
    shrink_runs: int
    shrink_seconds: float
    path: Path
    reproduced: bool  # the written file, loaded and replayed by a fresh Runner, fails with `check`
    passes_without_defect: bool | None  # None when exploring the reference itself


@dataclass(frozen=True)
class ExploreReport:
    seed: int
    defect: str | None
    budget: Budget
    schedules: int  # generated schedules run while searching
    seconds: float  # wall time of the search
    cpu_seconds: float
    errors: int  # schedules the Runner could not finish (a generator gap or a crash of the reference)
    reference_failures: int  # with --defect: failing schedules that failed without the defect too
    digest: str  # sha256 over every schedule's steps and evidence, in order
    coverage: Coverage
    finding: Finding | None

    @property
    def rate(self) -> float:
        return self.schedules / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_rate(self) -> float:
        return self.schedules / self.cpu_seconds if self.cpu_seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.finding is not None else 0


@dataclass(frozen=True)
class Progress:
    schedules: int
    seconds: float
    phase: str  # "search" or "shrink"


class Explorer:
    """One exploration: `run()` searches, shrinks a finding, writes and re-checks it, and reports."""

    def __init__(self, options: ExploreOptions, *, targets: ExploreTargets,
                 clock: Callable[[], float] = time.perf_counter,
                 progress: Callable[[Progress], None] | None = None) -> None:
        self.options = options
        self._clock = clock
        self._progress = progress
        self._targets = targets
        self._checks = select()
        defects = frozenset({options.defect}) if options.defect else frozenset()
        self._target = targets.search(defects)
        self._runner = Runner(self._target, (), RunOptions(seed=RUN_SEED), checks=self._checks)
        # With a defect, the same schedule on the reference without it (a target is built with its defects).
        self._clean = targets.search(frozenset()) if options.defect else None
        self._reference = (Runner(self._clean, (), RunOptions(seed=RUN_SEED), checks=self._checks)
                           if self._clean else None)
        self._history = hashlib.sha256()
        self._memo: dict[str, Verdict] = {}
        self._reference_memo: dict[str, bool] = {}
        self.coverage = Coverage()
        self.schedules = 0
        self._runs_after_search = 0
        self._errors = 0
        self._reference_failures = 0
        self._phase = "search"
        self._started = 0.0
        self._last_progress = 0.0
        self._shrink_deadline = 0.0
        self._target_check: str | None = None
        self._program: tuple[prog.Action, ...] = ()  # the program of the first finding
        self._first: tuple[prog.Planned, ...] = ()  # its steps
        self._found_after = 0
        self._found_seconds = 0.0  # wall seconds of the search (to the first failure, when one is found)
        self._cpu_started = 0.0
        self._found_cpu = 0.0

    # --- the whole exploration -------------------------------------------------------------------

    def run(self) -> ExploreReport:
        self._started = self._clock()
        self._cpu_started = time.process_time()
        try:
            found = self._search()
            if not found:
                self._found_seconds = self._clock() - self._started
                self._found_cpu = time.process_time() - self._cpu_started
            finding = self._conclude() if found else None
        finally:
            self._target.close()
            if self._clean is not None:
                self._clean.close()
        return ExploreReport(
            seed=self.options.seed, defect=self.options.defect, budget=self.options.budget,
            schedules=self.schedules, seconds=self._found_seconds, cpu_seconds=self._found_cpu,
            errors=self._errors, reference_failures=self._reference_failures,
            digest=self._history.hexdigest(), coverage=self.coverage, finding=finding)

    def _search(self) -> bool:
        """Draw programs from the seeded generator and run each new schedule until one is a finding
        (True) or the budget is spent (False)."""
        rng = random.Random(self.options.seed)
        budget = self.options.budget
        repeats = 0
        while repeats < MAX_REPEATED_DRAWS:
            interrupt.check()
            if (budget.schedules is not None and self.schedules >= budget.schedules) or (
                    budget.seconds is not None and self._clock() - self._started >= budget.seconds):
                return False
            program = prog.random_program(rng, self.options.max_steps)
            steps = prog.compile_program(program)
            key = "\n".join(step_lines(steps))
            if key in self._memo:
                repeats += 1
                continue
            repeats = 0
            verdict = self._memo[key] = self._execute(steps, key)
            if verdict.finding and self._passes_on_reference(steps, key):
                self._target_check = verdict.primary
                self._phase = "shrink"
                self._found_after = self.schedules
                self._found_seconds = self._clock() - self._started
                self._found_cpu = time.process_time() - self._cpu_started
                self._shrink_deadline = self._clock() + self.options.shrink_seconds
                self._program = tuple(program)
                self._first = steps
                return True
            if verdict.finding:
                self._reference_failures += 1
        return False

    def _passes_on_reference(self, steps: tuple[prog.Planned, ...], key: str) -> bool:
        """With --defect, whether the schedule passes without it (so the failure is the defect's)."""
        if self._reference is None:
            return True
        passed = self._reference_memo.get(key)
        if passed is None:
            passed = not self._execute(steps, key, self._reference).failed
            self._reference_memo[key] = passed
        return passed

    def _execute(self, steps: Sequence[prog.Planned], key: str, runner: Runner | None = None) -> Verdict:
        """Run one schedule and fold it into the history (and, while searching, the coverage)."""
        observed = self._clean if runner is not None and self._clean is not None else self._target
        observed.reset()
        result = (runner or self._runner).run_scenario(prog.to_scenario(steps))
        verdict = replace(Verdict.of(result), left_down=tuple(sorted(observed.left_down)))
        self._history.update(canonical([key, runner is not None, verdict.status, verdict.checks,
                                        [f.message for f in verdict.failures]]))
        self._history.update(observed.evidence.digest())
        if self._phase == "search" and runner is None:
            self.schedules += 1
            self._errors += verdict.status == Status.ERROR
            self.coverage.add(steps, self._target, result)
        else:
            self._runs_after_search += 1
        self._report_progress()
        return verdict

    def _report_progress(self) -> None:
        if self._progress is None:
            return
        now = self._clock()
        if now - self._last_progress >= 0.5:
            self._last_progress = now
            self._progress(Progress(self.schedules, now - self._started, self._phase))

    # --- after the search ---------------------------------------------------------------------

    def _still_fails(self, steps: tuple[prog.Planned, ...]) -> bool:
        """Whether a shrink candidate is still a finding of the same check (and, with a defect, passes
        without it). Once the shrink deadline has passed, only schedules already run can be accepted."""
        key = "\n".join(step_lines(steps))
        verdict = self._memo.get(key)
        if verdict is None:
            if self._clock() > self._shrink_deadline:
                return False
            verdict = self._memo[key] = self._execute(steps, key)
        return (verdict.finding and self._target_check in verdict.checks
                and self._passes_on_reference(steps, key))

    def _conclude(self) -> Finding:
        assert self._target_check is not None
        program = shrink_program(self._program, lambda p: self._still_fails(prog.compile_program(p)))
        steps = shrink_steps(prog.compile_program(program), self._still_fails)
        check = self._target_check
        verdict = self._memo["\n".join(step_lines(steps))]
        failures = [f for f in verdict.failures if f.check == check]
        message = failures[0].message if failures else verdict.reason
        rules = _rules(verdict.failures) or tuple(getattr(REGISTRY.get(check), "rules", ()))
        path = self._write(steps, check, rules, message, len(self._first))
        shrink_seconds = self._clock() - self._started - self._found_seconds
        reproduced, clean = self._replay(path, check)
        return Finding(check=check, rules=rules, message=message, found_after=self._found_after,
                       found_seconds=self._found_seconds, original_steps=len(self._first), steps=steps,
                       shrink_runs=self._runs_after_search, shrink_seconds=shrink_seconds, path=path,
                       reproduced=reproduced, passes_without_defect=clean)

    def _write(self, steps: Sequence[prog.Planned], check: str, rules: Sequence[str], message: str,
               original: int) -> Path:
        opts = self.options
        stem = f"{opts.defect or 'explore'}-{opts.seed}"
        path = opts.out_dir / f"{stem}.yaml"
        command = f"kcverify explore --seed {opts.seed}" + (f" --defect {opts.defect}" if opts.defect else "")
        replay = f"kcverify run {path}" + (f" --defect {opts.defect}" if opts.defect else "")
        header = [
            f"Found by `{command}` after {self._found_after} schedule(s);",
            f"shrunk from {original} to {len(steps)} steps.",
            f"Failing check: {check} ({', '.join(rules)}):",
            *textwrap.wrap(message, 100, initial_indent="  ", subsequent_indent="  "),
            f"Replay: {replay}" + ("  (passes without the defect)" if opts.defect else ""),
            "To keep it as a regression scenario: copy it into scenarios/, give it a telling title,",
            "keep the tags (see docs/explore.md).",
        ]
        what = f" with the defect {opts.defect}" if opts.defect else ""
        title = f"Explored schedule that breaks the {check} check{what} (seed {opts.seed})"
        text = render(steps, title=title, covers=rules, header=header)
        opts.out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def _replay(self, path: Path, check: str) -> tuple[bool, bool | None]:
        """The written file, through the loader and a fresh Runner and target, as `kcverify run` does:
        does it fail with the same check, and (with a defect) pass without it?"""
        scenario = load_scenario(path)
        defects = frozenset({self.options.defect}) if self.options.defect else frozenset()
        result = Runner(self._targets.replay(defects), (), RunOptions(seed=RUN_SEED),
                        checks=self._checks).run_scenario(scenario)
        reproduced = check in Verdict.of(result).checks
        if not self.options.defect:
            return reproduced, None
        clean = Runner(self._targets.replay(frozenset()), (), RunOptions(seed=RUN_SEED),
                       checks=self._checks).run_scenario(scenario)
        return reproduced, clean.status == Status.PASSED


def _rules(failures: Sequence[Failure]) -> tuple[str, ...]:
    found = {rule for f in failures for rule in f.rules if RULE_ID.match(rule)}
    return tuple(sorted(found, key=lambda r: (RULE_ORDER.index(r[0]), int(r[1:]))))


def explore(options: ExploreOptions, progress: Callable[[Progress], None] | None = None, *,
            targets: ExploreTargets) -> ExploreReport:
    """Run one exploration (see the module docstring) on the targets it is given."""
    return Explorer(options, targets=targets, progress=progress).run()
