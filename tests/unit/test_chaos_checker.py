"""The chaos checker on hand-made histories and final states: each anomaly class is found with the ids it
concerns, a clean history passes, unknown outcomes are judged by the final state (never guessed), the
fault schedule language refuses bad input with one line, and `kcverify chaos check` gives the verdict
as its exit code (0 clean, 1 an anomaly, 2 bad input)."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kcverify.chaos import faults
from kcverify.chaos.checker import CLASSES, check
from kcverify.chaos.history import FINAL, HISTORY
from kcverify.chaos.report import junit, summary
from kcverify.cli.main import cli
from kcverify.core.errors import InputError
from kcverify.spec import names

MD = {"startDate": "2026-05-04", "classTime": "19:15", "classTypeId": "group-small", "scheduleType": "weekly",
      "sessionCount": 12}


def _payment(pid: str, student: str, status: str = "succeeded") -> dict[str, Any]:
    return {"id": pid, "studentId": student, "courseId": "c", "status": status, "metadata": dict(MD)}


def _purchase(pid: str, student: str, n: int = 1) -> dict[str, Any]:
    return {"id": f"pu-{pid}-{n}", "paymentId": pid, "studentId": student, "courseId": "c",
            "metadata": dict(MD), "purchaseTier": 12}


def _view(*pids: str) -> dict[str, Any]:
    return {"status": 200, "purchases": [{"paymentId": p, "metadata": dict(MD), "purchaseTier": 12} for p in pids]}


def _confirmed(pid: str, student: str, event_id: str | None = None, value: str | None = None) -> dict[str, Any]:
    event = {"eventId": event_id or f"e-{pid}", "payload": {"paymentId": pid, "studentId": student, "metadata": MD}}
    return {"partition": 0, "offset": 0, "key": student, "value": value or json.dumps(event),
            "headers": [["eventId", event_id or f"e-{pid}"]]}


def clean() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Two students: s1 paid p1 and p2 (p2 confirmed twice), s2's p3 failed; one poison event, dead-lettered."""
    history: list[dict[str, Any]] = [
        {"type": "run", "options": {}},
        {"type": "op", "id": 1, "f": "create", "invoke": 1.0, "complete": 1.1, "outcome": "ok", "student": "s1"},
        {"type": "op", "id": 2, "f": "confirm", "invoke": 1.2, "complete": 1.3, "outcome": "ok", "student": "s1",
         "payment": "p1", "value": {"status": "succeeded"}},
        {"type": "op", "id": 3, "f": "confirm", "invoke": 1.4, "complete": 1.5, "outcome": "ok", "student": "s1",
         "payment": "p2", "value": {"status": "succeeded"}},
        {"type": "op", "id": 4, "f": "confirm-dup", "invoke": 1.6, "complete": 1.7, "outcome": "ok",
         "student": "s1", "payment": "p2", "value": {"status": "succeeded"}},
        {"type": "op", "id": 5, "f": "confirm", "invoke": 1.8, "complete": 1.9, "outcome": "ok", "student": "s2",
         "payment": "p3", "value": {"status": "failed"}},
        {"type": "op", "id": 6, "f": "poison", "invoke": 2.0, "complete": 2.1, "outcome": "ok", "student": "s2",
         "payment": "p3", "event": "poison-p3"},
        {"type": "op", "id": 7, "f": "read", "invoke": 3.0, "complete": 3.1, "outcome": "ok", "student": "s1",
         "value": {"shown": ["p1", "p2"]}},
        {"type": "fault", "kind": "worker-kill", "target": "worker", "start": 1.0, "end": 2.0, "ok": True},
        {"type": "end", "loadSeconds": 1.0, "recoverySeconds": 1.0, "settled": True},
    ]
    dlq_letter = {"originalEvent": json.dumps({"eventId": "poison-p3"}), "reason": "schema_violation"}
    final: dict[str, Any] = {
        "payments": [_payment("p1", "s1"), _payment("p2", "s1"), _payment("p3", "s2", "failed")],
        "purchases": [_purchase("p1", "s1"), _purchase("p2", "s1")],
        "topics": {
            names.TOPIC_CONFIRMED: [_confirmed("p1", "s1"), _confirmed("p2", "s1"),
                                    _confirmed("p3", "s2", "poison-p3", "{not json")],
            names.TOPIC_DLQ: [{"partition": 0, "offset": 0, "key": "s2", "value": json.dumps(dlq_letter),
                               "headers": [["eventId", "poison-p3"]]}],
        },
        "endOffsets": {names.TOPIC_CONFIRMED: {"0": 3}, names.TOPIC_CREATED: {"0": 2}},
        "committed": {f"{names.WORKER_GROUP}/{names.TOPIC_CONFIRMED}": {"0": 3},
                      f"{names.INVALIDATOR_GROUP}/{names.TOPIC_CREATED}": {"0": 2}},
        "views": {"s1": _view("p1", "p2"), "s2": _view()},
    }
    return history, final


def ids(verdict: Any, cls: str) -> list[str]:
    return [a["id"] for a in verdict.anomalies[cls]]


def test_a_clean_history_passes() -> None:
    verdict = check(*clean())
    assert verdict.ok, verdict.anomalies
    assert verdict.counts["succeeded"] == 2 and verdict.counts["purchases"] == 2
    assert verdict.staleness["measured"] == 2


def test_a_lost_purchase_is_found() -> None:
    history, final = clean()
    final["purchases"] = [p for p in final["purchases"] if p["paymentId"] != "p2"]
    final["views"]["s1"] = _view("p1")
    verdict = check(history, final)
    assert ids(verdict, "lost") == ["p2"] and not verdict.ok


def test_an_acknowledged_confirm_the_rows_forgot_is_lost() -> None:
    history, final = clean()
    final["payments"][0]["status"] = "pending"
    final["purchases"] = final["purchases"][1:]
    final["views"]["s1"] = _view("p2")
    assert ids(check(history, final), "lost") == ["p1"]


def test_duplicates_in_rows_and_in_views_are_found() -> None:
    history, final = clean()
    final["purchases"].append(_purchase("p1", "s1", 2))
    final["views"]["s1"] = _view("p1", "p1", "p2")
    assert ids(check(history, final), "duplicate") == ["p1", "p1"]


def test_two_purchases_announced_for_one_payment_are_duplicates() -> None:
    history, final = clean()
    created = [{"partition": 0, "offset": n, "key": "s1", "headers": [],
                "value": json.dumps({"payload": {"paymentId": "p1", "purchaseId": purchase}})}
               for n, purchase in enumerate(("pu-p1-1", "pu-p1-1"))]
    final["topics"][names.TOPIC_CREATED] = created
    assert check(history, final).ok  # the same purchase announced twice: at-least-once, no duplicate
    created[1]["value"] = json.dumps({"payload": {"paymentId": "p1", "purchaseId": "pu-p1-other"}})
    assert ids(check(history, final), "duplicate") == ["p1"]


def test_a_purchase_of_a_failed_payment_is_unpaid() -> None:
    history, final = clean()
    final["purchases"].append(_purchase("p3", "s2"))
    final["views"]["s2"] = _view("p3")
    assert ids(check(history, final), "unpaid") == ["p3"]


def test_changed_metadata_is_judged_by_the_merge_and_the_display() -> None:
    history, final = clean()
    final["purchases"][0]["metadata"] = {**MD, "classTime": "08:00"}
    assert ids(check(history, final), "metadata") == ["p1"]
    history, final = clean()
    final["purchases"][1]["purchaseTier"] = 10
    assert ids(check(history, final), "metadata") == ["p2"]
    history, final = clean()
    final["views"]["s1"]["purchases"][0]["purchaseTier"] = 24
    assert ids(check(history, final), "metadata") == ["p1"]


@pytest.mark.parametrize("letters", [0, 2])
def test_a_poison_event_not_dead_lettered_exactly_once(letters: int) -> None:
    history, final = clean()
    dlq = final["topics"][names.TOPIC_DLQ]
    final["topics"][names.TOPIC_DLQ] = [copy.deepcopy(dlq[0]) for _ in range(letters)]
    assert ids(check(history, final), "poison") == ["poison-p3"]


def test_a_stale_view_and_offsets_short_of_the_end() -> None:
    history, final = clean()
    final["views"]["s1"] = _view("p1")
    final["committed"][f"{names.WORKER_GROUP}/{names.TOPIC_CONFIRMED}"] = {"0": 2}
    verdict = check(history, final)
    assert ids(verdict, "stale") == ["s1"]
    assert ids(verdict, "offsets") == [f"{names.WORKER_GROUP}/{names.TOPIC_CONFIRMED}[0]"]


def test_unknown_outcomes_are_judged_by_the_final_state() -> None:
    history, final = clean()
    for line in history:
        if line.get("f") in ("confirm", "confirm-dup", "poison"):
            line["outcome"], line["value"] = "unknown", None
    # p2's confirm timed out but the row says succeeded: its purchase is owed, and there
    assert check(history, final).ok
    final["purchases"] = final["purchases"][:1]
    final["views"]["s1"] = _view("p1")
    assert ids(check(history, final), "lost") == ["p2"]
    # a poison publish that timed out and never reached the topic owes no dead letter
    history, final = clean()
    history[6]["outcome"] = "unknown"
    final["topics"][names.TOPIC_CONFIRMED] = final["topics"][names.TOPIC_CONFIRMED][:2]
    final["topics"][names.TOPIC_DLQ] = []
    assert check(history, final).ok
    history[6]["outcome"] = "ok"  # acknowledged by the broker, yet absent: an anomaly
    assert ids(check(history, final), "poison") == ["poison-p3"]


def test_staleness_is_informative_and_names_the_faults() -> None:
    history, final = clean()
    history[7]["invoke"] = 5.0
    verdict = check(history, final)
    assert verdict.ok
    assert verdict.staleness["beyondBound"] == 2 and verdict.staleness["worst"][0]["faults"] == ["worker-kill"]


def test_reports_one_junit_case_per_class() -> None:
    history, final = clean()
    final["purchases"] = final["purchases"][:1]
    final["views"]["s1"] = _view("p1")
    verdict = check(history, final)
    xml = junit(verdict)
    assert xml.count("<testcase") == len(CLASSES) and xml.count("<failure") == 1
    assert any("lost" in line and "p2" in line for line in summary(verdict))


def _write(directory: Path, history: list[dict[str, Any]], final: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / HISTORY).write_text("".join(json.dumps(line) + "\n" for line in history))
    (directory / FINAL).write_text(json.dumps(final))
    return directory


def test_chaos_check_exit_codes(tmp_path: Path) -> None:
    good = _write(tmp_path / "good", *clean())
    result = CliRunner().invoke(cli, ["chaos", "check", str(good)])
    assert result.exit_code == 0, result.output
    assert "verdict: clean" in result.output and (good / "junit.xml").is_file()
    history, final = clean()
    final["purchases"].append(_purchase("p1", "s1", 2))
    bad = _write(tmp_path / "bad", history, final)
    result = CliRunner().invoke(cli, ["chaos", "check", str(bad / HISTORY)])
    assert result.exit_code == 1 and "duplicate" in result.output
    assert json.loads((bad / "verdict.json").read_text())["anomalyCounts"]["duplicate"] == 1
    broken = _write(tmp_path / "broken", *clean())
    (broken / HISTORY).write_text('{"type": "op", "outcome": "ok"}\nnot json\n')
    result = CliRunner().invoke(cli, ["chaos", "check", str(broken)])
    assert result.exit_code == 2 and f"{broken / HISTORY}:2:" in result.stderr
    assert "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["chaos", "check", str(tmp_path / "missing")])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) <= 2


def test_the_fault_schedule_language() -> None:
    specs = faults.parse("worker-kill:5s,broker-restart:once,postgres-restart,redis-outage:10s,pause:2")
    assert [s.text() for s in specs] == ["worker-kill:5s", "broker-restart:once", "postgres-restart:once",
                                         "redis-outage:10s", "pause:2s"]
    plan = faults.plan(specs, 60.0, seed=3)
    assert plan == faults.plan(specs, 60.0, seed=3) and plan != faults.plan(specs, 60.0, seed=4)
    kills = [p.at for p in plan if p.kind == "worker-kill"]
    assert len(kills) >= 9 and all(b - a <= 6.0 for a, b in itertools.pairwise(kills))
    assert [p.hold for p in plan if p.kind == "redis-outage"] == [10.0]
    assert faults.parse("none") == ()


@pytest.mark.parametrize("text", ["worker-kill", "worker-kill:fast", "broker-restart:5s", "meteor:once",
                                  "pause:0.1s"])
def test_a_bad_schedule_is_input_error(text: str) -> None:
    with pytest.raises(InputError):
        faults.parse(text)


def test_a_bad_schedule_on_the_command_line_is_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["chaos", "--faults", "meteor:once", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "meteor" in result.stderr and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["chaos", "--state-dir", str(tmp_path / "none"), "--faults", "none",
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "stack up" in result.stderr


def test_chaos_options_come_from_the_settings_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KCVERIFY_CHAOS_FAULTS", "meteor:once")
    result = CliRunner().invoke(cli, ["chaos"])
    assert result.exit_code == 2 and "--faults: unknown fault 'meteor'" in result.stderr
    monkeypatch.delenv("KCVERIFY_CHAOS_FAULTS")
    (tmp_path / "kcverify.toml").write_text("[chaos]\nrate = 0\n")
    result = CliRunner().invoke(cli, ["chaos"])
    assert result.exit_code == 2 and "chaos.rate" in result.stderr and "Traceback" not in result.output


class _Flaky:
    """A stand-in target whose restarted process fails to start `failures` times (the broker away)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.starts = 0
        self.killed: list[str] = []

    def process(self, name: str) -> Any:
        target = self

        class _Process:
            def kill(self) -> None:
                target.killed.append(name)

        return _Process()

    def respawn_free(self, name: str) -> None:
        self.starts += 1
        if self.starts <= self.failures:
            raise RuntimeError(f"{name} exited with status 2 while starting")

    def stack_recovered(self) -> None:
        pass


def test_a_killed_process_is_restarted_until_it_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from kcverify.chaos import nemesis
    from kcverify.chaos.history import History

    monkeypatch.setattr(nemesis, "SUPERVISE_EVERY", 0.01)
    target = _Flaky(failures=2)
    history = History(tmp_path / HISTORY, type("Clock", (), {"now": staticmethod(lambda: 1.0)})())
    n = nemesis.Nemesis(target, tmp_path, history, [], threading.Event())
    n.apply(faults.Planned(0.0, "worker-kill"))
    n.apply(faults.Planned(0.0, "worker-kill"))
    assert target.killed == ["worker", "worker-2"] and target.starts == 4
    lines = [line for line in history.lines if line["type"] == "fault"]
    assert [(f["ok"], f["restarts"]) for f in lines] == [(True, 3), (True, 1)]
    monkeypatch.setattr(nemesis, "SUPERVISE_FOR", 0.0)
    target.failures, target.starts = 5, 0
    n.apply(faults.Planned(0.0, "relay-kill"))
    assert history.lines[-1]["ok"] is False and "status 2" in history.lines[-1]["detail"]


def test_without_matplotlib_the_report_is_written_and_says_why_it_has_no_charts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from kcverify.chaos import html_report

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    page = html_report.render(check(*clean()), clean()[0])
    assert "<svg" not in page and "No charts: " in page and "kcverify[plots]" in page


def test_the_html_report_puts_the_verdict_and_ids_first_then_the_timeline(tmp_path: Path) -> None:
    from kcverify.chaos import html_report

    history, final = clean()
    history.insert(1, {"type": "fault", "kind": "broker-restart", "target": "kafka", "start": 1.5, "end": 4.0,
                       "ok": False, "detail": "<down>"})
    history[0]["at"] = 0.5
    final["purchases"].append(_purchase("p1", "s1", 2))
    final["payments"].append(_payment("p<9>", "s2"))
    verdict = check(history, final)
    final["purchases"][0]["createdAt"] = "1970-01-01T00:00:02.7Z"  # recorded 2.2 s into the run
    final["purchases"][1]["createdAt"] = 3.0
    page = html_report.render(verdict, history, {"loadSeconds": 1.0, "recoverySeconds": 2.0, "settled": True}, final)
    assert page.startswith("<!DOCTYPE html>") and '<span class="badge failed">FAIL</span>' in page
    order = [page.index(f'<section id="{s}">') for s in ("anomalies", "counts", "timeline", "faults")]
    assert order == sorted(order)
    assert '<h3 id="duplicate">duplicate: 1</h3>' in page and "<code>p1</code>" in page
    assert "<code>p&lt;9&gt;</code>" in page and "p<9>" not in page and "&lt;down&gt;" in page  # escaped
    timeline = page[page.index('<section id="timeline">'):page.index('<section id="faults">')]
    assert timeline.count("<svg") == 2 and "Throughput per second" in timeline and "Staleness of the" in timeline
    for legend in ("broker-restart", "worker-kill", "operations completed", "purchases recorded", "freshness bound"):
        assert legend in timeline, legend
    done, stale, recorded = html_report.series(history, final)
    assert recorded == {2: 2}
    assert done == {0: 2, 1: 4}  # since 0.5: ok at 1.1, 1.3 (second 0), 1.5, 1.7, 1.9, 2.1 (second 1); reads aside
    assert stale == pytest.approx({0: 1.7, 1: 1.5})  # p1 confirmed at 1.3, p2 at 1.5; the read at 3.0 shows both
    clean_page = html_report.render(check(*clean()), clean()[0])
    assert '<span class="badge passed">PASS</span>' in clean_page and "<h3" not in clean_page
    good = _write(tmp_path / "good", *clean())
    assert CliRunner().invoke(cli, ["chaos", "check", str(good)]).exit_code == 0
    assert (good / html_report.REPORT).read_text().count("<svg") == 2
