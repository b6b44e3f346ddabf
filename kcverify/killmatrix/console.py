"""What `kcverify defects` prints: a line per defect as it finishes, then the kill matrix, the score,
every survivor with its rule, and the wall time.

The matrix is the point of the command: rows are defects, columns are checks, a cell counts the
scenarios in which that check failed with the defect on. A column of dashes is a check no defect
exercises; a row of dashes is a defect no check sees. Plain text (no colour, ASCII when the console
cannot encode more) survives CI logs; everything that comes from a run is shown through
`common.visible`, so an escape code in a message is printed, not obeyed."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kcverify.core.status import Status
from kcverify.evidence.results import RunResult
from kcverify.killmatrix.model import EXIT_MEANING, Catch, MutantResult, MutantsResult, Outcome, percent
from kcverify.report import common

OUTCOME_STYLE = {Outcome.KILLED: "green", Outcome.SURVIVED: "bold red", Outcome.ERROR: "bold magenta"}
OUTCOME_WORD = {Outcome.KILLED: "KILLED", Outcome.SURVIVED: "SURVIVED", Outcome.ERROR: "ERROR"}

_v = common.visible


def catch_text(catch: Catch) -> str:
    """'broker-down-at-confirm: delivery [P3]': where a defect was first seen, and by what."""
    return f"{catch.scenario}: {catch.check} [{common.rules_text(catch.rules)}]"


class MutantsConsole:
    """Renders a kill-matrix run on a rich Console; the CLI owns the console and the exit code."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.ascii = not console.encoding.lower().startswith("utf")
        self.none = "-" if self.ascii else "—"

    def _print(self, renderable: Text | Table) -> None:
        self.console.print(renderable, highlight=False, soft_wrap=isinstance(renderable, Text))

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

    def matrix(self, result: MutantsResult) -> Table:
        table = Table(title="Kill matrix: scenarios in which each check failed, per defect",
                      box=box.ASCII if self.ascii else box.SIMPLE_HEAD, title_justify="left")
        table.add_column("defect", no_wrap=True)
        table.add_column("rule", no_wrap=True)
        for check in result.columns:
            table.add_column(check, justify="center")
        table.add_column("first caught by")
        for mutant in result.mutants:
            cells = mutant.scenarios_by_check()
            row: list[Text] = [Text(_v(mutant.name), style=OUTCOME_STYLE[mutant.outcome]), Text(mutant.rule)]
            for check in result.columns:
                count = len(cells.get(check, ()))
                row.append(Text(str(count)) if count else Text(self.none, style="dim"))
            if mutant.first is not None:
                row.append(Text(_v(catch_text(mutant.first))))
            elif mutant.outcome is Outcome.ERROR:
                row.append(Text("ERROR: no scenario failed, some broke", style=OUTCOME_STYLE[Outcome.ERROR]))
            else:
                row.append(Text("SURVIVED", style=OUTCOME_STYLE[Outcome.SURVIVED]))
            table.add_row(*row)
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
