"""The decided names hold in what users read: the guides and every `--help` text say "processes target"
(not "stack target"), "defect" and "kill matrix" (not "mutant" or "mutation score"), and use "seed"
only for the random seed. Identifiers in backticks (a defect or scenario named before the rename) are
not prose and are left alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.test_self_contained import ROOT, help_texts

OLD_NAMES = re.compile(
    r"\bstack target\b|\breal[- ]stack target\b|\bmutants?\b|\bmutation\b|\bthe seed's\b|\bseed document\b",
    re.IGNORECASE)
_CODE_SPAN = re.compile(r"`[^`\n]*`")


def old_names(text: str) -> list[tuple[int, str]]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        prose = _CODE_SPAN.sub("", line)
        found.extend((number, match.group()) for match in OLD_NAMES.finditer(prose))
    return found


def guides() -> list[Path]:
    return sorted([*ROOT.glob("docs/**/*.md"), ROOT / "README.md", ROOT / "ARCHITECTURE.md"])


def test_guides_and_help_texts_use_the_decided_names() -> None:
    wrong = [f"{path.relative_to(ROOT)}:{line}: {word}"
             for path in guides() for line, word in old_names(path.read_text(encoding="utf-8"))]
    wrong += [f"{command}:{line}: {word}" for command, text in help_texts() for line, word in old_names(text)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(("text", "found"), [
    ("run it on the stack target", ["stack target"]),
    ("every Mutant is killed", ["Mutant"]),
    ("the mutation score", ["mutation"]),
    ("The seed's checklist", ["The seed's"]),
    ("`run_mutants()` and `invalidate-at-confirm-only`, --seed 0, the random seed", []),
])
def test_the_name_check_finds_old_words_in_prose_only(text: str, found: list[str]) -> None:
    assert [word for _, word in old_names(text)] == found
