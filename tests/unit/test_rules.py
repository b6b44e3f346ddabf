"""Rule ids are one vocabulary: the rules table, its documentation, the scenarios and the checks."""

from __future__ import annotations

import re
from pathlib import Path

from kcverify.checks import REGISTRY
from kcverify.scenario.loader import load_scenarios
from kcverify.spec.rules import RULES

ROOT = Path(__file__).resolve().parents[2]


def test_docs_explain_every_rule() -> None:
    documented = set(re.findall(r"\*\*([PWSFI]\d)\*\*", (ROOT / "docs" / "spec-rules.md").read_text()))
    assert documented == set(RULES)


def test_the_scenario_library_covers_every_rule() -> None:
    covered = {rule for scenario in load_scenarios([ROOT / "scenarios"]) for rule in scenario.covers}
    assert set(RULES) - covered == set()


def test_checks_cite_only_known_rules() -> None:
    for check in REGISTRY.values():
        assert set(check.rules) <= set(RULES), check.name
