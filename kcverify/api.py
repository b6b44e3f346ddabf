"""The public Python API: what `import kcverify` offers (re-exported by kcverify/__init__.py, documented
in docs/api.md). It composes the layers the `kcverify run` command composes, for code that embeds the
verifier (a test suite, a notebook, the pytest plugin): load scenarios, build a target from the
registry, run with the registered checks, get a RunResult. The command line is one user of it.

Nothing here prints: reporters are handlers of engine events, passed in when wanted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from kcverify.checks import select as select_checks
from kcverify.core.errors import InputError
from kcverify.core.resources import shipped_dir
from kcverify.engine.runner import Runner, RunOptions
from kcverify.evidence.events import Handler
from kcverify.evidence.results import RunResult
from kcverify.scenario.loader import load_scenarios as _load
from kcverify.scenario.model import Scenario
from kcverify.scenario.selection import Selection
from kcverify.spec.policy import SPEC_CONVENTIONS
from kcverify.targets import registry
from kcverify.targets.base import Target
from kcverify.targets.registry import TargetOptions

PathLike = str | Path


def example_scenarios() -> Path:
    """The folder of the example scenarios shipped with kcverify (what `kcverify init` copies)."""
    return shipped_dir("scenarios")


def load_scenarios(paths: PathLike | Iterable[PathLike], select: Iterable[str] = ()) -> list[Scenario]:
    """The scenarios of `paths` (files or folders, recursively), validated; `select` as `-k` on the
    command line (names or tags, `not:WORD` excludes). Bad input: InputError (ScenarioErrors lists every
    problem as `file:line:col: message`)."""
    given = [paths] if isinstance(paths, str | Path) else list(paths)
    return _load(given, Selection.parse(select))


def build_target(name: str = "embedded", *, defects: Iterable[str] = (), profile: PathLike | None = None,
                 settings: dict[str, Any] | None = None) -> Target:
    """The target registered as `name` (built-in: embedded, processes, external; plug-ins by entry
    point), built with named `defects` switched on and target-specific `settings` (`profile`: the
    external target's profile file). InputError for an unknown name or defect; MissingExtra (an
    InputError) when the target needs the `kcverify[stack]` clients."""
    merged = dict(settings or {})
    if profile is not None:
        merged["profile"] = str(profile)
    return registry.create(name, TargetOptions(defects=frozenset(defects), settings=merged))


def run(scenarios: PathLike | Iterable[PathLike] | Sequence[Scenario], *, target: str | Target = "embedded",
        seed: int = 0, select: Iterable[str] = (), checks: Iterable[str] = (), exclude_checks: Iterable[str] = (),
        defects: Iterable[str] = (), profile: PathLike | None = None, fail_fast: bool = False,
        handlers: Sequence[Handler] = (), reproduce_args: Sequence[str] = ()) -> RunResult:
    """Replay `scenarios` (paths, or Scenario objects already loaded) against `target` (a registered
    name, built here with `defects` and `profile`, or a Target you built) and return the RunResult:
    `result.status`, `result.exit_code` (as `kcverify run` exits), every scenario's steps, checks and
    failures with their reproduce command. `checks` / `exclude_checks` pick registered checks by name
    (all by default); `handlers` receive the engine events (the reporters of kcverify.report are some).
    `reproduce_args` are words the reproduce command should repeat (the command line passes its own)."""
    loaded = _scenarios(scenarios, select)
    if not loaded:
        raise InputError("no scenario selected")
    chosen_checks = select_checks(list(checks), list(exclude_checks))
    if not chosen_checks:
        raise InputError("no check selected", hint="checks and exclude_checks leave none")
    extra: tuple[str, ...] = ()
    if isinstance(target, str):
        name = target
        options = TargetOptions(defects=frozenset(defects),
                                settings={"profile": str(profile)} if profile is not None else {})
        built = registry.create(name, options)
        extra = options.reproduce_args() + (("--profile", str(profile)) if profile is not None else ())
    else:
        if defects or profile is not None:
            raise InputError("defects and profile build a target by name: pass target as a name, or build "
                             "your target with them (kcverify.build_target)")
        built, name = target, target.info.name
    runner = Runner(built, handlers,
                    RunOptions(seed=seed, fail_fast=fail_fast, target_name=name,
                               # a target judged by declared conventions (a profile's) says so
                               conventions=getattr(built, "conventions", SPEC_CONVENTIONS),
                               extra_reproduce=extra + tuple(reproduce_args)),
                    checks=chosen_checks)
    return runner.run(loaded)


def _scenarios(given: PathLike | Iterable[PathLike] | Sequence[Scenario], select: Iterable[str]) -> list[Scenario]:
    if isinstance(given, str | Path):
        return load_scenarios(given, select)
    items = list(given)
    if items and all(isinstance(s, Scenario) for s in items):
        selection = Selection.parse(select)
        return [s for s in items if isinstance(s, Scenario) and (not selection or selection.matches(s.name, s.tags))]
    if any(isinstance(s, Scenario) for s in items):
        raise TypeError("scenarios: pass paths or Scenario objects, not both")
    return load_scenarios([s for s in items if isinstance(s, str | Path)], select)
