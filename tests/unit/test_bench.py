"""kcverify bench's load and tally on an in-memory stand-in target: latencies count from each purchase's
intended start (a slow service shows its queueing), a lost or duplicated purchase is found, the report
has its structure, and bad input is one line with exit 2."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest
from click.testing import CliRunner

from kcverify.bench import Bench, BenchOptions, Run, document, free_running, markdown
from kcverify.bench.html_report import render_html
from kcverify.bench.load import Ramp
from kcverify.bench.results import HOPS, Step, ramp_outcome
from kcverify.cli.bench import parse_rates
from kcverify.cli.main import cli
from kcverify.core.clock import rfc3339
from kcverify.core.errors import InputError
from kcverify.targets.base import HttpReply, Snapshot


class FakeTarget:
    """Payments confirmed become purchases at once; `lose` / `duplicate` break that for one payment;
    `confirm_delay` makes every confirm take that long (a slow service)."""

    def __init__(self, *, lose: int | None = None, duplicate: int | None = None, confirm_delay: float = 0.0,
                 late: int | None = None) -> None:
        self.lose, self.duplicate, self.confirm_delay, self.late = lose, duplicate, confirm_delay, late
        self.payments: dict[str, dict[str, Any]] = {}
        self.purchases: list[dict[str, Any]] = []
        self.confirms = 0
        self.free = False
        self.lock = threading.Lock()

    def now(self) -> float:
        return time.time()

    def student_id(self, name: str) -> str:
        return f"kfake-1-{name}"

    def sign(self, payment_id: str, body: bytes, at: float | None = None) -> str:
        return f"sig-{payment_id}"

    def token(self, subject: str, role: str) -> str:
        return f"token-{subject}"

    def run_free(self) -> None:
        self.free = True

    def hold_all(self) -> None:
        self.free = False

    def http(self, service: str, method: str, path: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> HttpReply:
        assert self.free, "the bench drives free-running components"
        if method == "POST" and path == "/api/v1/payments":
            doc = json.loads(body or b"{}")
            pid = str(uuid.uuid4())
            with self.lock:
                self.payments[pid] = doc
            return HttpReply(201, {}, json.dumps({"id": pid}).encode())
        if method == "POST" and path.endswith("/confirm"):
            assert (headers or {}).get("X-Signature", "").startswith("sig-")
            time.sleep(self.confirm_delay)
            pid = path.split("/")[-2]
            with self.lock:
                n, self.confirms = self.confirms, self.confirms + 1
                row = {"paymentId": pid, "studentId": self.payments[pid]["studentId"],
                       "createdAt": rfc3339(time.time())}
                copies = 0 if n in (self.lose, self.late) else 2 if n == self.duplicate else 1
                self.purchases.extend(dict(row) for _ in range(copies))
            if n == self.late:  # committed 1.5 s later, after its reader gave up
                threading.Timer(1.5, self._add_late, (row,)).start()
            return HttpReply(200, {}, json.dumps({"id": pid, "status": "succeeded"}).encode())
        if method == "GET" and path.endswith("/learning"):
            student = path.split("/")[-2]
            with self.lock:
                shown = [p for p in self.purchases if p["studentId"] == student]
            return HttpReply(200, {}, json.dumps({"studentId": student, "purchases": shown}).encode())
        return HttpReply(404, {}, b"")

    def _add_late(self, row: dict[str, Any]) -> None:
        with self.lock:
            self.purchases.append({**row, "createdAt": rfc3339(time.time())})

    def snapshot(self) -> Snapshot:
        with self.lock:
            return Snapshot(at=time.time(), purchases=[dict(p) for p in self.purchases])


FAST = BenchOptions(rates=(40.0,), duration=0.5, students=3, poll_interval=0.005, visible_timeout=1.0,
                    drain_timeout=0.5)


def test_every_purchase_is_measured_and_none_is_lost_on_a_correct_system() -> None:
    target = FakeTarget()
    steps, integrity = Bench(target, FAST).run()
    assert not target.free  # held again at the end
    summary = steps[0].summary()
    assert summary["scheduled"] == summary["confirmed"] == summary["visible"] == 20
    assert all(summary["latencyMs"][hop]["count"] == 20 for hop in HOPS)
    assert summary["readers"]["requests"] >= 20 and summary["errors"] == {}
    assert integrity.ok and integrity.confirmed == integrity.purchases == 20


def test_a_lost_purchase_and_a_duplicated_one_are_found() -> None:
    _, lost = Bench(FakeTarget(lose=3), FAST).run()
    assert not lost.ok and len(lost.lost) == 1 and not lost.duplicated
    _, twice = Bench(FakeTarget(duplicate=5), FAST).run()
    assert not twice.ok and len(twice.duplicated) == 1 and not twice.lost
    assert twice.shown_twice == 1  # the learning view listed that payment's purchase twice


def test_a_purchase_that_comes_late_is_waited_for_not_counted_lost() -> None:
    steps, waited = Bench(FakeTarget(late=2), BenchOptions(**{**FAST.__dict__, "drain_timeout": 5.0})).run()
    assert waited.ok and waited.confirmed == waited.purchases == 20 and waited.drain_seconds >= 0.5
    assert steps[0].summary()["errors"] == {"not visible in 1 s": 1}
    # no wait at all: it has not come yet, so it counts as lost
    _, impatient = Bench(FakeTarget(late=2), BenchOptions(**{**FAST.__dict__, "drain_timeout": 0.0})).run()
    assert len(impatient.lost) == 1


def test_latency_counts_from_the_intended_start_so_queueing_shows() -> None:
    """One sender, 20 purchases a second, each confirm taking 0.1 s: the sender falls behind by 0.05 s a
    purchase. Measured from when each request left, every confirm would look like 0.1 s; from the
    schedule, the last of 10 waited for the 9 before it (coordinated omission avoided)."""
    options = BenchOptions(rates=(20.0,), duration=0.5, students=2, poll_interval=0.005, visible_timeout=2.0,
                           senders=1, drain_timeout=0.5)
    steps, _ = Bench(FakeTarget(confirm_delay=0.1), options).run()
    confirm = steps[0].summary()["latencyMs"]["confirm"]
    assert confirm["count"] == 10
    assert confirm["max"] >= 500  # 10 x 0.1 s of service time, minus 9 x 0.05 s of schedule
    assert confirm["p50"] >= 150


def test_the_report_has_its_structure() -> None:
    steps, integrity = Bench(FakeTarget(), FAST).run()
    doc = document(target="fake", started_at="2026-01-01T00:00:00Z", options=FAST.as_dict(), steps=steps,
                   integrity=integrity)
    assert set(doc) == {"format", "target", "startedAt", "options", "hops", "warmup", "steps", "total",
                        "integrity", "maxThroughput"}
    assert doc["maxThroughput"] is None and doc["warmup"] is None  # not measured, none asked for
    assert tuple(doc["steps"][0]["latencyMs"]) == HOPS
    assert set(doc["steps"][0]["latencyMs"]["end_to_end"]) == {"count", "p50", "p90", "p99", "max"}
    assert doc["total"]["confirmed"] == 20 and doc["integrity"]["ok"] is True
    json.dumps(doc)
    text = markdown(doc)
    assert "| end_to_end" in text and "no purchase lost, none duplicated" in text


class ColdStart(FakeTarget):
    """The first `cold` confirms take 0.2 s each (a broker compiling, pools filling), the rest none."""

    def __init__(self, cold: int) -> None:
        super().__init__()
        self.cold = cold

    def http(self, service: str, method: str, path: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> HttpReply:
        if path.endswith("/confirm"):
            with self.lock:
                slow = self.confirms < self.cold
            if slow:
                time.sleep(0.2)
        return super().http(service, method, path, body=body, headers=headers)


def test_the_warm_up_is_reported_apart_its_purchases_still_counted() -> None:
    """A cold start lands in the warm-up, not in the first step; the warm-up's purchases are drained
    before the step begins and still count in the integrity tally; the report carries it apart."""
    cold = Bench(ColdStart(cold=10), FAST).run()[0][0].summary()["latencyMs"]["confirm"]
    assert cold["max"] >= 150  # without a warm-up, the first step carries the cold start
    options = BenchOptions(**{**FAST.__dict__, "warmup": 0.5})
    seen: list[Step] = []
    bench = Bench(ColdStart(cold=10), options, progress=seen.append)
    steps, integrity = bench.run()
    assert bench.warmup is not None and len(steps) == 1 and seen == [bench.warmup, steps[0]]
    warm = bench.warmup.summary()
    assert warm["scheduled"] == warm["confirmed"] == 20 and warm["latencyMs"]["confirm"]["max"] >= 150
    assert steps[0].summary()["latencyMs"]["confirm"]["max"] < 150
    assert integrity.ok and integrity.confirmed == integrity.purchases == 40
    assert all(p.created_at is not None for p in bench.warmup.purchases)
    doc = document(target="fake", started_at="2026-01-01T00:00:00Z", options=options.as_dict(), steps=steps,
                   integrity=integrity, warmup=bench.warmup)
    assert doc["warmup"]["scheduled"] == 20 and doc["total"]["scheduled"] == 20 and doc["options"]["warmup"] == 0.5
    assert "Warm-up, not counted below: 40 purchases/s for 0.5 s" in markdown(doc)
    html = render_html(doc, Run(steps, integrity, warmup=bench.warmup))
    assert "Warm-up, not counted below: 40 purchases/s for 0.5 s, 20 confirmed, 20 visible" in html


class Switches(FakeTarget):
    """Records when the bench runs the components free and holds them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.switches: list[str] = []

    def run_free(self) -> None:
        self.switches.append("free")
        super().run_free()

    def hold_all(self) -> None:
        self.switches.append("held")
        super().hold_all()


def test_the_warm_up_and_the_steps_are_one_free_running_stretch() -> None:
    """Held between its warm-up and its first step for longer than max.poll.interval.ms, a system's
    consumers would leave their groups and rejoin in the first step: `run` never holds in between. A
    warm-up run on its own (another system is measured first) is not run again."""
    options = BenchOptions(**{**FAST.__dict__, "warmup": 0.2})
    target = Switches()
    Bench(target, options).run()
    assert target.switches == ["free", "held"]
    target = Switches()
    bench = Bench(target, options)
    warm = bench.warm_up()
    steps, integrity = bench.run()
    assert target.switches == ["free", "held", "free", "held"] and bench.warmup is warm
    assert integrity.confirmed == len(warm.purchases) + len(steps[0].purchases) == 28


def test_a_warm_up_whose_purchases_are_not_all_in_says_so() -> None:
    """A purchase of the warm-up still missing when the drain gives up spills into the first step: the
    report says so instead of hiding it."""
    options = BenchOptions(**{**FAST.__dict__, "warmup": 0.5, "drain_timeout": 0.1})
    bench = Bench(FakeTarget(late=2), options)
    steps, integrity = bench.run()
    assert bench.warmup is not None and bench.warmup.drained is False
    summary = bench.warmup.summary()
    assert summary["drained"] is False and summary["drainSeconds"] >= 0.1
    doc = document(target="fake", started_at="2026-01-01T00:00:00Z", options=options.as_dict(), steps=steps,
                   integrity=integrity, warmup=bench.warmup)
    assert "NOT DRAINED" in markdown(doc)


def test_a_target_whose_components_cannot_run_free_is_refused() -> None:
    with pytest.raises(InputError, match="run on their own"):
        free_running(object())


@pytest.mark.parametrize("text", ["", "0", "-5", "abc", "50,nan", "20000"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(InputError, match="--rate"):
        parse_rates(text)
    assert parse_rates("50, 100") == (50.0, 100.0)


@pytest.mark.parametrize("args", [("--rate", "x"), ("--target", "embedded"), ("--report", "pdf")])
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, ["bench", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) <= 2


def test_a_stopped_stack_is_exit_2_with_the_reason(tmp_path: Any) -> None:
    result = CliRunner().invoke(cli, ["bench", "--state-dir", str(tmp_path / "none"), "--duration", "1"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: target processes: ") and "stack up" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_rates_from_the_environment_are_numbers() -> None:
    from kcverify.cli import settings

    leaf = settings.leaves()[("bench", "rate")]
    assert settings.parse_env("KCVERIFY_BENCH_RATE", "50, 100", leaf) == [50.0, 100.0]
    with pytest.raises(InputError, match="expected a number"):
        settings.parse_env("KCVERIFY_BENCH_RATE", "50,fast", leaf)
    assert settings.default_map({"bench": {"rate": [50.0, 100.0]}})["bench"]["rate"] == "50.0,100.0"


def test_the_closed_loop_counts_what_became_visible_and_a_slower_system_sustains_less() -> None:
    """Each confirm of the slow system takes 0.1 s: 4 workers for 0.5 s make about 4 / 0.1 = 40 a second
    at most; the fast one more. Every purchase the loop made is visible (none lost by the loop itself)."""
    fast_target, slow_target = FakeTarget(), FakeTarget(confirm_delay=0.1)
    fast = Bench(fast_target, FAST).max_throughput(0.5, 4)
    slow = Bench(slow_target, FAST).max_throughput(0.5, 4)
    assert not slow_target.free  # held again at the end
    assert slow.visible == slow_target.confirms and slow.seconds >= 0.5 and not slow.errors
    assert 15 <= slow.rate <= 45 and fast.rate > 2 * slow.rate
    assert slow.summary()["perSecond"] == slow.rate == round(slow.visible / slow.seconds, 2)


def test_the_comparison_divides_the_reference_by_the_bare_pipeline() -> None:
    """Ratios of p99 per hop and of maximum throughput: the slow system over the fast one is > 1 in latency
    (confirm and end_to_end carry the 0.1 s) and < 1 in throughput."""
    slow_steps, slow_tally = Bench(FakeTarget(confirm_delay=0.1), FAST).run()
    fast_steps, fast_tally = Bench(FakeTarget(), FAST).run()
    slow_max = Bench(FakeTarget(confirm_delay=0.1), FAST).max_throughput(0.3, 4)
    fast_max = Bench(FakeTarget(), FAST).max_throughput(0.3, 4)
    doc = document(target="fake", started_at="2026-01-01T00:00:00Z", options=FAST.as_dict(), steps=slow_steps,
                   integrity=slow_tally, max_throughput=slow_max, bare=Run(fast_steps, fast_tally, fast_max))
    assert {"bare", "comparison"} <= set(doc) and set(doc["bare"]) == {"warmup", "steps", "total", "integrity",
                                                                          "maxThroughput"}
    ratios = doc["comparison"]["p99Ratio"]
    assert ratios["confirm"] > 1 and ratios["end_to_end"] > 1
    assert ratios["end_to_end"] == round(doc["total"]["latencyMs"]["end_to_end"]["p99"]
                                         / doc["bare"]["total"]["latencyMs"]["end_to_end"]["p99"], 2)
    assert 0 < doc["comparison"]["maxThroughputRatio"] < 1
    text = markdown(doc)
    assert "# The bare pipeline" in text and "Maximum throughput ratio" in text and "## Maximum throughput" in text


def test_the_html_report_leads_with_the_verdict_and_draws_both_charts(tmp_path: Any) -> None:
    from kcverify.bench.html_report import write_html

    reference = Run(*Bench(FakeTarget(), FAST).run())
    bare = Run(*Bench(FakeTarget(duplicate=2), FAST).run())
    doc = document(target="fake", started_at="2026-01-01T00:00:00Z", options=FAST.as_dict(),
                   steps=reference.steps, integrity=reference.integrity, bare=bare)
    write_html(doc, reference, bare, tmp_path / "bench.html")
    page = (tmp_path / "bench.html").read_text()
    assert page.count("<svg") == 3 and "<script" not in page and "<?xml" not in page
    assert "confirm_to_visible percentiles against offered rate" in page and "Latency over time" in page
    assert page.index("FAIL") < page.index('id="charts"')  # the bare run duplicated one: the verdict first
    assert "INTEGRITY FAILED" in page and "none lost, none duplicated" in page
    assert page.count("<caption>40 purchases/s offered") == 2  # one table per system and step
    alone = document(target="fake", started_at="2026-01-01T00:00:00Z", options=FAST.as_dict(),
                     steps=reference.steps, integrity=reference.integrity)
    write_html(alone, reference, None, tmp_path / "alone.html")
    assert "PASS" in (tmp_path / "alone.html").read_text()


class Saturating(FakeTarget):
    """Answers 503 to every payment creation after the first `capacity` (a system that stops keeping up)."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity, self.created = capacity, 0

    def http(self, service: str, method: str, path: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> HttpReply:
        if method == "POST" and path == "/api/v1/payments":
            with self.lock:
                self.created += 1
                if self.created > self.capacity:
                    return HttpReply(503, {}, b"")
        return super().http(service, method, path, body=body, headers=headers)


def test_a_ramp_raises_the_rate_until_a_step_does_not_keep_up() -> None:
    """Steps of 0.5 s at 10, 15, 22.5, 33.75/s schedule 5, 8, 11 and 17 purchases; a system that creates 30
    payments in all fails in the fourth step: 22.5/s is its sustainable rate."""
    options = BenchOptions(**{**FAST.__dict__, "rates": (10.0,), "ramp": Ramp(factor=1.5, steps=6)})
    bench = Bench(Saturating(30), options)
    steps, integrity = bench.run()
    assert [s.rate for s in steps] == [10.0, 15.0, 22.5, 33.75] and integrity.ok
    assert bench.ramp_stop is not None and bench.ramp_stop.startswith("achieved ")  # the 503s: fewer confirmed
    assert ramp_outcome(steps, bench.ramp_stop) == {"sustainableRate": 22.5, "stoppedBecause": bench.ramp_stop}
    doc = document(target="fake", started_at="2026-01-01T00:00:00Z", options=options.as_dict(), steps=steps,
                   integrity=integrity, ramp=ramp_outcome(steps, bench.ramp_stop))
    assert doc["ramp"]["sustainableRate"] == 22.5 and doc["options"]["ramp"]["factor"] == 1.5
    assert "Sustainable rate: 22.5/s; stopped: achieved " in markdown(doc)
    # every step keeping up: the ramp runs out of steps, the last rate is sustainable
    steps, _ = Bench(FakeTarget(), BenchOptions(**{**options.__dict__, "ramp": Ramp(steps=2)})).run()
    assert ramp_outcome(steps, None) == {"sustainableRate": 15.0, "stoppedBecause": None}


def test_a_step_that_falls_behind_or_is_slow_did_not_keep_up() -> None:
    ramp = Ramp(p99_limit_ms=50.0)
    slow, _ = Bench(FakeTarget(), FAST).run()
    assert ramp.kept_up(slow[0]) == (True, "")
    late = slow[0]
    for p in late.purchases:
        assert p.confirmed_at is not None
        p.visible_at = p.confirmed_at + 0.2  # 200 ms from confirm to visible
    kept, why = ramp.kept_up(late)
    assert not kept and why.startswith("confirm_to_visible p99 ") and why.endswith("> 50 ms")
    behind = Step(rate=100.0, duration=0.5, purchases=late.purchases[:10], started=late.started)
    kept, why = ramp.kept_up(behind)
    assert not kept and why.startswith("achieved ")
