"""The kill matrix stays readable in an 80-column terminal: compact (coded columns and a legend, "first
caught by" as a list) with no line wider than the console, and whole when the console is wide enough."""

from __future__ import annotations

from rich.console import Console

from kcverify.checks import REGISTRY
from kcverify.killmatrix.console import MutantsConsole, abbreviations
from kcverify.killmatrix.model import STEP_CHECKS, Baseline, Catch, MutantResult, MutantsResult
from kcverify.targets import registry


def _result() -> MutantsResult:
    """Every defect of the reference's catalogue (the real, long names), each caught by a few checks in
    up to 35 scenarios, one survivor: the widest matrix `kcverify defects` prints today."""
    checks = (*STEP_CHECKS, *REGISTRY)
    mutants = []
    for i, defect in enumerate(registry.lookup("embedded").defect_catalogue):
        caught = tuple(Catch(f"scenario-with-a-rather-long-name-{n}", checks[(i + k) % len(checks)], (defect.rule,))
                       for k in range(3) for n in range(1 + (i * 7 + k) % 35))
        mutants.append(MutantResult(defect.name, defect.rule, defect.description, killed=i != 0,
                                    caught_by=caught if i else (), duration=1.5))
    return MutantsResult("embedded", 0, 1, 0.0, 60.0, Baseline(10.0, ("happy-path",), ()), tuple(mutants),
                         tuple(REGISTRY))


def _render(width: int) -> list[str]:
    console = Console(record=True, width=width, no_color=True, force_terminal=False)
    MutantsConsole(console).finished(_result())
    return console.export_text().splitlines()


def test_at_80_columns_no_line_is_longer_and_every_defect_and_check_is_named() -> None:
    lines = _render(80)
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    text = "\n".join(lines)
    result = _result()
    codes = abbreviations(result.columns)
    assert "columns: " + ", ".join(f"{codes[c]} {c}" for c in result.columns) in " ".join(text.split())
    header = next(line for line in lines if line.split()[:2] == ["defect", "rule"])
    assert header.split()[2:] == [codes[c] for c in result.columns]
    for mutant in result.mutants:
        row = next(line for line in lines if line.split()[:1] == [mutant.name])
        counts = [len(mutant.scenarios_by_check().get(c, ())) for c in result.columns]
        assert row.split()[2:] == [str(n) if n else "—" for n in counts], row
    assert f"  {result.mutants[0].name}: SURVIVED" in text and "kill score:" in text


def test_a_wide_console_keeps_the_whole_matrix() -> None:
    lines = _render(400)
    header = next(line for line in lines if line.split()[:2] == ["defect", "rule"])
    assert "step expectation" in header and "first caught by" in header and "columns:" not in "\n".join(lines)


def test_abbreviations_are_unique() -> None:
    names = ("step expectation", "settle bound", "stored", "st", "state", "stale")
    codes = abbreviations(names)
    assert len(set(codes.values())) == len(names) and codes["step expectation"] == "se"

