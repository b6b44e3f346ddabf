"""A consumer pass's shrunk failure as a scenario file (docs/scenarios.md) that `kcverify run FILE` replays.

The case's steps, in the order the pass ran them: the payment created with the case's metadata and
confirmed, every record published (a valid event for the payment as `publish: {forged: {payment: p1,
metadata}}`, which the engine binds to the payment's id as the pass did; a valid event for a payment that
does not exist as `publish: {forged: {student, course, metadata}}`, which the engine gives a payment id of
its own; every other record as `publish: {raw}`, byte for byte), a bounded settle, then a second payment
confirmed and settled. The expectations are the rules' (one purchase per payment, every record the
contract refuses or that names no payment dead-lettered), so the file passes on a correct system and fails
again on the one found.

Strings are written double-quoted with every character outside printable ASCII escaped (`\\uXXXX`,
`\\UXXXXXXXX`), so the file is plain ASCII and reads back as exactly the text that was sent."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kcverify import contracts
from kcverify.fuzz.consumer import BOUND, EventPassResult, Shrunk
from kcverify.fuzz.events import COURSE, EVENT_SCHEMA, STUDENT

_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "nan", "inf"}
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def quoted(text: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(str(k))}: {scalar(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(scalar(v) for v in value) + "]"
    return _key(str(value))


def _key(text: str) -> str:
    return text if _PLAIN.match(text) and text.lower() not in _RESERVED else quoted(text)


def _unknown_payment(text: str) -> dict[str, Any] | None:
    """A record the contract accepts, about a payment that does not exist (W3), as a `forged` step: the
    engine gives its student the id the target gives `s1`, as the pass did, where a `raw` text would name
    `s1` itself, outside the namespace a prefixing target reads (a wrong purchase would go unseen)."""
    try:
        event = json.loads(text)
    except ValueError:
        return None
    if not isinstance(event, dict) or contracts.validate(EVENT_SCHEMA, event):
        return None
    payload = event["payload"]
    return {"student": STUDENT, "course": payload["courseId"], "metadata": payload["metadata"]}


def _step(kind: str, args: Mapping[str, Any]) -> str:
    return f"  - {kind}: {scalar(args)}"


def render(result: EventPassResult, shrunk: Shrunk, header: Sequence[str]) -> str:
    case = shrunk.case
    metadata = dict(case.payment_metadata)
    steps = [
        _step("create_payment", {"as": "p1", "student": STUDENT, "course": COURSE, "metadata": metadata}),
        _step("confirm", {"payment": "p1", "expect": {"status": 200, "payment_status": "succeeded"}}),
    ]
    letters = 0
    for draft in case.drafts:
        args: dict[str, Any]
        unknown = _unknown_payment(draft.text) if not draft.for_payment else None
        if draft.for_payment:
            args = {"forged": {"payment": "p1", "metadata": dict(draft.metadata or {})}}
        elif unknown is not None:
            args = {"forged": unknown}
            letters += draft.copies
        else:
            args = {"raw": draft.text, "key": STUDENT}
            letters += draft.copies
        if draft.copies > 1:
            args["copies"] = draft.copies
        args["note"] = draft.label
        steps.append(_step("publish", args))
    steps += [
        _step("settle", {"timeout": BOUND, "expect": {"purchases": {"payment": "p1", "count": 1},
                                                      "dlq": {"count": letters}}}),
        _step("create_payment", {"as": "p2", "student": STUDENT, "course": COURSE, "metadata": metadata}),
        _step("confirm", {"payment": "p2", "expect": {"status": 200, "payment_status": "succeeded"}}),
        _step("settle", {"timeout": BOUND, "expect": {"purchases": {"payment": "p2", "count": 1},
                                                      "dlq": {"count": letters}}}),
    ]
    lines = [f"# {line}" if line else "#" for line in header]
    lines.append(f"title: {quoted(f'Consumer fuzz, {result.prop.name}: {result.prop.summary}')}")
    lines.append("description: |")
    lines.extend(f"  {json.dumps(message, ensure_ascii=True)[1:-1]}" for message in shrunk.messages)
    lines.append(f"covers: [{', '.join(result.prop.rules)}]")
    lines.append("tags: [fuzz, events]")
    lines.append("steps:")
    lines.extend(steps)
    return "\n".join(lines) + "\n"


def file_name(result: EventPassResult) -> str:
    return "fuzz-" + re.sub(r"[^a-z0-9]+", "-", result.prop.name.lower()).strip("-") + ".yaml"


def write(result: EventPassResult, directory: Path, header: Sequence[str]) -> Path:
    """Write the pass's shrunk failure into `directory` (created if needed); returns the file's path."""
    assert result.shrunk is not None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(result)
    path.write_text(render(result, result.shrunk, header), encoding="ascii")
    return path
