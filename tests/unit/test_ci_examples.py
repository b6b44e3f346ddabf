"""The CI examples (the GitHub workflow, the composite action, the GitLab job, docs/ci.md) are valid for
their CI and call kcverify with options it has: a renamed option or report name fails here."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import yaml

from kcverify.cli.main import cli
from kcverify.report import report_names

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "kcverify.yml"
ACTION = ROOT / "action.yml"
GITLAB = ROOT / "docs" / "examples" / "gitlab-ci.yml"
DOC = ROOT / "docs" / "ci.md"
# check-jsonschema's vendored copies of the published schemas: no network.
SCHEMAS = {WORKFLOW: "vendor.github-workflows", ACTION: "vendor.github-actions", GITLAB: "vendor.gitlab-ci"}


@pytest.mark.parametrize("path", list(SCHEMAS), ids=lambda p: p.name)
def test_example_is_valid_for_its_ci(path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", SCHEMAS[path], str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_check_fails_an_invalid_job(tmp_path: Path) -> None:
    bad = tmp_path / "gitlab-ci.yml"
    bad.write_text(GITLAB.read_text(encoding="utf-8").replace("junit: kcverify-report/junit.xml", "junit: {x: 1}"),
                   encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", SCHEMAS[GITLAB], str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "junit" in done.stdout


def _scripts(node: object, inside: bool = False) -> Iterator[str]:
    """The shell of a document: GitHub's `run:` steps, GitLab's `script:` lines."""
    if isinstance(node, str) and inside:
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _scripts(value, inside or key in ("run", "script"))
    elif isinstance(node, list):
        for value in node:
            yield from _scripts(value, inside)


def _words(line: str) -> list[str]:
    """A shell line as kcverify would receive it: `${VAR:+words}` kept (the option is then checked),
    `${{ expr }}` and `$VAR` become one placeholder word."""
    line = re.sub(r"\$\{\{[^}]*\}\}", "x", line)
    line = re.sub(r"\$\{\w+:\+([^}]*)\}", r"\1", line)
    line = re.sub(r"\$\{?\w+\}?", "x", line)
    return shlex.split(line, comments=True)


def commands(text: str) -> list[list[str]]:
    """Every `kcverify SUBCOMMAND ...` line of a script or a Markdown page."""
    found = []
    for raw in text.splitlines():
        line = raw.strip().removeprefix("- ").removeprefix("run: ").strip("`")
        if re.match(r"kcverify [a-z]", line):
            found.append(_words(line.split("`")[0]))
    return found


def parse(words: list[str]) -> click.Context:
    """Parses the words with the real command: unknown options, missing values and bad choices raise."""
    assert words[0] == "kcverify", words
    name, *rest = words[1:]
    with click.Context(cli) as root:
        command = cli.get_command(root, name)
    assert command is not None, f"no command kcverify {name}"
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"no command {words}"
        command, rest = sub, rest[1:]
    ctx = command.make_context(name, list(rest))
    for report in str(ctx.params.get("report") or "").split(","):
        assert report in ("", "x") or report in report_names(), f"{report}: no such report in {words}"
    return ctx


def _example_commands() -> list[list[str]]:
    found = []
    for path in (WORKFLOW, ACTION, GITLAB):
        for text in _scripts(yaml.safe_load(path.read_text(encoding="utf-8"))):
            found += commands(text)
    return found


def test_every_example_runs_kcverify_with_real_options() -> None:
    found = _example_commands()
    assert sum(words[:2] == ["kcverify", "run"] for words in found) >= 3  # workflow, action, GitLab
    for words in found + commands(DOC.read_text(encoding="utf-8")):
        parse(words)


def test_the_action_passes_every_run_input_to_kcverify() -> None:
    action = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    [words] = [c for c in _example_commands() if c[:2] == ["kcverify", "run"] and "--profile" in c]
    ctx = parse(words)
    assert {"target", "profile", "report", "report_dir"} <= {k for k, v in ctx.params.items() if v not in (None, "")}
    assert {"scenarios", "target", "profile", "version", "extra", "report-dir"} <= set(action["inputs"])
    assert {"exit-code", "junit", "markdown", "report-dir"} <= set(action["outputs"])


def test_a_renamed_option_or_report_fails_the_parse() -> None:
    with pytest.raises(click.NoSuchOption):
        parse(commands("kcverify run scenarios/ --reports junit")[0])
    with pytest.raises(AssertionError, match="no such report"):
        parse(commands("kcverify run scenarios/ --report junit,pdf")[0])
