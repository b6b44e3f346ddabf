"""`kcverify explore`: deterministic simulation of the embedded reference. `program` draws programs from a
seeded generator and compiles them into scenario steps, `shrink` shrinks a failing one, `explorer`
searches, shrinks and replays on the observed target (kcverify/targets/explore_embedded.py),
`scenario_file` writes a finding as a scenario. See docs/explore.md."""

from kcverify.explore.explorer import Budget, ExploreOptions, ExploreReport, Finding, explore

__all__ = ["Budget", "ExploreOptions", "ExploreReport", "Finding", "explore"]
