"""The history of a chaos run: every operation (invoke and complete times, outcome) and every fault
(start and end), one JSON object a line, written as it happens; and the final observed state beside it.

Operation line: `{"type": "op", "id": 7, "f": "confirm", "invoke": t0, "complete": t1, "outcome": "ok",
"student": ..., "payment": ..., "value": {...}, "error": ...}`; `outcome` is `ok`, `fail` (the system
refused: a 4xx answer) or `unknown` (no answer, a timeout, a dropped connection, a 5xx: the effect may or
may not have happened; the checker judges it by the final state, never by a guess).
Fault line: `{"type": "fault", "kind": "broker-restart", "target": "kafka", "start": t0, "end": t1,
"ok": true, "detail": ...}`. The first line is `{"type": "run", ...}` (options, seed, namespace); the
last `{"type": "end", ...}` (load, recovery and settle times)."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from kcverify.core.errors import InputError

HISTORY = "history.jsonl"
FINAL = "final.json"
OUTCOMES = ("ok", "fail", "unknown")


class History:
    """Thread-safe, append-only; every line is flushed as written so a run cut short keeps its past."""

    def __init__(self, path: Path, clock: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out: TextIO = path.open("w")
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.lines: list[dict[str, Any]] = []

    def write(self, line: dict[str, Any]) -> None:
        with self._lock:
            self.lines.append(line)
            self._out.write(json.dumps(line, sort_keys=True) + "\n")
            self._out.flush()

    def op(self, f: str, invoke: float, outcome: str, **fields: Any) -> dict[str, Any]:
        line = {"type": "op", "id": next(self._ids), "f": f, "invoke": round(invoke, 6),
                "complete": round(self._clock.now(), 6), "outcome": outcome,
                **{k: v for k, v in fields.items() if v is not None}}
        self.write(line)
        return line

    @contextmanager
    def fault(self, kind: str, target: str) -> Iterator[dict[str, Any]]:
        """The fault's line is written when it ends (healed), with its start; `detail` may be set inside."""
        line: dict[str, Any] = {"type": "fault", "kind": kind, "target": target, "start": round(self._clock.now(), 6),
                                "ok": True}
        try:
            yield line
        except Exception as exc:
            line["ok"], line["detail"] = False, f"{type(exc).__name__}: {exc}"
        finally:
            line["end"] = round(self._clock.now(), 6)
            self.write(line)

    def close(self) -> None:
        self._out.close()


def load(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The history and final state of a run: `path` is the run's directory or its history.jsonl (the
    final.json beside it). InputError (exit 2, `file:line: message`) on anything unreadable."""
    history_file = path / HISTORY if path.is_dir() else path
    final_file = history_file.parent / FINAL
    if not history_file.is_file():
        raise InputError(f"{history_file}: no such history file", hint="give the --out directory of a chaos run")
    lines: list[dict[str, Any]] = []
    with history_file.open() as fh:
        for number, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
            except ValueError as exc:
                raise InputError(f"not a JSON line: {exc}", file=str(history_file), line=number) from None
            if not isinstance(line, dict) or line.get("type") not in ("run", "op", "fault", "end"):
                raise InputError("not a history line (type run, op, fault or end)", file=str(history_file),
                                 line=number)
            if line["type"] == "op" and line.get("outcome") not in OUTCOMES:
                raise InputError(f"outcome must be one of {', '.join(OUTCOMES)}", file=str(history_file), line=number)
            lines.append(line)
    if not final_file.is_file():
        raise InputError(f"{final_file}: no final state beside the history")
    try:
        final = json.loads(final_file.read_text())
    except ValueError as exc:
        raise InputError(f"not JSON: {exc}", file=str(final_file)) from None
    if not isinstance(final, dict) or not isinstance(final.get("payments"), list) \
            or not isinstance(final.get("purchases"), list):
        raise InputError("the final state needs `payments` and `purchases` lists", file=str(final_file))
    return lines, final
