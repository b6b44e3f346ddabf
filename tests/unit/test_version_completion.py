"""`kcverify --version` names the package's and every contract's version; the shell completion scripts
of docs/completion.md are produced and complete."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kcverify import __version__
from kcverify.cli.main import cli
from kcverify.contracts import contracts_dir
from kcverify.contracts.versions import contract_versions, document_version, version_text

ROOT = Path(__file__).resolve().parents[2]


def test_version_shows_the_package_and_every_contract() -> None:
    done = CliRunner().invoke(cli, ["--version"], prog_name="kcverify")
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[0] == f"kcverify {__version__}"
    documents = [p for p in contracts_dir().rglob("*") if p.is_file() and p.suffix in (".json", ".yaml", ".sql")]
    assert len(documents) == len(contract_versions())
    for path in documents:
        name = path.relative_to(contracts_dir()).as_posix()
        [line] = [line for line in lines if line.split()[0] == f"contracts/{name}"]
        assert line.split()[1] == document_version(path)


def test_every_shipped_contract_carries_a_version() -> None:
    assert all(contract_versions().values()), [n for n, v in contract_versions().items() if not v]


def test_versions_are_read_where_each_format_keeps_them(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("openapi: 3.1.0\ninfo: {title: t, version: 2.3.4}\n", encoding="utf-8")
    (tmp_path / "b.schema.json").write_text('{"version": "5.0.0", "type": "object"}', encoding="utf-8")
    (tmp_path / "c.sql").write_text("-- version: 7.1\nCREATE TABLE t (x INT);\n", encoding="utf-8")
    (tmp_path / "d.schema.json").write_text('{"type": "object"}', encoding="utf-8")
    assert contract_versions(tmp_path) == {"a.yaml": "2.3.4", "b.schema.json": "5.0.0", "c.sql": "7.1",
                                           "d.schema.json": None}
    assert "contracts/d.schema.json  unversioned" in version_text("9", tmp_path)


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o nosort -F"), ("zsh", "#compdef kcverify"),
                                           ("fish", "complete --no-files --command kcverify")])
def test_completion_script_is_produced(shell: str, marker: str) -> None:
    done = CliRunner().invoke(cli, [], prog_name="kcverify", env={"_KCVERIFY_COMPLETE": f"{shell}_source"})
    assert done.exit_code == 0
    assert marker in done.output and "_KCVERIFY_COMPLETE" in done.output
    documented = (ROOT / "docs" / "completion.md").read_text(encoding="utf-8")
    assert f"_KCVERIFY_COMPLETE={shell}_source kcverify" in documented


def test_bash_completion_completes_commands_and_options() -> None:
    def complete(words: str) -> list[str]:
        env = {"_KCVERIFY_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
        done = CliRunner().invoke(cli, [], prog_name="kcverify", env=env)
        assert done.exit_code == 0
        return [line.split(",", 1)[1] for line in done.output.splitlines()]

    assert complete("kcverify ru") == ["run"]
    assert "--report-dir" in complete("kcverify run --rep")
