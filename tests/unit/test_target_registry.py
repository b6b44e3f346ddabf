"""The target registry (kcverify.targets.registry): names come from the entry-point group without
importing anything, a plug-in's declarations are read and checked, defects are construction options
checked against what the target declares, and a bad registration is one PluginError line."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from kcverify.core.errors import InputError, PluginError
from kcverify.targets import registry
from kcverify.targets.base import CAPABILITIES
from kcverify.targets.embedded import EmbeddedTarget
from kcverify.targets.processes import ProcessesTarget
from kcverify.targets.registry import GROUP, TargetOptions


class BadCapabilities:
    capabilities = frozenset({"http", "telepathy"})


class Declared:
    """First docstring line is the description.

    Not this one."""

    defect_names = ("slow",)

    def __init__(self, options: TargetOptions) -> None:
        self.options = options


def entry(value: str, name: str = "x") -> EntryPoint:
    return EntryPoint(name=name, value=value, group=GROUP)


def test_the_built_in_targets_are_registered_and_declare_what_their_instances_offer(tmp_path: Path) -> None:
    assert {"embedded", "processes"} <= set(registry.names())
    embedded, processes = registry.lookup("embedded"), registry.lookup("processes")
    assert embedded.distribution.startswith("kcverify ") and embedded.isolated and not processes.isolated
    assert embedded.capabilities == EmbeddedTarget().info.capabilities == frozenset(CAPABILITIES)
    assert processes.capabilities == ProcessesTarget({}, tmp_path).info.capabilities
    assert "control_clock" not in (processes.capabilities or ())
    assert embedded.accepts_defects and "dual-write" in embedded.defect_names


def test_defects_are_given_when_the_target_is_built() -> None:
    target = registry.create("embedded", TargetOptions(defects=frozenset({"dual-write"})))
    assert isinstance(target, EmbeddedTarget) and target.defects == {"dual-write"}
    target.start(seed=0)
    assert target.system.settings.defects == {"dual-write"}
    assert TargetOptions(defects=frozenset({"b", "a"})).reproduce_args() == ("--defect", "a", "--defect", "b")


def test_unknown_names_are_input_errors_with_the_nearest_names() -> None:
    with pytest.raises(InputError, match=r"unknown target 'embeded' \(did you mean 'embedded'\?"):
        registry.lookup("embeded")
    with pytest.raises(InputError, match=r"unknown defect 'dual-writ' for target embedded \(did you mean 'dual-write'"):
        registry.create("embedded", TargetOptions(defects=frozenset({"dual-writ"})))


def test_declarations_are_read_and_a_callable_is_called_with_the_options() -> None:
    plugin = registry.load(entry(f"{__name__}:Declared"))
    assert plugin.description == "First docstring line is the description."
    assert plugin.capabilities is None and plugin.defect_names == ("slow",) and not plugin.isolated
    assert plugin.distribution == "unknown distribution"
    with pytest.raises(InputError, match="unknown defect 'fast' for target x"):
        plugin.check_defects(["fast"])
    with pytest.raises(PluginError, match=r"built something that is not a target \(Declared: no info, start"):
        plugin.create(TargetOptions(defects=frozenset({"slow"})))


@pytest.mark.parametrize(("value", "message"), [
    (f"{__name__}:BadCapabilities", "declares something unusable: unknown capabilities telepathy"),
    (f"{__name__}:CAPABILITIES", "is a tuple, not a target factory"),
    ("kcverify.no_such_module:Target", "failed to load: ModuleNotFoundError: No module named 'kcverify.no_such"),
])
def test_a_bad_registration_is_one_plugin_error_naming_the_entry_point(value: str, message: str) -> None:
    with pytest.raises(PluginError) as caught:
        registry.load(entry(value))
    text = str(caught.value)
    assert text.startswith(f"target plug-in 'x' ({value}, from unknown distribution) ") and message in text
    assert "\n" not in text


def test_listing_the_processes_target_imports_no_database_or_kafka_client() -> None:
    code = ("import sys; from kcverify.targets import registry; registry.discover(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'confluent_kafka', 'redis')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


