"""`kcverify bench`: how fast a purchase becomes visible on a target whose components run free, under an
open-loop constant-arrival-rate load; latencies per hop (HdrHistogram), throughput, errors, and no
purchase lost or duplicated. See docs/bench.md."""

from __future__ import annotations

from kcverify.bench.load import Bench, BenchOptions, Ramp, free_running
from kcverify.bench.results import Integrity, MaxThroughput, Run, Step, document, markdown

__all__ = ["Bench", "BenchOptions", "Integrity", "MaxThroughput", "Ramp", "Run", "Step", "document", "free_running",
           "markdown"]
