"""The numbers the rules fix, and the `Conventions` a check judges a system by.

The checks never take these from the system under test: a system configured with 5 retries does not
thereby make 5 retries correct. For the reference the conventions are the rules' defaults; for a
user's system they will come from its profile's declared conventions (the seam: whoever builds the
`Evidence` of a run hands it a `Conventions`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kcverify.spec import names

# W7: 3 attempts in all, backoff 1 s after the first failure and 2 s after the second.
RETRY_ATTEMPTS = 3
RETRY_BACKOFF: tuple[float, ...] = (1.0, 2.0)

# S2: a learning view is cached for 300 s.
CACHE_TTL = 300.0

# S3: a read that starts this long after a purchase's commit must show it. On the real stack 1 s; on
# the embedded system (manual clock) "after the next settle", written None.
FRESHNESS_BOUND_REAL = 1.0
FRESHNESS_BOUND_EMBEDDED: float | None = None

# P2: a gateway signature whose timestamp is further than this from now is refused.
SIGNATURE_TOLERANCE = 300.0

# How far a system's clock may be from kcverify's before the moments it stamps (a payment's createdAt and
# confirmedAt, a purchase's createdAt) are judged wrong: ten minutes, far more than clocks kept by NTP drift
# apart, far less than any time zone's offset (a local time written as UTC is at least 30 minutes off).
CLOCK_SKEW = 600.0

# I1: the reconciler re-publishes a succeeded payment without a purchase after this grace period.
RECONCILE_GRACE = 60.0


@dataclass(frozen=True)
class Conventions:
    """What a system is judged by where the rules leave a choice open to configuration (W7 "backoff
    1 s then 2 s (configurable)"). The defaults are the rules' own numbers."""

    retry_attempts: int = RETRY_ATTEMPTS
    retry_backoff: tuple[float, ...] = RETRY_BACKOFF
    cache_ttl: float = CACHE_TTL
    cache_status_name: str = names.CACHE_STATUS_NAME
    # sessionCount -> purchaseTier, for a system whose tiers are not the session count itself (the rules'
    # data model: a purchase's tier is its sessionCount). Pairs, so the value stays hashable.
    tiers: tuple[tuple[int, int], ...] = ()
    # What a user's system carries on the bus, per canonical topic: the canonical fields (envelope, payload
    # and dead-letter fields by name) and the canonical headers its profile maps. A topic not listed carries
    # everything the contract names (the spec; the reference). A field or header the system does not carry
    # at all cannot be judged: the checks note it instead of failing it.
    # Whether learning answers carry S2's `Age` and `Cache-Status` headers. A user's profile may say they do
    # not: the headers are then noted as not carried, and a step's `cache: hit|miss` is judged by the
    # student's cache key where the target can see it (`read_cache`).
    cache_headers: bool = True
    # Whether ids (payment, purchase and event ids, and the idempotency keys built from them) are UUIDs, as
    # the data model says. A user's profile may declare them opaque (`pay_8f3a...`): their format is then not
    # judged, everything else about them is.
    uuid_ids: bool = True
    # Whether error answers (4xx, 5xx) are RFC 9457 problems (application/problem+json), as kcverify's contracts
    # say. A user's profile may declare plain JSON errors (`{"success": false, "message": ...}`): an error is
    # then judged by its status and by being a JSON object, not by the problem's fields.
    problem_errors: bool = True
    carried_fields: tuple[tuple[str, frozenset[str]], ...] = ()
    carried_headers: tuple[tuple[str, frozenset[str]], ...] = ()

    def backoff(self, failed_attempt: int) -> float:
        """The delay after the n-th failed attempt (1-based); the last delay repeats."""
        if not self.retry_backoff:
            return 0.0
        return self.retry_backoff[min(failed_attempt, len(self.retry_backoff)) - 1]

    def tier(self, session_count: Any) -> Any:
        """The purchaseTier a purchase of `session_count` sessions must have."""
        for count, tier in self.tiers:
            if count == session_count:
                return tier
        return session_count

    def carries(self, topic: str, field: str) -> bool:
        """Whether the system's records on canonical `topic` carry canonical `field` at all."""
        return _declared(self.carried_fields, topic, field)

    def carries_header(self, topic: str, header: str) -> bool:
        """Whether the system's records on canonical `topic` carry the canonical header `header`."""
        return _declared(self.carried_headers, topic, header)


def _declared(table: tuple[tuple[str, frozenset[str]], ...], topic: str, name: str) -> bool:
    for listed, names_ in table:
        if listed == topic:
            return name in names_
    return True


SPEC_CONVENTIONS = Conventions()
