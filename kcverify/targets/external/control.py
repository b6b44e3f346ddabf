"""Control of a user's components through the shell commands of the profile's `control` section.

Each component (by the canonical name the scenarios use, kcverify.spec.names.COMPONENTS) may have the
commands start, stop, kill, restart, pause and resume, and a readiness probe. A command runs with
`sh -c` in the profile's directory, with the verifier's environment plus the variables `control.env`
declares plus KCVERIFY_COMPONENT (the component) and KCVERIFY_ACTION (the command's name); it must end
within `control.timeout` seconds (its process group is killed then). Its output goes to a file, not a
pipe, so a command that starts a background process returns as soon as the shell does. A command that
fails or times out raises ControlError with its exit status and the tail of its output.

Why pause and resume: the scenarios are written for a flow that stands still between steps ("a read
before the settle sees no purchase yet"). The processes target holds every component between steps
through the reference's control endpoint; a profile gives the same through its pause and resume
commands, and the external target declares `control_components` only when every component a scenario can
name has pause, resume, stop, kill and start (or restart). `missing()` says what is missing, for
`kcverify profile check`."""

from __future__ import annotations

import contextlib
import difflib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from kcverify.core.admin_calls import collector_paused
from kcverify.spec import names
from kcverify.targets.external.profile import Profile

ACTIONS = ("start", "stop", "kill", "restart", "pause", "resume")
# What `control_components` needs of every component a scenario can name (start: or restart).
NEEDED = ("pause", "resume", "stop", "kill", "start")
COMMAND_TIMEOUT = 60.0
READY_TIMEOUT = 30.0
READY_POLL = 0.1
OUTPUT_TAIL = 2000  # characters of a failed command's output shown in the error


class ControlError(RuntimeError):
    """A control command failed, timed out, or its component did not become ready."""


@dataclass(frozen=True)
class Outcome:
    """What one command did: its exit status (None: killed at the timeout) and its output."""

    status: int | None
    output: str
    seconds: float


def check_components(profile: Profile) -> None:
    """Every component name is a canonical one: InputError at the name, with "did you mean", otherwise."""
    known = list(names.COMPONENTS)
    for name in profile.section("control", "components"):
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
            hint = (f"did you mean {close[0]!r}? " if close else "") + f"components: {', '.join(known)}"
            raise profile.doc.error(f"unknown component {name!r}", profile.doc.key_at(("control", "components", name)),
                                    hint)


def missing(profile: Profile) -> list[str]:
    """What keeps `control_components` away, one line per component that lacks a command a scenario step
    needs ("purchase-worker: no pause"); empty when every component a scenario can name is controlled."""
    components = profile.section("control", "components")
    lines = []
    for name in names.SCENARIO_COMPONENTS:
        spec = components.get(name)
        if not isinstance(spec, dict):
            lines.append(f"{name}: not in control.components")
            continue
        lacking = [a for a in NEEDED if a not in spec and not (a == "start" and "restart" in spec)]
        if lacking:
            lines.append(f"{name}: no {', no '.join(lacking)}" + (" (nor restart)" if "start" in lacking else ""))
    return lines


class Control:
    """Runs a profile's control commands and keeps which components it left down."""

    def __init__(self, profile: Profile, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.profile = profile
        self.components: dict[str, dict[str, Any]] = dict(profile.section("control", "components"))
        self.timeout = float(profile.section("control").get("timeout", COMMAND_TIMEOUT))
        self.variables = {name: profile.resolve(value, "control", "env", name)
                          for name, value in profile.section("control", "env").items()}
        self.directory = Path(profile.file).resolve().parent
        self.down: set[str] = set()  # stopped or killed by a command of ours, not started since
        self.held: set[str] = set()  # paused by a command of ours, not resumed, stopped or started since
        self._sleep = sleep

    def has(self, component: str, action: str) -> bool:
        return action in self.components.get(component, {})

    # --- one command -------------------------------------------------------------------------------

    def environment(self, component: str, action: str) -> dict[str, str]:
        return {**self.profile.environ, **self.variables, "KCVERIFY_COMPONENT": component, "KCVERIFY_ACTION": action}

    def command(self, component: str, action: str) -> Outcome:
        """Run that component's command; ControlError (with its output) when it is missing, fails or times out."""
        text = self.components.get(component, {}).get(action)
        if not isinstance(text, str):
            raise ControlError(f"{self.profile.file}: control.components.{component} has no {action} command")
        return self._run(text, self.environment(component, action), f"the {action} command of {component}")

    def fault(self, resource: str, times: int, op: str | None, after: int = 0) -> Outcome:
        """A scenario's `fail` step: the profile's `control.faults` command, told what to break through the
        environment (KCVERIFY_FAULT_RESOURCE, KCVERIFY_FAULT_TIMES, KCVERIFY_FAULT_OP, KCVERIFY_FAULT_AFTER;
        never spliced into the command text). It must arrange that, after the next `after` calls of `op`
        (any, when empty) on `resource` still work, the `times` calls after them fail, then work again: the
        system's own fault hook (a test endpoint, a proxy)."""
        text = self.profile.section("control").get("faults")
        if not isinstance(text, str):
            raise ControlError(f"{self.profile.file}: control has no faults command")
        env = {**self.profile.environ, **self.variables, "KCVERIFY_ACTION": "fault",
               "KCVERIFY_FAULT_RESOURCE": resource, "KCVERIFY_FAULT_TIMES": str(times), "KCVERIFY_FAULT_OP": op or "",
               "KCVERIFY_FAULT_AFTER": str(after)}
        return self._run(text, env, f"the faults command ({resource} x{times})")

    def _run(self, text: str, env: dict[str, str], what: str) -> Outcome:
        started = time.monotonic()
        with tempfile.TemporaryFile() as out:
            process = subprocess.Popen(["sh", "-c", text], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                       cwd=str(self.directory), env=env, start_new_session=True)
            try:
                status: int | None = process.wait(self.timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):  # the group may be gone already
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                status = None
            out.seek(0)
            output = out.read().decode(errors="replace")
        outcome = Outcome(status, output, time.monotonic() - started)
        if status != 0:
            why = f"timed out after {self.timeout:g} s" if status is None else f"exited with status {status}"
            raise ControlError(f"{what} {why}: {text}{_tail(output)}")
        return outcome

    # --- the scenario steps ------------------------------------------------------------------------

    def start(self, component: str) -> None:
        """Start it (the start command, else restart) and wait until its readiness probe says ready."""
        action = "start" if self.has(component, "start") else "restart"
        mark = self._log_mark(component)
        outcome = self.command(component, action)
        self.down.discard(component)
        self.held.discard(component)
        self.wait_ready(component, outcome.output, mark)

    def restart(self, component: str) -> None:
        """The restart command when it has one, else stop then start; waits until it is ready."""
        if self.has(component, "restart"):
            mark = self._log_mark(component)
            outcome = self.command(component, "restart")
            self.down.discard(component)
            self.held.discard(component)
            self.wait_ready(component, outcome.output, mark)
            return
        self.stop(component)
        self.start(component)

    def stop(self, component: str) -> None:
        self.command(component, "stop")
        self.down.add(component)
        self.held.discard(component)

    def kill(self, component: str) -> None:
        self.command(component, "kill")
        self.down.add(component)
        self.held.discard(component)

    def pause(self, components: Iterable[str]) -> None:
        chosen = list(components)
        self._each(chosen, "pause")
        self.held.update(chosen)

    def resume(self, components: Iterable[str]) -> None:
        chosen = list(components)
        self._each(chosen, "resume")
        self.held.difference_update(chosen)

    def pausable(self) -> list[str]:
        """The live components that have pause and resume commands."""
        return [c for c in self.components if c not in self.down and self.has(c, "pause") and self.has(c, "resume")]

    def _each(self, components: Iterable[str], action: str) -> None:
        """One command per component, concurrently (they are independent); the first failure is raised."""
        chosen = list(components)
        if not chosen:
            return
        with ThreadPoolExecutor(len(chosen)) as pool:
            for future in [pool.submit(self.command, c, action) for c in chosen]:
                future.result()

    # --- readiness ---------------------------------------------------------------------------------

    def _template(self, text: str, component: str) -> str:
        values = {**self.variables, "component": component}
        for name, value in values.items():
            text = text.replace("{" + name + "}", value)
        return text

    def _log_file(self, component: str) -> Path | None:
        ready = self.components.get(component, {}).get("ready") or {}
        if "log_file" not in ready:
            return None
        path = Path(self._template(str(ready["log_file"]), component))
        return path if path.is_absolute() else self.directory / path

    def _log_mark(self, component: str) -> int:
        """Where the log ends now: a ready line written before the start does not count."""
        path = self._log_file(component)
        try:
            return path.stat().st_size if path is not None else 0
        except OSError:
            return 0

    def wait_ready(self, component: str, output: str = "", mark: int = 0) -> None:
        """Until every probe the component's `ready` names says ready, or ControlError at its timeout."""
        ready: Mapping[str, Any] = self.components.get(component, {}).get("ready") or {}
        if not ready:
            return
        timeout = float(ready.get("timeout", READY_TIMEOUT))
        deadline = time.monotonic() + timeout
        pending = self._probes(component, output, mark)
        while True:
            pending = [(what, probe) for what, probe in pending if not probe()]
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise ControlError(f"{component} was not ready within {timeout:g} s: no "
                                   + "; no ".join(what for what, _ in pending))
            self._sleep(READY_POLL)

    def not_ready(self, component: str) -> list[str]:
        """What the component's http and group probes do not see now (for `kcverify profile check`: a log
        line is about a start, so it is not asked here)."""
        return [what for what, probe in self._probes(component, "", 0, log=False) if not probe()]

    def _probes(self, component: str, output: str, mark: int, *,
                log: bool = True) -> list[tuple[str, Callable[[], bool]]]:
        ready: Mapping[str, Any] = self.components.get(component, {}).get("ready") or {}
        probes: list[tuple[str, Callable[[], bool]]] = []
        if "http" in ready:
            url = self._template(str(ready["http"]), component)
            probes.append((f"{url} answering 2xx", lambda: _http_ok(url)))
        if "log_line" in ready and log:
            line, path = str(ready["log_line"]), self._log_file(component)
            where = str(path) if path is not None else "the start command's output"
            probes.append((f"{line!r} in {where}",
                           lambda: line in (output if path is None else _read_from(path, mark))))
        if "group" in ready:
            group = str(ready["group"])
            probes.append((f"member in consumer group {group}", lambda: self._group_has_member(group)))
        return probes

    def _group_has_member(self, group: str) -> bool:
        """The group is stable with at least one member (the broker from the profile's kafka.bootstrap)."""
        from confluent_kafka import ConsumerGroupState
        from confluent_kafka.admin import AdminClient

        kafka = self.profile.section("kafka")
        if "bootstrap" not in kafka:
            raise ControlError(f"{self.profile.file}: a `ready.group` probe needs kafka.bootstrap")
        bootstrap = self.profile.resolve(kafka["bootstrap"], "kafka", "bootstrap")
        admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000, "log_level": 3})
        try:
            with collector_paused():
                description = admin.describe_consumer_groups([group], request_timeout=2.0)[group].result()
        except Exception:  # not ready yet (coordinator loading, broker starting): ask again
            return False
        return bool(description.state == ConsumerGroupState.STABLE and description.members)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).is_success
    except httpx.HTTPError:
        return False


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
    except OSError:
        return ""


def _tail(output: str) -> str:
    output = output.strip()
    if not output:
        return " (no output)"
    if len(output) > OUTPUT_TAIL:
        output = "..." + output[-OUTPUT_TAIL:]
    return "\n--- its output ---\n" + output


__all__ = ["ACTIONS", "Control", "ControlError", "Outcome", "check_components", "missing"]
