"""What `kcverify defects` prints: a line per defect as it finishes, then the kill matrix, the score,
every survivor with its rule, and the wall time.

The matrix is the point of the command: rows are defects, columns are checks, a cell counts the
scenarios in which that check failed with the defect on. A column of dashes is a check no defect
exercises; a row of dashes is a defect no check sees. Plain text (no colour, ASCII when the console
cannot encode more) survives CI logs; everything that comes from a run is shown through
`common.visible`, so an escape code in a message is printed, not obeyed.

When the whole matrix is wider than the console (an 80-column terminal), it is drawn compact: each check
column headed by a short code explained in a legend below, tight columns, and "first caught by" as a list
after the table instead of a column, so no line is wider than the console."""

from __future__ import annotations

from rich import box
from rich.console import Console, Group
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from kcverify.core.status import Status
from kcverify.evidence.results import RunResult
from kcverify.killmatrix.model import EXIT_MEANING, Catch, MutantResult, MutantsResult, Outcome, percent
from kcverify.report import common

OUTCOME_STYLE = {Outcome.KILLED: "green", Outcome.SURVIVED: "bold red", Outcome.ERROR: "bold magenta"}
OUTCOME_WORD = {Outcome.KILLED: "KILLED", Outcome.SURVIVED: "SURVIVED", Outcome.ERROR: "ERROR"}

_v = common.visible
WHOLE_LINES_WIDTH = 120  # from this console width on, lines are printed whole (not folded)


def catch_text(catch: Catch) -> str:
    """'broker-down-at-confirm: delivery [P3]': where a defect was first seen, and by what."""
    return f"{catch.scenario}: {catch.check} [{common.rules_text(catch.rules)}]"


def abbreviations(columns: tuple[str, ...]) -> dict[str, str]:
    """A short, unique code per column: the initials of a name of several words ("step expectation" ->
    "se"), the first two letters of one word ("metadata" -> "me"); a clash takes more letters."""
    codes: dict[str, str] = {}
    for name in columns:
        words = [w for w in name.replace("-", " ").replace("_", " ").split() if w] or [name]
        base = "".join(w[0] for w in words) if len(words) > 1 else words[0][:2]
        joined = "".join(words)
        candidates = [base, *(joined[:n] for n in range(3, len(joined) + 1))]
        code = next((c for c in candidates if c not in codes.values()), f"{base}{len(codes)}")
        codes[name] = code
    return codes


class MutantsConsole:
    """Renders a kill-matrix run on a rich Console; the CLI owns the console and the exit code."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.ascii = not console.encoding.lower().startswith("utf")
        self.none = "-" if self.ascii else "—"

    def _print(self, renderable: Text | Table) -> None:
        # A log or pipe (the CLI's console is wide there) keeps each line whole; a narrow terminal gets
        # long lines folded at words, so nothing runs past its edge.
        whole = isinstance(renderable, Text) and self.console.width >= WHOLE_LINES_WIDTH
        self.console.print(renderable, highlight=False, soft_wrap=whole)

    def started(self, target: str, defects: int, scenarios: int, jobs: int) -> None:
        self._print(Text(f"kcverify defects: {common.plural(defects, 'defect')} x "
                         f"{common.plural(scenarios, 'scenario')} on target {_v(target)}, "
                         f"{common.plural(jobs, 'job')}", style="bold"))

    def baseline_failed(self, run: RunResult, message: str) -> None:
        """Why the defects were not run: every failure of the defect-free reference, with its reproduce."""
        self._print(Text(f"error: {message}", style="bold red"))
        self._print(Text(common.summary_line(run)))
        for scenario in run.scenarios:
            if scenario.status not in (Status.FAILED, Status.ERROR):
                continue
            self._print(Text(f"  {common.STATUS_WORD[scenario.status]} {_v(scenario.name)}", style="bold"))
            if scenario.reason:
                self._print(Text(f"    {_v(common.first_line(scenario.reason))}"))
            for failure in scenario.failures:
                self._print(Text(f"    {_v(common.headline(failure))}"))
            self._print(Text(f"    reproduce: {_v(scenario.reproduce)}", style="dim"))

    def mutant_finished(self, mutant: MutantResult) -> None:
        line = Text()
        line.append(f"{OUTCOME_WORD[mutant.outcome]:<8}", style=OUTCOME_STYLE[mutant.outcome])
        line.append(f" {_v(mutant.name):<32}", style="bold")
        line.append(f" {common.duration(mutant.duration):>8}", style="dim")
        if mutant.first is not None:
            line.append(f"  first caught by {_v(catch_text(mutant.first))}")
        if mutant.errors:
            line.append(f"  ({common.plural(len(mutant.errors), 'scenario')} broke)",
                        style=OUTCOME_STYLE[Outcome.ERROR])
        self._print(line)

    def matrix(self, result: MutantsResult) -> Table | Group:
        """The full matrix when it fits the console's width, else the compact one with its legend."""
        full = self.full_matrix(result)
        unbounded = self.console.options.update_width(1_000_000)
        if Measurement.get(self.console, unbounded, full).maximum <= self.console.width:
            return full
        return self.compact_matrix(result)

    def _cells(self, mutant: MutantResult, columns: tuple[str, ...]) -> list[Text]:
        cells = mutant.scenarios_by_check()
        counts = [len(cells.get(check, ())) for check in columns]
        return [Text(str(count)) if count else Text(self.none, style="dim") for count in counts]

    def _first(self, mutant: MutantResult) -> Text:
        if mutant.first is not None:
            return Text(_v(catch_text(mutant.first)))
        if mutant.outcome is Outcome.ERROR:
            return Text("ERROR: no scenario failed, some broke", style=OUTCOME_STYLE[Outcome.ERROR])
        return Text("SURVIVED", style=OUTCOME_STYLE[Outcome.SURVIVED])

    def compact_matrix(self, result: MutantsResult) -> Group:
        """Check columns headed by codes (legend below), no padding to spare, and "first caught by" as a
        list: a defect name that is still too long wraps inside its column rather than past the edge."""
        codes = abbreviations(result.columns)
        table = Table(title="Kill matrix: scenarios in which each check failed, per defect",
                      box=None, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False, title_justify="left",
                      header_style="bold")
        table.add_column("defect", overflow="fold")
        table.add_column("rule", no_wrap=True)
        for check in result.columns:
            table.add_column(codes[check], justify="right", no_wrap=True)
        for mutant in result.mutants:
            table.add_row(Text(_v(mutant.name), style=OUTCOME_STYLE[mutant.outcome]), Text(mutant.rule),
                          *self._cells(mutant, result.columns))
        legend = Text("columns: " + ", ".join(f"{codes[c]} {_v(c)}" for c in result.columns), style="dim")
        first = [Text("First caught by:", style="bold")]
        for mutant in result.mutants:
            line = Text(f"  {_v(mutant.name)}: ")
            line.append_text(self._first(mutant))
            first.append(line)
        return Group(table, legend, Text(""), *first)

    def full_matrix(self, result: MutantsResult) -> Table:
        table = Table(title="Kill matrix: scenarios in which each check failed, per defect",
                      box=box.ASCII if self.ascii else box.SIMPLE_HEAD, title_justify="left")
        table.add_column("defect", no_wrap=True)
        table.add_column("rule", no_wrap=True)
        for check in result.columns:
            table.add_column(check, justify="center")
        table.add_column("first caught by")
        for mutant in result.mutants:
            table.add_row(Text(_v(mutant.name), style=OUTCOME_STYLE[mutant.outcome]), Text(mutant.rule),
                          *self._cells(mutant, result.columns), self._first(mutant))
        return table

    def finished(self, result: MutantsResult) -> None:
        self._print(Text(""))
        self.console.print(self.matrix(result))
        total = len(result.mutants)
        style = "bold green" if result.exit_code == 0 else "bold red"
        self._print(Text(f"kill score: {len(result.killed)}/{total} killed ({percent(result.score)})",
                         style=style))
        if result.survivors:
            self._print(Text("Survivors (no scenario catches them):", style="bold red"))
            for mutant in result.survivors:
                self._print(Text(f"  {_v(mutant.name)} [{mutant.rule}]: {_v(mutant.description)}"))
        if any(m.errors for m in result.mutants):
            self._print(Text("Scenarios that broke with a defect on (not counted as kills):",
                             style=OUTCOME_STYLE[Outcome.ERROR]))
            for mutant in result.mutants:
                for error in mutant.errors:
                    self._print(Text(f"  {_v(mutant.name)}: {_v(error.scenario)}: {_v(error.reason)}"))
        skipped = result.baseline.skipped
        if skipped:
            self._print(Text(f"left out (skipped on target {_v(result.target)} without defects): "
                             f"{_v(', '.join(skipped))}", style="yellow"))
        runs = len(result.mutants) + 1
        self._print(Text(f"wall time: {common.duration(result.duration)} for {runs} runs of "
                         f"{common.plural(len(result.baseline.passed), 'scenario')} "
                         f"(baseline {common.duration(result.baseline.duration)}, "
                         f"{common.plural(result.jobs, 'job')})"))
        self._print(Text(f"exit code {result.exit_code}: {EXIT_MEANING[result.exit_code]}",
                         style="dim" if result.exit_code == 0 else style))
