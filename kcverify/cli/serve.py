"""`kcverify serve`: the reference as real HTTP servers and processes.

- `kcverify serve --embedded`: the whole flow in one process (SQLite, an in-process log, an in-memory
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
from contextlib import ExitStack
from pathlib import Path

import click

from kcverify.reference.auth import issue_token, sign_body
from kcverify.reference.defects import BY_NAME

# The real-stack processes, one per value (kcverify.reference.component_process.PROCESS_KINDS).
STACK_COMPONENTS = ("payment", "student", "worker", "relay", "reconciler")
DEFAULT_PORTS = {"payment": 8081, "student": 8082}

EXAMPLE_METADATA = {"startDate": "2026-03-02", "classTime": "18:30", "classTypeId": "group-conversation",
                    "scheduleType": "weekly", "sessionCount": 10}
EXAMPLE_CONFIRM = {"status": "succeeded", "providerPaymentId": "pi_demo_1"}


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def walkthrough(payment_url: str, student_url: str, webhook_secret: str, auth_secret: str) -> str:
    """Shell lines a person pastes to buy a course and see it, each step checked against a live server
    (docs/serve.md shows the same). The confirm body holds no payment id, so its signature, computed
    here, is valid for every payment: no openssl needed, though the snippet shows how to sign any body."""
    create = _compact({"studentId": "s1", "courseId": "course-english-b1", "amountCents": 19900,
                       "currency": "EUR", "metadata": EXAMPLE_METADATA})
    confirm = _compact(EXAMPLE_CONFIRM)
    q = shlex.quote
    return "\n".join([
        f"PAY={payment_url}",
        f"STU={student_url}",
        f"SECRET={q(webhook_secret)}",
        f"S1_TOKEN={issue_token(auth_secret, 's1')}",
        f"S2_TOKEN={issue_token(auth_secret, 's2')}",
        f"ADMIN_TOKEN={issue_token(auth_secret, 'admin', 'admin')}",
        "",
        "# 1. checkout: create a payment for student s1 (keep its id)",
        f"PAYMENT_ID=$(curl -sS -X POST \"$PAY/api/v1/payments\" -H 'Content-Type: application/json' -d {q(create)} \\",
        "  | sed -E 's/.*\"id\":\"([^\"]+)\".*/\\1/'); echo \"$PAYMENT_ID\"",
        "",
        "# 2. the gateway confirms it: X-Signature is the HMAC-SHA256 of the exact body",
        f"BODY={q(confirm)}",
        "SIG=\"sha256=$(printf '%s' \"$BODY\" | openssl dgst -sha256 -hmac \"$SECRET\" | sed 's/^.*= //')\"",
        f"#   (without openssl: SIG={sign_body(webhook_secret, confirm.encode())} is valid for that BODY)",
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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("component", required=False, type=click.Choice(STACK_COMPONENTS))
@click.option("--embedded", is_flag=True,
              help="Run the whole embedded reference (both services and every component) in this process.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface the services listen on.")
@click.option("--payment-port", type=click.IntRange(0, 65535), default=8081, show_default=True,
              help="--embedded: payment service port (0: any free port).")
@click.option("--student-port", type=click.IntRange(0, 65535), default=8082, show_default=True,
              help="--embedded: student service port (0: any free port).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="--embedded: keep payments_db and courses_db as SQLite files here, across restarts. "
                   "Default: a temporary directory, deleted on exit.")
@click.option("--in-memory", is_flag=True, help="--embedded: in-memory SQLite databases instead of files.")
@click.option("--defect", "defects", multiple=True, type=click.Choice(sorted(BY_NAME)), metavar="NAME",
              help="Switch on a named defect (repeatable); see docs/defects.md.")
@click.option("--trace/--no-trace", default=True, show_default=True,
              help="--embedded: print one line per hop (payment saved, event published, ...) on stderr.")
@click.option("--access-log", is_flag=True, help="Also log every HTTP request on stderr.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="KCVERIFY_STATE_DIR",
              help="COMPONENT: the stack's state directory (default ./.kcverify/stack); its stack.json "
                   "has the PostgreSQL, Kafka and Redis addresses.")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="COMPONENT payment/student: HTTP port (default 8081 / 8082; 0: any free port).")
@click.option("--trace-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="COMPONENT: append the component's trace records here, one JSON object a line "
                   "(default: stderr).")
@click.option("--outbox", "outboxes", multiple=True, type=click.Choice(("payments", "courses")),
              help="COMPONENT relay: which outbox to relay (repeatable; default both).")
@click.option("--reconcile-grace", type=click.FloatRange(min=0), default=None, envvar="KCVERIFY_RECONCILE_GRACE",
              help="COMPONENT reconciler: seconds a succeeded payment may lack its purchase before its "
                   "confirmation is re-published (default 60; the processes target uses 5).")
@click.option("--reconcile-every", type=click.FloatRange(min=0.01), default=0.5, show_default=True,
              help="COMPONENT reconciler: seconds between two scans.")
@click.option("--invalidator-retry", type=click.FloatRange(min=0.01), default=None,
              help="COMPONENT student: seconds before the cache invalidator retries a failed delete "
                   "(default 1; the processes target uses 0.1).")
@click.option("--control-port", type=click.IntRange(0, 65535), default=None,
              help="TEST ONLY: serve the control endpoint (faults, crash points, hold/step, read pause) on "
                   "this port. Never on by default; never expose it.")
@click.option("--held", is_flag=True, hidden=True, help="TEST ONLY (with --control-port): start every loop held.")
@click.option("--faults-file", type=click.Path(dir_okay=False, path_type=Path), default=None, hidden=True,
              help="TEST ONLY (with --control-port): a fault table shared with the other processes.")
@click.option("--parent-pid", type=int, default=None, hidden=True,
              help="TEST ONLY: stop when this process is no longer the parent.")
def serve(component: str | None, embedded: bool, host: str, payment_port: int, student_port: int,
          data_dir: Path | None, in_memory: bool, defects: tuple[str, ...], trace: bool, access_log: bool,
          state_dir: Path | None, port: int | None, trace_file: Path | None, outboxes: tuple[str, ...],
          reconcile_grace: float | None, reconcile_every: float, invalidator_retry: float | None,
          control_port: int | None, held: bool, faults_file: Path | None, parent_pid: int | None) -> None:
    """Serve the reference: `--embedded` runs the whole flow in one process with real time, ready for
    curl; COMPONENT runs one component of it as its own process on the stack of `kcverify stack up`.
    Stop it with Ctrl-C or SIGTERM."""
    if component is not None and embedded:
        raise click.UsageError("--embedded runs every component; do not name one")
    if not embedded and component is None:
        raise click.UsageError("say what to serve: `kcverify serve --embedded` runs the whole flow in one "
                               f"process; `kcverify serve COMPONENT` ({', '.join(STACK_COMPONENTS)}) runs one "
                               "component on the real stack (kcverify stack up)")
    if component is not None:
        if data_dir is not None or in_memory:
            raise click.UsageError("--data-dir and --in-memory are for --embedded; a component keeps its "
                                   "data in the stack's PostgreSQL")
        if (held or faults_file is not None) and control_port is None:
            raise click.UsageError("--held and --faults-file need --control-port")
        if outboxes and component != "relay":
            raise click.UsageError("--outbox is for `serve relay`")
        if port is not None and component not in DEFAULT_PORTS:
            raise click.UsageError("--port is for `serve payment` and `serve student`")
        _serve_component(component, host, port, state_dir, defects, trace_file, outboxes, reconcile_grace,
                         reconcile_every, invalidator_retry, control_port, held, faults_file, parent_pid,
                         access_log)
        return
    if in_memory and data_dir is not None:
        raise click.UsageError("--in-memory and --data-dir exclude each other")
    _serve_embedded(host, payment_port, student_port, data_dir, in_memory, defects, trace, access_log)


def _serve_component(component: str, host: str, port: int | None, state_dir: Path | None,
                     defects: tuple[str, ...], trace_file: Path | None, outboxes: tuple[str, ...],
                     reconcile_grace: float | None, reconcile_every: float, invalidator_retry: float | None,
                     control_port: int | None, held: bool, faults_file: Path | None, parent_pid: int | None,
                     access_log: bool) -> None:
    # Imported here: the reference, uvicorn and the client libraries are not needed for `--help`.
    from kcverify.core.errors import ReferenceError_
    from kcverify.reference.component_process import ComponentProcess, ProcessOptions
    from kcverify.reference.settings import Settings
    from kcverify.stack import StackError, load_settings

    try:
        stack = load_settings(state_dir)
    except StackError as exc:
        click.echo(f"kcverify serve {component}: {exc}", err=True)
        sys.exit(2)
    overrides: dict[str, float] = {}
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
                             parent_pid=parent_pid, access_log=access_log)
    try:
        process = ComponentProcess(settings, options)
    except ReferenceError_ as exc:  # PostgreSQL, Kafka or Redis did not answer
        click.echo(f"kcverify serve {component}: cannot reach the stack: {exc} (see `kcverify stack status`)",
                   err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(f"kcverify serve {component}: cannot listen on {host} (port {options.port}"
                   + (f", control port {control_port}" if control_port is not None else "") + f"): {exc}", err=True)
        sys.exit(2)
    lines = [f"kcverify serve {component}: pid {os.getpid()}, stack {stack.get('state_dir', state_dir or '')}"]
    if process.service_url:
        lines.append(f"  {component} service  {process.service_url}")
    if process.control_url:
        lines.append(f"  control (TEST ONLY)  {process.control_url}")
    if defects:
        lines.append(f"  defects          {', '.join(sorted(defects))} (NOT the spec)")
    click.echo("\n".join(lines))
    sys.stdout.flush()
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
            click.echo(f"kcverify serve: cannot listen on {host} (ports {payment_port}, {student_port}): {exc}",
                       err=True)
            sys.exit(2)
        settings = system.settings
        defect_line = (", ".join(sorted(defects)) + " (NOT the rules)" if defects
                       else "none (follows the rules, docs/spec-rules.md)")
        click.echo("\n".join([
            "kcverify serve --embedded: the reference purchase flow in one process, on real time",
            f"  payment service  {server.payment_url}",
            f"  student service  {server.student_url}",
            f"  data             {where}",
            f"  defects          {defect_line}",
            "  secrets          development keys, published in kcverify: never use them for anything real",
            f"  webhook secret   {settings.webhook_secret}  (POST .../confirm needs X-Signature: "
            "sha256=<HMAC-SHA256 of the raw body>)",
            "",
            "Try it (bash):",
            "",
            walkthrough(server.payment_url, server.student_url, settings.webhook_secret, settings.auth_secret),
            "",
            "Ctrl-C stops (components stop gracefully).",
        ]))
        sys.stdout.flush()
        server.run()
        click.echo("kcverify serve: stopped", err=True)
