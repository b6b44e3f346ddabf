"""kcverify: a reference event-driven purchase flow and a verifier that replaces ticks with evidence."""

__version__ = "0.1.0"
