"""Runs scenarios against a target, gathers evidence, runs checks, and emits events to reporters."""
