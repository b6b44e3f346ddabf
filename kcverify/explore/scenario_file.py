"""Compiled steps -> the text of a scenario file, in the flow style the hand-written scenarios use
(`- confirm: {payment: p1, times: 2}`), so a finding can be read, reviewed and kept in `scenarios/`."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kcverify.explore.program import Planned

# A plain YAML 1.2 scalar that reads back as this same string (the loader's core schema).
_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "nan", "inf"}


def scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return flow(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(scalar(v) for v in value) + "]"
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _RESERVED:
        return text
    return json.dumps(text)  # a double-quoted JSON string is a valid YAML string


def flow(mapping: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{key}: {scalar(value)}" for key, value in mapping.items()) + "}"


def step_lines(steps: Sequence[Planned]) -> list[str]:
    """One `- kind: {args}` line per step."""
    lines = []
    for step in steps:
        args: dict[str, Any] = dict(step.args)
        if step.expect is not None:
            args["expect"] = dict(step.expect)
        lines.append(f"  - {step.kind}: {flow(args)}")
    return lines


def render(steps: Sequence[Planned], *, title: str, covers: Sequence[str], header: Sequence[str] = (),
           description: str | None = None) -> str:
    """The whole file: a comment header, title, covers, tags [explore], the steps."""
    out = [f"# {line}" if line else "#" for line in header]
    out.append(f"title: {json.dumps(title)}")
    if description:
        out.append("description: |")
        out.extend(f"  {line}" for line in description.splitlines())
    out.append(f"covers: [{', '.join(covers)}]")
    out.append("tags: [explore]")
    out.append("steps:")
    out.extend(step_lines(steps))
    return "\n".join(out) + "\n"
