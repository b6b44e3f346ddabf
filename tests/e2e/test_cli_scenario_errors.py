"""`kcverify run` on a folder with broken scenario files: every error at once, exit 2, nothing run;
`-k` that selects only good files runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KCVERIFY = shutil.which("kcverify", path=str(Path(sys.executable).parent)) or "kcverify"


def kcverify(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.run([KCVERIFY, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_broken_files_are_all_reported_and_k_runs_the_good_ones(tmp_path: Path) -> None:
    shutil.copy(ROOT / "scenarios" / "happy-path.yaml", tmp_path / "happy-path.yaml")
    (tmp_path / "a-typo.yaml").write_text("title: a\ncovers: [P4]\nsteps:\n  - confrim: {payment: p1}\n")
    (tmp_path / "b-bad-yaml.yaml").write_text("title: b\ncovers: [P4\nsteps: []\n")
    everything = kcverify("run", ".", cwd=tmp_path)
    assert everything.returncode == 2
    assert everything.stdout == ""  # nothing ran
    lines = everything.stderr.splitlines()
    assert lines[0].startswith("a-typo.yaml:4:5: step 1: unknown step 'confrim'")
    assert lines[1].startswith("b-bad-yaml.yaml:3:6: invalid YAML")
    assert lines[2] == "2 scenario files have errors; nothing was run"
    selected = kcverify("run", ".", "-k", "happy", cwd=tmp_path)
    assert selected.returncode == 0, selected.stderr
    assert "happy-path" in selected.stdout and "1 passed" in selected.stdout
    broken = kcverify("run", ".", "-k", "typo", cwd=tmp_path)
    assert broken.returncode == 2 and broken.stderr.startswith("a-typo.yaml:4:5:") and broken.stdout == ""
