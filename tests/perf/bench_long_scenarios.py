"""How time and memory grow with scenario length: prints, per generated scenario, its steps, the seconds
`kcverify run` took on the embedded target with every check, and the peak resident memory of that run.
Numbers to read, not a test.

    python tests/perf/bench_long_scenarios.py 200 1600 10000
    python tests/perf/bench_long_scenarios.py --write long.yaml 10000   # only write the scenario

Each length runs as its own `kcverify run` process, so one run's peak memory is not another's. The
scenario is what a busy day looks like: cohorts of students, each buying a few courses (create a
payment, confirm it, settle, read the learning view with the purchases it must show), with duplicates
mixed in (the gateway retrying a confirmation, a confirmed event delivered again). A student's view holds
at most `COURSES_PER_STUDENT` purchases, so the work per step does not grow with the run's length: what
grows with it is only what kcverify keeps, which is what this measures."""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COHORT = 25  # students buying at the same time
COURSES_PER_STUDENT = 4  # each student of a cohort buys this many courses, then the next cohort comes


def _purchase(n: int) -> list[str]:
    """The steps of the n-th purchase (n from 0): four, or five with a redelivered event."""
    cohort, index = divmod(n, COHORT * COURSES_PER_STUDENT)
    course, seat = divmod(index, COHORT)
    student = f"s{cohort * COHORT + seat}"
    name = f"p{n}"
    confirm = f"  - confirm: {{payment: {name}, times: 2}}" if n % 10 == 3 else f"  - confirm: {{payment: {name}}}"
    steps = [f"  - create_payment: {{as: {name}, student: {student}, course: c{course}}}",
             confirm,
             "  - settle: {}",
             f"  - read: {{student: {student}, expect: {{purchases: {course + 1}}}}}"]
    if n % 10 == 7:  # the confirmed event delivered again after its purchase: must change nothing
        steps.insert(3, f"  - publish: {{payment: {name}}}")
    return steps


def scenario_text(steps: int) -> str:
    """A valid scenario of exactly `steps` steps (the last purchase may be cut short)."""
    head = ["title: A long day of purchases, generated to measure how the verifier scales",
            "covers: [P1, P4, W1, W6, S1, I1]", "tags: [load]", "steps:"]
    body: list[str] = []
    n = 0
    while len(body) < steps:
        body.extend(_purchase(n))
        n += 1
    return "\n".join(head + body[:steps]) + "\n"


def run_one(steps: int) -> None:
    """Write the scenario, run `kcverify run` on it in a child process, print one line of numbers."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"long-{steps}.yaml"
        path.write_text(scenario_text(steps))
        command = [sys.executable, "-m", "kcverify", "run", str(path), "--target", "embedded", "--no-color"]
        started = time.perf_counter()
        done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=folder)
        seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the only child: that run
    peak_mb, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
    status = "passed" if done.returncode == 0 else f"exit {done.returncode}"
    # CPU seconds too: on a machine whose cores are shared, wall time says as much about the neighbours
    print(f"{steps:>7} steps  {seconds:8.1f} s wall  {cpu:8.1f} s CPU  peak RSS {peak_mb:6.0f} MB  {status}",
          flush=True)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", flush=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write"]:
        Path(argv[1]).write_text(scenario_text(int(argv[2])))
        return 0
    if argv[:1] == ["--one"]:
        run_one(int(argv[1]))
        return 0
    lengths = [int(a) for a in argv] or [200, 1600]
    print(f"each length a fresh `kcverify run` ({sys.executable})", flush=True)
    for steps in lengths:
        done = subprocess.run([sys.executable, __file__, "--one", str(steps)], check=False)
        if done.returncode != 0:
            print(f"{steps:>7} steps  failed (exit {done.returncode})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
