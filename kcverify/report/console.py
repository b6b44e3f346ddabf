"""The console reporter: what a person watching `kcverify run` sees.

While running: a transient progress bar over scenarios and one line per finished scenario. At the
end: every failure with its step, check, rule ids, message, evidence table and reproduce command,
with a claims file its claims judged by evidence, then a summary (counts, wall time, freshness
windows, what the exit code means).

The same text must survive CI logs and pipes: when the console has no colour or is not a terminal,
nothing but plain text is written (no progress bar, no ANSI codes), and highlighted evidence cells
are marked with '*' instead of colour."""

from __future__ import annotations

import io

from rich import box
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable
from rich.text import Text

from kcverify.core.status import Status
from kcverify.evidence.events import (
    CheckFinished,
    Event,
    RunFinished,
    RunStarted,
    ScenarioFinished,
    ScenarioStarted,
    StepFinished,
)
from kcverify.evidence.results import CheckResult, Failure, RunResult, ScenarioResult, StepResult, Table
from kcverify.report import claims, common
from kcverify.report.claims import Claims

STATUS_STYLE = {
    Status.PASSED: "green",
    Status.FAILED: "bold red",
    Status.SKIPPED: "yellow",
    Status.ERROR: "bold magenta",
}
CLAIM_STYLE = {
    claims.Verdict.HELD: "green",
    claims.Verdict.REFUTED: "bold red",
    claims.Verdict.NOT_EXERCISED: "yellow",
}
HIGHLIGHT_STYLE = "bold white on red"
NAME_WIDTH = 36  # scenario names are padded so durations line up in the common case

# Every string that comes from a run goes through this: a message quoting captured output may hold
# escape codes, which must be shown, not executed by the reader's terminal.
_v = common.visible


class ConsoleReporter:
    """Renders engine events on a rich Console. Writes while the run goes; the summary on RunFinished."""

    def __init__(self, console: Console, verbose: bool = False, claims: Claims | None = None) -> None:
        self.console = console
        self.verbose = verbose
        self.claims = claims
        # Decided once: a console does not become a terminal mid-run.
        self.plain = console.no_color or not console.is_terminal or console.is_dumb_terminal
        self.ascii = not console.encoding.lower().startswith("utf")
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    # --- events ---------------------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._run_started(event)
        elif isinstance(event, ScenarioStarted):
            if self._progress is not None and self._task is not None:
                self._progress.update(self._task, description=f"{event.index}/{event.total} {_v(event.name)}")
        elif isinstance(event, StepFinished):
            if self.verbose:
                self._emit(self._step_line(event.step))
        elif isinstance(event, CheckFinished):
            if self.verbose:
                self._emit(self._check_line(event.check))
        elif isinstance(event, ScenarioFinished):
            if self._progress is not None and self._task is not None:
                self._progress.advance(self._task)
            self._emit(self._scenario_line(event.result))
        elif isinstance(event, RunFinished):
            self.close()
            self._run_finished(event.result)

    def close(self) -> None:
        """Stop the progress bar. Idempotent; the CLI calls it if the run dies before RunFinished, so
        the terminal is not left with a live display."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None

    def _run_started(self, event: RunStarted) -> None:
        self._emit(Text(f"kcverify: {common.plural(event.total, 'scenario')} on target {_v(event.target)}, "
                        f"seed {event.seed}", style="bold"))
        if self.plain or event.total <= 0:
            return
        self._progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._task = self._progress.add_task("scenarios", total=event.total)
        self._progress.start()

    def _run_finished(self, run: RunResult) -> None:
        self._emit(Text(""))
        broken = [s for s in run.scenarios if s.status in (Status.FAILED, Status.ERROR)]
        if broken:
            self._emit(Text("Failures", style="bold red underline"))
            for scenario in broken:  # each block ends with a blank line, which also sets off the summary
                self._emit(self._scenario_failures(scenario))
                # never wrapped or cropped: the line must paste back into a shell as it stands
                self._emit(Text("  reproduce: " + _v(scenario.reproduce) + "\n"), soft_wrap=True)
        if self.claims is not None:
            self._emit(self._claims(run, self.claims))
        self._emit(Text(common.summary_line(run), style=STATUS_STYLE[run.status]))
        windows = common.freshness_windows(run)
        if windows is not None:
            self._emit(Text(common.freshness_line(windows)))
        self._emit(Text(common.exit_line(run), style="dim" if run.exit_code == 0 else STATUS_STYLE[run.status]))

    # --- renderables ----------------------------------------------------------------------------

    def _claims(self, run: RunResult, given: Claims) -> RenderableType:
        """One line per claim (verdict, id, rules; the evidence when it was not held), then the tally."""
        judgements = claims.judge(run, given)
        lines: list[RenderableType] = [Text(claims.HEADING, style="bold underline")]
        width = max(len(j.claim.id) for j in judgements)
        for j in judgements:
            glyph = "" if self.ascii else claims.VERDICT_GLYPH[j.verdict] + " "
            line = Text("  ").append(f"{glyph}{j.verdict.value:<13}", style=CLAIM_STYLE[j.verdict])
            line.append(f" {_v(j.claim.id):<{width}}", style="bold")
            line.append(f"  [{_v(common.rules_text(j.claim.rules))}]", style="cyan")
            if j.verdict is not claims.Verdict.HELD:
                line.append(f"  {_v(j.evidence_text())}", style="dim")
            lines.append(line)
        lines.append(Text(claims.tally(judgements) + "\n"))
        return Group(*lines)

    def _status(self, status: Status) -> Text:
        glyph = "" if self.ascii else common.STATUS_GLYPH[status] + " "
        # Styled as a span, not as the Text's base style, which would colour everything appended after it.
        return Text().append(f"{glyph}{common.STATUS_WORD[status]:<5}", style=STATUS_STYLE[status])

    def _scenario_line(self, scenario: ScenarioResult) -> Text:
        line = self._status(scenario.status)
        line.append(" ")
        line.append(f"{_v(scenario.name):<{NAME_WIDTH}}", style="bold")
        line.append(f" {common.duration(scenario.duration):>8}  {common.plural(len(scenario.steps), 'step')}",
                    style="dim")
        failures = scenario.failures
        if failures:
            line.append(f"  {common.plural(len(failures), 'failure')}", style=STATUS_STYLE[Status.FAILED])
        if scenario.reason and scenario.status in (Status.SKIPPED, Status.ERROR):
            line.append(f"  ({_v(common.first_line(scenario.reason))})", style=STATUS_STYLE[scenario.status])
        return line

    def _step_line(self, step: StepResult) -> Text:
        line = Text(f"    {step.index:>3}. ")
        line.append_text(self._status(step.status))
        line.append(f" {_v(step.title)}  ")
        line.append(common.duration(step.duration), style="dim")
        if step.reason:
            line.append(f"  ({_v(common.first_line(step.reason))})", style=STATUS_STYLE[step.status])
        return line

    def _check_line(self, check: CheckResult) -> Text:
        line = Text("    check ")
        line.append_text(self._status(check.status))
        line.append(f" {_v(check.name)} [{_v(common.rules_text(check.rules))}]")
        if check.summary:
            line.append(f"  {_v(check.summary)}", style="dim")
        return line

    def _scenario_failures(self, scenario: ScenarioResult) -> RenderableType:
        parts: list[RenderableType] = []
        head = self._status(scenario.status)
        head.append(" ")
        head.append(_v(scenario.name), style="bold")
        if scenario.path:
            head.append(f"  {_v(common.display_path(scenario.path))}", style="dim")
        parts.append(head)
        if scenario.reason:
            parts.append(Padding(Text(_v(scenario.reason), style=STATUS_STYLE[scenario.status]), (0, 0, 0, 2)))
        for number, failure in enumerate(scenario.failures, 1):
            parts.append(Padding(self._failure(number, failure), (0, 0, 0, 2)))
        for step in scenario.steps:
            if step.status is Status.ERROR and step.reason:
                parts.append(Padding(Text(_v(f"step {step.index} ({step.title}) broke: {step.reason}"),
                                          style=STATUS_STYLE[Status.ERROR]), (0, 0, 0, 2)))
        return Group(*parts)

    def _failure(self, number: int, failure: Failure) -> RenderableType:
        head = Text(f"{number}. ")
        head.append(_v(common.where(failure)), style="bold")
        label, name = common.judged_by(failure)
        head.append("  check " if label == "check" else "  ")
        head.append(_v(name), style="bold")
        head.append("  rules ")
        head.append(_v(common.rules_text(failure.rules)), style="bold cyan")
        parts: list[RenderableType] = [head, Padding(Text(_v(failure.message)), (0, 0, 0, 3))]
        if failure.evidence is not None:
            parts.append(Padding(self._evidence(failure.evidence), (0, 0, 0, 3)))
        return Group(*parts)

    def _evidence(self, table: Table) -> RenderableType:
        """The evidence table as it fits the console. A hops x fields diff is often wider than a CI log:
        then only the label column and the columns holding a wrong value are shown, and when even
        that does not fit (or nothing is highlighted), one line per row. Files keep the full table."""
        width = max([len(table.columns), *(len(row) for row in table.rows)])
        available = self.console.width - 5  # the failure block's indent
        full = self._table(table, list(range(width)))
        if self._fits(full, available):
            return full
        marked = sorted({c for _, c in table.highlight if 0 < c < width})
        if marked:
            narrow = self._table(table, [0, *marked])
            if self._fits(narrow, available):
                hidden = width - 1 - len(marked)
                note = Text(f"({common.plural(hidden, 'column')} without a wrong value not shown; "
                            "the report files have the full table)", style="dim")
                return Group(narrow, note)
        return self._records(table, width)

    def _fits(self, renderable: RichTable, available: int) -> bool:
        natural = self.console.measure(renderable, options=self.console.options.update_width(10_000))
        return natural.maximum <= available

    def _value(self, table: Table, r: int, c: int) -> Text:
        value = _v(common.cell(table, table.rows[r], c))
        if not common.is_highlighted(table, r, c):
            return Text(value)
        if self.plain:
            value = f"{common.HIGHLIGHT_MARK}{value}{common.HIGHLIGHT_MARK}"
        return Text(value, style=HIGHLIGHT_STYLE)

    def _table(self, table: Table, columns: list[int]) -> RichTable:
        rendered = RichTable(
            title=_v(table.title) or None,
            title_justify="left",
            box=box.ASCII if self.ascii else box.SIMPLE_HEAD,
            show_edge=False,
        )
        for c in columns:
            rendered.add_column(_v(table.columns[c]) if c < len(table.columns) else "", overflow="fold")
        for r in range(len(table.rows)):
            rendered.add_row(*(self._value(table, r, c) for c in columns))
        return rendered

    def _records(self, table: Table, width: int) -> RenderableType:
        """One line per row: 'label  column=value column=value ...', highlighted values marked."""
        lines: list[RenderableType] = [Text(_v(table.title), style="bold")] if table.title else []
        for r in range(len(table.rows)):
            line = self._value(table, r, 0)
            line.stylize("bold")
            for c in range(1, width):
                name = _v(table.columns[c]) if c < len(table.columns) else str(c)
                line.append(f"  {name}=")
                line.append_text(self._value(table, r, c))
            lines.append(line)
        return Group(*lines)

    # --- output ---------------------------------------------------------------------------------

    def _emit(self, renderable: RenderableType, soft_wrap: bool = False) -> None:
        """Print; in plain mode render without styles first, so not one escape code reaches the stream
        even when the console is a terminal with --no-color (rich would still emit bold/underline)."""
        if not self.plain:
            self.console.print(renderable, soft_wrap=soft_wrap)
            return
        buffer = io.StringIO()
        capture = Console(file=buffer, width=self.console.width, color_system=None, force_terminal=False,
                          no_color=True, highlight=False, emoji=False, markup=False)
        capture.print(renderable, soft_wrap=soft_wrap)
        # Padding fills lines to the console width; trailing blanks only bloat logs.
        self.console.out("\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").split("\n")),
                         highlight=False)
