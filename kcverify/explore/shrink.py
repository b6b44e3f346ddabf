"""Shrinking a failing schedule: first its program (the actions the generator drew), then the steps the
program compiled to.

Both passes are greedy and deterministic: they try candidates in a fixed order and keep each one the
predicate accepts, until a whole round changes nothing. The predicate is the explorer's ("this schedule
still fails with the same check, and passes without the defect"); it runs schedules, so its verdicts
are deterministic too, and the same failing program always shrinks to the same result (unless the
explorer's shrink deadline, in wall time, stops the predicate from running new candidates first).

- `shrink_program` works on actions: it deletes runs of actions (longest first, from the end), then
  simplifies each one that is left (its kind towards the first, simplest kinds of the generator, its two
  integers towards 0). Every program compiles to a valid scenario, so every candidate is one.
- `shrink_steps` works on the compiled steps: it deletes single steps (which can also drop the restarts
  and settles the compiler appended, and parts of a compound action) and repetitions (`times`,
  `copies`), skipping candidates that are no longer well formed, then renames what is left."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from kcverify.explore import program as prog

Program = tuple[prog.Action, ...]
Steps = tuple[prog.Planned, ...]

MAX_ROUNDS = 8  # rounds of every pass; a round that changes nothing ends the shrink sooner
DELETE_RUNS = (4, 2, 1)  # lengths of the runs of actions a round tries to delete, longest first


def shrink_program(program: Sequence[prog.Action], fails: Callable[[Program], bool]) -> Program:
    """The smallest program found, by greedy deletion and simplification, that `fails` still accepts
    (`program` itself is assumed to fail)."""
    best = tuple(program)
    for _ in range(MAX_ROUNDS):
        before = best
        for run in DELETE_RUNS:
            index = len(best) - run
            while index >= 0:
                candidate = best[:index] + best[index + run:]
                if candidate and fails(candidate):
                    best = candidate
                index = min(index - 1, len(best) - run)
        for index in range(len(best)):
            for simpler in _simpler_actions(best[index]):
                candidate = (*best[:index], simpler, *best[index + 1:])
                if fails(candidate):
                    best = candidate
                    break
        if best == before:
            break
    return best


def _simpler_actions(action: prog.Action) -> Iterator[prog.Action]:
    """Simpler forms of one action, simplest first: an earlier kind with the same integers, then the
    integers lowered (to 0, then halved)."""
    kind, a, b = action
    kinds = prog.KINDS
    for earlier in kinds[:kinds.index(kind)]:
        yield earlier, a, b
    for lower in dict.fromkeys((0, a // 2)):
        if lower < a:
            yield kind, lower, b
    for lower in dict.fromkeys((0, b // 2)):
        if lower < b:
            yield kind, a, lower


def shrink_steps(steps: Sequence[prog.Planned], fails: Callable[[Steps], bool]) -> Steps:
    """Delete single steps, then simplify repetitions, while `fails` accepts the result; then rename
    payments and reads in binding order when the renamed schedule still fails."""
    best = tuple(steps)

    def accepts(candidate: Steps) -> bool:
        return bool(candidate) and prog.well_formed(candidate) and fails(candidate)

    for _ in range(MAX_ROUNDS):
        before = best
        for index in reversed(range(len(best))):
            if index < len(best):
                candidate = best[:index] + best[index + 1:]
                if accepts(candidate):
                    best = candidate
        for index in range(len(best)):
            for variant in prog.simpler_variants(best[index]):
                candidate = (*best[:index], variant, *best[index + 1:])
                if accepts(candidate):
                    best = candidate
                    break
        if best == before:
            break
    pretty = prog.renamed(best)
    return pretty if pretty == best or accepts(pretty) else best
