"""Conformance suites: one per port, run on every adapter of the port (factories.py)."""
