"""The reference verified through its own profile on the real stack: its components started, held,
resumed and stopped by the control commands of profiles/reference.yaml (profiles/reference-control.sh,
each `kcverify serve ...` a detached process), then `kcverify run --target external` through the Runner.
Scenarios that need the flow held between steps pass on the correct reference; started with the defect
`invalidate-at-confirm-only` (through KCVERIFY_REFERENCE_DEFECT, as a user would), the freshness check
fails read-between-confirm-and-purchase. Nothing is left running at the end.

Runs on the session's shared stack (tests/integration/conftest.py)."""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from kcverify.checks import select
from kcverify.cli.main import cli
from kcverify.core.status import Status
from kcverify.engine.runner import Runner, RunOptions
from kcverify.evidence.results import RunResult
from kcverify.scenario.loader import load_scenarios
from kcverify.spec import names
from kcverify.targets.external import ExternalTarget
from kcverify.targets.external.control import Control
from kcverify.targets.external.profile import load_profile

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "profiles" / "reference.yaml"
SCENARIOS = ROOT / "scenarios"
HELD = ("read-between-confirm-and-purchase", "happy-path", "unsigned-confirm", "payment-metadata-wins")


@pytest.fixture(scope="module")
def state_dir(stack_dir: Path) -> Path:
    """The session's shared stack (tests/integration/conftest.py)."""
    return stack_dir


def consecutive_free_ports(count: int) -> int:
    """The first of `count` consecutive free loopback ports (the control script's ports), below the
    kernel's ephemeral range: a port in it can be taken by any outgoing connection (a Kafka client's)
    while a killed component is down, and its restart would then fail to bind."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10_000, max(10_001, low - count))
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no run of free ports")


def environment(state_dir: Path, run_dir: Path) -> dict[str, str]:
    settings = json.loads((state_dir / "stack.json").read_text())
    base = consecutive_free_ports(8)  # six control ports, then the two services
    return {**os.environ,
            "KCVERIFY_STATE_DIR": str(state_dir), "KCVERIFY_REFERENCE_DIR": str(run_dir),
            "KCVERIFY_BIN": str(Path(sys.executable).parent / "kcverify"),
            "KCVERIFY_REFERENCE_PORT": str(base),
            "KCVERIFY_PAYMENT_PORT": str(base + 6), "KCVERIFY_STUDENT_PORT": str(base + 7),
            "KCVERIFY_PAYMENT_URL": f"http://127.0.0.1:{base + 6}",
            "KCVERIFY_STUDENT_URL": f"http://127.0.0.1:{base + 7}",
            "KCVERIFY_PAYMENTS_DSN": settings["payments_dsn"], "KCVERIFY_COURSES_DSN": settings["courses_dsn"],
            "KCVERIFY_KAFKA_BOOTSTRAP": settings["kafka_bootstrap"], "KCVERIFY_REDIS_URL": settings["redis_url"],
            "KCVERIFY_WEBHOOK_SECRET": secrets.token_hex(32), "KCVERIFY_AUTH_SECRET": secrets.token_hex(32)}


def start_all(control: Control) -> None:
    """The services first, then the background components together (each waits for its own probe), the
    cache invalidator last: it lives in the student service's process."""
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(control.start, names.SERVICES))
        list(pool.map(control.start, [c for c in names.SCENARIO_COMPONENTS if c != "cache-invalidator"]))
    control.start("cache-invalidator")


def stop_all(control: Control) -> None:
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(control.stop, [c for c in names.SCENARIO_COMPONENTS if c != "cache-invalidator"]))
        list(pool.map(control.stop, names.SERVICES))


def alive(pid: int) -> bool:
    """Running and not a zombie nobody has reaped (the processes are detached)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def run(env: Mapping[str, str], *scenario_names: str) -> RunResult:
    scenarios = load_scenarios([SCENARIOS / f"{name}.yaml" for name in scenario_names])
    target = ExternalTarget(load_profile(PROFILE, env))
    assert "control_components" in target.info.capabilities
    return Runner(target, options=RunOptions(target_name="external"), checks=select()).run(scenarios)


def describe(result: RunResult) -> str:
    return "\n".join(f"{r.name}: {r.status.value} {r.reason}".strip() + "".join(
        f"\n    {f.check} {','.join(f.rules)} step {f.step}: {f.message}" for c in r.checks for f in c.failures)
        + "".join(f"\n    step {s.index} {s.title}: {f.message}" for s in r.steps for f in s.failures)
        for r in result.scenarios)


def bench_through_the_profile(env: Mapping[str, str], reports: Path) -> None:
    """`kcverify bench --target external`: a few seconds of load through the profile (its control commands
    resume the components, and pause them again after), every hop measured, nothing lost; no bare pipeline
    (that runs beside the reference on the local stack only). Structure, never speed."""
    result = CliRunner().invoke(cli, ["bench", "--target", "external", "--profile", str(PROFILE), "--rate", "4",
                                      "--duration", "3", "--warmup", "0", "--students", "4", "--max-duration", "0",
                                      "--report", "json", "--report-dir", str(reports), "--no-color"], env=dict(env))
    assert result.exit_code == 0, result.output + result.stderr
    doc = json.loads((reports / "bench.json").read_text())
    assert doc["target"] == "external" and "bare" not in doc and doc["integrity"]["ok"] is True
    step = doc["steps"][0]
    assert step["scheduled"] == 12 and step["confirmed"] == step["visible"] == doc["integrity"]["purchases"] == 12
    assert all(values["count"] == 12 for values in step["latencyMs"].values())


def test_the_reference_through_its_profile_passes_and_a_defect_is_found(state_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "reference"
    env = environment(state_dir, run_dir)
    control = Control(load_profile(PROFILE, env))
    pids: set[int] = set()
    try:
        started = time.monotonic()
        start_all(control)
        pids |= {int(p.read_text()) for p in run_dir.glob("*.pid")}
        assert len(pids) == 6, sorted(p.name for p in run_dir.glob("*.pid"))
        up = time.monotonic() - started

        correct = run(env, *HELD)
        by_name = {r.name: r for r in correct.scenarios}
        for name in HELD[:3]:
            assert by_name[name].status == Status.PASSED, describe(correct)
        metadata = by_name["payment-metadata-wins"]  # needs produce_events (Kafka) besides control
        assert metadata.status == Status.PASSED or (
            metadata.status == Status.SKIPPED and "produce_events" in metadata.reason), describe(correct)

        bench_through_the_profile(env, tmp_path / "bench")

        stop_all(control)
        assert not any(alive(pid) for pid in pids)
        defective = Control(load_profile(PROFILE, {**env, "KCVERIFY_REFERENCE_DEFECT": "invalidate-at-confirm-only"}))
        start_all(defective)
        pids |= {int(p.read_text()) for p in run_dir.glob("*.pid")}
        found = run(env, "read-between-confirm-and-purchase")
        result = found.scenarios[0]
        assert result.status == Status.FAILED, describe(found)
        freshness = [f for c in result.checks for f in c.failures if f.check == "freshness"]
        assert freshness and "does not show the purchase" in freshness[0].message, describe(found)
        print(f"\ncomponents up through the profile: {up:.1f} s; {len(HELD)} scenarios: {correct.duration:.1f} s")
    finally:
        stop_all(control)
    assert not any(alive(pid) for pid in pids), "a component process outlived the test"
    assert not list(run_dir.glob("*.pid"))
