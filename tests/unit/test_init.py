"""`kcverify init` scaffolds a user's repository (kcverify.toml, the example scenarios, a profile
skeleton) and never overwrites; `kcverify run` without scenarios says how to get them; an optional
client that is missing is exit 2 naming the extra (kcverify/core/extras.py)."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from kcverify.cli.main import cli
from kcverify.contracts import schema
from kcverify.core.extras import MissingExtra, missing_extra
from kcverify.scenario.loader import load_scenarios
from kcverify.targets import registry

ROOT = Path(__file__).resolve().parents[2]


def test_init_writes_settings_examples_and_a_profile_skeleton(tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["init", str(tmp_path / "repo")])
    assert done.exit_code == 0, done.output
    repo = tmp_path / "repo"
    examples = sorted(p.name for p in (ROOT / "scenarios").glob("*.yaml"))
    assert sorted(p.name for p in (repo / "scenarios").glob("*.yaml")) == examples
    assert len(load_scenarios([repo / "scenarios"])) == len(examples)
    profile = (repo / "profiles" / "my-system.yaml").read_text(encoding="utf-8")
    assert profile.startswith("# The profile of your system")
    jsonschema.validate(yaml.safe_load(profile), schema("schemas/profile"))
    assert "paths = [\"scenarios\"]" in (repo / "kcverify.toml").read_text(encoding="utf-8")


def test_init_never_overwrites_and_names_what_it_skipped(tmp_path: Path) -> None:
    (tmp_path / "kcverify.toml").write_text("seed = 7\n", encoding="utf-8")
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "happy-path.yaml").write_text("mine\n", encoding="utf-8")
    done = CliRunner().invoke(cli, ["init", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "kcverify.toml").read_text(encoding="utf-8") == "seed = 7\n"
    assert (tmp_path / "scenarios" / "happy-path.yaml").read_text(encoding="utf-8") == "mine\n"
    assert f"skipped {tmp_path / 'kcverify.toml'}" in done.output
    assert f"skipped {tmp_path / 'scenarios' / 'happy-path.yaml'}" in done.output
    assert (tmp_path / "scenarios" / "ttl-expiry.yaml").is_file()


def test_run_without_scenarios_says_how_to_get_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(cli, ["run"])
    assert done.exit_code == 2
    assert "kcverify init" in done.output and "Traceback" not in done.output


def test_a_missing_client_names_the_extra_and_a_target_needing_it_is_exit_2() -> None:
    assert missing_extra(ModuleNotFoundError("No module named 'psycopg'", name="psycopg")) is not None
    assert missing_extra(ModuleNotFoundError("No module named 'numpy'", name="numpy")) is None

    plugin = registry.lookup("processes")

    def needs_kafka(options: registry.TargetOptions) -> object:
        raise ModuleNotFoundError("No module named 'confluent_kafka'", name="confluent_kafka")

    broken = registry.TargetPlugin(**{**plugin.__dict__, "factory": needs_kafka})
    with pytest.raises(MissingExtra) as caught:
        broken.create()
    assert caught.value.exit_code == 2
    assert "target processes needs confluent-kafka" in str(caught.value)
    assert "pip install 'kcverify[stack]'" in str(caught.value)
