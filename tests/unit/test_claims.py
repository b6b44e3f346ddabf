"""Claims files (kcverify.report.claims): the shipped example loads and cites only known rules; a wrong
file is one `file:line:col: message` and exit 2 from `kcverify run --claims`, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kcverify.cli.main import cli
from kcverify.core.errors import InputError
from kcverify.report.claims import load_claims
from kcverify.spec.rules import RULES

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_example_loads_and_cites_known_rules() -> None:
    claims = load_claims(ROOT / "claims.yaml")
    assert claims.title and len(claims.claims) >= 20
    assert len({c.id for c in claims.claims}) == len(claims.claims)
    for claim in claims.claims:
        assert claim.rules and set(claim.rules) <= set(RULES), claim
    assert claims.claims[0].line == 7  # where the first claim starts, for messages


def test_a_claim_is_id_text_and_rules(tmp_path: Path) -> None:
    path = write(tmp_path, "title: Mine\nclaims:\n  - id: one\n    text: It works\n    rules: [W4, F2]\n")
    claims = load_claims(path)
    assert claims.title == "Mine" and claims.path == str(path)
    [claim] = claims.claims
    assert (claim.id, claim.text, claim.rules, claim.line) == ("one", "It works", ("W4", "F2"), 3)


@pytest.mark.parametrize(("text", "message"), [
    ("claims:\n  - id: a\n    text: x\n    rules: [W4, w9]\n",
     ":4:17: claim 'a': unknown rule 'w9' (did you mean one of W1, W2, W3, W4, W5, W6, W7, W8?)"),
    ("claims:\n  - id: a\n    text: x\n    rules: [S33]\n",
     ":4:13: claim 'a': unknown rule 'S33' (did you mean 'S3'?)"),
    ("claims:\n  - id: a\n    text: x\n    rules: [i2]\n", ":4:13: claim 'a': unknown rule 'i2' (did you mean 'I2'?)"),
    ("claims:\n  - id: a\n    text: x\n    rules: [W4]\n  - id: a\n    text: y\n    rules: [W4]\n",
     ":5:9: claim id 'a' is used twice (first at line 2; claim ids must be unique)"),
    ("claims:\n  - id: a\n    txt: x\n    rules: [W4]\n",
     ":3:5: unknown field 'txt' in 'claims' (did you mean 'text'?)"),
    ("claims:\n  - id: a\n    text: x\n    rules: []\n", ":4:12: 'claims[0].rules' must not be empty"),
    ("claims: []\n", ":1:9: 'claims' must not be empty"),
    ("", ":1:1: empty claims file"),
    ("- a\n", ":1:1: a claims file must be a mapping of fields, got a list"),
])
def test_a_wrong_claims_file_is_one_line_with_its_place(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_claims(path)
    assert caught.value.render() == f"{path}{message}"


def test_run_with_a_bad_claims_file_exits_2_before_running(tmp_path: Path) -> None:
    path = write(tmp_path, "claims:\n  - id: fresh\n    text: x\n    rules: [S9]\n")
    result = CliRunner().invoke(cli, ["run", str(ROOT / "scenarios" / "happy-path.yaml"), "--claims", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        f"{path}:4:13: claim 'fresh': unknown rule 'S9' (did you mean one of S1, S2, S3, S4, S5?)")
    assert "Traceback" not in result.output and "PASS" not in result.output


def test_run_judges_the_claims_in_its_summary(tmp_path: Path) -> None:
    path = write(tmp_path, "claims:\n  - id: shows-up\n    text: A purchase shows up\n    rules: [S1]\n"
                           "  - id: never-run\n    text: Dead letters replay\n    rules: [W8]\n")
    result = CliRunner().invoke(cli, ["run", str(ROOT / "scenarios" / "happy-path.yaml"), "--claims", str(path),
                                      "--no-color"])
    assert result.exit_code == 0, result.output
    assert "Claims, judged by evidence" in result.output
    assert "1 held, 0 refuted, 1 not exercised (of 2 claims)" in result.output
