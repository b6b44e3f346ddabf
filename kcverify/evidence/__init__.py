"""What a run records and what it concludes, shared by the engine (which fills it), the checks (which
read it) and the reporters (which show it): `evidence` (the history of one scenario), `results`
(frozen outcomes: failures, tables, check/step/scenario/run results) and `events` (what the engine
emits to reporters). Depends on core/ and the target primitives' value types only."""
