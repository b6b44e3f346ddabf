"""The spec layer: what the rules of docs/spec-rules.md fix, as code that the verifier and a system
may both import. `rules` lists the rule ids; `names` the literal names (topics, event types, keys,
headers, fields); `policy` the numbers (retries, backoff, TTL, bounds) and the `Conventions` a check
judges by; `oracle` the rules' computations (the W4 merge, the F1 display), written from the rule
text. Imports only the standard library: never the reference, never the verifier."""
