"""The fault schedule of `kcverify chaos`: a small language, parsed into seeded fault plans.

`--faults` is a comma-separated list of `KIND[:ARG]`:

- `worker-kill:5s`   SIGKILL one purchase-worker process every 5 s (restarted at once, as a supervisor would)
- `relay-kill:8s`    SIGKILL the payment relay every 8 s (or `:once`)
- `broker-restart:once`   SIGKILL the Kafka broker, then start it again (`kcverify stack up` restarts only it)
- `postgres-restart:once` the same for PostgreSQL
- `redis-outage:10s`  SIGSTOP Redis for 10 s, then SIGCONT (once)
- `pause:3s`          SIGSTOP a worker process for 3 s, then SIGCONT (once)

`once` faults land at a seeded moment inside the load phase; periodic ones start after one period with a
seeded jitter. Bad input is an InputError (exit 2) that names the item."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from kcverify.core.errors import InputError

PERIODIC = ("worker-kill", "relay-kill")
ONCE = ("broker-restart", "postgres-restart")
OUTAGES = ("redis-outage", "pause")
KINDS = (*PERIODIC, *ONCE, *OUTAGES)
DEFAULT = "worker-kill:5s,broker-restart:once,postgres-restart:once,redis-outage:10s"
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)s?$")
MIN_PERIOD = 0.5


@dataclass(frozen=True)
class FaultSpec:
    """One item of the schedule: `kind`, and `seconds` (a period or an outage's length; None: once)."""

    kind: str
    seconds: float | None = None

    def text(self) -> str:
        return self.kind + (":once" if self.seconds is None else f":{self.seconds:g}s")


@dataclass(frozen=True)
class Planned:
    """A fault the nemesis applies at `at` seconds into the load phase, for `hold` seconds (outages)."""

    at: float
    kind: str
    hold: float = 0.0


def parse(text: str) -> tuple[FaultSpec, ...]:
    """`worker-kill:5s,broker-restart:once` -> specs; `none` or empty -> no fault."""
    specs: list[FaultSpec] = []
    for item in (w.strip() for w in text.split(",")):
        if not item or item == "none":
            continue
        kind, _, arg = item.partition(":")
        kind, arg = kind.strip(), arg.strip()
        if kind not in KINDS:
            raise InputError(f"--faults: unknown fault {kind!r} in {item!r}", hint=f"choose from: {', '.join(KINDS)}")
        if kind in ONCE:
            if arg not in ("", "once"):
                raise InputError(f"--faults: {kind} takes `once` (or nothing), not {arg!r}")
            specs.append(FaultSpec(kind))
            continue
        if arg == "once" and kind in PERIODIC:
            specs.append(FaultSpec(kind))
            continue
        match = _SECONDS.match(arg)
        if not match:
            what = "a period such as 5s" if kind in PERIODIC else "a duration such as 10s"
            raise InputError(f"--faults: {kind} needs {what}, got {arg!r} in {item!r}")
        seconds = float(match.group(1))
        if seconds < MIN_PERIOD:
            raise InputError(f"--faults: {item!r}: at least {MIN_PERIOD:g}s")
        specs.append(FaultSpec(kind, seconds))
    return tuple(specs)


def plan(specs: tuple[FaultSpec, ...], duration: float, seed: int) -> list[Planned]:
    """The faults of a load phase of `duration` seconds, seeded: the same seed gives the same plan.
    Outages and once-faults fall in the middle 60 % of the phase so the load runs on both sides."""
    rng = random.Random(seed)
    out: list[Planned] = []
    for spec in specs:
        if spec.kind in PERIODIC and spec.seconds is not None:
            at = spec.seconds * rng.uniform(0.8, 1.2)
            while at < duration:
                out.append(Planned(round(at, 3), spec.kind))
                at += spec.seconds * rng.uniform(0.8, 1.2)
        else:
            at = duration * rng.uniform(0.2, 0.8)
            out.append(Planned(round(at, 3), spec.kind, spec.seconds or 0.0 if spec.kind in OUTAGES else 0.0))
    out.sort(key=lambda p: p.at)
    return out
