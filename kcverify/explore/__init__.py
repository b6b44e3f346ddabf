"""`kcverify explore`: deterministic simulation of the embedded reference. `program` generates and
compiles schedules (Hypothesis strategies -> scenario steps), `target` runs them observed, `explorer`
searches, shrinks and replays, `scenario_file` writes a finding as a scenario. See docs/explore.md."""

from kcverify.explore.explorer import Budget, ExploreOptions, ExploreReport, Finding, explore

__all__ = ["Budget", "ExploreOptions", "ExploreReport", "Finding", "explore"]
