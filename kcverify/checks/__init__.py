"""The built-in checks. Each reads the evidence of a run, after every step and at the end, and names
the SPEC rules it refutes. Importing this package registers them all."""

from kcverify.checks import (  # noqa: F401
    authority,
    contract,
    delivery,
    freshness,
    idempotency,
    invariants,
    metadata,
    records,
    stored,
)
from kcverify.checks.base import REGISTRY, Check

__all__ = ["REGISTRY", "Check"]
