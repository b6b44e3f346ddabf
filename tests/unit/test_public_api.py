"""The public API (`import kcverify`, docs/api.md): its surface is exactly `__all__`, every name there
resolves, and a run through it judges the reference: the examples pass, a defect is caught with a
failure that names its rules and carries a reproduce command. `import kcverify` alone loads no layer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import kcverify

ROOT = Path(__file__).resolve().parents[2]
SURFACE = {
    "run", "load_scenarios", "build_target", "example_scenarios", "RunResult", "ScenarioResult", "StepResult",
    "CheckResult", "Failure", "Status", "Scenario", "Target", "TargetOptions", "KcverifyError", "InputError",
    "TargetUnreachable", "MissingExtra", "__version__",
}


def test_the_surface_is_all_and_every_name_resolves() -> None:
    assert set(kcverify.__all__) == SURFACE
    for name in kcverify.__all__:
        assert getattr(kcverify, name) is not None, name
    with pytest.raises(AttributeError):
        kcverify.not_a_name  # noqa: B018


def test_every_public_name_is_documented() -> None:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for name in kcverify.__all__:
        assert f"`{name}" in text, f"docs/api.md lacks {name}"


def test_importing_kcverify_loads_no_layer() -> None:
    code = "import sys, kcverify; print(sorted(m for m in sys.modules if m.startswith('kcverify.')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_run_through_the_api_passes_the_examples_and_catches_a_defect() -> None:
    scenario = ROOT / "scenarios" / "happy-path.yaml"
    passed = kcverify.run(scenario)
    assert isinstance(passed, kcverify.RunResult)
    assert passed.status == kcverify.Status.PASSED and passed.exit_code == 0
    assert [s.name for s in passed.scenarios] == ["happy-path"]

    failed = kcverify.run([scenario], defects=["latest-offset-reset"])
    assert failed.status == kcverify.Status.FAILED and failed.exit_code == 1
    (result,) = failed.scenarios
    assert result.failures and all(isinstance(f, kcverify.Failure) for f in result.failures)
    assert "--defect latest-offset-reset" in result.reproduce


def test_a_built_target_and_loaded_scenarios_can_be_passed() -> None:
    scenarios = kcverify.load_scenarios(kcverify.example_scenarios(), select=["happy-path"])
    assert [s.name for s in scenarios] == ["happy-path"]
    target = kcverify.build_target("embedded")
    result = kcverify.run(scenarios, target=target, checks=["metadata"])
    assert result.exit_code == 0
    assert [c.name for c in result.scenarios[0].checks] == ["metadata"]


def test_bad_input_is_an_input_error() -> None:
    with pytest.raises(kcverify.InputError, match="unknown target"):
        kcverify.build_target("no-such-target")
    with pytest.raises(kcverify.InputError, match="unknown check"):
        kcverify.run(ROOT / "scenarios" / "happy-path.yaml", checks=["nope"])
