"""The JUnit XML reporter: one testsuite "kcverify", one testcase per scenario, for CI test tabs.

CI shows the failure `message` in lists and the element text on click, so the message is the first
failure on one line and the text is everything needed to act without the console log: every
failure with rule ids, step, evidence table and the reproduce command. Written with xml.etree, which
escapes markup; characters XML 1.0 cannot carry at all (control codes) are replaced first, since a
single one would make the whole file unreadable to the CI."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from kcverify.core.status import Status
from kcverify.evidence.events import Event, RunFinished
from kcverify.evidence.results import Failure, RunResult, ScenarioResult
from kcverify.report import common

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """Replace characters XML 1.0 forbids (e.g. ESC from a captured log) by a visible escape."""
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", common.visible(text))


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.3f}"


def failure_text(failure: Failure) -> str:
    """One failure, in full, as plain text."""
    lines = [f"[{common.rules_text(failure.rules)}] {failure.check} at {common.where(failure)}", failure.message]
    if failure.evidence is not None:
        lines.append(common.table_text(failure.evidence))
    return "\n".join(lines)


def scenario_text(scenario: ScenarioResult) -> str:
    """Every failure of a scenario (and its reason, if any), then the reproduce command."""
    blocks = []
    if scenario.reason:
        blocks.append(scenario.reason)
    blocks.extend(f"{n}. {failure_text(f)}" for n, f in enumerate(scenario.failures, 1))
    blocks.extend(
        f"step {s.index} ({s.title}) broke: {s.reason}"
        for s in scenario.steps
        if s.status is Status.ERROR and s.reason
    )
    blocks.append(f"reproduce: {scenario.reproduce}")
    return "\n\n".join(blocks)


def steps_text(scenario: ScenarioResult) -> str:
    lines = [f"{scenario.title or scenario.name} (covers {common.rules_text(scenario.covers)})"]
    for step in scenario.steps:
        line = f"{step.index:>3}. {common.STATUS_WORD[step.status]:<5} {step.title} ({common.duration(step.duration)})"
        if step.reason:
            line += f": {common.first_line(step.reason)}"
        lines.append(line)
    for check in scenario.checks:
        line = f"check {common.STATUS_WORD[check.status]:<5} {check.name} [{common.rules_text(check.rules)}]"
        if check.summary:
            line += f": {check.summary}"
        lines.append(line)
    return "\n".join(lines)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: xml_safe(v) for k, v in attrs.items()})
    if text is not None:
        element.text = xml_safe(text)
    return element


def _properties(parent: ET.Element, values: dict[str, str]) -> None:
    properties = _sub(parent, "properties")
    for name, value in values.items():
        _sub(properties, "property", name=name, value=value)


def build(run: RunResult) -> ET.ElementTree[ET.Element]:
    """The XML document for a run."""
    attrs = {
        "tests": str(len(run.scenarios)),
        "failures": str(run.count(Status.FAILED)),
        "errors": str(run.count(Status.ERROR)),
        "skipped": str(run.count(Status.SKIPPED)),
        "time": _seconds(run.duration),
    }
    root = ET.Element("testsuites", {"name": "kcverify", **attrs})
    # UTC without offset: the Ant JUnit schema's timestamp pattern has no zone.
    timestamp = datetime.fromtimestamp(run.started_at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    suite = _sub(root, "testsuite", name="kcverify", timestamp=timestamp, **attrs)
    _properties(suite, {"target": run.target, "seed": str(run.seed)})
    for scenario in run.scenarios:
        case = _sub(suite, "testcase", classname=f"kcverify.{run.target}", name=scenario.name,
                    file=common.display_path(scenario.path), time=_seconds(scenario.duration))
        _properties(case, {"seed": str(scenario.seed), "covers": " ".join(scenario.covers),
                           "reproduce": scenario.reproduce})
        failures = scenario.failures
        if scenario.status is Status.FAILED:
            first = failures[0] if failures else None
            message = common.headline(first) if first else common.first_line(scenario.reason) or "failed"
            _sub(case, "failure", scenario_text(scenario), message=message,
                 type=first.check if first else "failed")
        elif scenario.status is Status.ERROR:
            message = common.first_line(scenario.reason) or (common.headline(failures[0]) if failures else "error")
            _sub(case, "error", scenario_text(scenario), message=message, type="error")
        elif scenario.status is Status.SKIPPED:
            _sub(case, "skipped", message=common.first_line(scenario.reason) or "skipped")
        _sub(case, "system-out", steps_text(scenario))
    ET.indent(root)
    return ET.ElementTree(root)


class JUnitReporter:
    """Writes `path` on RunFinished; other events carry nothing the XML needs."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def handle(self, event: Event) -> None:
        if isinstance(event, RunFinished):
            self.write(event.result)

    def write(self, run: RunResult) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        build(run).write(self.path, encoding="utf-8", xml_declaration=True)
