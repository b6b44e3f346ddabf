"""How time and memory grow with scenario length: prints, per generated scenario, its steps, the seconds
the run took and the peak resident memory of the process that ran it. Numbers to read, not a test.

    python tests/perf/bench_long_scenarios.py 200 1600 10000

Each length runs in a fresh child process, so one run's peak memory is not another's. The scenario is a
loop over students: create a payment, confirm it, settle, read the learning view (four steps per
purchase), all against the embedded target with every check."""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDENTS = 25  # purchases are spread over this many students, so views grow but stay bounded


def scenario_text(steps: int) -> str:
    """A valid scenario of `steps` steps: create / confirm / settle / read, round after round."""
    lines = ["title: A long run of purchases, generated to measure how the verifier scales",
             "covers: [P1, W1, S1, I1]", "tags: [load]", "steps:"]
    n = 0
    while len(lines) - 4 < steps:
        n += 1
        student = f"s{n % STUDENTS}"
        cycle = [f"  - create_payment: {{as: p{n}, student: {student}, course: c{n}}}",
                 f"  - confirm: {{payment: p{n}}}",
                 "  - settle: {}",
                 f"  - read: {{student: {student}}}"]
        lines.extend(cycle[: steps - (len(lines) - 4)])
    return "\n".join(lines) + "\n"


def run_one(steps: int) -> None:
    """In this process: load and run the scenario, then print one line of numbers."""
    from kcverify.checks import select
    from kcverify.engine.runner import Runner
    from kcverify.scenario.loader import load_scenario
    from kcverify.targets.embedded import EmbeddedTarget

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"long-{steps}.yaml"
        path.write_text(scenario_text(steps))
        scenario = load_scenario(path)
    started = time.perf_counter()
    result = Runner(EmbeddedTarget(), checks=select()).run([scenario])
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    status = result.scenarios[0].status.value
    print(f"{steps:>7} steps  {seconds:8.1f} s  peak RSS {peak_mb:8.0f} MB  {status}", flush=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--one"]:
        run_one(int(argv[1]))
        return 0
    lengths = [int(a) for a in argv] or [200, 1600]
    print(f"{'':>7} steps  {'':>8} s  {'':>13} MB  (each in a fresh process: {sys.executable})", flush=True)
    for steps in lengths:
        done = subprocess.run([sys.executable, __file__, "--one", str(steps)], check=False)
        if done.returncode != 0:
            print(f"{steps:>7} steps  failed (exit {done.returncode})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
