"""Settings for `kcverify run` from files and the environment: `kcverify.toml` (top-level keys) or
`[tool.kcverify]` in pyproject.toml, then `KCVERIFY_*` variables, then flags, each winning over the
one before. Handed to click as its `default_map`, so a flag always has the last word."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any

from kcverify.core.errors import InputError

# key -> expected python type(s); the keys mirror the `run` options (dashes as underscores).
KEYS: dict[str, type | tuple[type, ...]] = {
    "paths": list,
    "target": str,
    "seed": int,
    "fail_fast": bool,
    "report": (str, list),
    "report_dir": str,
    "no_color": bool,
    "select": (str, list),
    "claims": str,
}


def find_config(start: Path) -> tuple[Path, dict[str, Any]] | None:
    """The nearest kcverify.toml, or pyproject.toml with a [tool.kcverify] table, from `start` upwards."""
    for folder in [start, *start.parents]:
        own = folder / "kcverify.toml"
        if own.is_file():
            return own, _read(own)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = _read(pyproject).get("tool", {}).get("kcverify")
            if table is not None:
                return pyproject, table
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        col = getattr(exc, "colno", None)
        raise InputError(str(exc).split(" (at line")[0], str(path), line, col) from exc


def _line_of(path: Path, key: str) -> int | None:
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text.strip().startswith(key) and "=" in text:
            return number
    return None


def validate(path: Path, table: dict[str, Any]) -> dict[str, Any]:
    """Known keys of the right type, as click defaults; anything else is an input error."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in KEYS:
            close = difflib.get_close_matches(name, KEYS, n=1)
            raise InputError(f"unknown setting {key!r}", str(path), _line_of(path, key),
                             hint=f"did you mean {close[0]!r}?" if close else f"known: {', '.join(KEYS)}")
        if not isinstance(value, KEYS[name]) or (KEYS[name] is int and isinstance(value, bool)):
            raise InputError(f"setting {key!r} has the wrong type ({type(value).__name__})", str(path),
                             _line_of(path, key))
        if name in ("report", "select") and isinstance(value, list):
            value = ",".join(map(str, value))
        out[name] = value
    return out


def defaults_for_run(start: Path) -> dict[str, Any]:
    found = find_config(start)
    if found is None:
        return {}
    return validate(*found)
