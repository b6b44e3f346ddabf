"""`kcverify chaos`: a Jepsen-style run on the processes target. A workload of purchases (with duplicate
confirms, duplicate deliveries, poison events, failed payments and repurchases) runs at an open-loop rate
while a nemesis applies a seeded fault schedule (worker and relay kills, broker and PostgreSQL restarts,
a Redis outage, pauses); then the faults are healed and the flow settles. Every operation and fault goes
to a history, the final observed state beside it, and a checker (a pure function of both) reports the
anomalies afterwards. See docs/chaos.md."""

from __future__ import annotations
