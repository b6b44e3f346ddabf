"""The pytest plugin (entry point `pytest11`: active wherever kcverify is installed): scenario files as
test items, and fixtures that build targets.

Which YAML files are scenarios: those under a folder of the `kcverify_scenarios` ini key (relative to
the ini file's folder), and those named on the command line (`pytest scenarios/`,
`pytest scenarios/happy-path.yaml`); a folder named on the command line contributes only files that
look like scenarios (a top-level `steps:`). Nothing else is touched, so a project's own YAML files and
test suite are left alone. One item per scenario, named after it (so `-k NAME` and `-k TAG` select,
and `-x` stops at the first failure); each runs through the public API (`kcverify.run`) on the target
of `--kcverify-target` / the `kcverify_target` ini key (default: embedded) and its profile
(`--kcverify-profile` / `kcverify_profile`, for the external target). A failure shows each failure's
check, rules, step, message and evidence table, and the command that reproduces it. A scenario the
target cannot run (a capability it lacks) is reported skipped with the runner's reason.

Fixtures: `kcverify_embedded` (an embedded target) and `kcverify_target` (the configured one), for
tests that call `kcverify.run(..., target=...)` themselves. Everything heavy is imported on first use,
so the plugin costs a test session nothing until a scenario or fixture is used."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from kcverify.evidence.results import ScenarioResult
    from kcverify.scenario.model import Scenario
    from kcverify.targets.base import Target

SUFFIXES = (".yaml", ".yml")
_STEPS = re.compile(rb"^steps\s*:", re.MULTILINE)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kcverify", "kcverify scenarios as test items")
    group.addoption("--kcverify-target", default=None, metavar="NAME",
                    help="Target the scenario items run on (default: ini kcverify_target, else embedded).")
    group.addoption("--kcverify-profile", default=None, metavar="FILE",
                    help="Profile of your system, for --kcverify-target external (default: ini kcverify_profile).")
    parser.addini("kcverify_scenarios", type="paths", default=[],
                  help="Folders whose YAML files are kcverify scenarios, collected as test items.")
    parser.addini("kcverify_target", default="embedded", help="Target of the scenario items (kcverify targets).")
    parser.addini("kcverify_profile", default="", help="Profile file for the external target.")


def _target_name(config: pytest.Config) -> str:
    return str(config.getoption("kcverify_target") or config.getini("kcverify_target") or "embedded")


def _profile(config: pytest.Config) -> Path | None:
    given = config.getoption("kcverify_profile")
    if given:
        return Path(given)
    ini = str(config.getini("kcverify_profile") or "")
    if not ini:
        return None
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    return base / ini


def _named(config: pytest.Config) -> list[Path]:
    """The paths named on the command line (not the ini's testpaths), resolved."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return []
    return [Path(config.invocation_params.dir, arg.split("::")[0]).resolve() for arg in config.args]


def _is_scenario_file(file_path: Path, config: pytest.Config) -> bool:
    path = file_path.resolve()
    for folder in config.getini("kcverify_scenarios"):
        if path.is_relative_to(Path(folder).resolve()):
            return True
    for named in _named(config):
        if path == named:
            return True
        if named.is_dir() and path.is_relative_to(named):
            try:
                return bool(_STEPS.search(path.read_bytes()[:1_000_000]))
            except OSError:
                return False
    return False


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix in SUFFIXES and _is_scenario_file(file_path, parent.config):
        collector: ScenarioFile = ScenarioFile.from_parent(parent, path=file_path)
        return collector
    return None


class ScenarioFile(pytest.File):
    """A scenario file: its scenario as one item, or a collection error with the loader's
    `file:line:col: message` lines."""

    def collect(self) -> Iterator[pytest.Item]:
        from kcverify.core.errors import InputError
        from kcverify.scenario.loader import load_scenarios

        try:
            scenarios = load_scenarios([self.path])
        except InputError as exc:
            raise self.CollectError(str(exc)) from exc
        for scenario in scenarios:
            yield ScenarioItem.from_parent(self, name=scenario.name, scenario=scenario)


class ScenarioFailed(Exception):
    """The scenario's verdict was not PASSED; carries the result to render."""

    def __init__(self, result: ScenarioResult) -> None:
        super().__init__(result.name)
        self.result = result


class ScenarioItem(pytest.Item):
    """One scenario, run on the configured target through kcverify.run."""

    def __init__(self, *, scenario: Scenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        # tags select with -k like the name does
        self.extra_keyword_matches.update(scenario.tags)

    def runtest(self) -> None:
        from kcverify.api import run
        from kcverify.core.errors import KcverifyError
        from kcverify.core.status import Status

        try:
            result = run([self.scenario], target=_target_name(self.config), profile=_profile(self.config))
        except KcverifyError as exc:  # an unknown target, a missing extra, a bad profile, no system there
            pytest.fail(f"target {_target_name(self.config)}: {exc}", pytrace=False)
        (outcome,) = result.scenarios
        if outcome.status == Status.SKIPPED:
            pytest.skip(f"{outcome.name}: {outcome.reason}")
        if outcome.status != Status.PASSED:
            raise ScenarioFailed(outcome)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        if isinstance(excinfo.value, ScenarioFailed):
            return failure_text(excinfo.value.result)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"scenario: {self.name}"


def failure_text(result: ScenarioResult) -> str:
    """Every failure of a scenario as plain text (headline, evidence table), then its reproduce line."""
    from kcverify.report.common import headline, table_text

    lines = [f"{result.name}: {result.status.value} ({result.title})"]
    if result.reason:
        lines.append(result.reason)
    for failure in result.failures:
        lines.append(f"- {headline(failure)}")
        if failure.message.strip() != failure.message.strip().split("\n", 1)[0]:
            lines.extend(f"    {line}" for line in failure.message.strip().splitlines()[1:])
        if failure.evidence is not None:
            lines.extend(f"    {line}" for line in table_text(failure.evidence).splitlines())
    lines.append(f"reproduce: {result.reproduce}")
    return "\n".join(lines)


def _build(name: str, profile: Path | None) -> Target:
    from kcverify.api import build_target
    from kcverify.core.errors import KcverifyError

    try:
        return build_target(name, profile=profile)
    except KcverifyError as exc:
        pytest.fail(f"target {name}: {exc}", pytrace=False)


def _closed(target: Target) -> None:
    close = getattr(target, "close", None)
    if callable(close):
        close()


@pytest.fixture
def kcverify_embedded() -> Iterator[Target]:
    """An embedded target (the reference in this process), for `kcverify.run(..., target=...)`."""
    target = _build("embedded", None)
    yield target
    _closed(target)


@pytest.fixture
def kcverify_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The configured target: --kcverify-target / ini kcverify_target, with its profile."""
    target = _build(_target_name(request.config), _profile(request.config))
    yield target
    _closed(target)
