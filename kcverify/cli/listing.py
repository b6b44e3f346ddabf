"""`kcverify run --list`: what a run would do, without doing it. Each scenario with its steps and the
capabilities it needs, judged against what the chosen target declares (kcverify.targets.registry: read
without building the target, so a stack that is down does not matter); then the checks selected, each
marked when the target lacks what it needs. The Runner skips exactly those at run time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kcverify.engine.runner import CheckType
from kcverify.scenario.model import Scenario
from kcverify.targets import registry


def render(scenarios: Sequence[Scenario], target: str, checks: Iterable[CheckType]) -> str:
    plugin = registry.lookup(target)
    has = plugin.capabilities
    lines = [f"{len(scenarios)} scenario{'s' if len(scenarios) != 1 else ''} would run on target {target}"
             + ("" if has is not None else " (it does not declare its capabilities: known once it is built)")]
    runnable = 0
    for scenario in scenarios:
        needed = sorted(scenario.capabilities_needed())
        missing = [] if has is None else [c for c in needed if c not in has]
        runnable += not missing
        verdict = "would skip: target lacks " + ", ".join(missing) if missing else "runs"
        steps = len(scenario.steps)
        lines.append(f"  {scenario.name}  ({scenario.path})")
        lines.append(f"      {steps} step{'s' if steps != 1 else ''}; needs: {', '.join(needed) or 'nothing special'}"
                     f"; {verdict}")
    lines.append(f"{runnable} of {len(scenarios)} would run; {len(scenarios) - runnable} would be skipped")
    chosen = list(checks)
    lines.append(f"checks ({len(chosen)}):")
    for check in chosen:
        lacking = [] if has is None else sorted(check.needs - has)
        note = f" - would skip: target lacks {', '.join(lacking)}" if lacking else ""
        lines.append(f"  {check.name}  ({', '.join(check.rules)}){note}")
    return "\n".join(lines)
