"""`kcverify chaos`: a Jepsen-style run on the processes target (kcverify/chaos/, docs/chaos.md): a
workload under a seeded fault schedule, recorded as a history, judged afterwards by the checker.
`kcverify chaos check DIR` judges a recorded run again. Exit 0 clean, 1 an anomaly, 2 bad input or an
unreachable stack (one line), 3 kcverify broke."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from kcverify.chaos import faults as fault_schedule
from kcverify.chaos import html_report
from kcverify.chaos.checker import Verdict, check
from kcverify.chaos.history import load
from kcverify.chaos.report import document, junit, summary
from kcverify.cli.outcomes import exit_for
from kcverify.cli.settings import bounded
from kcverify.core.errors import InputError

TARGETS = ("processes",)
MAX_RATE = 10_000.0


def _write(out: Path, verdict: Verdict, history: list[dict[str, Any]], final: dict[str, Any],
           run: dict[str, Any] | None) -> None:
    (out / "verdict.json").write_text(json.dumps(document(verdict, run), indent=2) + "\n")
    (out / "junit.xml").write_text(junit(verdict))
    html_report.write(out / html_report.REPORT, verdict, history, run, final)


def _show(verdict: Verdict, run: dict[str, Any] | None) -> None:
    for line in summary(verdict, run):
        click.echo(line)


def _run_line(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((line for line in reversed(history) if line.get("type") == "end"), None)


@click.group(invoke_without_command=True)
@click.option("--target", default="processes", show_default=True, metavar="NAME",
              help="Where the system runs (the processes target only).")
@click.option("--state-dir", type=click.Path(path_type=Path), default=None,
              help="The stack's state directory (default: $KCVERIFY_STATE_DIR, else .kcverify/stack).")
@click.option("--purchases", type=bounded("chaos", "purchases"), default=1000, show_default=True,
              help="Purchases the workload makes.")
@click.option("--rate", type=bounded("chaos", "rate"), default=20.0, show_default=True,
              help="Purchases started per second (open loop).")
@click.option("--faults", "faults_text", default=fault_schedule.DEFAULT, show_default=True, metavar="SCHEDULE",
              help="KIND[:ARG],...: worker-kill:5s, relay-kill:8s|once, broker-restart:once, postgres-restart:once, "
                   "redis-outage:10s, pause:3s; `none` for no fault.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the workload and the fault schedule.")
@click.option("--defect", "defects", multiple=True, metavar="NAME",
              help="Start the reference's processes with this named defect (repeatable).")
@click.option("--recovery-timeout", type=bounded("chaos", "recovery_timeout"), default=120.0, show_default=True,
              help="Seconds the flow may take to settle once the faults are healed.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("kcverify-chaos"), show_default=True,
              help="Directory for history.jsonl, final.json, verdict.json, junit.xml and report.html.")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.pass_context
def chaos(ctx: click.Context, target: str, state_dir: Path | None, purchases: int, rate: float, faults_text: str,
          seed: int, defects: tuple[str, ...], recovery_timeout: float, out: Path, debug: bool) -> None:
    """Run purchases under a fault schedule, record the history, and judge it: lost purchases,
    duplicates, purchases without payment, changed metadata, poison events, stale views, offsets."""
    if ctx.invoked_subcommand is not None:
        return
    from kcverify.chaos.workload import Chaos, ChaosOptions
    from kcverify.stack import resolve_state_dir
    from kcverify.targets import registry
    from kcverify.targets.registry import TargetOptions

    built: Any = None
    try:
        if target not in TARGETS:
            raise InputError(f"--target {target}: kcverify chaos runs on the processes target only",
                             hint="use --target processes")
        if not 0 < rate <= MAX_RATE:
            raise InputError(f"--rate: {rate:g} is out of range (0 < rate <= {MAX_RATE:g})")
        specs = fault_schedule.parse(faults_text)
        options = ChaosOptions(purchases=purchases, rate=rate, faults=specs, seed=seed,
                               recovery_timeout=recovery_timeout)
        out.mkdir(parents=True, exist_ok=True)
        # the nemesis kills workers and restarts them in their slot, as a supervisor does: static members
        settings: dict[str, Any] = {"static_membership": True}
        if state_dir is not None:
            settings["state_dir"] = str(state_dir)
        try:
            built = registry.create(target, TargetOptions(settings=settings, defects=frozenset(defects)))
        except ValueError as exc:
            raise InputError(f"--defect: {exc}") from None
        click.echo(f"kcverify chaos: {purchases} purchases at {rate:g}/s, faults "
                   f"{', '.join(s.text() for s in specs) or 'none'}, seed {seed}"
                   + (f", defects {', '.join(defects)}" if defects else ""))
        built.start(seed=seed)
        info = Chaos(built, resolve_state_dir(state_dir), out, options).run()
        history, final = load(out)
        verdict = check(history, final)
        run = _run_line(history)
        _show(verdict, run)
        _write(out, verdict, history, final, run)
        click.echo(f"history: {out / 'history.jsonl'}; faults applied {len(info.faults_applied)}")
        code = 0 if verdict.ok else 1
    except Exception as exc:
        exit_for(exc, debug=debug, target=target, command="kcverify chaos")
    finally:
        if built is not None:
            built.close()
    sys.exit(code)


@chaos.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def check_command(path: Path, debug: bool) -> None:
    """Judge a recorded run again: PATH is its --out directory or its history.jsonl (final.json beside it)."""
    try:
        history, final = load(path)
        verdict = check(history, final)
        run = _run_line(history)
        _show(verdict, run)
        _write(path if path.is_dir() else path.parent, verdict, history, final, run)
        code = 0 if verdict.ok else 1
    except Exception as exc:
        exit_for(exc, debug=debug, command="kcverify chaos check")
    sys.exit(code)


__all__ = ["chaos"]
