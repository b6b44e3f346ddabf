"""The one settings model (kcverify/cli/settings.py, contracts/schemas/settings.schema.json): the file,
the KCVERIFY_* variables and the flags of every command, bad input as one line and exit 2."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from kcverify.cli import settings
from kcverify.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No KCVERIFY_* setting of the machine and no settings file above the test folder."""
    for name in [n for n in os.environ if n.startswith("KCVERIFY_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.chdir(tmp_path)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def params(*words: str) -> dict[str, Any]:
    """The values a command would be called with (`words`: the command words, then its arguments),
    resolved by click through the root's settings, as `kcverify ...` resolves them."""
    ctx = cli.make_context("kcverify", [], resilient_parsing=True)
    command: click.Command = cli
    index = 0
    while isinstance(command, click.Group):
        word = words[index]
        index += 1
        sub = command.get_command(ctx, word)
        assert sub is not None, word
        if isinstance(sub, click.Group):
            ctx = sub.make_context(word, [], parent=ctx, resilient_parsing=True)
        else:
            ctx = sub.make_context(word, list(words[index:]), parent=ctx)
        command = sub
    return dict(ctx.params)


def one_line(result: Result) -> str:
    assert "Traceback" not in result.output and "Traceback" not in (result.stderr or "")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- the file -----------------------------------------------------------------------------------------


def test_a_wrong_type_names_file_line_key_and_value(tmp_path: Path) -> None:
    (tmp_path / "kcverify.toml").write_text('no_color = true\n\n[run]\nfail_fast = "yes"\n')
    result = invoke("run")
    assert result.exit_code == 2
    assert one_line(result) == f"{tmp_path / 'kcverify.toml'}:4: run.fail_fast: expected true or false, got 'yes'"


def test_an_unknown_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    (tmp_path / "kcverify.toml").write_text('seed = 1\n[defects]\njosb = 4\n')
    result = invoke("defects")
    assert result.exit_code == 2
    assert one_line(result) == (f"{tmp_path / 'kcverify.toml'}:3: unknown setting 'defects.josb' "
                                "(did you mean 'jobs'?)")


def test_a_key_in_the_wrong_table_says_where_it_belongs(tmp_path: Path) -> None:
    (tmp_path / "kcverify.toml").write_text('fail_fast = true\n')
    line = one_line(invoke("run"))
    assert line.endswith(":1: unknown setting 'fail_fast' (it is a setting of [run])"), line


def test_every_problem_is_reported_once_each_on_its_own_line(tmp_path: Path) -> None:
    (tmp_path / "kcverify.toml").write_text('seed = -1\n[stack]\ntimeout = nan\n'
                                            '[serve.embedded]\npayment_port = 70000\n')
    result = invoke("stack", "status")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{tmp_path / 'kcverify.toml'}:1: seed: must be at least 0, got -1",
        f"{tmp_path / 'kcverify.toml'}:3: stack.timeout: expected a finite number, got nan",
        f"{tmp_path / 'kcverify.toml'}:5: serve.embedded.payment_port: must be at most 65535, got 70000",
    ]


def test_non_utf8_bytes_are_named_with_their_offset(tmp_path: Path) -> None:
    (tmp_path / "kcverify.toml").write_bytes(b'seed = 1\ntarget = "\xe9"\n')
    result = invoke("run")
    assert result.exit_code == 2
    assert one_line(result) == f"{tmp_path / 'kcverify.toml'}: not UTF-8 text (byte 0xe9 at offset 19)"


def test_a_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "kcverify.toml").write_text('seed = 1\n[run\n')
    result = invoke("explore")
    assert result.exit_code == 2
    assert re.fullmatch(re.escape(str(tmp_path / "kcverify.toml")) + r":2:\d+: .+", one_line(result))


def test_pyproject_tool_kcverify_is_read_and_its_lines_are_the_pyprojects(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.kcverify]\nseed = 3\n\n'
                                             '[tool.kcverify.run]\nverbose = 1\n')
    line = one_line(invoke("run"))
    assert line == f"{tmp_path / 'pyproject.toml'}:8: run.verbose: expected true or false, got 1"
    (tmp_path / "pyproject.toml").write_text('[tool.kcverify]\nseed = 3\n')
    assert params("run")["seed"] == 3


def test_a_pyproject_without_a_kcverify_table_is_passed_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kcverify.toml").write_text("seed = 5\n")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "pyproject.toml").write_text('[project]\nname = "x"\n')
    monkeypatch.chdir(inner)
    assert params("explore")["seed"] == 5


# --- the environment ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "value", "message"), [
    ("KCVERIFY_SEED", "abc", "KCVERIFY_SEED: expected an integer, got 'abc'"),
    ("KCVERIFY_SEED", "-3", "KCVERIFY_SEED: must be at least 0, got -3"),
    ("KCVERIFY_NO_COLOR", "maybe", "KCVERIFY_NO_COLOR: expected true or false (1/0, yes/no), got 'maybe'"),
    ("KCVERIFY_STACK_TIMEOUT", "nan", "KCVERIFY_STACK_TIMEOUT: expected a finite number, got nan"),
    ("KCVERIFY_RUN_REPORT", "junit,jsn", "KCVERIFY_RUN_REPORT: must be one of junit, json, markdown, html, "
                                         "got 'jsn' (did you mean 'json'?)"),
])
def test_a_bad_environment_value_names_the_variable(name: str, value: str, message: str) -> None:
    result = invoke("run", env={name: value})
    assert result.exit_code == 2
    assert one_line(result) == message


def test_flag_beats_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kcverify.toml").write_text('seed = 1\nreport_dir = "file-dir"\n[run]\nreport = ["json"]\n')
    assert params("run")["seed"] == 1
    assert params("run")["report"] == "json"
    monkeypatch.setenv("KCVERIFY_SEED", "2")
    monkeypatch.setenv("KCVERIFY_RUN_REPORT", "junit,html")
    resolved = params("run")
    assert (resolved["seed"], resolved["report"], resolved["report_dir"]) == (2, "junit,html", Path("file-dir"))
    assert params("run", "--seed", "3")["seed"] == 3


def test_a_commands_table_applies_to_that_command_only(tmp_path: Path) -> None:
    (tmp_path / "kcverify.toml").write_text(
        'seed = 4\n[run]\nfail_fast = true\nselect = ["smoke"]\n[explore]\nout = "found"\nmax_steps = 7\n'
        '[defects]\njobs = 2\n[stack]\ntimeout = 30\ntopics = ["t:2"]\n'
        '[serve]\nhost = "0.0.0.0"\n[serve.student]\nport = 9002\n[serve.reconciler]\nreconcile_grace = 5\n')
    run, explore, defects = params("run"), params("explore"), params("defects")
    assert (run["seed"], explore["seed"], defects["seed"]) == (4, 4, 4)  # common
    assert run["fail_fast"] is True and run["select_"] == ("smoke",)
    assert explore["out_dir"] == Path("found") and explore["max_steps"] == 7
    assert defects["jobs"] == 2
    up = params("stack", "up")
    assert up["timeout"] == 30 and up["topics"] == {"t": 2}
    student, payment = params("serve", "student"), params("serve", "payment")
    assert student["port"] == 9002 and payment["port"] is None
    assert student["host"] == payment["host"] == "0.0.0.0"
    assert params("serve", "reconciler")["reconcile_grace"] == 5
    assert params("serve", "embedded")["payment_port"] == 8081


def test_state_dir_is_common_and_keeps_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCVERIFY_STATE_DIR", "/somewhere")
    assert str(params("stack", "status")["state_dir"]) == "/somewhere"
    assert str(params("serve", "worker")["state_dir"]) == "/somewhere"


# --- the contract and the commands agree --------------------------------------------------------------


def _command(*words: str) -> click.Command:
    command: click.Command = cli
    ctx = click.Context(cli)
    for word in words:
        assert isinstance(command, click.Group)
        found = command.get_command(ctx, word)
        assert found is not None, words
        command = found
    return command


def _scopes(table: tuple[str, ...]) -> list[tuple[str, ...]]:
    if table == ():
        return [("run",), ("defects",), ("explore",), *[("stack", s) for s in settings.STACK_SUBCOMMANDS],
                *[("serve", m) for m in settings.SERVE_MODES]]
    if table == ("stack",):
        return [("stack", s) for s in settings.STACK_SUBCOMMANDS]
    if table == ("serve",):
        return [("serve", m) for m in settings.SERVE_MODES]
    return [table]


def test_every_schema_key_is_an_option_of_the_command_it_belongs_to() -> None:
    for path in settings.leaves():
        table, key = path[:-1], path[-1]
        owners = []
        for scope in _scopes(table):
            name = settings.PARAM_NAMES.get((scope[0], key), key)
            if any(p.name == name for p in _command(*scope).params):
                owners.append(scope)
        if table in ((), ("stack",)):
            assert owners, f"{'.'.join(path)} is an option of no command"
        else:
            assert owners == _scopes(table), f"{'.'.join(path)}: not an option of {' '.join(table)}"


def test_every_key_has_its_own_environment_variable() -> None:
    names = [settings.env_name(p) for p in settings.leaves()]
    assert len(names) == len(set(names))
    assert settings.env_name(("seed",)) == "KCVERIFY_SEED"
    assert settings.env_name(("serve", "embedded", "payment_port")) == "KCVERIFY_SERVE_EMBEDDED_PAYMENT_PORT"


def test_every_key_and_variable_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    for path in settings.leaves():
        assert f"`{'.'.join(path)}`" in text, f"docs/configuration.md lacks `{'.'.join(path)}`"
        assert f"`{settings.env_name(path)}`" in text, f"docs/configuration.md lacks `{settings.env_name(path)}`"


def test_the_documented_example_file_is_valid(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    example = text.split("```toml\n# kcverify.toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "kcverify.toml").write_text(example)
    found = settings.find_file(tmp_path)
    assert found is not None and settings.file_errors(found) == []


# --- numbers and destinations on the command line -----------------------------------------------------


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "1e999", "3601"])
def test_stack_up_timeout_is_finite_and_bounded(value: str) -> None:
    result = invoke("stack", "up", "--timeout", value)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--timeout'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [("run", "--seed", "-1"), ("explore", "--max-steps", "0"),
                                  ("defects", "--jobs", "0"), ("serve", "reconciler", "--reconcile-every", "nan"),
                                  ("serve", "embedded", "--payment-port", "70000")])
def test_numbers_on_the_command_line_are_bounded(args: tuple[str, ...]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2 and "Invalid value" in result.stderr


def test_an_unusable_state_dir_stops_stack_up_at_once(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = invoke("stack", "up", "--state-dir", str(blocker / "state"))
    assert result.exit_code == 2
    line = one_line(result)
    assert line.startswith(f"kcverify stack: stack state dir {blocker / 'state'}: cannot write there"), line


def test_an_unusable_explore_out_dir_is_exit_2_before_searching(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = invoke("explore", "--budget", "1", "--out", str(blocker / "found"))
    assert result.exit_code == 2
    assert one_line(result).startswith(f"--out {blocker / 'found'}: cannot write there")
    assert "schedules" not in result.stdout  # refused before the search (and before its header)


def test_columns_that_is_not_a_number_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    from kcverify.cli.defects import PIPE_WIDTH, _console

    monkeypatch.setenv("COLUMNS", "abc")
    assert _console(True).width == PIPE_WIDTH
    monkeypatch.setenv("COLUMNS", "300")
    assert _console(True).width == 300


# --- serve: each mode its own options -----------------------------------------------------------------


def _options(*words: str) -> set[str]:
    return {opt for p in _command(*words).params if not getattr(p, "hidden", False) for opt in p.opts}


def test_each_serve_mode_shows_only_its_own_options() -> None:
    embedded = _options("serve", "embedded")
    assert {"--payment-port", "--student-port", "--data-dir", "--in-memory", "--trace"} <= embedded
    assert not embedded & {"--state-dir", "--port", "--outbox", "--control-port", "--reconcile-grace"}
    assert "--outbox" in _options("serve", "relay") and "--outbox" not in _options("serve", "worker")
    assert "--port" in _options("serve", "payment") and "--port" not in _options("serve", "reconciler")
    assert "--invalidator-retry" in _options("serve", "student")
    assert {"--reconcile-grace", "--reconcile-every"} <= _options("serve", "reconciler")
    for mode in settings.SERVE_MODES:
        assert "--payment-port" not in _options("serve", mode) or mode == "embedded"
    help_text = invoke("serve", "worker", "--help").output
    assert "--state-dir" in help_text and "--payment-port" not in help_text and "--outbox" not in help_text


def test_the_old_embedded_flag_points_at_the_subcommand() -> None:
    result = invoke("serve", "--embedded")
    assert result.exit_code == 2 and "kcverify serve embedded" in result.stderr


def test_relative_paths_in_the_file_are_relative_to_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kcverify.toml").write_text('paths = ["scenarios"]\nreport_dir = "out"\n[explore]\nout = "/abs"\n')
    assert params("run")["paths"] == (Path("scenarios"),) and params("run")["report_dir"] == Path("out")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    resolved = params("run")
    assert resolved["paths"] == (tmp_path / "scenarios",) and resolved["report_dir"] == tmp_path / "out"
    assert params("explore")["out_dir"] == Path("/abs")
    monkeypatch.setenv("KCVERIFY_REPORT_DIR", "here")
    assert params("run")["report_dir"] == Path("here")  # the environment's are the working directory's


def test_help_and_version_do_not_read_the_settings(tmp_path: Path) -> None:
    (tmp_path / "kcverify.toml").write_text("seed = [\n")
    assert invoke("--version").exit_code == 0
    assert invoke("--help").exit_code == 0
    assert invoke("run").exit_code == 2


def test_an_unexpected_error_in_any_command_is_exit_3_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import kcverify.cli.stack as stack_cli

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(stack_cli, "status", broken)
    result = invoke("stack", "status")
    assert result.exit_code == 3
    assert one_line(result) == ("kcverify failed internally: RuntimeError: boom "
                                "(please report; KCVERIFY_DEBUG=1 or --debug shows more)")
