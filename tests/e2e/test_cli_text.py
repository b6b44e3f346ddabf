"""Text as people wrote it: a failure table shows `Köln`, not `K\\u00f6ln`, on the console and in every
report; and `python -m kcverify` is the same command line as the `kcverify` script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TITLE = "Kleingruppe Köln \u2013 max 6"  # an en dash too: every character outside ASCII


def python_m(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.run([sys.executable, "-m", "kcverify", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, encoding="utf-8", timeout=120)


def test_python_m_kcverify_is_the_cli(tmp_path: Path) -> None:
    version = python_m("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("kcverify"), version
    help_text = python_m("run", "--help", cwd=tmp_path)
    assert help_text.returncode == 0 and "Usage: kcverify run" in help_text.stdout, help_text


def test_failure_tables_show_non_ascii_text_in_every_reporter(tmp_path: Path) -> None:
    original = (ROOT / "scenarios" / "payment-metadata-wins.yaml").read_text()
    patched = original.replace('classTime: "16:00"', f'classTime: "16:00", classTypeTitle: "{TITLE}"')
    assert patched != original
    (tmp_path / "unicode-metadata.yaml").write_text(patched, encoding="utf-8")
    result = python_m("run", "unicode-metadata.yaml", "--defect", "event-wins-merge", "--no-color",
                      "--report", "junit,json,markdown,html", "--report-dir", "out", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert f'"{TITLE}"' in result.stdout and "\\u00f6" not in result.stdout
    files = sorted((tmp_path / "out").iterdir())
    assert {f.suffix for f in files} == {".xml", ".json", ".md", ".html"}
    for file in files:
        text = file.read_text(encoding="utf-8")
        assert "Köln" in text, file.name
        assert not any(escape in text for escape in ("\\u00f6", "&#246;", "&#xf6;")), file.name
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert TITLE in json.dumps(report, ensure_ascii=False)
