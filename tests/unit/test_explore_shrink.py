"""The explorer's own search and shrinker (kcverify/explore/shrink.py): the shrinker keeps only what a
failure needs, the result still fails the same way, and the same failing program always shrinks to the
same result; a search whose draws only repeat schedules already run ends."""

from __future__ import annotations

import random
from pathlib import Path

from kcverify.checks import select
from kcverify.engine.runner import Runner, RunOptions
from kcverify.explore import program as prog
from kcverify.explore.explorer import Budget, ExploreOptions, Explorer, ExploreTargets, Verdict
from kcverify.explore.shrink import shrink_program, shrink_steps
from kcverify.targets.embedded import EmbeddedTarget
from kcverify.targets.explore_embedded import ObservedTarget


def confirm_then_settle(program: tuple[prog.Action, ...]) -> bool:
    """A made-up failure: a confirmation of payment index 3 or more, followed later by a settle."""
    return any(kind == "confirm" and a >= 3 and any(later == "settle" for later, _, _ in program[i + 1:])
               for i, (kind, a, _) in enumerate(program))


def test_a_program_shrinks_to_the_actions_the_failure_needs() -> None:
    noisy = (("read", 5, 7), ("confirm", 9, 3), ("run", 2, 2), ("publish", 4, 1), ("settle", 6, 9),
             ("crash", 1, 1), ("settle", 2, 2))
    assert confirm_then_settle(noisy)
    calls: list[tuple[prog.Action, ...]] = []

    def fails(candidate: tuple[prog.Action, ...]) -> bool:
        calls.append(candidate)
        return confirm_then_settle(candidate)

    shrunk = shrink_program(noisy, fails)
    assert confirm_then_settle(shrunk)
    assert len(shrunk) == 2 and [kind for kind, _, _ in shrunk] == ["confirm", "settle"]
    assert shrunk[0][1] == 4 and shrunk[0][2] == 0 and shrunk[1][1:] == (0, 0)  # integers lowered as far as allowed
    again: list[tuple[prog.Action, ...]] = []
    assert shrink_program(noisy, lambda c: again.append(c) or confirm_then_settle(c)) == shrunk
    assert again == calls  # the same candidates, in the same order


def test_a_program_that_cannot_shrink_is_kept() -> None:
    program = (("confirm", 3, 0), ("settle", 0, 0))
    assert shrink_program(program, confirm_then_settle) == program


def test_steps_shrink_to_well_formed_renamed_steps() -> None:
    P = prog.Planned
    steps = (P("create_payment", {"as": "p1", "student": "s1"}), P("create_payment", {"as": "p2", "student": "s2"}),
             P("confirm", {"payment": "p2", "times": 3}), P("settle", {}), P("read", {"student": "s2"}))
    seen: list[tuple[prog.Planned, ...]] = []

    def fails(candidate: tuple[prog.Planned, ...]) -> bool:
        seen.append(candidate)
        return any(s.kind == "confirm" for s in candidate) and any(s.kind == "settle" for s in candidate)

    shrunk = shrink_steps(steps, fails)
    assert shrunk == (P("create_payment", {"as": "p1", "student": "s2"}), P("confirm", {"payment": "p1"}),
                      P("settle", {}))
    assert all(prog.well_formed(candidate) for candidate in seen)  # a confirm without its payment is never run


def test_a_real_failure_shrinks_to_a_smaller_schedule_failing_the_same_check() -> None:
    """dual-write loses a confirmation when the bus refuses it: found among random programs, the shrunk
    program still fails the delivery check on the system with the defect, and passes without it."""
    broken, clean = ObservedTarget(defects=frozenset({"dual-write"})), ObservedTarget()
    checks = select()

    def verdict(target: ObservedTarget, program: tuple[prog.Action, ...]) -> Verdict:
        target.reset()
        scenario = prog.to_scenario(prog.compile_program(program))
        return Verdict.of(Runner(target, (), RunOptions(), checks=checks).run_scenario(scenario))

    rng = random.Random(0)
    for _ in range(2000):
        first = tuple(prog.random_program(rng, 10))
        failed = verdict(broken, first)
        if failed.finding and not verdict(clean, first).failed:
            break
    else:
        raise AssertionError("no program fails with dual-write in 2000 draws")
    check = failed.primary

    def fails(candidate: tuple[prog.Action, ...]) -> bool:
        result = verdict(broken, candidate)
        return result.finding and check in result.checks and not verdict(clean, candidate).failed

    shrunk = shrink_program(first, fails)
    assert fails(shrunk)
    assert len(prog.compile_program(shrunk)) < len(prog.compile_program(first))
    assert shrink_program(first, fails) == shrunk
    broken.close()
    clean.close()


def test_a_search_ends_when_every_draw_repeats_a_schedule_already_run(tmp_path: Path) -> None:
    """One action a program leaves few distinct schedules: a budget of more schedules than exist must
    end the search (after MAX_REPEATED_DRAWS draws in a row that repeat one), not draw forever."""
    explorer = Explorer(ExploreOptions(seed=0, max_steps=1, budget=Budget(schedules=100_000), out_dir=tmp_path),
                        targets=ExploreTargets(search=lambda d: ObservedTarget(defects=d),
                                               replay=lambda d: EmbeddedTarget(defects=d)))
    report = explorer.run()
    assert report.finding is None
    assert 10 < report.schedules < 1000
