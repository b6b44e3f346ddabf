"""The layering is enforced by import-linter (contracts in pyproject.toml, run by `make test`): the
verifier's layers never import the reference. Shown to pass on this tree and to fail on a copy of it
where one check imports the reference."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_copy(tmp_path: Path, inject: str | None = None) -> subprocess.CompletedProcess[str]:
    """lint-imports on a copy of the package (with the project's contracts), optionally with `inject`
    appended to the metadata check."""
    shutil.copytree(ROOT / "kcverify", tmp_path / "kcverify", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    if inject is not None:
        check = tmp_path / "kcverify" / "checks" / "metadata.py"
        check.write_text(check.read_text(encoding="utf-8") + "\n" + inject + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}  # the copy shadows the installed package
    return subprocess.run([str(LINT_IMPORTS), "--config", str(tmp_path / "pyproject.toml"), "--no-cache"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_the_tree_keeps_every_layer_contract(tmp_path: Path) -> None:
    result = lint_copy(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout and "KEPT" in result.stdout


def test_a_check_importing_the_reference_breaks_the_contract(tmp_path: Path) -> None:
    result = lint_copy(tmp_path, "from kcverify.reference import domain as _domain  # noqa")
    assert result.returncode != 0
    assert "kcverify.checks.metadata -> kcverify.reference.domain" in result.stdout
