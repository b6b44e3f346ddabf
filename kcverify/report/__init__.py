"""Reporters: handlers of engine events (kcverify.evidence.events). The engine never prints; the CLI
builds the console reporter and, with `build_reporters`, the file reporters a user asked for, and hands
them to the engine (one by one, or as one `Fanout`).

    console (rich)  live progress, one line per scenario, failures, claims, summary
    junit           <report-dir>/junit.xml    for CI test tabs
    json            <report-dir>/report.json  the whole RunResult (contracts/schemas/report.schema.json)
    markdown        <report-dir>/report.md    also appended to $GITHUB_STEP_SUMMARY when set
    html            <report-dir>/report.html  one self-contained file

With a claims file (kcverify.report.claims), the console, json, markdown and html reports also show
each claim judged by the run's evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from rich.console import Console
from rich.text import Text

from kcverify.evidence.events import Event, Handler, RunFinished
from kcverify.report import common
from kcverify.report.claims import Claims
from kcverify.report.console import ConsoleReporter
from kcverify.report.html import HtmlReporter
from kcverify.report.json_report import JsonReporter
from kcverify.report.junit import JUnitReporter
from kcverify.report.markdown import MarkdownReporter

# name -> (file name in report_dir, reporter factory taking the path and the claims file, if any).
# Order is the order reporters are run. JUnit has no place for claims: it lists test cases only.
REPORTS: dict[str, tuple[str, Callable[[Path, Claims | None], Handler]]] = {
    "junit": ("junit.xml", lambda path, claims: JUnitReporter(path)),
    "json": ("report.json", JsonReporter),
    "markdown": ("report.md", lambda path, claims: MarkdownReporter(path, claims=claims)),
    "html": ("report.html", HtmlReporter),
}


def report_names() -> tuple[str, ...]:
    return tuple(sorted(REPORTS))


def build_reporters(names: Iterable[str], report_dir: Path, console: Console | None,
                    claims: Claims | None = None) -> list[Handler]:
    """One file reporter per name, each writing <report-dir>/<file> on RunFinished (with `claims`, the
    reports that show claims judge them); repeated names count
    once. With a console, a last handler then tells the user where the files are (the console
    reporter itself is the caller's: it exists with or without files). Raises ValueError naming the
    allowed reports for an unknown name, before anything runs."""
    wanted = list(dict.fromkeys(names))
    unknown = [name for name in wanted if name not in REPORTS]
    if unknown:
        raise ValueError(f"unknown report {', '.join(map(repr, unknown))}; choose from: {', '.join(report_names())}")
    paths = [Path(report_dir) / REPORTS[name][0] for name in wanted]
    handlers: list[Handler] = [REPORTS[name][1](path, claims) for name, path in zip(wanted, paths, strict=True)]
    if console is not None and paths:
        handlers.append(WrittenNotice(console, paths))
    return handlers


class WrittenNotice:
    """Prints where the report files went, after they are written (it runs after the file reporters)."""

    def __init__(self, console: Console, paths: Iterable[Path]) -> None:
        self.console = console
        self.paths = tuple(paths)

    def handle(self, event: Event) -> None:
        if isinstance(event, RunFinished):
            listed = ", ".join(common.visible(p.as_posix()) for p in self.paths)
            self.console.print(Text(f"reports: {listed}"), highlight=False)


class Fanout:
    """One handler that sends every event to each of its handlers, in order. A handler that raises does
    not starve the others (a broken HTML writer must not cost the JUnit file CI needs); the error is
    raised once all have had the event, as an ExceptionGroup when several failed."""

    def __init__(self, handlers: Iterable[Handler]) -> None:
        self.handlers = tuple(handlers)

    def handle(self, event: Event) -> None:
        errors: list[Exception] = []
        for handler in self.handlers:
            try:
                handler.handle(event)
            except Exception as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ExceptionGroup(f"{len(errors)} reporters failed on {type(event).__name__}", errors)

    def close(self) -> None:
        """Release what handlers hold open (the console's live progress bar) when a run dies early."""
        for handler in self.handlers:
            close = getattr(handler, "close", None)
            if callable(close):
                close()


__all__ = [
    "REPORTS",
    "ConsoleReporter",
    "Fanout",
    "HtmlReporter",
    "JUnitReporter",
    "JsonReporter",
    "MarkdownReporter",
    "WrittenNotice",
    "build_reporters",
    "report_names",
]
