"""A third-party target, registered as a user's package registers one: a package and its dist-info
(METADATA + entry_points.txt in the `kcverify.targets` group) on the path, nothing installed into the
environment. The installed `kcverify` command, in a subprocess, lists it, offers it in `run --help`
and runs scenarios on it; a broken registration is exit 2 with one line naming the entry point."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KCVERIFY = shutil.which("kcverify", path=str(Path(sys.executable).parent)) or "kcverify"
SCENARIOS = ROOT / "scenarios"

# Acme's target: a black box reached over HTTP only. Its system is the reference in this process (the
# plug-in delegates to the embedded target), with a defect of its own switched on by ACME_DEFECT, so
# the test can show the verdict on a plug-in is judged, not assumed. It declares no named defects.
ACME = '''
"""Acme's purchase flow, reached over HTTP only."""

from __future__ import annotations

import os
from typing import Any

from kcverify.targets.base import HttpReply, Snapshot, TargetInfo
from kcverify.targets.embedded import EmbeddedTarget


class AcmeTarget:
    """Acme's purchase flow over HTTP only."""

    capabilities = frozenset({"http"})

    def __init__(self, options: Any) -> None:
        broken = os.environ.get("ACME_DEFECT")
        self._inner = EmbeddedTarget(defects=[broken] if broken else [])
        self.setting = options.settings.get("unused", "")
        base = self._inner.info
        self.info = TargetInfo("acme", self.capabilities, base.freshness_bound)

    def start(self, *, seed: int) -> None:
        self._inner.start(seed=seed)

    def stop(self) -> None:
        self._inner.stop()

    def now(self) -> float:
        return self._inner.now()

    def student_id(self, name: str) -> str:
        return "acme-" + name

    def http(self, service: str, method: str, path: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> HttpReply:
        return self._inner.http(service, method, path, body=body, headers=headers)

    def sign(self, payment_id: str, body: bytes, at: float | None = None) -> str:
        return self._inner.sign(payment_id, body, at)

    def token(self, subject: str, role: str) -> str:
        return self._inner.token(subject, role)

    def settle(self, timeout: float | None) -> bool:
        return self._inner.settle(timeout)

    def snapshot(self) -> Snapshot:
        return Snapshot(at=self.now())  # a black box: nothing to see but HTTP


NOT_A_FACTORY = "a string"


def not_a_target(options: Any) -> object:
    return object()
'''


def distribution(where: Path, name: str, entry_points: str, package: str = "") -> Path:
    """`name` 0.1 as an installer leaves it: its package (when given) and its dist-info."""
    module = name.replace("-", "_")
    if package:
        (where / module).mkdir(parents=True)
        (where / module / "__init__.py").write_text(package, encoding="utf-8")
    info = where / f"{module}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[kcverify.targets]\n{entry_points}\n", encoding="utf-8")
    return where


def kcverify(*args: str, path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(path), **(env or {})}
    full_env.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.run([KCVERIFY, *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def acme(tmp_path: Path) -> Path:
    return distribution(tmp_path / "site", "acme-target", "acme = acme_target:AcmeTarget", ACME)


def test_a_registered_target_is_listed_with_its_distribution_and_capabilities(acme: Path) -> None:
    result = kcverify("targets", path=acme)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    at = lines.index("acme  (from acme-target 0.1, acme_target:AcmeTarget)")
    assert lines[at + 1:at + 4] == ["  Acme's purchase flow over HTTP only.", "  capabilities: http", "  --defect: no"]
    assert "embedded  (from kcverify 0.1.0, kcverify.targets.embedded:EmbeddedTarget)" in lines
    assert any(line.startswith("processes  (from kcverify") for line in lines)
    help_text = " ".join(kcverify("run", "--help", path=acme).stdout.split())
    assert "--target NAME" in help_text and "Registered: acme, embedded, external, processes" in help_text


def test_a_registered_target_runs_scenarios_and_skips_what_it_cannot_do(acme: Path) -> None:
    result = kcverify("run", str(SCENARIOS / "happy-path.yaml"), str(SCENARIOS / "ttl-expiry.yaml"),
                      str(SCENARIOS / "illegal-transitions.yaml"), "--target", "acme", path=acme)
    assert result.returncode == 0, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "3 scenarios on target acme" in out
    assert "PASS happy-path" in out
    assert "SKIP ttl-expiry" in out and "(needs control_clock (target acme lacks it))" in out
    assert "SKIP illegal-transitions" in out and "(needs read_db (target acme lacks it))" in out
    assert "2 skipped" in out and "1 passed" in out


def test_a_failure_on_a_registered_target_is_judged_and_reproducible(acme: Path) -> None:
    result = kcverify("run", str(SCENARIOS / "happy-path.yaml"), "--target", "acme", path=acme,
                      env={"ACME_DEFECT": "string-session-count"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  happy-path" in result.stdout and "check contract" in result.stdout
    assert re.search(r"'\d+' is not of type 'integer'", result.stdout), result.stdout
    assert f"reproduce: kcverify run {SCENARIOS / 'happy-path.yaml'} --seed 0 --target acme" in result.stdout


def test_defects_on_a_target_without_named_defects_are_exit_2(acme: Path) -> None:
    result = kcverify("run", str(SCENARIOS / "happy-path.yaml"), "--target", "acme", "--defect", "dual-write",
                      path=acme)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == ("target acme has no named defects: --defect dual-write does not apply to it "
                                     "(`kcverify targets` lists the targets that accept --defect)")
    matrix = kcverify("defects", "--target", "acme", path=acme)
    assert matrix.returncode == 2 and "target acme has no named defects" in matrix.stderr
    assert "Traceback" not in matrix.stderr + result.stderr


def test_an_unknown_target_is_exit_2_with_did_you_mean(acme: Path) -> None:
    result = kcverify("run", str(SCENARIOS / "happy-path.yaml"), "--target", "acm", path=acme)
    assert result.returncode == 2
    assert result.stderr.strip() == ("unknown target 'acm' (did you mean 'acme'? registered targets: acme, "
                                     "embedded, external, processes)")


def test_a_broken_registration_is_exit_2_with_one_line_naming_it(tmp_path: Path) -> None:
    site = distribution(tmp_path / "site", "broken-targets", "\n".join([
        "missing = broken_missing_module:Target",
        "typo = broken_targets:NoSuchName",
        "string = broken_targets:NOT_A_FACTORY",
        "hollow = broken_targets:not_a_target",
    ]), ACME)
    listing = kcverify("targets", path=site)
    assert listing.returncode == 2
    assert "embedded  (from kcverify" in listing.stdout  # the others are still listed
    errors = listing.stderr.strip().splitlines()
    assert len(errors) == 3 and "Traceback" not in listing.stderr
    assert errors[0] == ("error: target plug-in 'missing' (broken_missing_module:Target, from broken-targets 0.1) "
                         "failed to load: ModuleNotFoundError: No module named 'broken_missing_module'")
    assert errors[1] == ("error: target plug-in 'string' (broken_targets:NOT_A_FACTORY, from broken-targets 0.1) "
                         "is a str, not a target factory: name a class or a callable that takes TargetOptions")
    assert errors[2].startswith("error: target plug-in 'typo' (broken_targets:NoSuchName, from broken-targets 0.1) "
                                "failed to load: AttributeError")
    run = kcverify("run", str(SCENARIOS / "happy-path.yaml"), "--target", "missing", path=site)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith("error: target plug-in 'missing' (broken_missing_module:Target")
    hollow = kcverify("run", str(SCENARIOS / "happy-path.yaml"), "--target", "hollow", path=site)
    assert hollow.returncode == 2, hollow.stdout + hollow.stderr
    assert hollow.stderr.strip() == ("error: target plug-in 'hollow' (broken_targets:not_a_target, from "
                                     "broken-targets 0.1) built something that is not a target (object: no info, "
                                     "start, stop, http, settle, snapshot)")
    fine = kcverify("run", str(SCENARIOS / "happy-path.yaml"), path=site)  # a broken plug-in harms no other
    assert fine.returncode == 0, fine.stdout + fine.stderr
