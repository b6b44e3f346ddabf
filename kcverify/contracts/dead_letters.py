"""What a dead letter says of the record it names. Its `originalEvent` is "verbatim bytes or JSON" (the
dead-letter contract): a system may keep the original as the record's JSON, or as its text even when that
text is JSON. Every reader of letters goes through here, so both forms are read alike."""

from __future__ import annotations

import json
from typing import Any


def carries(original: Any, raw: bytes) -> bool:
    """The letter's originalEvent is the record's value `raw`: its JSON when it parses, or its text."""
    try:
        if json.loads(raw) == original:
            return True
    except (ValueError, UnicodeDecodeError):
        pass
    return bool(raw.decode("utf-8", errors="replace") == original)


def original_event(letter: Any) -> dict[str, Any] | None:
    """The event a letter carries, as a JSON object: the object itself, or the text of one parsed; None
    for anything else (poison that was never an event)."""
    original = letter.get("originalEvent") if isinstance(letter, dict) else None
    if isinstance(original, str):
        try:
            original = json.loads(original)
        except ValueError:
            return None
    return original if isinstance(original, dict) else None
