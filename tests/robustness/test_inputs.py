"""Every class of bad input met so far, fed to every command that reads it: exit 2 and one line naming the
problem (file:line:col where there is one), no traceback, in bounded time and memory."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kcverify.scenario.loader import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, MAX_VALUES
from tests.robustness.conftest import Outcome, assert_refused, command, invoke

VALID = "title: x\ncovers: [S3]\nsteps:\n  - create_payment: {as: p1}\n  - confirm: {payment: p1}\n  - settle: {}\n"


def _laughs() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\ntitle: x\n"


def _step(text: str) -> str:
    return f"title: x\ncovers: [S3]\nsteps:\n  - create_payment: {{as: p1}}\n  - {text}\n"


# name -> (file contents, words the one line must contain). Bytes are written as they are.
YAML_CLASSES: dict[str, tuple[str | bytes, tuple[str, ...]]] = {
    "deep-flow-nesting": ("steps: " + "[" * 5000 + "]" * 5000 + "\n", (f"{MAX_DEPTH} levels", ":1:")),
    "deep-block-nesting": ("steps:\n" + "".join("  " * i + "-\n" for i in range(200)), (f"{MAX_DEPTH} levels",)),
    "billion-laughs": (_laughs(), (f"{MAX_VALUES} values", "aliases")),
    "too-many-values": ("title: x\nsteps: [" + "0," * (MAX_NODES + 10) + "]\n", (f"{MAX_NODES} values",)),
    "larger-than-the-cap": ("title: " + "x" * MAX_FILE_BYTES + "\n", ("larger than", "limit")),
    "not-utf-8": (b"title: caf\xe9\n", ("not UTF-8", ":1:")),
    "control-character": ("title: a\x07b\n", ("invalid YAML",)),
    "binary-garbage": (bytes(range(256)) * 4, ("not UTF-8",)),
    "truncated": (VALID[: VALID.index("confirm") + 5], (":",)),
    "a-list-not-a-mapping": ("- a\n- b\n", ("must be a mapping",)),
    "empty": ("", ("empty",)),
}

SCENARIO_CLASSES: dict[str, tuple[str, tuple[str, ...]]] = {
    "times-1e23": (_step("confirm: {payment: p1, times: 1e23}"), ("'times' must be", ":5:")),
    "times-huge": (_step("fail: {resource: cache, times: 100000000000}"), ("'times' must be at most", ":5:")),
    "times-a-float": (_step("confirm: {payment: p1, times: 2.0}"), ("'times' must be an integer",)),
    "copies-huge": (_step("publish: {payment: p1, copies: 100000000}"), ("'copies' must be at most",)),
    "advance-clock-1e12": (_step("advance_clock: {seconds: 1e12}"), ("'seconds' must be at most",)),
    "advance-clock-inf": (_step("advance_clock: {seconds: .inf}"), ("not a finite number",)),
    "advance-clock-nan": (_step("advance_clock: {seconds: .nan}"), ("not a finite number",)),
    "settle-timeout-huge": (_step("settle: {timeout: 1e9}"), ("'timeout' must be at most",)),
    "signature-age-inf": (_step("confirm: {payment: p1, signature: {age: -.inf}}"), ("not a finite number",)),
    "freshness-bound-nan": ("title: x\ncovers: [S3]\nfreshness_bound: .nan\nsteps:\n  - settle: {}\n",
                            ("not a finite number", ":3:")),
    "freshness-bound-inf": ("title: x\ncovers: [S3]\nfreshness_bound: .inf\nsteps:\n  - settle: {}\n",
                            ("not a finite number",)),
    "freshness-bound-huge": ("title: x\ncovers: [S3]\nfreshness_bound: 1e23\nsteps:\n  - settle: {}\n",
                             ("'freshness_bound' must be at most",)),
    "amount-beyond-json": (_step("create_payment: {as: p2, amount_cents: 100000000000000000000000000}"),
                           ("'amount_cents' must be at most",)),
}


def _write(directory: Path, name: str, contents: str | bytes) -> Path:
    path = directory / f"{name}.yaml"
    path.write_bytes(contents if isinstance(contents, bytes) else contents.encode())
    return path


# The commands that read scenario files, and how the file is given to them.
SCENARIO_COMMANDS: dict[str, Callable[[Path], tuple[str, ...]]] = {
    "run": lambda f: ("run", str(f)),
    "defects": lambda f: ("defects", str(f)),
    "run-selected": lambda f: ("run", str(f.parent), "-k", f.stem),
}


@pytest.mark.parametrize("cmd", sorted(SCENARIO_COMMANDS))
@pytest.mark.parametrize("name", sorted({**YAML_CLASSES, **SCENARIO_CLASSES}))
def test_scenario_file_refused(workdir: Path, cmd: str, name: str) -> None:
    contents, words = {**YAML_CLASSES, **SCENARIO_CLASSES}[name]
    (workdir / "in").mkdir()
    file = _write(workdir / "in", name, contents)
    started = time.monotonic()
    outcome = invoke(*SCENARIO_COMMANDS[cmd](file))
    assert_refused(outcome, str(file) if cmd != "run-selected" else file.name, *words)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("name", sorted(YAML_CLASSES))
def test_claims_file_refused(workdir: Path, name: str) -> None:
    """Claims files are read by the same bounded loader."""
    contents, words = YAML_CLASSES[name]
    scenario = _write(workdir, "ok", VALID)
    claims = _write(workdir, f"claims-{name}", contents)
    outcome = invoke("run", str(scenario), "--claims", str(claims))
    if name in ("a-list-not-a-mapping", "empty"):
        words = ()  # the claims file's own wording
    assert_refused(outcome, str(claims), *words)


def test_claims_non_finite_refused(workdir: Path) -> None:
    scenario = _write(workdir, "ok", VALID)
    claims = _write(workdir, "claims", "claims:\n  - id: c1\n    weight: .nan\n")
    assert_refused(invoke("run", str(scenario), "--claims", str(claims)), "not a finite number", ":3:")


SPECIAL = {
    "dev-zero": (Path("/dev/zero"), "not a regular scenario file"),
    "dev-null": (Path("/dev/null"), "not a regular scenario file"),
}


@pytest.mark.parametrize("cmd", ["run", "defects"])
@pytest.mark.parametrize("name", ["dev-zero", "dev-null", "fifo", "symlink-loop", "missing"])
def test_not_a_regular_file_refused(workdir: Path, cmd: str, name: str) -> None:
    if name in SPECIAL:
        path, words = SPECIAL[name]
    elif name == "fifo":
        path, words = workdir / "pipe.yaml", "is a FIFO"
        os.mkfifo(path)
    elif name == "symlink-loop":
        path, words = workdir / "loop.yaml", "cannot read"
        path.symlink_to(path)
    else:
        path, words = workdir / "missing.yaml", "no such file"
    assert_refused(invoke(cmd, str(path)), str(path), words)


@pytest.mark.parametrize("name", ["dev-zero", "laughs", "large"])
def test_memory_and_time_bounded(workdir: Path, name: str) -> None:
    """As a separate process with its memory capped: refused within seconds, never killed."""
    path = {"dev-zero": Path("/dev/zero"), "laughs": _write(workdir, "laughs", _laughs()),
            "large": _write(workdir, "large", "title: x\nsteps:\n" + "  - settle: {}\n" * 2_000_000)}[name]
    started = time.monotonic()
    outcome = command("run", str(path), cwd=workdir)
    assert_refused(outcome, str(path))
    assert time.monotonic() - started < 30


# --- options and environment of every command --------------------------------------------------------

def _unusable(workdir: Path) -> str:
    (workdir / "a-file").write_text("x")
    return str(workdir / "a-file" / "below")


OPTION_CASES: dict[str, Callable[[Path], tuple[tuple[str, ...], dict[str, str], str]]] = {
    # name -> (args, environment, word in the one line)
    "run-report-dir": lambda w: (("run", str(_write(w, "ok", VALID)), "--report", "json", "--report-dir",
                                  _unusable(w)), {}, "report dir"),
    "run-step-summary": lambda w: (("run", str(_write(w, "ok", VALID)), "--report", "markdown", "--report-dir",
                                    str(w / "r")), {"GITHUB_STEP_SUMMARY": str(w)}, "GITHUB_STEP_SUMMARY"),
    "run-seed-negative": lambda w: (("run", str(_write(w, "ok", VALID)), "--seed", "-1"), {}, "--seed"),
    "run-seed-huge": lambda w: (("run", str(_write(w, "ok", VALID)), "--seed", "1" + "0" * 40), {}, "--seed"),
    "run-unknown-report": lambda w: (("run", str(_write(w, "ok", VALID)), "--report", "pdf"), {}, "pdf"),
    "defects-report-dir": lambda w: (("defects", str(_write(w, "ok", VALID)), "--report", "json",
                                      "--report-dir", _unusable(w)), {}, "report dir"),
    "explore-out": lambda w: (("explore", "--budget", "1", "--out", _unusable(w)), {}, "--out"),
    "explore-budget-garbage": lambda w: (("explore", "--budget", "1e23x"), {}, "--budget"),
    "explore-budget-zero": lambda w: (("explore", "--budget", "0s"), {}, "--budget"),
    "explore-max-steps": lambda w: (("explore", "--max-steps", "1000000000"), {}, "--max-steps"),
    "stack-timeout-negative": lambda w: (("stack", "up", "--timeout", "-1"), {}, "--timeout"),
    "stack-timeout-nan": lambda w: (("stack", "up", "--timeout", "nan"), {}, "--timeout"),
    "stack-state-dir": lambda w: (("stack", "up", "--state-dir", _unusable(w)), {}, "below"),
    "serve-port-range": lambda w: (("serve", "embedded", "--payment-port", "70000"), {}, "--payment-port"),
    "serve-port-garbage": lambda w: (("serve", "embedded", "--student-port", "abc"), {}, "--student-port"),
    "serve-data-dir": lambda w: (("serve", "embedded", "--data-dir", _unusable(w)), {}, "below"),
    "targets-extra-argument": lambda w: (("targets", "nope"), {}, "nope"),
    "run-unknown-target": lambda w: (("run", str(_write(w, "ok", VALID)), "--target", "nope"), {}, "nope"),
}


@pytest.mark.parametrize("name", sorted(OPTION_CASES))
def test_bad_option_refused(workdir: Path, name: str) -> None:
    args, env, word = OPTION_CASES[name](workdir)
    outcome = invoke(*args, env=env)
    # click's usage errors come with a "Usage:" and "Try ... --help" block: still exit 2, no traceback,
    # and exactly one line that is the error.
    if any(line.startswith("Usage:") for line in outcome.lines()):
        errors = [line for line in outcome.lines() if line.startswith("Error:")]
        assert outcome.code == 2 and "Traceback" not in outcome.output and len(errors) == 1, outcome.output
        assert word in errors[0], errors
        return
    assert_refused(outcome, word)


SETTINGS_FILES: dict[str, tuple[bytes, str]] = {
    "wrong-type": (b"seed = \"abc\"\n", "kcverify.toml:1"),
    "non-utf-8": (b"seed = 1 # caf\xe9\n", "not UTF-8"),
    "toml-syntax": (b"[run\n", "kcverify.toml:1"),
    "unknown-key": (b"sed = 1\n", "sed"),
    "nan": (b"seed = nan\n", "kcverify.toml:1"),
}
SETTINGS_COMMANDS = {
    "run": ("run", "x.yaml"),
    "defects": ("defects", "x.yaml"),
    "explore": ("explore", "--budget", "1"),
    "stack": ("stack", "status"),
    "serve": ("serve", "embedded"),
}


@pytest.mark.parametrize("cmd", sorted(SETTINGS_COMMANDS))
@pytest.mark.parametrize("name", sorted(SETTINGS_FILES))
def test_settings_file_refused(workdir: Path, cmd: str, name: str) -> None:
    contents, word = SETTINGS_FILES[name]
    (workdir / "kcverify.toml").write_bytes(contents)
    assert_refused(invoke(*SETTINGS_COMMANDS[cmd]), word)


@pytest.mark.parametrize("columns", ["abc", "-5", "0", "99999999999999999999"])
def test_columns_garbage_is_ignored(workdir: Path, columns: str) -> None:
    outcome = invoke("run", str(_write(workdir, "ok", VALID)), "--no-color", env={"COLUMNS": columns})
    assert outcome.code == 0 and "Traceback" not in outcome.output, outcome.output[-2000:]


def test_outcome_lines_ignore_blank() -> None:
    """The helper counts lines the way a person reads them."""
    assert Outcome(2, "\n a\n\n").lines() == [" a"]
