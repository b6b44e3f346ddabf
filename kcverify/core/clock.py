"""Clocks. Every component reads time from a Clock so the embedded target can run on a manual one:
"advance 301 s" then needs no sleep, and a seed replays the same history byte for byte."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

# A fixed, unremarkable start so manual-clock histories are identical across runs.
MANUAL_EPOCH = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC).timestamp()


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall-clock time, for the real stack."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """Time that moves only when told to. `sleep` advances it, so code that waits still terminates."""

    def __init__(self, start: float = MANUAL_EPOCH) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += seconds

    def advance_to(self, instant: float) -> None:
        if instant > self._now:
            self._now = instant


def rfc3339(ts: float) -> str:
    """RFC 3339 UTC timestamp with millisecond precision, as every contract in contracts/ uses.
    Remembered per instant: on a manual clock the same few instants are written again and again."""
    text = _RFC3339.get(ts)
    if text is None:
        if len(_RFC3339) >= _RFC3339_KEPT:
            _RFC3339.clear()
        text = _RFC3339[ts] = datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z")
    return text


_RFC3339: dict[float, str] = {}
_RFC3339_KEPT = 4096  # instants remembered; forgotten all at once when full


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (`t` and `z` may be lower-case, as RFC 3339 allows)."""
    return datetime.fromisoformat(text.upper().replace("Z", "+00:00")).timestamp()
