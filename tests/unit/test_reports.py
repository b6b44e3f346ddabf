"""The reporters (kcverify.report), fed hand-built results: a passing scenario, a failing one with an
evidence table and rule ids, a skipped one and one that errored. Each reporter must write its file,
say what failed (rules, message, reproduce command), judge a claims file the same way, and
produce output its consumers can read (JUnit parsers, the JSON Schema, html.parser, a log without
a terminal)."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from junitparser import Error, JUnitXml, Skipped, TestSuite
from junitparser import Failure as JFailure
from rich.console import Console

from kcverify.contracts import validate
from kcverify.core.status import Status
from kcverify.evidence.events import (
    CheckFinished,
    Event,
    Handler,
    RunFinished,
    RunStarted,
    ScenarioFinished,
    ScenarioStarted,
    StepFinished,
)
from kcverify.evidence.results import CheckResult, Failure, RunResult, ScenarioResult, StepResult, Table
from kcverify.report import (
    ConsoleReporter,
    Fanout,
    HtmlReporter,
    JsonReporter,
    JUnitReporter,
    MarkdownReporter,
    WrittenNotice,
    build_reporters,
    common,
)
from kcverify.report.claims import HEADING, Claim, Claims, Judgement, Verdict, judge
from kcverify.report.json_report import report

HOSTILE = "<script>alert(1)</script>"
REPRODUCE_STALE = "kcverify run scenarios/stale_read.yaml --seed 0"
SPEC_RULES = {f"P{i}" for i in range(1, 6)} | {f"W{i}" for i in range(1, 9)} | {f"S{i}" for i in range(1, 6)} \
    | {"F1", "F2"} | {f"I{i}" for i in range(1, 5)}
ANSI = re.compile(r"\x1b[\[\]()#;?]*[0-9;]*[A-Za-z]?")

# --- fixtures: one run with every outcome ---------------------------------------------------------

EVIDENCE = Table(
    columns=("hop", "startDate", "sessionCount"),
    rows=(("payment", "2026-02-02", "10"), ("learning view", "(missing)", "10")),
    title="hops x fields",
    highlight=((1, 1),),
)
STALE = Failure(
    check="freshness",
    rules=("S3",),
    message=f"learning view of s1 misses purchase p1 1.2 s after commit: {HOSTILE}\nsecond line",
    step=4,
    step_title="get_learning s1",
    evidence=EVIDENCE,
)
TYPED = Failure(check="metadata", rules=("W4", "F2"), message="sessionCount is the string '10'\x1b[31m",
                details={"ratio": float("nan"), "path": Path("a/b")})


def _step(index: int, title: str, status: Status = Status.PASSED, **kw: object) -> StepResult:
    return StepResult(index=index, kind=title.split()[0], title=title, status=status, duration=0.01,
                      line=index * 3, **kw)  # type: ignore[arg-type]


HAPPY = ScenarioResult(
    name="happy_path", path="scenarios/happy_path.yaml", title="A purchase shows up with its metadata",
    covers=("P1", "P3", "P4", "W1", "W3", "W4", "W6", "S1", "S2", "F1", "F2", "I1"), tags=("smoke",),
    status=Status.PASSED, duration=0.42, seed=0, reproduce="kcverify run scenarios/happy_path.yaml --seed 0",
    steps=(_step(1, "create_payment p1 for s1/c1"), _step(2, "confirm p1"), _step(3, "settle")),
    checks=(
        CheckResult("metadata", ("W4", "F2"), Status.PASSED, summary="5 fields x 6 hops equal"),
        CheckResult("freshness", ("S3",), Status.PASSED, summary="windows: p1 0 ms, p2 12.5 ms",
                    metrics={"windows_ms": {"p1": 0, "p2": 12.5}}),
    ),
)
STALE_READ = ScenarioResult(
    name="stale_read", path="scenarios/stale_read.yaml", title="A read between confirm and commit",
    covers=("P5", "S3"), tags=(), status=Status.FAILED, duration=1.5, seed=0, reproduce=REPRODUCE_STALE,
    steps=(_step(1, "create_payment p1"), _step(2, "confirm p1"), _step(3, "get_learning s1"),
           _step(4, "get_learning s1", Status.FAILED, failures=(STALE,))),
    checks=(CheckResult("metadata", ("W4", "F2"), Status.FAILED, failures=(TYPED,)),),
)
SKIPPED = ScenarioResult(
    name="fallback_when_payments_db_down", path="scenarios/fallback.yaml", title="W5 fallback",
    covers=("W5",), tags=(), status=Status.SKIPPED, duration=0.0, seed=0,
    reproduce="kcverify run scenarios/fallback.yaml --seed 0", reason="needs inject_faults",
)
ERRORED = ScenarioResult(
    name="dlq_replay", path="scenarios/dlq_replay.yaml", title="Replay a dead letter",
    covers=("W7", "W8"), tags=(), status=Status.ERROR, duration=2.3, seed=0,
    reproduce="kcverify run scenarios/dlq_replay.yaml --seed 0",
    steps=(_step(1, "produce poison", Status.ERROR, reason="connection refused"),),
    reason="target unreachable: connection refused at localhost:8001",
)
RUN = RunResult(target="embedded", seed=0, started_at=1_767_225_600.0, duration=4.2,
                scenarios=(HAPPY, STALE_READ, SKIPPED, ERRORED))


def replay(handler: Handler, run: RunResult = RUN) -> None:
    """The events the engine emits for `run`, in order."""
    events: list[Event] = [RunStarted(run.target, run.seed, len(run.scenarios))]
    for index, scenario in enumerate(run.scenarios, 1):
        events.append(ScenarioStarted(scenario.name, scenario.path, index, len(run.scenarios)))
        events.extend(StepFinished(scenario.name, step) for step in scenario.steps)
        events.extend(CheckFinished(scenario.name, check) for check in scenario.checks)
        events.append(ScenarioFinished(scenario))
    events.append(RunFinished(run))
    for event in events:
        handler.handle(event)


CLAIMS = Claims("claims.yaml", (
    Claim("reads-the-payment", "The worker reads the student's payment", ("W3",)),
    Claim("copies-every-field", "Every field is copied, the payment's metadata wins", ("W4",)),
    Claim("fresh-after-purchase", "The next request after a purchase shows it", ("P5", "S3")),
    Claim("cache-invalidated", "Confirming clears the student's cache", ("P5",)),
    Claim("falls-back", "The event's metadata is used when the payments database is down", ("W5",)),
    Claim("retries", "Transient failures are retried three times", ("W7",)),
    Claim("cache-ttl-and-manual", "Entries live five minutes or until an admin clears them", ("S2", "S4")),
    Claim("contracts-hold", "Every response conforms to its contract", ("I4",)),
), title="Claims under test")


def judged(claim_id: str) -> Judgement:
    [found] = [j for j in judge(RUN, CLAIMS) if j.claim.id == claim_id]
    return found


# --- claims ---------------------------------------------------------------------------------------


def test_claims_are_judged_by_evidence() -> None:
    fetch = judged("reads-the-payment")
    assert fetch.verdict is Verdict.HELD and fetch.held_by == ("happy_path",)
    # a refutation wins over a passing scenario covering the same rule
    copies = judged("copies-every-field")
    assert copies.verdict is Verdict.REFUTED and copies.refuted_by[0].check == "metadata"
    fresh = judged("fresh-after-purchase")
    assert fresh.verdict is Verdict.REFUTED
    assert fresh.evidence_text() == "refuted by stale_read (freshness: S3)"
    # the failing scenario covers P5 but no failure cites it: neither held nor refuted
    invalidates = judged("cache-invalidated")
    assert invalidates.verdict is Verdict.NOT_EXERCISED and invalidates.inconclusive == ("stale_read",)
    assert judged("falls-back").verdict is Verdict.NOT_EXERCISED  # skipped
    assert judged("retries").verdict is Verdict.NOT_EXERCISED  # errored
    ttl = judged("cache-ttl-and-manual")
    assert ttl.verdict is Verdict.NOT_EXERCISED and ttl.unexercised == ("S4",)
    assert ttl.evidence_text() == "not exercised: S4 (the rest held in happy_path)"
    # no scenario covers I4 and no check cites it: a claim nobody tested is not held
    assert judged("contracts-hold").verdict is Verdict.NOT_EXERCISED


def test_only_a_passing_scenario_that_covers_a_rule_exercises_it() -> None:
    check = CheckResult("contract", ("I4",), Status.PASSED)  # may have passed with nothing to look at
    vacuous = dataclasses.replace(HAPPY, name="contracts_vacuous", covers=(), checks=(check,))
    failed = dataclasses.replace(STALE_READ, name="contracts_failed", covers=("I4",), checks=(check,))
    covering = dataclasses.replace(HAPPY, name="contracts_ok", covers=("I4",), checks=(check,))
    claims = Claims("c.yaml", (Claim("contracts-hold", "Every response conforms", ("I4",)),))
    [verdict] = judge(dataclasses.replace(RUN, scenarios=(vacuous, failed)), claims)
    assert verdict.verdict is Verdict.NOT_EXERCISED and verdict.inconclusive == ("contracts_failed",)
    [verdict] = judge(dataclasses.replace(RUN, scenarios=(vacuous, failed, covering)), claims)
    assert verdict.verdict is Verdict.HELD and verdict.held_by == ("contracts_ok",)


def test_a_long_list_of_scenarios_is_shortened_in_the_account() -> None:
    many = tuple(dataclasses.replace(HAPPY, name=f"s{i}") for i in range(5))
    [verdict] = judge(dataclasses.replace(RUN, scenarios=many), Claims("c.yaml", (CLAIMS.claims[0],)))
    assert verdict.evidence_text() == "held in s0, s1, s2 and 2 more"
    assert len(verdict.held_by) == 5


# --- build_reporters and Fanout -------------------------------------------------------------------


def test_build_reporters_maps_names_to_files(tmp_path: Path) -> None:
    handlers = build_reporters(["html", "junit", "json", "markdown", "junit"], tmp_path, None)
    assert [type(h) for h in handlers] == [HtmlReporter, JUnitReporter, JsonReporter, MarkdownReporter]
    assert build_reporters([], tmp_path, Console(file=io.StringIO())) == []
    with pytest.raises(ValueError, match="choose from: html, json, junit, markdown"):
        build_reporters(["junit", "pdf"], tmp_path, None)


def test_with_a_console_the_written_files_are_announced_after_writing(tmp_path: Path) -> None:
    buffer = io.StringIO()
    handlers = build_reporters(["junit", "json"], tmp_path, Console(file=buffer, force_terminal=False, width=200))
    assert isinstance(handlers[-1], WrittenNotice)
    Fanout(handlers).handle(RunFinished(RUN))
    assert buffer.getvalue() == f"reports: {tmp_path.as_posix()}/junit.xml, {tmp_path.as_posix()}/report.json\n"
    assert (tmp_path / "junit.xml").exists() and (tmp_path / "report.json").exists()


def test_every_file_reporter_writes_its_file_on_run_finished(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    out = tmp_path / "reports"
    fanout = Fanout(build_reporters(["junit", "json", "markdown", "html"], out, None))
    fanout.handle(RunStarted("embedded", 0, 4))
    assert not out.exists()  # nothing is written before the run is over
    replay(fanout)
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "report.html", "report.json", "report.md"]


def test_fanout_delivers_to_every_handler_even_when_one_raises() -> None:
    seen: list[str] = []

    class Broken:
        def handle(self, event: Event) -> None:
            raise OSError("disk full")

    class Recorder:
        def handle(self, event: Event) -> None:
            seen.append(type(event).__name__)

    fanout = Fanout([Broken(), Recorder()])
    with pytest.raises(OSError, match="disk full"):
        fanout.handle(RunFinished(RUN))
    assert seen == ["RunFinished"]
    with pytest.raises(ExceptionGroup):
        Fanout([Broken(), Broken()]).handle(RunFinished(RUN))


# --- console --------------------------------------------------------------------------------------


def _console_output(console_args: dict[str, object], verbose: bool = False) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=110, **console_args)  # type: ignore[arg-type]
    replay(ConsoleReporter(console, verbose=verbose))
    return buffer.getvalue()


@pytest.mark.parametrize("console_args", [{"no_color": True, "force_terminal": True}, {"force_terminal": False}],
                         ids=["no-color-terminal", "not-a-terminal"])
def test_console_plain_output_has_no_escape_codes_and_says_everything(console_args: dict[str, object]) -> None:
    out = _console_output(console_args)
    assert "\x1b" not in out
    lines = out.splitlines()
    assert any(line.startswith("✓ PASS") and "happy_path" in line and "3 steps" in line for line in lines)
    assert any(line.startswith("✗ FAIL") and "stale_read" in line for line in lines)
    assert any("SKIP" in line and "fallback_when_payments_db_down" in line and "needs inject_faults" in line
               for line in lines)
    assert any("ERROR" in line and "dlq_replay" in line and "connection refused" in line for line in lines)
    # the failure: step, check, rules, message, evidence with the bad cell marked, reproduce on its own line
    assert "step 4 (get_learning s1)" in out and "check freshness" in out and "rules S3" in out
    assert HOSTILE in out
    assert "*(missing)*" in out and "hops x fields" in out
    assert f"reproduce: {REPRODUCE_STALE}" in [line.strip() for line in lines]
    assert "4 scenarios in 4.2 s: 1 failed, 1 error, 1 passed, 1 skipped" in out
    assert "freshness windows: min 0 ms, max 12.5 ms (2 measured)" in out
    assert "exit code 3: an error" in out


def test_console_verbose_prints_steps_and_checks() -> None:
    out = _console_output({"no_color": True}, verbose=True)
    assert "confirm p1" in out and "5 fields x 6 hops equal" in out


def test_console_colours_on_a_terminal_and_treats_names_as_text() -> None:
    run = RunResult("embedded", 0, 0.0, 0.1, (ScenarioResult(
        name="[bold]x[/bold]", path="s.yaml", title="", covers=(), tags=(), status=Status.PASSED, duration=0.1,
        seed=0, reproduce="kcverify run s.yaml --seed 0"),))
    buffer = io.StringIO()
    replay(ConsoleReporter(Console(file=buffer, force_terminal=True, color_system="standard", width=100)), run)
    assert "\x1b[" in buffer.getvalue()
    assert "[bold]x[/bold]" in ANSI.sub("", buffer.getvalue())  # markup in a name is not interpreted


@pytest.mark.parametrize("highlight", [((0, 3),), ()], ids=["highlighted", "no-highlight"])
def test_console_fits_wide_evidence_to_the_console(highlight: tuple[tuple[int, int], ...]) -> None:
    wide = Table(columns=("hop", *(f"field{i}" for i in range(1, 7))),
                 rows=(("payments row", *(f"value-{i}-{'x' * 12}" for i in range(1, 7))),), highlight=highlight)
    failure = Failure("metadata", ("W4",), "changed", evidence=wide)
    scenario = ScenarioResult(name="wide", path="s.yaml", title="", covers=("W4",), tags=(), status=Status.FAILED,
                              duration=0.1, seed=0, reproduce="kcverify run s.yaml --seed 0",
                              checks=(CheckResult("metadata", ("W4",), Status.FAILED, failures=(failure,)),))
    buffer = io.StringIO()
    replay(ConsoleReporter(Console(file=buffer, no_color=True, width=70)), RunResult("embedded", 0, 0.0, 0.1,
                                                                                     (scenario,)))
    out = buffer.getvalue()
    assert max(len(line) for line in out.splitlines()) <= 70
    if highlight:  # only the label and the wrong column, with a note
        assert "*value-3-xxxxxxxxxxxx*" in out and "value-1-" not in out
        assert "5 columns without a wrong value not shown" in out
    else:  # one line per row, every value named
        assert "payments row  field1=value-1-xxxxxxxxxxxx" in out and "field6=value-6" in out.replace("\n", "")


# --- JUnit ----------------------------------------------------------------------------------------


def test_junit_counts_and_content_load_in_junitparser_and_etree(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    replay(JUnitReporter(path))

    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "kcverify"
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped", "time")} == {
        "tests": "4", "failures": "1", "errors": "1", "skipped": "1", "time": "4.200"}
    assert suite.get("timestamp") == "2026-01-01T00:00:00"
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert props == {"target": "embedded", "seed": "0"}
    case = suite.find("testcase[@name='stale_read']")
    assert case is not None and case.get("classname") == "kcverify.embedded"
    assert case.get("file") == "scenarios/stale_read.yaml"
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "freshness"
    assert failure.get("message", "").startswith("freshness [S3] at step 4 (get_learning s1): learning view")
    body = failure.text or ""
    assert HOSTILE in body and "[W4, F2] metadata at end of run" in body
    assert "*(missing)*" in body and f"reproduce: {REPRODUCE_STALE}" in body
    assert "\\x1b" in body  # the control character is shown, not written raw
    assert "create_payment p1" in (case.findtext("system-out") or "")
    assert "&lt;script&gt;" in path.read_text(encoding="utf-8")

    xml = JUnitXml.fromfile(str(path))
    suites = [xml] if isinstance(xml, TestSuite) else list(xml)
    assert len(suites) == 1
    [parsed] = suites
    assert (parsed.tests, parsed.failures, parsed.errors, parsed.skipped) == (4, 1, 1, 1)
    results = {case.name: [type(r) for r in case.result] for case in parsed}
    assert results == {"happy_path": [], "stale_read": [JFailure], "fallback_when_payments_db_down": [Skipped],
                       "dlq_replay": [Error]}
    skipped = next(case for case in parsed if case.name == "fallback_when_payments_db_down")
    assert skipped.result[0].message == "needs inject_faults"


# --- JSON -----------------------------------------------------------------------------------------


def test_json_report_is_the_run_and_validates_against_its_schema(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    replay(JsonReporter(path))
    document = json.loads(path.read_text(encoding="utf-8"))
    assert validate("schemas/report", document) == []
    assert document["status"] == "error" and document["exit_code"] == 3
    assert document["counts"] == {"passed": 1, "failed": 1, "skipped": 1, "error": 1}
    stale = document["scenarios"][1]
    assert stale["status"] == "failed" and [f["rules"] for f in stale["failures"]] == [["S3"], ["W4", "F2"]]
    assert stale["steps"][3]["failures"][0]["evidence"] == {
        "columns": ["hop", "startDate", "sessionCount"],
        "rows": [["payment", "2026-02-02", "10"], ["learning view", "(missing)", "10"]],
        "title": "hops x fields", "highlight": [[1, 1]]}
    assert stale["checks"][0]["failures"][0]["details"] == {"ratio": "nan", "path": "a/b"}


def test_json_report_carries_the_judged_claims_only_when_given(tmp_path: Path) -> None:
    assert "claims" not in report(RUN)
    path = tmp_path / "report.json"
    replay(JsonReporter(path, claims=CLAIMS))
    document = json.loads(path.read_text(encoding="utf-8"))
    assert validate("schemas/report", document) == []
    section = document["claims"]
    assert (section["heading"], section["file"], section["title"]) == (HEADING, "claims.yaml", "Claims under test")
    verdicts = {j["id"]: j["verdict"] for j in section["judgements"]}
    assert verdicts["reads-the-payment"] == "held" and verdicts["fresh-after-purchase"] == "refuted"
    fresh = next(j for j in section["judgements"] if j["id"] == "fresh-after-purchase")
    assert fresh["refuted_by"][0] == {"scenario": "stale_read", "check": "freshness", "rules": ["S3"], "step": 4,
                                      "message": STALE.message}
    section["judgements"][0]["verdict"] = "proved"
    assert [v.path for v in validate("schemas/report", document)] == ["$.claims.judgements[0].verdict"]


def test_console_summary_judges_the_claims() -> None:
    buffer = io.StringIO()
    replay(ConsoleReporter(Console(file=buffer, no_color=True, width=200), claims=CLAIMS))
    text = buffer.getvalue()
    claims_at, summary_at = text.index(HEADING), text.index("4 scenarios in 4.2 s")
    assert claims_at < summary_at
    lines = text[claims_at:summary_at].splitlines()
    assert any("held" in line and "reads-the-payment" in line and "[W3]" in line for line in lines)
    assert any("refuted" in line and "fresh-after-purchase" in line and "refuted by stale_read (freshness: S3)"
               in line for line in lines)
    assert "1 held, 2 refuted, 5 not exercised (of 8 claims)" in text
    without = io.StringIO()
    replay(ConsoleReporter(Console(file=without, no_color=True, width=200)))
    assert HEADING not in without.getvalue()


def test_json_schema_rejects_a_drifted_report() -> None:
    document = report(RUN)
    document["scenarios"][0]["status"] = "ok"
    del document["exit_code"]
    paths = {v.path for v in validate("schemas/report", document)}
    assert paths == {"$.exit_code", "$.scenarios[0].status"}


# --- Markdown -------------------------------------------------------------------------------------


def test_markdown_report_judges_the_claims_and_shows_failures(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    path = tmp_path / "report.md"
    replay(MarkdownReporter(path, claims=CLAIMS))
    md = path.read_text(encoding="utf-8")
    assert md.startswith("# kcverify: 💥 ERROR\n")
    assert "4 scenarios in 4\\.2 s" not in md  # only Markdown punctuation is escaped, not dots
    assert "**4 scenarios in 4.2 s: 1 failed, 1 error, 1 passed, 1 skipped**" in md
    assert "## Claims, judged by evidence" in md
    assert "**1 held, 2 refuted, 5 not exercised (of 8 claims)**" in md
    lines = md.splitlines()

    def row(claim_id: str) -> str:
        [found] = [line for line in lines if f"`{claim_id}`" in line]
        return found

    assert row("reads-the-payment").startswith("| ✅ held |")
    assert "held in `happy_path`" in row("reads-the-payment")
    assert row("fresh-after-purchase").startswith("| ❌ refuted |")
    assert "refuted by `stale_read` (`freshness`: S3)" in row("fresh-after-purchase")
    assert row("retries").startswith("| ⚠️ not exercised |") and "no verdict from `dlq_replay`" in row("retries")
    assert "| ❌ failed | `stale_read` | P5, S3 | 4 | 1.5 s |" in md
    assert "rules **S3**" in md and "rules **W4, F2**" in md
    assert f"Reproduce: `{REPRODUCE_STALE}`" in md
    assert "| learning view | ❗ **\\(missing\\)** | 10 |" in md or "| learning view | ❗ **(missing)** | 10 |" in md
    assert HOSTILE not in md and "&lt;script&gt;" in md


def test_markdown_is_appended_to_the_github_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    replay(MarkdownReporter(tmp_path / "report.md"))
    written = summary.read_text(encoding="utf-8")
    assert written.startswith("earlier step\n# kcverify: 💥 ERROR")
    assert written.endswith((tmp_path / "report.md").read_text(encoding="utf-8"))

    replay(MarkdownReporter(tmp_path / "again.md", step_summary=None))  # explicit None: no summary
    assert summary.read_text(encoding="utf-8") == written


# --- HTML -----------------------------------------------------------------------------------------


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in {"meta", "br", "link", "img", "input"}:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_report_is_self_contained_well_formed_and_escaped(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    replay(HtmlReporter(path, claims=CLAIMS))
    document = path.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(document)
    parser.close()
    assert parser.open == []  # every element closed, in order
    tags = [tag for tag, _ in parser.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags
    assert all(not (attrs.get("href") or "#").startswith(("http:", "https:", "//")) for _, attrs in parser.tags)
    assert HOSTILE not in document and HOSTILE in "".join(parser.text)  # shown as text, never as markup
    # happy: steps, checks; stale_read: failures, steps, checks; skipped: none; dlq_replay: failures, steps
    assert tags.count("details") == 2 + 3 + 0 + 2
    bad = [attrs for tag, attrs in parser.tags if tag == "td" and attrs.get("class") == "bad"]
    assert len(bad) == 1
    text = " ".join(parser.text)
    assert HEADING in text and "Claims under test" in text
    assert f"reproduce: {REPRODUCE_STALE}" in text.replace("reproduce:  ", "reproduce: ")
    rows = [attrs.get("class") for tag, attrs in parser.tags if tag == "tr" and attrs.get("class")]
    assert (rows.count("held"), rows.count("refuted"), rows.count("not-exercised")) == (1, 2, 5)


# --- shared wording -------------------------------------------------------------------------------


def test_durations_and_table_text() -> None:
    assert [common.duration(s) for s in (0.0042, 4.2, 125)] == ["4 ms", "4.2 s", "2 min 5 s"]
    assert common.table_text(EVIDENCE).splitlines() == [
        "hops x fields",
        "hop            startDate    sessionCount",
        "-------------  -----------  ------------",
        "payment        2026-02-02   10",
        "learning view  *(missing)*  10",
        "(*value*: where the value went wrong)",
    ]
