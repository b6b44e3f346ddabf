"""`kcverify chaos` on the processes target, short: 1,000 purchases (40 s of load) with worker kills and
one broker restart, then recovery; the verdict must be clean (no lost, duplicated or unpaid purchase, poison
dead-lettered once, views fresh and offsets at the end after recovery), and `chaos check` must give the
same verdict from the files alone. Asserts the verdict and the history's shape, never speed.

Runs on the session's shared stack (tests/integration/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kcverify.cli.main import cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_a_short_chaos_run_is_clean_and_rechecks_the_same(stack_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "chaos"
    result = CliRunner().invoke(cli, ["chaos", "--state-dir", str(stack_dir), "--purchases", "1000", "--rate", "25",
                                      "--faults", "worker-kill:10s,broker-restart:once", "--seed", "7",
                                      "--recovery-timeout", "120", "--out", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    lines = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    faults = [line for line in lines if line["type"] == "fault"]
    kinds = [f["kind"] for f in faults]
    assert "broker-restart" in kinds and kinds.count("worker-kill") >= 1
    assert all(f["ok"] and f["end"] >= f["start"] for f in faults), faults
    ops = [line for line in lines if line["type"] == "op"]
    assert sum(1 for op in ops if op["f"] == "create") == 1000
    assert {op["outcome"] for op in ops} <= {"ok", "fail", "unknown"}
    assert {"confirm", "confirm-dup", "read"} <= {op["f"] for op in ops}
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["ok"] is True and verdict["counts"]["purchases"] == verdict["counts"]["succeeded"] > 0
    final = json.loads((out / "final.json").read_text())
    assert final["settled"] is True and len(final["views"]) > 0
    again = CliRunner().invoke(cli, ["chaos", "check", str(out)])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "verdict.json").read_text())["anomalyCounts"] == verdict["anomalyCounts"]
    page = (out / "report.html").read_text()
    timeline = page[page.index('<section id="timeline">'):page.index('<section id="faults">')]
    assert "PASS" in page and timeline.count("<svg") == 2  # throughput and staleness, the faults shaded
    assert all(kind in timeline for kind in set(kinds))  # each fault kind in the charts' legends
    assert page[page.index('<section id="faults">'):].count("<tr><td>") == len(faults)  # a row per fault
