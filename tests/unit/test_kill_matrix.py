"""`kcverify defects` through its library API: the defect-free reference passes, every defect in the
catalogue is killed by the shipped scenarios (and by a failure citing the rule the defect breaks), a
suite too small to see a defect reports it as a survivor, and a scenario that breaks is never taken
for a kill. Plus the reports (JSON against its schema, Markdown) and the CLI's exit codes for bad
input, a failing baseline and an unavailable target."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from kcverify import contracts
from kcverify.cli import defects as cli_defects
from kcverify.core.errors import InputError, TargetUnreachable
from kcverify.core.status import Status
from kcverify.evidence.results import Failure, RunResult, ScenarioResult
from kcverify.killmatrix import BaselineFailed, MutantsResult, Outcome, judge, resolve, run_baseline, run_mutants
from kcverify.killmatrix.console import MutantsConsole
from kcverify.killmatrix.report import SCHEMA_NAME, render_markdown, to_json, write_reports
from kcverify.reference.defects import BY_NAME, CATALOGUE, SLOWDOWNS
from kcverify.scenario.loader import load_scenario, load_scenarios
from kcverify.scenario.model import Scenario
from kcverify.targets import registry
from kcverify.targets.embedded import EmbeddedTarget
from kcverify.targets.registry import TargetOptions

CATALOG = resolve([], registry.lookup("embedded").defect_catalogue)  # what `kcverify defects` switches on

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


class ForcedDefect(EmbeddedTarget):
    """The reference with a defect that is always on: its 'baseline' fails."""

    def __init__(self, defect: str, defects: frozenset[str] = frozenset()) -> None:
        super().__init__(defects=defects | {defect})


class BrokenUnder(EmbeddedTarget):
    """A target that cannot start while a given defect is on: every scenario of that mutant is ERROR."""

    def __init__(self, trigger: str, options: TargetOptions) -> None:
        super().__init__(defects=options.defects)
        self.trigger = trigger

    def start(self, *, seed: int) -> None:
        if self.trigger in self.defects:
            raise RuntimeError("the target refused to start")
        super().start(seed=seed)


def scenarios(*names: str) -> list[Scenario]:
    return [load_scenario(SCENARIOS / f"{name}.yaml") for name in names]


@pytest.fixture(scope="module")
def everything() -> MutantsResult:
    """The whole catalogue over the whole library, in a pool as the CLI runs it."""
    return run_mutants(load_scenarios([SCENARIOS]), EmbeddedTarget.from_options, CATALOGUE, jobs=os.cpu_count() or 2)


def test_the_no_defect_baseline_passes() -> None:
    baseline, run = run_baseline(load_scenarios([SCENARIOS]), EmbeddedTarget())
    assert run.exit_code == 0, [(s.name, [f.message for f in s.failures]) for s in run.scenarios]
    assert len(baseline.passed) == len(run.scenarios) >= 20
    assert baseline.skipped == ()


def test_every_defect_in_the_catalogue_is_killed(everything: MutantsResult) -> None:
    assert [m.name for m in everything.mutants] == [d.name for d in CATALOGUE]
    assert {m.name: m.outcome for m in everything.mutants} == {d.name: Outcome.KILLED for d in CATALOGUE}
    assert everything.score == 1.0 and everything.exit_code == 0
    assert everything.survivors == () and all(not m.errors for m in everything.mutants)


def test_every_defect_is_caught_by_a_failure_citing_the_rule_it_breaks(everything: MutantsResult) -> None:
    """A kill by accident (some unrelated check tripping) would not prove the rule's check works."""
    assert [m.name for m in everything.mutants if not m.cites_rule] == []


def test_kills_name_scenario_check_and_rules(everything: MutantsResult) -> None:
    by_name = {m.name: m for m in everything.mutants}
    dual = by_name["dual-write"]
    assert ("broker-down-at-confirm", "delivery") in {(c.scenario, c.check) for c in dual.caught_by}
    assert any("P3" in c.rules for c in dual.caught_by if c.check == "delivery")
    assert by_name["stale-set-race"].scenarios_by_check()["freshness"] == ("stale-set-race",)
    assert by_name["stale-set-race"].reproduce.endswith("--defect stale-set-race")
    assert everything.columns[:2] == ("step expectation", "settle bound")
    assert {"metadata", "freshness", "delivery", "idempotency", "contract", "invariants"} <= set(everything.columns)


def test_the_json_report_conforms_to_its_schema(everything: MutantsResult, tmp_path: Path) -> None:
    document = to_json(everything)
    assert contracts.validate(SCHEMA_NAME, document) == []
    total = len(CATALOGUE)
    assert document["score"] == {"killed": total, "total": total, "ratio": 1.0, "percent": "100%"}
    [written] = write_reports(everything, ["json"], tmp_path)
    assert json.loads(written.read_text()) == json.loads(json.dumps(document))
    broken = {**document, "score": {**document["score"], "percent": 100}}
    assert contracts.validate(SCHEMA_NAME, broken) != []


def test_the_markdown_report_has_the_matrix_and_the_score(everything: MutantsResult, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    text = render_markdown(everything)
    assert f"Kill score {len(CATALOGUE)}/{len(CATALOGUE)} (100%)" in text
    assert "| Defect | Rule | `step expectation` | `settle bound` |" in text
    assert "| ✅ `dual-write` | P3 |" in text
    summary = tmp_path / "summary.md"
    summary.write_text("before\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    [written] = write_reports(everything, ["markdown"], tmp_path / "out")
    assert written.name == "kill-matrix.md" and written.read_text() == text
    assert summary.read_text() == "before\n" + text


def test_a_defect_the_suite_cannot_see_is_a_survivor() -> None:
    """happy-path never loses an event, so a missing reconciler goes unnoticed; but it reads the
    stored sessionCount, so the string "10" is caught."""
    result = run_mutants(scenarios("happy-path"), EmbeddedTarget.from_options,
                         resolve(["no-reconciler", "string-session-count"], CATALOG), jobs=1, paths=["happy-path.yaml"])
    outcome = {m.name: m.outcome for m in result.mutants}
    assert outcome == {"string-session-count": Outcome.KILLED, "no-reconciler": Outcome.SURVIVED}
    [survivor] = result.survivors
    assert survivor.killed is False and survivor.caught_by == () and survivor.first is None
    assert survivor.rule == "I1" and survivor.description == BY_NAME["no-reconciler"].description
    assert survivor.reproduce == "kcverify run happy-path.yaml --seed 0 --defect no-reconciler"
    assert result.score == 0.5 and result.exit_code == 1
    assert to_json(result)["survivors"] == ["no-reconciler"]
    assert contracts.validate(SCHEMA_NAME, to_json(result)) == []
    assert "## Survivors" in render_markdown(result) and "❌ **survived**" in render_markdown(result)


def test_error_scenarios_are_not_kills() -> None:
    result = run_mutants(scenarios("happy-path", "broker-down-at-confirm"),
                         lambda options: BrokenUnder("dual-write", options), resolve(["dual-write"], CATALOG), jobs=1)
    [mutant] = result.mutants
    assert mutant.killed is False and mutant.caught_by == ()
    assert mutant.outcome is Outcome.ERROR
    assert {e.scenario for e in mutant.errors} == {"happy-path", "broker-down-at-confirm"}
    assert "did not start" in mutant.errors[0].reason
    assert result.survivors == () and result.score == 0.0
    assert result.exit_code == 3  # the verifier broke: neither "all killed" nor a proven survivor
    assert contracts.validate(SCHEMA_NAME, to_json(result)) == []


def _scenario(name: str, status: Status, *failures: Failure) -> ScenarioResult:
    from kcverify.evidence.results import CheckResult

    checks = (CheckResult("delivery", ("P3",), status, failures=failures),) if failures else ()
    return ScenarioResult(name, f"{name}.yaml", name, (), (), status, 0.1, 0, f"kcverify run {name}.yaml", (), checks,
                          "boom\ntraceback" if status is Status.ERROR else "")


def test_judge_counts_only_failed_scenarios_and_reports_errors_beside_a_kill() -> None:
    failure = Failure("delivery", ("P3", "I3"), "lost")
    run = RunResult("embedded", 0, 0.0, 1.0, (
        _scenario("a", Status.ERROR), _scenario("b", Status.PASSED), _scenario("c", Status.FAILED, failure),
        _scenario("d", Status.SKIPPED)))
    mutant = judge(BY_NAME["dual-write"], run, 1.0)
    assert mutant.killed and mutant.outcome is Outcome.KILLED
    assert [(c.scenario, c.check, c.rules) for c in mutant.caught_by] == [("c", "delivery", ("P3", "I3"))]
    assert [(e.scenario, e.reason) for e in mutant.errors] == [("a", "boom")]
    assert mutant.scenarios_run == 3 and mutant.reproduce == "kcverify run c.yaml"
    only_errors = judge(BY_NAME["dual-write"], RunResult("embedded", 0, 0.0, 1.0, (_scenario("a", Status.ERROR),)), 1)
    assert only_errors.outcome is Outcome.ERROR and not only_errors.killed


def test_a_failing_baseline_stops_before_any_mutant() -> None:
    seen: list[str] = []
    with pytest.raises(BaselineFailed) as caught:
        run_mutants(scenarios("broker-down-at-confirm"), lambda options: ForcedDefect("dual-write"), CATALOGUE, jobs=1,
                    progress=lambda m: seen.append(m.name))
    assert seen == []
    assert caught.value.exit_code == 2
    assert str(caught.value) == "the reference fails without any defect: fix that first"
    assert caught.value.run.scenarios[0].status is Status.FAILED


def test_resolve_keeps_catalogue_order_and_suggests_names() -> None:
    assert resolve([], CATALOG) == CATALOG
    assert [d.name for d in resolve(["dual-write", "stale-set-race", "dual-write"], CATALOG)] == ["dual-write",
                                                                                                  "stale-set-race"]
    with pytest.raises(InputError, match="did you mean 'dual-write'"):
        resolve(["dual-wrte"], CATALOG)
    with pytest.raises(InputError, match=r"unknown defect 'no-such'.*did you mean"):
        resolve(["no-such"], CATALOG)


def test_the_embedded_and_processes_targets_describe_the_whole_catalogue_through_the_registry() -> None:
    """The kill matrix takes its defects from the registry, never from the reference: every defect of the
    reference is there, with its rule and description, on both reference targets."""
    expected = [(d.name, d.rule, d.description, d.slowdown) for d in CATALOGUE + SLOWDOWNS]
    for name in ("embedded", "processes"):
        plugin = registry.lookup(name)
        assert [(d.name, d.rule, d.description, d.slowdown) for d in plugin.defect_catalogue] == expected, name
        assert plugin.defect_names == tuple(BY_NAME)
        # the kill matrix runs every defect that breaks a rule, and no slowdown (no scenario can kill one)
        assert [d.name for d in resolve([], plugin.defect_catalogue)] == [d.name for d in CATALOGUE]
        assert SLOWDOWNS and all(d.slowdown for d in SLOWDOWNS) and not any(d.slowdown for d in CATALOGUE)


def test_the_console_shows_survivors_with_their_rule_and_the_wall_time() -> None:
    from rich.console import Console

    result = run_mutants(scenarios("happy-path"), EmbeddedTarget.from_options, resolve(["no-reconciler"], CATALOG),
                         jobs=1)
    console = Console(record=True, width=200, no_color=True)
    MutantsConsole(console).finished(result)
    text = console.export_text()
    assert "no-reconciler" in text and "SURVIVED" in text
    assert "kill score: 0/1 killed (0%)" in text
    assert f"no-reconciler [I1]: {BY_NAME['no-reconciler'].description}" in text
    assert "wall time:" in text and "exit code 1" in text


# --- the CLI's exits for what never reaches a score ----------------------------------------------


@pytest.fixture
def in_repo() -> Iterator[None]:
    cwd = Path.cwd()
    os.chdir(SCENARIOS.parent)
    yield
    os.chdir(cwd)


def test_cli_failing_baseline_is_exit_2_with_its_failures(in_repo: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_defects, "make_target", lambda name, options=None: ForcedDefect("dual-write"))
    result = CliRunner().invoke(cli_defects.defects_command, ["scenarios/broker-down-at-confirm.yaml", "--no-color"])
    assert result.exit_code == 2, result.output
    assert "the reference fails without any defect: fix that first" in result.output
    assert "delivery [P3" in result.output and "reproduce: kcverify run" in result.output
    assert "kill score" not in result.output


def test_cli_unavailable_target_is_exit_2(in_repo: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(name: str, options: TargetOptions | None = None) -> EmbeddedTarget:
        raise TargetUnreachable("the stack target is not available in this build")

    monkeypatch.setattr(cli_defects, "make_target", unreachable)
    result = CliRunner().invoke(cli_defects.defects_command, ["--target", "processes", "--only", "dual-write"])
    assert result.exit_code == 2
    assert "target processes: the stack target is not available" in result.output


def test_cli_unknown_report_is_exit_2(in_repo: None) -> None:
    result = CliRunner().invoke(cli_defects.defects_command, ["--only", "dual-write", "--report", "pdf"])
    assert result.exit_code == 2 and "unknown report 'pdf'" in result.output
