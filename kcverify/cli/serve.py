"""`kcverify serve`: the reference as real HTTP servers and processes.

- `kcverify serve embedded`: the whole flow in one process (SQLite, an in-process log, an in-memory
  cache), to click through with curl (docs/serve.md).
- `kcverify serve payment|student|worker|relay|reconciler`: ONE component as its own process on the real
  stack (PostgreSQL, Kafka, Redis) that `kcverify stack up` started; the settings come from the stack's
  stack.json. The stack target (`kcverify run --target processes`) starts these itself (docs/targets.md).

Exit codes: 0 stopped cleanly (Ctrl-C / SIGTERM), 1 a server failed while running, 2 wrong usage, no
running stack, or a port that cannot be bound."""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import click

from kcverify.cli.destinations import writable_dir
from kcverify.cli.outcomes import Unusable, exit_for
from kcverify.cli.settings import bounded
from kcverify.core.errors import InputError
from kcverify.reference.auth import issue_token
from kcverify.reference.defects import BY_NAME
from kcverify.reference.settings import (
    AUTH_SECRET_ENV,
    DEV_AUTH_SECRET,
    DEV_WEBHOOK_SECRET,
    WEBHOOK_SECRET_ENV,
    Settings,
)

# The real-stack processes, one per value (kcverify.reference.component_process.PROCESS_KINDS).
STACK_COMPONENTS = ("payment", "student", "worker", "relay", "reconciler")
DEFAULT_PORTS = {"payment": 8081, "student": 8082}

EXAMPLE_METADATA = {"startDate": "2026-03-02", "classTime": "18:30", "classTypeId": "group-conversation",
                    "scheduleType": "weekly", "sessionCount": 10}
EXAMPLE_CONFIRM = {"status": "succeeded", "providerPaymentId": "pi_demo_1"}


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def walkthrough(payment_url: str, student_url: str, settings: Settings, now: float) -> str:
    """Shell lines a person pastes to buy a course and see it, each step checked against a live server
    (docs/serve.md shows the same). No signature is printed: one is bound to a payment and a moment, so
    the lines compute it for the payment just created, now. With secrets from the environment, the lines
    read them from there: a real secret is never printed."""
    create = _compact({"studentId": "s1", "courseId": "course-english-b1", "amountCents": 19900,
                       "currency": "EUR", "metadata": EXAMPLE_METADATA})
    confirm = _compact(EXAMPLE_CONFIRM)
    q = shlex.quote
    secret = f"\"${WEBHOOK_SECRET_ENV}\"" if settings.webhook_secret != DEV_WEBHOOK_SECRET else q(DEV_WEBHOOK_SECRET)
    hours = settings.token_ttl / 3600

    def token(subject: str, role: str = "student") -> str:
        return issue_token(settings.auth_secret, subject, role, now=now, ttl=settings.token_ttl)

    return "\n".join([
        f"PAY={payment_url}",
        f"STU={student_url}",
        f"SECRET={secret}",
        f"# bearer tokens, valid for {hours:g} h",
        f"S1_TOKEN={token('s1')}",
        f"S2_TOKEN={token('s2')}",
        f"ADMIN_TOKEN={token('admin', 'admin')}",
        "",
        "# 1. checkout: create a payment for student s1 (keep its id)",
        f"PAYMENT_ID=$(curl -sS -X POST \"$PAY/api/v1/payments\" -H 'Content-Type: application/json' -d {q(create)} \\",
        "  | sed -E 's/.*\"id\":\"([^\"]+)\".*/\\1/'); echo \"$PAYMENT_ID\"",
        "",
        "# 2. the gateway confirms it: X-Signature is t=<unix seconds>,v1=<HMAC-SHA256 of \"$T.$PAYMENT_ID.$BODY\">,",
        "#    valid for this payment only, for 5 minutes either side of T",
        f"BODY={q(confirm)}",
        "T=$(date +%s)",
        "SIG=\"t=$T,v1=$(printf '%s' \"$T.$PAYMENT_ID.$BODY\" | openssl dgst -sha256 -hmac \"$SECRET\""
        " | sed 's/^.*= //')\"",
        "curl -sS -X POST \"$PAY/api/v1/payments/$PAYMENT_ID/confirm\" -H 'Content-Type: application/json' \\",
        "  -H \"X-Signature: $SIG\" -d \"$BODY\"; echo",
        "",
        "# 3. s1 reads the learning view: the purchase is there well within a second",
        "curl -sS -i \"$STU/api/v1/students/s1/learning\" -H \"Authorization: Bearer $S1_TOKEN\"; echo",
        "",
        "# refused: an unsigned confirm (401), another student's read (403)",
        "curl -sS -X POST \"$PAY/api/v1/payments/$PAYMENT_ID/confirm\" -H 'Content-Type: application/json'"
        " -d \"$BODY\"; echo",
        "curl -sS \"$STU/api/v1/students/s1/learning\" -H \"Authorization: Bearer $S2_TOKEN\"; echo",
        "# an admin may read anyone's view and drop the cached copy",
        "curl -sS -X DELETE \"$STU/api/v1/students/s1/learning/cache\" -H \"Authorization: Bearer $ADMIN_TOKEN\""
        " -o /dev/null -w '%{http_code}\\n'",
    ])


def secrets_line(settings: Settings) -> str:
    """Which secrets a served process uses, without printing a real one (a development key is public)."""
    parts = []
    for what, value, dev_key, variable in (("webhook", settings.webhook_secret, DEV_WEBHOOK_SECRET, WEBHOOK_SECRET_ENV),
                                           ("auth", settings.auth_secret, DEV_AUTH_SECRET, AUTH_SECRET_ENV)):
        parts.append(f"{what}: development key {dev_key!r}" if value == dev_key else f"{what}: from {variable}")
    warning = " (published in kcverify: never use them for anything real)" if settings.development_keys else ""
    return f"  secrets          {'; '.join(parts)}{warning}"


F = TypeVar("F", bound=Callable[..., Any])


def _options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func
    return apply


# Every mode: where to listen, which defects, the access log. Defaults come from the settings model
# (kcverify.cli.settings): [serve] for these, [serve.<mode>] for a mode's own.
_every_mode = _options(
    click.option("--host", default="127.0.0.1", show_default=True, help="Interface the services listen on."),
    click.option("--defect", "defects", multiple=True, type=click.Choice(sorted(BY_NAME)), metavar="NAME",
                 help="Switch on a named defect (repeatable); see docs/defects.md."),
    click.option("--access-log", is_flag=True, help="Also log every HTTP request on stderr."),
)

# Every component on the real stack: the stack to use and the test-only control endpoint.
_every_component = _options(
    click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="The stack's state directory (default ./.kcverify/stack; env KCVERIFY_STATE_DIR); its "
                      "stack.json has the PostgreSQL, Kafka and Redis addresses."),
    click.option("--trace-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Append the component's trace records here, one JSON object a line (default: stderr)."),
    click.option("--control-port", type=click.IntRange(0, 65535), default=None,
                 help="TEST ONLY: serve the control endpoint (faults, crash points, hold/step, read pause) on "
                      "this port. Never on by default; never expose it."),
    click.option("--held", is_flag=True, hidden=True,
                 help="TEST ONLY (with --control-port): start every loop held."),
    click.option("--faults-file", type=click.Path(dir_okay=False, path_type=Path), default=None, hidden=True,
                 help="TEST ONLY (with --control-port): a fault table shared with the other processes."),
    click.option("--parent-pid", type=click.IntRange(1), default=None, hidden=True,
                 help="TEST ONLY: stop when this process is no longer the parent."),
    click.option("--ports-file", type=click.Path(dir_okay=False, path_type=Path), default=None, hidden=True,
                 help="TEST ONLY: once listening, write the bound ports here as JSON (with port 0: where the "
                      "kernel put them)."),
    click.option("--dev", is_flag=True,
                 help="Development mode: without KCVERIFY_WEBHOOK_SECRET / KCVERIFY_AUTH_SECRET in the "
                      "environment, use the published development keys instead of refusing to start."),
)

# The options only one component has, by component.
_OWN: dict[str, list[Callable[[F], F]]] = {
    "payment": [click.option("--port", type=bounded("serve", "payment", "port"), default=None,
                             help="HTTP port (default 8081; 0: any free port).")],
    "student": [click.option("--port", type=bounded("serve", "student", "port"), default=None,
                             help="HTTP port (default 8082; 0: any free port)."),
                click.option("--invalidator-retry", type=bounded("serve", "student", "invalidator_retry"),
                             default=None, help="Seconds before the cache invalidator retries a failed delete "
                                                "(default 1; the processes target uses 0.1).")],
    "worker": [click.option("--group-instance", default=None, metavar="NAME",
                            help="Static membership of the worker's consumer group: a worker restarted under the same "
                                 "NAME rejoins with its old partitions, no rebalance (default: dynamic).")],
    "relay": [click.option("--outbox", "outboxes", multiple=True, type=click.Choice(("payments", "courses")),
                           help="Which outbox to relay (repeatable; default both).")],
    "reconciler": [click.option("--reconcile-grace", type=bounded("serve", "reconciler", "reconcile_grace"),
                                default=None, help="Seconds a succeeded payment may lack its purchase before its "
                                                   "confirmation is re-published (default 60; the processes "
                                                   "target uses 5)."),
                   click.option("--reconcile-every", type=bounded("serve", "reconciler", "reconcile_every"),
                                default=0.5, show_default=True, help="Seconds between two scans.")],
}
_SUMMARY = {
    "payment": "the payment service (HTTP) and its outbox.",
    "student": "the student service (HTTP) and the cache invalidator.",
    "worker": "the purchase worker (consumes purchase-confirmed).",
    "relay": "an outbox relay (payments and/or courses).",
    "reconciler": "the reconciler (re-publishes confirmations that have no purchase).",
}


def _moved_embedded(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        raise click.UsageError("the embedded reference is a subcommand now: kcverify serve embedded")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--embedded", "moved_embedded", is_flag=True, hidden=True, expose_value=False, is_eager=True,
              callback=_moved_embedded)
def serve() -> None:
    """Serve the reference: `embedded` runs the whole flow in one process with real time, ready for curl;
    payment|student|worker|relay|reconciler runs one component of it as its own process on the stack of
    `kcverify stack up`. Stop it with Ctrl-C or SIGTERM."""


@serve.command("embedded")
@_every_mode
@click.option("--payment-port", type=bounded("serve", "embedded", "payment_port"), default=8081, show_default=True,
              help="Payment service port (0: any free port).")
@click.option("--student-port", type=bounded("serve", "embedded", "student_port"), default=8082, show_default=True,
              help="Student service port (0: any free port).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep payments_db and courses_db as SQLite files here, across restarts. "
                   "Default: a temporary directory, deleted on exit.")
@click.option("--in-memory", is_flag=True, help="In-memory SQLite databases instead of files.")
@click.option("--trace/--no-trace", default=True, show_default=True,
              help="Print one line per hop (payment saved, event published, ...) on stderr.")
def embedded_command(host: str, defects: tuple[str, ...], access_log: bool, payment_port: int, student_port: int,
                     data_dir: Path | None, in_memory: bool, trace: bool) -> None:
    """The whole reference (both services and every component) in this process, on real time."""
    if in_memory and data_dir is not None:
        raise click.UsageError("--in-memory and --data-dir exclude each other")
    if data_dir is not None:
        try:
            writable_dir(data_dir, "--data-dir")
        except InputError as exc:
            exit_for(exc, command="kcverify serve embedded")
    _serve_embedded(host, payment_port, student_port, data_dir, in_memory, defects, trace, access_log)


def _component_command(component: str) -> click.Command:
    def command(host: str, defects: tuple[str, ...], access_log: bool, state_dir: Path | None,
                trace_file: Path | None, control_port: int | None, held: bool, faults_file: Path | None,
                parent_pid: int | None, ports_file: Path | None, dev: bool, port: int | None = None,
                outboxes: tuple[str, ...] = (), reconcile_grace: float | None = None, reconcile_every: float = 0.5,
                invalidator_retry: float | None = None, group_instance: str | None = None) -> None:
        if (held or faults_file is not None) and control_port is None:
            raise click.UsageError("--held and --faults-file need --control-port")
        _serve_component(component, host, port, state_dir, defects, trace_file, outboxes, reconcile_grace,
                         reconcile_every, invalidator_retry, control_port, held, faults_file, parent_pid,
                         access_log, dev, ports_file, group_instance)

    command.__doc__ = f"One component on the real stack (kcverify stack up): {_SUMMARY[component]}"
    decorated = _options(_every_mode, _every_component, *_OWN[component])(command)
    return click.command(component)(decorated)


for _component in STACK_COMPONENTS:
    serve.add_command(_component_command(_component))


def _serve_component(component: str, host: str, port: int | None, state_dir: Path | None,
                     defects: tuple[str, ...], trace_file: Path | None, outboxes: tuple[str, ...],
                     reconcile_grace: float | None, reconcile_every: float, invalidator_retry: float | None,
                     control_port: int | None, held: bool, faults_file: Path | None, parent_pid: int | None,
                     access_log: bool, dev: bool, ports_file: Path | None = None,
                     group_instance: str | None = None) -> None:
    # Imported here: the reference, uvicorn and the client libraries are not needed for `--help`.
    from kcverify.core.errors import ReferenceError_
    from kcverify.reference.component_process import ComponentProcess, ProcessOptions, write_ports_file
    from kcverify.reference.settings import MissingSecret, secrets_from_environment
    from kcverify.stack import StackError, load_settings

    command = f"kcverify serve {component}"
    try:
        secrets_from_environment(Settings(), dev=dev)  # refused before anything is touched; checked again at start
    except MissingSecret as exc:
        click.echo(f"kcverify serve {component}: {exc}", err=True)
        sys.exit(2)
    try:
        stack = load_settings(state_dir)
    except StackError as exc:
        exit_for(exc, command=command)
    overrides: dict[str, float | str] = {}
    if group_instance:
        overrides["group_instance"] = group_instance
    if reconcile_grace is not None:
        overrides["reconcile_grace"] = reconcile_grace
    if invalidator_retry is not None:
        overrides["invalidator_retry"] = invalidator_retry
    settings = Settings(mode="stack", payments_dsn=stack["payments_dsn"], courses_dsn=stack["courses_dsn"],
                        kafka_bootstrap=stack["kafka_bootstrap"], redis_url=stack["redis_url"],
                        defects=frozenset(defects), **overrides)  # type: ignore[arg-type]
    options = ProcessOptions(kind=component, host=host, port=DEFAULT_PORTS.get(component, 0) if port is None else port,
                             control_port=control_port, trace_file=trace_file, faults_file=faults_file, held=held,
                             outboxes=outboxes or ("payments", "courses"), reconcile_every=reconcile_every,
                             parent_pid=parent_pid, access_log=access_log, dev=dev)
    try:
        process = ComponentProcess(settings, options)
    except MissingSecret as exc:
        click.echo(f"kcverify serve {component}: {exc}", err=True)
        sys.exit(2)
    except ReferenceError_ as exc:  # PostgreSQL, Kafka or Redis did not answer
        exit_for(Unusable(f"cannot reach the stack: {exc} (see `kcverify stack status`)"), command=command)
    except OSError as exc:
        exit_for(Unusable(f"cannot listen on {host} (port {options.port}"
                          + (f", control port {control_port}" if control_port is not None else "") + f"): {exc}"),
                 command=command)
    lines = [f"kcverify serve {component}: pid {os.getpid()}, stack {stack.get('state_dir', state_dir or '')}"]
    if process.service_url:
        lines.append(f"  {component} service  {process.service_url}")
    if process.control_url:
        lines.append(f"  control (TEST ONLY)  {process.control_url}")
    if defects:
        lines.append(f"  defects          {', '.join(sorted(defects))} (NOT the spec)")
    lines.append(secrets_line(process.system.settings))
    click.echo("\n".join(lines))
    sys.stdout.flush()
    if ports_file is not None:
        write_ports_file(ports_file, process.service_socket, process.control_socket)
    status = process.run()
    click.echo(f"kcverify serve {component}: stopped", err=True)
    sys.exit(status)


def _serve_embedded(host: str, payment_port: int, student_port: int, data_dir: Path | None, in_memory: bool,
                    defects: tuple[str, ...], trace: bool, access_log: bool) -> None:
    # Imported here: uvicorn and the reference are not needed for `kcverify --help`.
    from kcverify.reference.embedded_server import ConsoleTracer, EmbeddedServer, build_system

    with ExitStack() as cleanup:
        where = "in memory (gone on exit)"
        if not in_memory and data_dir is None:
            data_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="kcverify-serve-")))
            where = f"{data_dir} (temporary, deleted on exit)"
        elif data_dir is not None:
            where = str(data_dir)
        system = build_system(data_dir, defects=defects, tracer=ConsoleTracer() if trace else None)
        try:
            server = EmbeddedServer(system, host=host, payment_port=payment_port, student_port=student_port,
                                    access_log=access_log)
        except OSError as exc:
            for store in (system.payment_store, system.course_store):
                getattr(store, "close", lambda: None)()
            exit_for(Unusable(f"cannot listen on {host} (ports {payment_port}, {student_port}): {exc}"),
                     command="kcverify serve embedded")
        settings = system.settings
        defect_line = (", ".join(sorted(defects)) + " (NOT the rules)" if defects
                       else "none (follows the rules, docs/spec-rules.md)")
        click.echo("\n".join([
            "kcverify serve embedded: the reference purchase flow in one process, on real time",
            f"  payment service  {server.payment_url}",
            f"  student service  {server.student_url}",
            f"  data             {where}",
            f"  defects          {defect_line}",
            secrets_line(settings),
            "  X-Signature      POST .../confirm needs t=<unix seconds>,v1=<HMAC-SHA256 of "
            "\"{t}.{paymentId}.{raw body}\">",
            "",
            "Try it (bash):",
            "",
            walkthrough(server.payment_url, server.student_url, settings, system.clock.now()),
            "",
            "Ctrl-C stops (components stop gracefully).",
        ]))
        sys.stdout.flush()
        server.run()
        click.echo("kcverify serve: stopped", err=True)
