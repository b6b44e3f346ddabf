"""Runs the suite once without defects and once per defect, and judges each defect.

The baseline comes first and must pass: on a reference that already fails, every defect would be
"killed" by the same broken scenario and the score would measure nothing. Defect runs are independent
runs of the same scenarios, each on a target built with its defect (defects are construction options
of a target, see kcverify.targets.registry), so on a target whose systems live in this process
(embedded) they go to a process pool. The pool forks: scenarios hold read-only mapping proxies that
cannot be pickled, and a forked worker inherits them (and the target factory, which may be any
callable) without a copy; only the defect goes in and the small MutantResult comes back. Where fork
does not exist the defects run one after another, which is slower but gives the same verdicts."""

from __future__ import annotations

import difflib
import multiprocessing
import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from multiprocessing.context import BaseContext

from kcverify.checks import REGISTRY, select
from kcverify.core.errors import InputError
from kcverify.core.status import Status
from kcverify.engine.runner import Runner, RunOptions
from kcverify.evidence.results import RunResult, ScenarioResult
from kcverify.killmatrix.model import Baseline, BaselineFailed, Catch, MutantError, MutantResult, MutantsResult
from kcverify.report.common import first_line
from kcverify.scenario.model import Scenario
from kcverify.targets.base import Target
from kcverify.targets.registry import DefectInfo, TargetOptions

TargetFactory = Callable[[TargetOptions], Target]  # the CLI's builds the registered target by name
Progress = Callable[[MutantResult], None]


def resolve(names: Iterable[str], catalogue: Sequence[DefectInfo]) -> tuple[DefectInfo, ...]:
    """Defects by name from the target's catalogue (`TargetPlugin.defect_catalogue`), in catalogue order
    (so matrices from different runs line up); none given: the whole catalogue but its slowdowns (they break
    no rule, so no scenario can kill them; the bench shows them). An unknown name is bad input with the
    nearest known names, because a typo would otherwise silently measure nothing."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return tuple(d for d in catalogue if not d.slowdown)
    known = [d.name for d in catalogue]
    for name in wanted:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
            hint = (f"did you mean {' or '.join(repr(c) for c in close)}?" if close
                    else "did you mean one of: " + ", ".join(known) + "?")
            raise InputError(f"unknown defect {name!r}", hint=hint)
    return tuple(d for d in catalogue if d.name in wanted)


def judge(defect: DefectInfo, run: RunResult, duration: float, reproduce_all: str = "") -> MutantResult:
    """A defect's verdict from its run. Killed only by a FAILED scenario: an ERROR means the verifier
    or target broke, which is reported as such and never taken as proof that a check saw the defect."""
    catches: list[Catch] = []
    errors: list[MutantError] = []
    first_failed: ScenarioResult | None = None
    for scenario in run.scenarios:
        if scenario.status is Status.ERROR:
            errors.append(MutantError(scenario.name, first_line(scenario.reason) or "error"))
        if scenario.status is not Status.FAILED:
            continue
        if first_failed is None:
            first_failed = scenario
        by_check: dict[str, list[str]] = {}
        for failure in scenario.failures:
            rules = by_check.setdefault(failure.check, [])
            rules.extend(r for r in failure.rules if r not in rules)
        if not by_check:  # FAILED without a failure object should not happen; still a kill, say so
            by_check["unknown"] = []
        catches.extend(Catch(scenario.name, check, tuple(rules)) for check, rules in by_check.items())
    ran = sum(1 for s in run.scenarios if s.status is not Status.SKIPPED)
    reproduce = first_failed.reproduce if first_failed is not None else reproduce_all
    return MutantResult(defect.name, defect.rule, defect.description, first_failed is not None, tuple(catches),
                        duration, tuple(errors), ran, reproduce)


def run_baseline(scenarios: Sequence[Scenario], target: Target, seed: int = 0) -> tuple[Baseline, RunResult]:
    """The suite without defects. Raises BaselineFailed unless nothing failed or broke and something ran."""
    started = time.perf_counter()
    run = Runner(target, options=RunOptions(seed=seed, target_name=target.info.name), checks=select()).run(scenarios)
    if any(s.status in (Status.FAILED, Status.ERROR) for s in run.scenarios):
        raise BaselineFailed(run)
    passed = tuple(s.name for s in run.scenarios if s.status is Status.PASSED)
    if not passed:
        raise BaselineFailed(run, f"nothing ran without defects: every scenario was skipped on target "
                                  f"{target.info.name}")
    skipped = tuple(s.name for s in run.scenarios if s.status is Status.SKIPPED)
    return Baseline(time.perf_counter() - started, passed, skipped), run


def run_mutants(scenarios: Sequence[Scenario], target_factory: TargetFactory, defects: Sequence[DefectInfo],
                jobs: int = 1, *, seed: int = 0, paths: Sequence[str] = (),
                progress: Progress | None = None, on_baseline: Callable[[Baseline], None] | None = None,
                options: TargetOptions | None = None) -> MutantsResult:
    """The baseline, then one run per defect (`jobs` at a time), judged into a MutantsResult.

    `target_factory` builds a target from `options` (default: none) with the defects set: once without
    any for the baseline, then once per mutant, each closed by its Runner at the end of its run (e.g.
    `EmbeddedTarget.from_options`, or a registered target's `create`). `paths` only shapes the reproduce
    command of a survivor (default: the scenarios' own files). `progress` is called in this process
    as each mutant finishes, in completion order (the result keeps the order of `defects`), and
    `on_baseline` once the baseline has passed."""
    started_at, started = time.time(), time.perf_counter()
    base = replace(options or TargetOptions(), defects=frozenset())
    target = target_factory(base)
    baseline, _ = run_baseline(scenarios, target, seed)
    if on_baseline is not None:
        on_baseline(baseline)
    runnable = [s for s in scenarios if s.name not in set(baseline.skipped)]
    where = list(paths) or [s.path for s in runnable]
    context = _fork_context()
    workers = max(1, min(jobs, len(defects))) if context is not None else 1
    done: dict[str, MutantResult] = {}

    def finished(result: MutantResult) -> None:
        done[result.name] = result
        if progress is not None:
            progress(result)

    if workers == 1:
        for defect in defects:
            finished(_run_one(target_factory, base, runnable, defect, seed, where))
    else:
        assert context is not None
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                 initargs=(target_factory, base, runnable, seed, where)) as pool:
            futures = [pool.submit(_worker_task, defect) for defect in defects]
            try:
                for future in as_completed(futures):
                    finished(future.result())
            except BaseException:  # one broken defect run (or Ctrl-C) ends the run: do not wait for the rest
                # The running workers are stopped, not awaited: Ctrl-C must end the command within a second,
                # and a worker left running would keep the caller's output pipes open.
                for process in list((getattr(pool, "_processes", None) or {}).values()):
                    process.terminate()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return MutantsResult(target.info.name, seed, workers, started_at, time.perf_counter() - started, baseline,
                         tuple(done[d.name] for d in defects), tuple(REGISTRY))


def _run_one(factory: TargetFactory, base: TargetOptions, scenarios: Sequence[Scenario], defect: DefectInfo, seed: int,
             where: Sequence[str]) -> MutantResult:
    started = time.perf_counter()
    built = replace(base, defects=frozenset({defect.name}))
    target = factory(built)
    options = RunOptions(seed=seed, target_name=target.info.name, extra_reproduce=built.reproduce_args())
    run = Runner(target, options=options, checks=select()).run(scenarios)
    return judge(defect, run, time.perf_counter() - started, _reproduce_all(where, options))


def _reproduce_all(where: Sequence[str], options: RunOptions) -> str:
    words = ["kcverify", "run", *where, "--seed", str(options.seed)]
    if options.target_name != "embedded":
        words += ["--target", options.target_name]
    return shlex.join([*words, *options.extra_reproduce])


def _fork_context() -> BaseContext | None:
    return multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None


# --- pool workers: state set once per forked process ---------------------------------------------

_worker: tuple[TargetFactory, TargetOptions, Sequence[Scenario], int, Sequence[str]] | None = None


def _init_worker(factory: TargetFactory, base: TargetOptions, scenarios: Sequence[Scenario], seed: int,
                 where: Sequence[str]) -> None:
    global _worker
    _worker = (factory, base, scenarios, seed, where)


def _worker_task(defect: DefectInfo) -> MutantResult:
    if _worker is None:
        raise RuntimeError("kill-matrix worker used before its initializer ran")
    factory, base, scenarios, seed, where = _worker
    return _run_one(factory, base, scenarios, defect, seed, where)
