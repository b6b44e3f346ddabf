"""The built-in checks. Each reads the evidence of a run, after every step and at the end, and names
the SPEC rules it refutes. Importing this package registers them all."""

from kcverify.checks import contract, delivery, freshness, idempotency, invariants, metadata  # noqa: F401
from kcverify.checks.base import REGISTRY, Check

__all__ = ["REGISTRY", "Check"]
