"""Wording shared by every reporter, so the console, JUnit, Markdown and HTML say the same thing the
same way: status words, durations, counts, what an exit code means, where a failure was seen, the
freshness windows, and an evidence table as plain text (for JUnit and non-colour consoles, where a
highlighted cell must still stand out)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kcverify.core.status import Status
from kcverify.evidence.results import Failure, RunResult, Table

if TYPE_CHECKING:
    from kcverify.report.claims import Claims

# Order in which counts are listed: the outcome a reader acts on first.
STATUS_ORDER = (Status.FAILED, Status.ERROR, Status.PASSED, Status.SKIPPED)

STATUS_WORD = {Status.PASSED: "PASS", Status.FAILED: "FAIL", Status.SKIPPED: "SKIP", Status.ERROR: "ERROR"}
STATUS_GLYPH = {Status.PASSED: "✓", Status.FAILED: "✗", Status.SKIPPED: "-", Status.ERROR: "!"}
STATUS_EMOJI = {Status.PASSED: "✅", Status.FAILED: "❌", Status.SKIPPED: "⏭️", Status.ERROR: "💥"}

# RunResult.exit_code, spelled out: CI logs are read by people who did not write the tool.
EXIT_MEANING = {
    0: "every scenario passed",
    1: "a check failed: the system under test is wrong",
    2: "nothing ran: no scenario was selected or every one was skipped",
    3: "an error: kcverify or the target broke, the verdict is unknown",
}

# C0/C1 control characters other than tab and newline. They arrive in messages quoting captured
# output and would recolour a terminal, move its cursor, or make an XML/HTML report unreadable.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """`text` with control characters shown as escapes (ESC -> '\\x1b') instead of acted upon."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("\r\n", "\n"))


# Marks a highlighted evidence cell where colour is not available (plain console, JUnit text).
HIGHLIGHT_MARK = "*"


def duration(seconds: float) -> str:
    """Human durations: sub-second runs in ms, longer ones in s, long ones in min."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes:.0f} min {rest:.0f} s"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def counts(run: RunResult) -> str:
    """e.g. '1 failed, 2 passed, 1 skipped': statuses that occurred, most urgent first."""
    parts = []
    for status in STATUS_ORDER:
        n = run.count(status)
        if n:
            parts.append(plural(n, "error") if status is Status.ERROR else f"{n} {status.value}")
    return ", ".join(parts) if parts else "nothing ran"


def summary_line(run: RunResult) -> str:
    """'4 scenarios in 4.2 s: 1 failed, 2 passed, 1 skipped'."""
    return f"{plural(len(run.scenarios), 'scenario')} in {duration(run.duration)}: {counts(run)}"


def exit_line(run: RunResult) -> str:
    code = run.exit_code
    return f"exit code {code}: {EXIT_MEANING.get(code, 'unknown')}"


def first_line(text: str, limit: int = 200) -> str:
    """The first non-empty line, shortened: for one-line places (JUnit message, headings)."""
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def rules_text(rules: tuple[str, ...]) -> str:
    return ", ".join(rules) if rules else "no rule"


def where(failure: Failure) -> str:
    """'step 3 (confirm p1)' or 'end of run': the moment a failure was seen."""
    if failure.step is None:
        return "end of run"
    if failure.step_title:
        return f"step {failure.step} ({failure.step_title})"
    return f"step {failure.step}"


def judged_by(failure: Failure) -> tuple[str, str]:
    """What judged a failure, as (label, name): ("check", "metadata") for a registered check;
    ("step", "step expectation") / ("step", "settle bound") for the steps' own judgements, which
    reports must never list as checks."""
    return ("check", failure.check) if failure.from_check else ("step", failure.check)


def headline(failure: Failure) -> str:
    """One line that says what broke, which rules, and where: 'metadata [W4, F2] at step 3 (...): msg'."""
    return f"{failure.check} [{rules_text(failure.rules)}] at {where(failure)}: {first_line(failure.message)}"


def display_path(path: str) -> str:
    """Scenario paths as given (relative paths stay relative so a reproduce command can be pasted)."""
    return Path(path).as_posix() if path else ""


@dataclass(frozen=True)
class FreshnessWindows:
    """How long a committed purchase stayed invisible (S3), over every freshness check in the run."""

    minimum: float
    maximum: float
    measured: int
    unmeasured: int  # windows reported without a number (e.g. never became fresh)


def freshness_windows(run: RunResult) -> FreshnessWindows | None:
    """Min/max of the `windows_ms` metrics of checks named 'freshness'; None when no such metrics."""
    values: list[float] = []
    unmeasured = 0
    found = False
    for scenario in run.scenarios:
        for check in scenario.checks:
            windows = check.metrics.get("windows_ms") if check.name == "freshness" else None
            if not isinstance(windows, dict):
                continue
            found = True
            for value in windows.values():
                if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                    values.append(float(value))
                else:
                    unmeasured += 1
    if not found:
        return None
    if not values:
        return FreshnessWindows(math.nan, math.nan, 0, unmeasured)
    return FreshnessWindows(min(values), max(values), len(values), unmeasured)


def freshness_line(windows: FreshnessWindows) -> str:
    """'freshness windows: min 0 ms, max 12 ms (2 measured)'."""
    notes = []
    if windows.measured:
        head = f"freshness windows: min {windows.minimum:g} ms, max {windows.maximum:g} ms"
        notes.append(f"{windows.measured} measured")
    else:
        head = "freshness windows: none measured"
    if windows.unmeasured:
        notes.append(f"{windows.unmeasured} without a value")
    return head + (f" ({', '.join(notes)})" if notes else "")


def is_highlighted(table: Table, row: int, column: int) -> bool:
    return (row, column) in table.highlight


def cell(table: Table, row: tuple[str, ...], column: int) -> str:
    """A row's value in a column; short rows read as empty rather than crash a reporter."""
    return str(row[column]) if column < len(row) else ""


def table_text(table: Table) -> str:
    """The table as aligned plain text; highlighted cells are wrapped in HIGHLIGHT_MARK."""
    width = len(table.columns)
    grid: list[list[str]] = [list(table.columns)]
    for r, row in enumerate(table.rows):
        values = []
        for c in range(max(width, len(row))):
            value = cell(table, row, c).replace("\n", " ")
            if is_highlighted(table, r, c):
                value = f"{HIGHLIGHT_MARK}{value}{HIGHLIGHT_MARK}"
            values.append(value)
        grid.append(values)
    ncols = max(len(line) for line in grid)
    widths = [max((len(line[c]) for line in grid if c < len(line)), default=0) for c in range(ncols)]
    lines = []
    if table.title:
        lines.append(table.title)
    for i, line in enumerate(grid):
        lines.append("  ".join(value.ljust(widths[c]) for c, value in enumerate(line)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    if table.highlight:
        lines.append(f"({HIGHLIGHT_MARK}value{HIGHLIGHT_MARK}: where the value went wrong)")
    return "\n".join(lines)


class FileReporter:
    """A reporter that writes one file when the run has finished; the other events carry nothing a
    file needs. Subclasses say how a run becomes text."""

    def __init__(self, path: Path, claims: Claims | None = None) -> None:
        self.path = Path(path)
        self.claims = claims  # a user's claims file, judged in the reports that show claims

    def handle(self, event: object) -> None:
        from kcverify.evidence.events import RunFinished

        if isinstance(event, RunFinished):
            self.write(event.result)

    def write(self, run: RunResult) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(self.text(run), encoding="utf-8")

    def text(self, run: RunResult) -> str:
        raise NotImplementedError

