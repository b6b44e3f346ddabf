"""The built-in checks. Each reads the evidence of a run, after every step and at the end, and names
the SPEC rules it refutes. Importing this package registers them all; `select` picks the ones a run
hands to the Runner (the engine itself knows no check by name)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from kcverify.checks import (  # noqa: F401
    authority,
    contract,
    delivery,
    freshness,
    idempotency,
    invariants,
    metadata,
    ordering,
    records,
    stored,
)
from kcverify.checks.base import REGISTRY, Check
from kcverify.core.errors import InputError

__all__ = ["REGISTRY", "Check", "select"]


def select(include: Iterable[str] = (), exclude: Iterable[str] = ()) -> list[type[Check]]:
    """The registered checks to run, in registry order: those named in `include` (all when empty),
    minus those in `exclude`. An unknown name is an InputError listing the known names."""
    wanted, unwanted = [n.strip() for n in include if n.strip()], [n.strip() for n in exclude if n.strip()]
    for name in (*wanted, *unwanted):
        if name not in REGISTRY:
            close = difflib.get_close_matches(name, list(REGISTRY), n=1)
            hint = (f"did you mean '{close[0]}'? " if close else "") + f"known checks: {', '.join(REGISTRY)}"
            raise InputError(f"unknown check '{name}'", hint=hint)
    return [cls for name, cls in REGISTRY.items()
            if (not wanted or name in wanted) and name not in unwanted]
