"""`kcverify stack up | down | status`: a thin layer over kcverify.stack. Parses options, prints, and
maps outcomes to exit codes (0 ok; 1 status: something is down; 2 missing prerequisite or a service
that would not start, with the fix or the log tail in the message)."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from kcverify.cli.destinations import writable_dir
from kcverify.cli.outcomes import exit_for
from kcverify.cli.settings import bounded
from kcverify.core.errors import InputError
from kcverify.stack import DEFAULT_TOPICS, StackError, down, prepare, resolve_state_dir, status, up
from kcverify.stack.state import ENV_STATE_DIR

F = TypeVar("F", bound=Callable[..., Any])
MAX_PARTITIONS = 9999  # as the settings contract bounds stack.topics
SETTING_KEYS = ("payments_dsn", "courses_dsn", "kafka_bootstrap", "redis_url")


def _state_dir_option(func: F) -> F:
    # Its default comes from the settings model: state_dir in kcverify.toml, or $KCVERIFY_STATE_DIR.
    return click.option(
        "--state-dir", type=click.Path(file_okay=False), default=None,
        help=f"Where data, logs and stack.json live [env {ENV_STATE_DIR}; default ./.kcverify/stack].",
    )(func)


def _writable_state_dir(state_dir: str | None) -> None:
    """`up` and `down` write there (data, logs, pid files): an unusable folder stops them at once."""
    try:
        writable_dir(resolve_state_dir(state_dir), "stack state dir")
    except InputError as exc:
        exit_for(exc, command="kcverify stack")


def _progress(message: str) -> None:
    click.echo(f"kcverify stack: {message}", err=True)


def _fail(exc: StackError) -> None:
    exit_for(exc, command="kcverify stack")


def _parse_topic(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> dict[str, int]:
    if not values:
        return dict(DEFAULT_TOPICS)
    topics: dict[str, int] = {}
    for value in values:
        name, _sep, count = value.rpartition(":")
        if not name or not count.isdigit() or not 1 <= int(count) <= MAX_PARTITIONS:
            raise click.BadParameter(f"{value!r}: expected NAME:PARTITIONS, e.g. purchase-confirmed:3")
        topics[name] = int(count)
    return topics


@click.group()
def stack() -> None:
    """Start and stop a local PostgreSQL, Redis and Kafka (KRaft) for the processes target."""


@stack.command("check")
@click.option("--install", is_flag=True, help="apt-get install missing prerequisites (needs root).")
def check_command(install: bool) -> None:
    """Check (and with --install, install) what the stack needs; fetch the Kafka jars once."""
    try:
        tools = prepare(install=install, report=_progress)
    except StackError as exc:
        _fail(exc)
        return
    click.echo(f"ready: java {tools.java_version}, PostgreSQL {tools.pg_version}, redis {tools.redis_version}, "
               "Kafka jars cached")


@stack.command("up")
@_state_dir_option
@click.option("--topic", "topics", multiple=True, callback=_parse_topic, metavar="NAME:PARTITIONS",
              help="Topic to create (repeatable). Default: "
                   + ", ".join(f"{n}:{p}" for n, p in DEFAULT_TOPICS.items()) + ".")
@click.option("--timeout", type=bounded("stack", "timeout"), default=120.0, show_default=True,
              help="Seconds each service may take to become ready.")
@click.option("--install", is_flag=True,
              help="apt-get install missing prerequisites first (needs root).")
@click.option("--json", "as_json", is_flag=True, help="Print stack.json instead of a summary.")
def up_command(state_dir: str | None, topics: dict[str, int], timeout: float, install: bool,
               as_json: bool) -> None:
    """Start the stack, or repair it (restart only services that died). Idempotent."""
    _writable_state_dir(state_dir)
    try:
        result = up(state_dir, topics=topics, timeout=timeout, install=install, report=_progress)
    except StackError as exc:
        _fail(exc)
        return
    settings = result.settings
    if as_json:
        click.echo(json.dumps(settings, indent=2, sort_keys=True))
        return
    if result.already_up:
        click.echo(f"stack already up ({settings['state_dir']})")
    else:
        click.echo(f"stack up in {result.elapsed:.1f}s, started {', '.join(result.started)} "
                   f"({settings['state_dir']})")
    width = max(len(k) for k in SETTING_KEYS)
    for key in SETTING_KEYS:
        click.echo(f"  {key:<{width}}  {settings[key]}")


@stack.command("down")
@_state_dir_option
@click.option("--purge", is_flag=True, help="Also delete the state directory (all data and logs).")
def down_command(state_dir: str | None, purge: bool) -> None:
    """Stop every service (graceful signal, then SIGKILL after a grace period)."""
    if purge:
        _writable_state_dir(state_dir)
    try:
        result = down(state_dir, purge=purge, report=_progress)
    except StackError as exc:
        _fail(exc)
        return
    if result.stopped:
        forced = f" (forced: {', '.join(result.forced)})" if result.forced else ""
        click.echo(f"stopped {', '.join(result.stopped)}{forced}")
    else:
        click.echo(f"nothing running ({resolve_state_dir(state_dir)})")
    if result.purged:
        click.echo(f"removed {resolve_state_dir(state_dir)}")


@stack.command("status")
@_state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def status_command(state_dir: str | None, as_json: bool) -> None:
    """Show each service: up/down, port, pid. Exit 0 when all are up, 1 otherwise."""
    try:
        services = status(state_dir)
    except StackError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(s) for s in services], indent=2))
    else:
        for s in services:
            click.echo(f"{s.name:<9} {'up' if s.up else 'down':<5} port {s.port or '-':<6} "
                       f"pid {s.pid or '-':<8} {s.detail}")
    sys.exit(0 if all(s.up for s in services) else 1)
