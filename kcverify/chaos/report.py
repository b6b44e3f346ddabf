"""What `kcverify chaos` writes: the console summary lines, the verdict as JSON, and JUnit XML with one
test case per anomaly class (failed when the class has an affected id)."""

from __future__ import annotations

from collections import Counter
from typing import Any
from xml.etree import ElementTree as ET

from kcverify.chaos.checker import CLASSES, Verdict

SHOWN_IDS = 5


def summary(verdict: Verdict, run: dict[str, Any] | None = None) -> list[str]:
    """Plain lines: the verdict, counts per anomaly class (with a few ids), faults applied, throughput."""
    lines = []
    c = verdict.counts
    lines.append(f"operations {c.get('operations', 0)}, payments {c.get('payments', 0)} "
                 f"({c.get('succeeded', 0)} succeeded), purchases {c.get('purchases', 0)}, "
                 f"dead letters {c.get('deadLetters', 0)}")
    outcomes = c.get("outcomes") or {}
    unknown = sum(n for k, n in outcomes.items() if k.endswith(":unknown"))
    lines.append(f"outcomes: {sum(outcomes.values())} operations, {unknown} unknown (judged by the final state)")
    kinds = Counter(str(f.get("kind")) for f in verdict.faults)
    failed = [f for f in verdict.faults if not f.get("ok")]
    lines.append("faults applied: " + (", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())) or "none")
                 + (f" ({len(failed)} could not be applied: {str(failed[0].get('detail')).splitlines()[0]})"
                    if failed else ""))
    if run:
        load = float(run.get("loadSeconds") or 0)
        creates = outcomes.get("create:ok", 0)
        rate = f"{creates / load:.1f} purchases/s" if load else "-"
        lines.append(f"load {load:g} s ({rate}), recovery {run.get('recoverySeconds')} s, "
                     f"settled: {'yes' if run.get('settled') else 'no ' + str(run.get('pending'))}")
    s = verdict.staleness
    if s.get("measured"):
        lines.append(f"staleness during faults (informative): {s['measured']} windows, max {s['maxSeconds']} s, "
                     f"p99 {s['p99Seconds']} s, {s['beyondBound']} beyond the {s['bound']:g} s bound")
    for cls, meaning in CLASSES.items():
        found = verdict.anomalies[cls]
        ids = ", ".join(a["id"] for a in found[:SHOWN_IDS]) + (" ..." if len(found) > SHOWN_IDS else "")
        lines.append(f"  {cls:<10} {len(found):>5}  {meaning}" + (f": {ids}" if found else ""))
    lines.append("verdict: " + ("clean, no anomaly" if verdict.ok else
                                f"{sum(len(v) for v in verdict.anomalies.values())} anomalies"))
    return lines


def document(verdict: Verdict, run: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"format": 1, "kind": "kcverify-chaos", "run": run or {}, **verdict.as_dict()}


def junit(verdict: Verdict) -> str:
    suite = ET.Element("testsuite", name="kcverify chaos", tests=str(len(CLASSES)),
                       failures=str(sum(1 for v in verdict.anomalies.values() if v)))
    for cls, meaning in CLASSES.items():
        case = ET.SubElement(suite, "testcase", classname="kcverify.chaos", name=cls)
        found = verdict.anomalies[cls]
        if found:
            failure = ET.SubElement(case, "failure", message=f"{len(found)} x {meaning}")
            failure.text = "\n".join(f"{a['id']}: {a['detail']}" for a in found)
    root = ET.Element("testsuites")
    root.append(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
