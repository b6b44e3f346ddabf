"""The pytest plugin (kcverify/pytest_plugin.py), run by pytester in a throwaway project: scenario files
become one item each, a passing one passes, a failing one fails with its failure text and reproduce
line; -k, -x and xdist's -n work; YAML files that were neither configured nor named are not collected; the
fixtures build targets; and the project's own tests run unchanged with the plugin active."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
HAPPY = (ROOT / "scenarios" / "happy-path.yaml").read_text(encoding="utf-8")
# The same scenario with an expectation the rules refute: one purchase, never two.
WRONG = HAPPY.replace("expect: {shows: [p1], purchases: 1}",
                      "expect: {shows: [p1], purchases: 2}")


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    assert WRONG != HAPPY
    folder = pytester.mkdir("scenarios")
    (folder / "passes.yaml").write_text(HAPPY, encoding="utf-8")
    (folder / "fails.yaml").write_text(WRONG, encoding="utf-8")
    # a YAML file elsewhere that is not a scenario: never collected
    (pytester.path / "config.yaml").write_text("steps: [1, 2]\n", encoding="utf-8")
    return pytester


def test_one_pass_and_one_fail_item_with_failure_text_and_reproduce_line(project: pytest.Pytester) -> None:
    result = project.runpytest("scenarios", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*step expectation*at step 5 (read s1)*1 purchase(s) shown, expected 2*",
        "reproduce: kcverify run *scenarios/fails.yaml --seed 0",
        "FAILED scenarios/fails.yaml::fails*",
    ])
    assert "Traceback" not in result.stdout.str()


def test_k_selects_and_x_stops(project: pytest.Pytester) -> None:
    project.runpytest("scenarios", "-k", "passes", "-p", "no:cacheprovider").assert_outcomes(passed=1, deselected=1)
    project.runpytest("scenarios", "-k", "smoke and not fails", "-p", "no:cacheprovider").assert_outcomes(
        passed=1, deselected=1)
    stopped = project.runpytest("scenarios", "-x", "-p", "no:cacheprovider")  # fails.yaml is collected first
    stopped.assert_outcomes(failed=1)


def test_xdist_spreads_the_scenario_items_over_workers_with_the_same_verdicts(project: pytest.Pytester) -> None:
    # runpytest_subprocess: xdist's workers are processes of their own, as in a user's CI
    result = project.runpytest_subprocess("scenarios", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*2 workers*", "FAILED scenarios/fails.yaml::fails*"])


def test_only_configured_or_named_yaml_is_collected(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\n")
    project.runpytest("-p", "no:cacheprovider").assert_outcomes()  # nothing named, nothing configured
    project.makeini("[pytest]\nkcverify_scenarios = scenarios\n")
    configured = project.runpytest("-p", "no:cacheprovider")
    configured.assert_outcomes(passed=1, failed=1)  # not config.yaml
    project.runpytest("scenarios/passes.yaml", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_an_unknown_target_fails_the_items_with_one_line(project: pytest.Pytester) -> None:
    result = project.runpytest("scenarios", "--kcverify-target", "nope", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*unknown target 'nope'*"])


def test_a_broken_scenario_file_is_a_collection_error_with_its_line(project: pytest.Pytester) -> None:
    (project.path / "scenarios" / "broken.yaml").write_text("title: x\ncovers: [P1]\nsteps: 3\n", encoding="utf-8")
    result = project.runpytest("scenarios", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)  # a collection error stops the session before any item runs
    result.stdout.fnmatch_lines(["*broken.yaml:3*"])


def test_the_fixtures_build_targets(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_api=f'''
import kcverify

def test_embedded(kcverify_embedded):
    result = kcverify.run({str(ROOT / "scenarios" / "happy-path.yaml")!r}, target=kcverify_embedded)
    assert result.exit_code == 0

def test_configured(kcverify_target):
    assert kcverify_target.info.name == "embedded"
''')
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_the_projects_own_tests_run_unchanged_with_the_plugin_active(pytester: pytest.Pytester) -> None:
    files = [str(ROOT / "tests" / "unit" / name) for name in ("test_scenario_selection.py", "test_oracle.py")]
    # --kcverify-target is accepted only when the plugin is loaded (by its entry point): it is active here
    result = pytester.runpytest_subprocess(*files, "-p", "no:cacheprovider", "--kcverify-target", "embedded",
                                           "--rootdir", str(ROOT))
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) > 0 and not outcomes.get("failed") and not outcomes.get("errors"), outcomes
    assert "scenario:" not in result.stdout.str()
