"""`kcverify serve --embedded`: the embedded reference as a real HTTP server, to click through with curl.

`serve` takes an optional COMPONENT so the real-stack processes (`kcverify serve payment`, `... worker`,
...) can be added as values later without changing how `--embedded` is spelled; until then they exit 2
with what they need. Exit codes: 0 stopped cleanly (Ctrl-C / SIGTERM), 2 wrong usage or a port that
cannot be bound."""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import click

from kcverify.reference.auth import issue_token, sign_body
from kcverify.reference.defects import BY_NAME

# The real-stack processes `serve` will run one day, one per value.
STACK_COMPONENTS = ("payment", "student", "worker", "relay", "reconciler")

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
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface both services listen on.")
@click.option("--payment-port", type=click.IntRange(0, 65535), default=8081, show_default=True,
              help="Payment service port (0: any free port).")
@click.option("--student-port", type=click.IntRange(0, 65535), default=8082, show_default=True,
              help="Student service port (0: any free port).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep payments_db and courses_db as SQLite files here, across restarts. "
                   "Default: a temporary directory, deleted on exit.")
@click.option("--in-memory", is_flag=True, help="In-memory SQLite databases instead of files.")
@click.option("--defect", "defects", multiple=True, type=click.Choice(sorted(BY_NAME)), metavar="NAME",
              help="Switch on a named defect (repeatable); see docs/defects.md.")
@click.option("--trace/--no-trace", default=True, show_default=True,
              help="Print one line per hop (payment saved, event published, purchase recorded...) on stderr.")
@click.option("--access-log", is_flag=True, help="Also log every HTTP request on stderr.")
def serve(component: str | None, embedded: bool, host: str, payment_port: int, student_port: int,
          data_dir: Path | None, in_memory: bool, defects: tuple[str, ...], trace: bool, access_log: bool) -> None:
    """Serve the reference over HTTP. Today: `kcverify serve --embedded`, the whole flow in one process
    with real time, ready for curl. Stop it with Ctrl-C or SIGTERM."""
    if component is not None and embedded:
        raise click.UsageError("--embedded runs every component; do not name one")
    if not embedded:
        if component is None:
            click.echo("kcverify serve: say what to serve: `kcverify serve --embedded` runs the whole flow in one "
                       f"process; single components ({', '.join(STACK_COMPONENTS)}) are not available yet: "
                       "they need the real stack (kcverify stack up).", err=True)
        else:
            click.echo(f"kcverify serve: `kcverify serve {component}` is not available yet: it needs the real stack "
                       "(kcverify stack up). For the whole flow in one process, use `kcverify serve --embedded`.",
                       err=True)
        sys.exit(2)
    if in_memory and data_dir is not None:
        raise click.UsageError("--in-memory and --data-dir exclude each other")
    _serve_embedded(host, payment_port, student_port, data_dir, in_memory, defects, trace, access_log)


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
        defect_line = ", ".join(sorted(defects)) + " (NOT the spec)" if defects else "none (follows SPEC.md)"
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
