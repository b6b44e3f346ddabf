"""`kcverify fuzz`: property-based contract testing of the services' HTTP APIs with Schemathesis.

Generated requests (positive: schema-valid; negative: breaking the contract) go to the system through
the target's own `http()` primitive, so every target that `kcverify run` drives can be fuzzed the same
way, and the verifier never reaches into the reference. Credentials are real: a bearer token from
`Target.token` and, on the gateway callback, an `X-Signature` from `Target.sign` over the exact bytes
sent, so the authorised paths are exercised, not only the 401s. Path ids are aimed, in rotation, at
real payments in every status and at a student with purchases (`aims.py`).

    transport.py  requests' adapter over `Target.http` (and the signing of the callback)
    aims.py       real ids and credentials put into generated cases
    judge.py      kcverify's own checks on every answer (problem+json, no 5xx, bad input refused)
    runner.py     the passes per operation and mode, failures collected with a curl line
    results.py    the findings as the results model the reporters of `kcverify run` read
"""
