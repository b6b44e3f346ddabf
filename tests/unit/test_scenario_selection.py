"""Every broken scenario file is reported at once, and `-k` validates only what it selects: a broken
file that is not selected does not stop the run; a selected one still does (never half-run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcverify.core.errors import InputError
from kcverify.scenario.loader import ScenarioErrors, load_scenarios
from kcverify.scenario.selection import Selection

GOOD = "title: good\ncovers: [W6]\n{extra}steps:\n  - create_payment: {{as: p1}}\n  - settle: {{}}\n"


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "happy.yaml").write_text(GOOD.format(extra="tags: [smoke]\n"))
    (tmp_path / "renamed.yaml").write_text(GOOD.format(extra="name: checkout-flow\n"))
    (tmp_path / "retry.yaml").write_text("title: r\ncovers: [P4]\nsteps:\n  - create_payment: {as: p1}\n"
                                         "  - confirm: {payment: p1, times: \"2\"}\n")
    (tmp_path / "unreadable.yaml").write_text("title: u\ncovers: [P4\nsteps: []\n")
    (tmp_path / "tagged.yaml").write_text("title: t\ncovers: [P4]\ntags: [slow]\nsteps:\n  - confrim: {payment: p1}\n")
    return tmp_path


def test_every_broken_file_is_reported_with_its_position(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    with pytest.raises(ScenarioErrors) as caught:
        load_scenarios([folder])
    lines = caught.value.render().splitlines()
    assert lines == [
        f"{folder / 'retry.yaml'}:5:35: step 2: 'times' must be an integer, got '2'",
        f"{folder / 'tagged.yaml'}:5:5: step 1: unknown step 'confrim' (did you mean 'confirm'?)",
        f"{folder / 'unreadable.yaml'}:3:6: invalid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence at line 2)",
        "3 scenario files have errors; nothing was run",
    ]
    assert isinstance(caught.value, InputError) and caught.value.exit_code == 2


def test_one_broken_file_is_one_line_as_before(tmp_path: Path) -> None:
    (tmp_path / "happy.yaml").write_text(GOOD.format(extra=""))
    (tmp_path / "retry.yaml").write_text("title: r\ncovers: [P4]\nsteps: [{confrim: {}}]\n")
    with pytest.raises(InputError) as caught:
        load_scenarios([tmp_path])
    assert not isinstance(caught.value, ScenarioErrors)
    assert caught.value.render().startswith(f"{tmp_path / 'retry.yaml'}:3:")


@pytest.mark.parametrize(("expression", "loaded"), [
    ("happy", ["happy"]),                      # part of a file name
    ("smoke", ["happy"]),                      # a tag, read without validating the file
    ("checkout", ["checkout-flow"]),           # an explicit `name:` is the name, not the file's
    ("renamed", []),                           # ... so the file name no longer selects it
    ("happy,checkout", ["happy", "checkout-flow"]),
])
def test_k_validates_only_the_files_it_selects(tmp_path: Path, expression: str, loaded: list[str]) -> None:
    scenarios = load_scenarios([_folder(tmp_path)], Selection.parse([expression]))
    assert [s.name for s in scenarios] == loaded


def test_a_selected_broken_file_still_stops_the_run(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    with pytest.raises(InputError, match="unknown step 'confrim'"):
        load_scenarios([folder], Selection.parse(["slow"]))  # selected by its tag, then fully validated
    with pytest.raises(InputError, match="invalid YAML"):
        load_scenarios([folder], Selection.parse(["unreadable"]))  # unreadable: selected by its file name
    with pytest.raises(ScenarioErrors):
        load_scenarios([folder], Selection.parse(["not:happy"]))  # excluding one keeps the broken ones


def test_excluding_the_broken_files_runs_the_rest(tmp_path: Path) -> None:
    scenarios = load_scenarios([_folder(tmp_path)], Selection.parse(["not:retry,not:slow", "not:unreadable"]))
    assert [s.name for s in scenarios] == ["happy", "checkout-flow"]


def test_selection_terms() -> None:
    selection = Selection.parse(["a, not:b", "c"])
    assert selection == Selection(("a", "c"), ("b",)) and selection.describe() == "a c not:b"
    assert selection.matches("xa", ()) and not selection.matches("ab", ()) and selection.matches("z", ("c",))
    assert not Selection.parse([" , "]) and Selection().matches("anything", ())
