"""The external target's control commands (kcverify/targets/external/control.py), with real shell
commands that write what they were asked into files: commands run in the profile's directory with the
component and the declared variables in their environment, a failing or slow command's output in the
error, readiness probes, the capability only with every command a step needs, an unknown component name
placed on its key with "did you mean", and the target holding the flow between steps."""

from __future__ import annotations

import functools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kcverify.core.errors import InputError
from kcverify.spec import names
from kcverify.targets.external import ExternalTarget
from kcverify.targets.external.control import Control, ControlError, missing
from kcverify.targets.external.profile import load_profile

HEAD = """\
profile: 1
name: controlled
http:
  services:
    api: {base_url: "http://127.0.0.1:1"}
  operations:
    create_payment: {service: api, method: POST, path: /payments}
    confirm: {service: api, method: POST, path: "/payments/{paymentId}/confirm"}
    learning_view: {service: api, method: GET, path: "/students/{studentId}/courses"}
conventions: {settle_quiet: 0.05}
"""
# Every command appends "<action> <component> <LOG_TAG>" to calls.log, in the profile's directory.
RECORD = 'echo "$KCVERIFY_ACTION $KCVERIFY_COMPONENT $LOG_TAG" >> calls.log'


def full_control(extra: str = "", skip: tuple[str, str] | None = None) -> str:
    lines = ["control:", "  env:", "    LOG_TAG: {env: TAG, default: tagged}", "  timeout: 5", "  components:"]
    for component in names.SCENARIO_COMPONENTS:
        lines.append(f"    {component}:")
        for action in ("start", "stop", "kill", "pause", "resume"):
            if skip != (component, action):
                lines.append(f"      {action}: '{RECORD}'")
    return "\n".join(lines) + "\n" + extra


class _NotFound(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@functools.cache
def answering_service() -> str:
    """A service that answers every request 404: the target finds its system there (it probes the
    services before the first scenario), and nothing here sends it anything else."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(HEAD.replace("http://127.0.0.1:1", answering_service()) + text)
    return path


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_every_command_present_gives_control_components(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, full_control()), {})
    assert missing(profile) == []
    assert "control_components" in profile.capabilities


def test_a_missing_command_keeps_the_capability_away_and_says_which(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, full_control(skip=("purchase-worker", "pause"))), {})
    assert missing(profile) == ["purchase-worker: no pause"]
    assert "control_components" not in profile.capabilities


def test_restart_stands_in_for_start_but_a_missing_component_is_named(tmp_path: Path) -> None:
    text = full_control(skip=("reconciler", "start")).replace(
        "    reconciler:\n", f"    reconciler:\n      restart: '{RECORD}'\n")
    assert missing(load_profile(write(tmp_path, text), {})) == []
    text = full_control().replace("    course-relay:", "    payment-service:")  # its commands, another name
    assert missing(load_profile(write(tmp_path, text), {})) == ["course-relay: not in control.components"]


def test_an_unknown_component_is_placed_on_its_key_with_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, full_control().replace("    purchase-worker:", "    purchase-wroker:"))
    with pytest.raises(InputError) as raised:
        load_profile(path, {})
    text = raised.value.render()
    line = next(n for n, row in enumerate(path.read_text().splitlines(), 1) if "purchase-wroker" in row)
    assert text.startswith(f"{path}:{line}:5: unknown component 'purchase-wroker'")
    assert "did you mean 'purchase-worker'?" in text


def test_commands_run_in_the_profile_directory_with_component_and_declared_variables(tmp_path: Path) -> None:
    control = Control(load_profile(write(tmp_path, full_control()), {"TAG": "from-env", "PATH": "/usr/bin:/bin"}))
    control.kill("purchase-worker")
    assert control.down == {"purchase-worker"}
    control.start("purchase-worker")
    control.pause(["payment-relay", "reconciler"])
    assert control.down == set() and control.held == {"payment-relay", "reconciler"}
    assert calls(tmp_path)[:2] == ["kill purchase-worker from-env", "start purchase-worker from-env"]
    assert sorted(calls(tmp_path)[2:]) == ["pause payment-relay from-env", "pause reconciler from-env"]


def test_restart_without_a_restart_command_is_stop_then_start(tmp_path: Path) -> None:
    control = Control(load_profile(write(tmp_path, full_control()), {"PATH": "/usr/bin:/bin"}))
    control.restart("course-relay")
    assert calls(tmp_path) == ["stop course-relay tagged", "start course-relay tagged"]


def test_a_failing_command_shows_its_status_and_output(tmp_path: Path) -> None:
    failing = "      stop: 'echo no such unit: $KCVERIFY_COMPONENT >&2; exit 3'"
    text = full_control().replace(f"      stop: '{RECORD}'", failing, 1)
    control = Control(load_profile(write(tmp_path, text), {"PATH": "/usr/bin:/bin"}))
    with pytest.raises(ControlError) as raised:
        control.stop("payment-relay")
    message = str(raised.value)
    assert "the stop command of payment-relay exited with status 3" in message
    assert "no such unit: payment-relay" in message
    assert control.down == set()  # it did not stop


def test_a_command_that_outlives_the_timeout_is_killed_and_reported(tmp_path: Path) -> None:
    text = full_control().replace("  timeout: 5", "  timeout: 0.3").replace(
        f"      pause: '{RECORD}'", "      pause: 'echo waiting; sleep 30'", 1)
    control = Control(load_profile(write(tmp_path, text), {"PATH": "/usr/bin:/bin"}))
    started = time.monotonic()
    with pytest.raises(ControlError) as raised:
        control.pause(["payment-relay"])
    assert time.monotonic() - started < 5
    assert "timed out after 0.3 s" in str(raised.value) and "waiting" in str(raised.value)


def test_a_background_process_started_by_a_command_does_not_hold_it_up(tmp_path: Path) -> None:
    text = full_control().replace(f"      start: '{RECORD}'", "      start: 'sleep 5 & echo $! > bg.pid'", 1)
    control = Control(load_profile(write(tmp_path, text), {"PATH": "/usr/bin:/bin"}))
    started = time.monotonic()
    control.start("payment-relay")
    assert time.monotonic() - started < 2


class _Ready(BaseHTTPRequestHandler):
    ready = False

    def do_GET(self) -> None:  # the http.server API
        self.send_response(200 if _Ready.ready else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


def test_start_waits_for_the_http_probe_with_declared_variables_in_the_url(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        ready = '      ready: {http: "http://127.0.0.1:{PORT}/health", timeout: 0.5}\n'
        text = full_control().replace("  env:\n", f"  env:\n    PORT: \"{port}\"\n").replace(
            "    reconciler:\n", "    reconciler:\n" + ready)
        control = Control(load_profile(write(tmp_path, text), {"PATH": "/usr/bin:/bin"}))
        _Ready.ready = False
        with pytest.raises(ControlError) as raised:
            control.start("reconciler")
        assert f"reconciler was not ready within 0.5 s: no http://127.0.0.1:{port}/health answering 2xx" in str(
            raised.value)
        assert control.not_ready("reconciler") == [f"http://127.0.0.1:{port}/health answering 2xx"]
        _Ready.ready = True
        control.start("reconciler")
        assert control.not_ready("reconciler") == []
    finally:
        server.shutdown()


def test_a_log_line_counts_only_when_written_after_the_start(tmp_path: Path) -> None:
    ready = '      ready: {log_line: "relay ready", log_file: "{component}.log", timeout: 0.3}\n'
    text = full_control().replace("    payment-relay:\n", "    payment-relay:\n" + ready)
    (tmp_path / "payment-relay.log").write_text("relay ready\n")  # an earlier start's line
    control = Control(load_profile(write(tmp_path, text), {"PATH": "/usr/bin:/bin"}))
    with pytest.raises(ControlError, match="no 'relay ready' in"):
        control.start("payment-relay")
    text = text.replace(f"      start: '{RECORD}'", "      start: 'echo relay ready >> payment-relay.log'", 1)
    control = Control(load_profile(write(tmp_path, text), {"PATH": "/usr/bin:/bin"}))
    control.start("payment-relay")


def test_the_target_holds_the_flow_between_steps(tmp_path: Path) -> None:
    target = ExternalTarget(load_profile(write(tmp_path, full_control()), {"PATH": "/usr/bin:/bin"}))
    try:
        assert "control_components" in target.info.capabilities
        target.start(seed=0)
        assert sorted(calls(tmp_path)) == sorted(f"pause {c} tagged" for c in names.SCENARIO_COMPONENTS)
        (tmp_path / "calls.log").unlink()
        target.step_component("purchase-worker", 1)
        assert calls(tmp_path) == ["resume purchase-worker tagged", "pause purchase-worker tagged"]
        (tmp_path / "calls.log").unlink()
        target.stop_component("course-relay")
        target.restart("reconciler")  # running: nothing to bring back
        target.restart("course-relay")
        assert calls(tmp_path) == ["stop course-relay tagged", "start course-relay tagged", "pause course-relay tagged"]
        (tmp_path / "calls.log").unlink()
        target.kill("payment-relay")
        assert target.settle(1.0)
        settled = calls(tmp_path)
        assert settled[0] == "kill payment-relay tagged"
        assert sorted(settled[1:5]) == sorted(f"resume {c} tagged" for c in names.SCENARIO_COMPONENTS
                                              if c != "payment-relay")
        assert sorted(settled[5:]) == sorted(f"pause {c} tagged" for c in names.SCENARIO_COMPONENTS
                                             if c != "payment-relay")
        (tmp_path / "calls.log").unlink()
        target.start(seed=1)  # what the last scenario left down comes back, held
        assert calls(tmp_path) == ["start payment-relay tagged", "pause payment-relay tagged"]
    finally:
        (tmp_path / "calls.log").unlink(missing_ok=True)
        target.close()
    # the system is left running: everything resumed
    assert sorted(calls(tmp_path)) == sorted(f"resume {c} tagged" for c in names.SCENARIO_COMPONENTS)


def test_without_every_command_the_target_refuses_control_steps(tmp_path: Path) -> None:
    target = ExternalTarget(load_profile(write(tmp_path, full_control(skip=("reconciler", "kill"))), {}))
    assert "control_components" not in target.info.capabilities
    with pytest.raises(NotImplementedError, match="control components"):
        target.kill("reconciler")
    target.close()
    assert calls(tmp_path) == []


def test_the_canonical_component_names_are_the_scenario_schema_s() -> None:
    from kcverify import contracts

    schema = contracts.schema("schemas/scenario")
    assert tuple(schema["$defs"]["component"]["enum"]) == names.SCENARIO_COMPONENTS


def test_a_system_that_cannot_be_resumed_at_the_end_stops_the_run_loudly(tmp_path: Path) -> None:
    from kcverify.core.errors import TargetUnreachable

    text = full_control().replace(f"      resume: '{RECORD}'", "      resume: 'echo connection refused; exit 7'", 1)
    target = ExternalTarget(load_profile(write(tmp_path, text), {"PATH": "/usr/bin:/bin"}))
    target.start(seed=0)
    with pytest.raises(TargetUnreachable, match=r"could not leave the components running.*connection refused"):
        target.close()


def test_a_faults_command_gives_inject_faults_and_is_told_what_to_break(tmp_path: Path) -> None:
    """`fail` steps reach the system's own fault hook through the environment, never spliced into the
    command text (a resource or op name is data, not shell)."""
    record = 'echo "$KCVERIFY_ACTION $KCVERIFY_FAULT_RESOURCE $KCVERIFY_FAULT_TIMES [$KCVERIFY_FAULT_OP]" >> calls.log'
    without = load_profile(write(tmp_path, full_control()), {})
    assert "inject_faults" not in without.capabilities
    text = full_control().replace("  timeout: 5\n", f"  timeout: 5\n  faults: '{record}'\n")
    profile = load_profile(write(tmp_path, text), {"PATH": "/usr/bin:/bin"})
    assert "inject_faults" in profile.capabilities
    target = ExternalTarget(profile)
    target.fail("bus", 3, "publish")
    target.fail("payments_db", 1, None)
    assert calls(tmp_path) == ["fault bus 3 [publish]", "fault payments_db 1 []"]


def test_a_failing_faults_command_is_an_error_with_its_output(tmp_path: Path) -> None:
    text = full_control().replace("  timeout: 5\n", "  timeout: 5\n  faults: 'echo no hook >&2; exit 4'\n")
    control = Control(load_profile(write(tmp_path, text), {"PATH": "/usr/bin:/bin"}))
    with pytest.raises(ControlError) as raised:
        control.fault("cache", 2, None)
    assert "the faults command (cache x2) exited with status 4" in str(raised.value)
    assert "no hook" in str(raised.value)
