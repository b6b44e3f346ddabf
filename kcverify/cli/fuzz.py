"""`kcverify fuzz`: property-based contract testing of the services' HTTP APIs (kcverify/fuzz/), on any
target `kcverify run` drives. Exit 0 no failure found, 1 failures found (each with a curl line and the
command that runs its pass again), 2 bad input or an unreachable target (one line), 3 kcverify broke."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

from kcverify.cli.destinations import report_destinations
from kcverify.cli.outcomes import exit_for
from kcverify.cli.settings import bounded
from kcverify.cli.targets import target_option
from kcverify.contracts import contracts_dir, openapi_path
from kcverify.contracts.openapi import SERVICES
from kcverify.core.errors import InputError
from kcverify.evidence.events import RunFinished
from kcverify.fuzz import event_scenario, stateful
from kcverify.fuzz.consumer import OPERATION as EVENTS_OPERATION
from kcverify.fuzz.consumer import EventFuzzer, EventFuzzOptions, EventPassResult, budget
from kcverify.fuzz.profiles import documents_of
from kcverify.fuzz.results import (
    event_scenario_of,
    flow_outcomes_text,
    flow_scenario_of,
    outcomes_text,
    run_result,
    statuses_text,
)
from kcverify.fuzz.runner import DEFAULT_MAX_EXAMPLES, MODES, Fuzzer, FuzzOptions, PassResult, ServiceDocument
from kcverify.report import Fanout, build_reporters
from kcverify.report.console import ConsoleReporter
from kcverify.targets import registry
from kcverify.targets.base import Target
from kcverify.targets.registry import TargetOptions

# Where the curl lines send to on the reference targets: `kcverify serve embedded`'s default ports.
REFERENCE_URLS = {"payment-service": "http://127.0.0.1:8081", "student-service": "http://127.0.0.1:8082"}


def _words(value: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in value.split(",") if w.strip())


def documents(target: Target) -> list[ServiceDocument]:
    """The OpenAPI document of each service: those a profile names (`http.services.NAME.openapi`, fuzzed
    directly at the service's base URL), else the contracts the project ships, through the target."""
    named = documents_of(target)
    if named is not None:
        return named
    return [ServiceDocument(service, openapi_path(service), REFERENCE_URLS.get(service, "")) for service in SERVICES]


def progress_line(console: Console, result: PassResult) -> None:
    failing = f"  {result.failing_cases} failing" if result.failing_cases else ""
    error = f"  ({result.error})" if result.error else ""
    style = "red" if result.failing_cases or result.error else ""
    console.print(Text(f"  {result.mode:<8} {result.operation:<52} {result.cases:>6} cases {result.duration:7.1f} s  "
                       f"{statuses_text(result)}{failing}{error}", style=style), highlight=False, soft_wrap=True)


def event_progress_line(console: Console, result: EventPassResult) -> None:
    failing = f"  {result.failing_cases} failing" if result.failing_cases else ""
    error = f"  ({result.error})" if result.error else ""
    style = "red" if result.failing_cases or (result.error and not result.error.startswith("skipped")) else ""
    label = f"{result.operation}: {result.prop.name}"
    console.print(Text(f"  {result.mode:<8} {label:<52} {result.cases:>6} cases {result.duration:7.1f} s  "
                       f"{outcomes_text(result)}{failing}{error}", style=style), highlight=False, soft_wrap=True)


def flow_progress_line(console: Console, result: stateful.FlowPassResult) -> None:
    failing = f"  {result.failing_cases} failing" if result.failing_cases else ""
    error = f"  ({result.error})" if result.error else ""
    style = "red" if result.failing_cases or result.error else ""
    console.print(Text(f"  {result.mode:<8} {result.operation + ': stateful sequences':<52} {result.cases:>6} cases "
                       f"{result.duration:7.1f} s  {flow_outcomes_text(result)}{failing}{error}", style=style),
                  highlight=False, soft_wrap=True)


def _write_scenarios(results: list[EventPassResult], directory: Path, fuzz_command: list[str],
                     replay: list[str]) -> None:
    """Each consumer pass's shrunk failure as a scenario file of `directory`, named in its result."""
    for result in results:
        if result.shrunk is None:
            continue
        name = event_scenario.file_name(result)
        header = [f"Found by: {' '.join(fuzz_command)} --operations {result.operation} --modes {result.mode}",
                  f"(consumer pass, {'shrunk by Hypothesis' if result.shrinks else 'the first failing case'}). Replay:",
                  f"  {' '.join([*replay, str(directory / name)])}"]
        result.scenario_file = str(event_scenario.write(result, directory, header))


def curl_lines(console: Console, results: list[PassResult]) -> None:
    """Each finding's request as one unwrapped curl line, to paste into a shell."""
    console.print(Text("Requests that fail (one curl line per finding; its credentials are short-lived):",
                       style="bold"), highlight=False)
    for result in results:
        for finding in result.findings:
            console.print(Text(f"# {result.mode} {result.operation}: {finding.check}", style="dim"), highlight=False,
                          soft_wrap=True)
            console.print(Text(finding.curl), highlight=False, soft_wrap=True)


@click.command()
@target_option("Where the system under test runs.")
@click.option("--profile", type=click.Path(path_type=Path), default=None,
              help="The profile of your system, for --target external (see docs/external.md).")
@click.option("--operations", default="", metavar="OPS",
              help="Comma-separated operations to fuzz, by operationId or as 'METHOD /path' (default: all); "
                   f"{EVENTS_OPERATION} fuzzes the event consumer, {stateful.OPERATION} runs stateful sequences "
                   "across the flow.")
@click.option("--modes", default=",".join(MODES), show_default=True, metavar="MODES",
              help="Comma-separated: positive (schema-valid input), negative (input that breaks the contract).")
@click.option("--max-examples", type=bounded("fuzz", "max_examples"), default=DEFAULT_MAX_EXAMPLES, show_default=True,
              help="Generated cases per operation and mode (the document's examples and coverage cases come on top); "
                   "a consumer pass runs a fifth.")
@click.option("--seed", type=bounded("seed"), default=0, show_default=True, help="Seed of the generation.")
@click.option("--report", default="", help="Comma-separated: junit,json,markdown,html.")
@click.option("--report-dir", type=click.Path(path_type=Path), default=Path("kcverify-report"), show_default=True)
@click.option("--no-color", is_flag=True, help="Plain output, no colours or control codes.")
@click.option("--defect", "defects", multiple=True, hidden=True, metavar="NAME",
              help="Build the target with a named defect switched on (see `kcverify defects`).")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def fuzz(target: str, profile: Path | None, operations: str, modes: str, max_examples: int, seed: int, report: str,
         report_dir: Path, no_color: bool, defects: tuple[str, ...], debug: bool) -> None:
    """Fuzz the services' HTTP APIs from their OpenAPI documents (Schemathesis): positive and negative
    cases, real credentials, every answer checked against the contract; and the event consumer
    (consumePurchaseConfirmed): generated and near-valid events, each failure shrunk to a scenario file; and
    stateful sequences across the flow (flow): create, signed confirm, settle, learning view."""
    console = Console(no_color=no_color, highlight=False, force_terminal=None if not no_color else False)
    built: Target | None = None
    try:
        chosen_modes = _words(modes)
        unknown = [m for m in chosen_modes if m not in MODES]
        if unknown or not chosen_modes:
            raise InputError(f"--modes: unknown mode {unknown[0]!r}" if unknown else "--modes: no mode given",
                             hint=f"choose from: {', '.join(MODES)}")
        names = [n.strip() for n in report.split(",") if n.strip()]
        handlers = [ConsoleReporter(console), *build_reporters(names, report_dir, console)]
        report_destinations(report_dir, names)
        options = TargetOptions(defects=frozenset(defects), settings={"profile": str(profile)} if profile else {})
        built = registry.create(target, options)
        words = _words(operations)
        http_words = tuple(w for w in words if w not in (EVENTS_OPERATION, stateful.OPERATION))
        fuzz_options = FuzzOptions(max_examples=max_examples, seed=seed, operations=http_words, modes=chosen_modes)
        docs = documents(built) if not words or http_words else []
        fuzzer = Fuzzer(built, docs, fuzz_options, progress=lambda r: progress_line(console, r)) if docs else None
        events = EventFuzzer(built, EventFuzzOptions(max_examples=budget(max_examples), seed=seed, modes=chosen_modes),
                             progress=lambda r: event_progress_line(console, r)) \
            if not words or EVENTS_OPERATION in words else None
        flow_options = stateful.FlowFuzzOptions(max_examples=stateful.budget(max_examples), seed=seed)
        flow = stateful.FlowFuzzer(built, flow_options, lambda r: flow_progress_line(console, r)) \
            if (not words or stateful.OPERATION in words) and stateful.MODE in chosen_modes else None
        console.print(Text(f"kcverify fuzz: target {target}, seed {seed}, {max_examples} examples a pass "
                           f"({', '.join(chosen_modes)})", style="bold"), highlight=False)
        started_at, started = time.time(), time.monotonic()
        built.start(seed=seed)
        results = fuzzer.run() if fuzzer is not None else []
        event_results = events.run() if events is not None else []
        flow_results = flow.run() if flow is not None else []
        common = [*options.reproduce_args(), *(("--profile", str(profile)) if profile else ()), "--seed", str(seed)]
        reproduce = ["kcverify", "fuzz", "--target", target, *common, "--max-examples", str(max_examples)]
        event_contract = str(contracts_dir() / "events" / "purchase-confirmed.schema.json")
        replay = ["kcverify", "run", "--target", target, *common]
        _write_scenarios(event_results, report_dir / "fuzz-scenarios", reproduce, replay)
        run = run_result(results, target=target, seed=seed, started_at=started_at,
                         duration=time.monotonic() - started,
                         paths={d.service: str(d.openapi) for d in docs}, reproduce=reproduce,
                         events=[event_scenario_of(r, seed=seed, path=event_contract,
                                                   reproduce=reproduce, replay=replay) for r in event_results]
                         + [flow_scenario_of(r, seed=seed, path=str(openapi_path(stateful.PAYMENTS)),
                                             reproduce=reproduce) for r in flow_results])
        Fanout(handlers).handle(RunFinished(run))
        if run.exit_code == 1 and any(r.findings for r in results):
            curl_lines(console, results)
    except ValueError as exc:  # e.g. an unknown report name
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:
        exit_for(exc, debug=debug, target=target)
    finally:
        if built is not None:
            close = getattr(built, "close", None)
            if callable(close):
                close()
            else:
                built.stop()
    sys.exit(run.exit_code)


__all__ = ["fuzz"]
