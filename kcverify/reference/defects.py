"""Named, switchable defects of the reference: the bugs that prove kcverify's checks can fail.

Each is a small, realistic deviation of the kind production purchase flows ship (see docs/defects.md).
Components ask `defects.on("name")` at the one place the behaviour lives; with no defect switched on,
the reference follows the rules (docs/spec-rules.md) exactly."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Defect:
    name: str
    rule: str
    description: str
    slowdown: bool = False  # breaks no rule and only costs time (SLOWDOWNS below)


CATALOGUE: tuple[Defect, ...] = (
    Defect("invalidate-at-confirm-only", "S3",
           "the learning cache is invalidated only at payment confirmation, before the purchase exists"),
    Defect("event-wins-merge", "W4", "the event's metadata wins the merge over the payment row"),
    Defect("no-idempotency-guard", "W6", "the worker inserts a purchase for every delivery, no tracking row"),
    Defect("marker-outside-transaction", "W6",
           "the processed marker is committed before, and apart from, the purchase transaction"),
    Defect("commit-offset-before-handling", "W1", "the worker commits the offset before handling the event"),
    Defect("dual-write", "P3", "the payment service publishes after commit instead of writing an outbox row"),
    Defect("latest-offset-reset", "W1", "a group with no committed offset starts at the latest offset"),
    Defect("poison-blocks-partition", "W2",
           "a schema-invalid event is retried forever and never committed, blocking its partition"),
    Defect("no-retries", "W7", "transient failures dead-letter the event at once, without retries"),
    Defect("fallback-drops-fields", "W5",
           "the fallback path keeps only some fields of the event metadata and defaults the rest"),
    Defect("default-tier-30", "W5", "a missing sessionCount becomes tier 30 instead of a dead letter"),
    Defect("created-event-unmerged-metadata", "W4",
           "PURCHASE_CREATED carries the event's unmerged metadata"),
    Defect("unique-per-student-course", "W6",
           "one purchase per (student, course): a repurchase with a second payment is swallowed"),
    Defect("stale-set-race", "S3", "the read path stores into the cache without the version check"),
    Defect("errors-cached", "S2", "a failed database read is cached as an empty learning view"),
    Defect("unsigned-confirm", "P2", "confirmation accepts a missing or wrong signature"),
    Defect("signature-not-bound", "P2",
           "a confirmation signature, once verified, is trusted again for any payment and at any age"),
    Defect("confirm-mutates-course", "P2", "confirmation may change the payment's courseId"),
    Defect("string-session-count", "W4", "the worker stores sessionCount as the string \"10\""),
    Defect("no-reconciler", "I1", "nothing re-publishes a succeeded payment whose purchase never appeared"),
    Defect("learning-view-ignores-authz", "S1", "any authenticated caller may read any student's view"),
    Defect("create-validates-metadata-after-insert", "P1",
           "a payment is stored before its metadata is validated: the 422 leaves the row behind"),
    Defect("confirm-records-provider-id-unverified", "P2",
           "the gateway's providerPaymentId is recorded before the signature is checked, even on a 401"),
    Defect("commit-despite-dead-letter-failure", "W1",
           "when the broker refuses a dead letter, the worker commits the offset anyway to keep the partition moving"),
    Defect("dead-letter-from-parsed-event", "W8",
           "the dead letter carries the parsed event, so a message that did not parse is dead-lettered as null"),
    Defect("confirmed-keyed-by-payment", "I4",
           "PURCHASE_CONFIRMED is keyed by paymentId instead of studentId, losing per-student order"),
    Defect("relay-fresh-event-id", "P3",
           "the outbox relay stamps every message it sends with a new eventId, so a re-publish is another event"),
    Defect("confirm-retry-enqueues-again", "P4",
           "a repeated confirmation of a succeeded payment writes its PURCHASE_CONFIRMED outbox row again"),
    Defect("merge-null-overrides-event", "W4",
           "the merge lays the payment row over the event, so a null in the row overrides the event's value"),
    Defect("merge-drops-event-only-keys", "W4",
           "the merge walks the payment row's keys only, so keys only the event carries are lost"),
    Defect("metadata-bmp-only", "P3",
           "checkout metadata is stored through a 3-byte UTF-8 path: characters outside the BMP become '?'"),
    Defect("tier-from-package-table", "W4",
           "the purchase tier is looked up in the 10/20/30-session package table; other counts get tier 10"),
    Defect("relay-newest-first", "P3",
           "the outbox relay sends each batch newest row first, so a student's events reach the topic reversed"),
    Defect("retry-at-topic-end", "W1",
           "on a transient failure the worker re-publishes the event to the end of the topic and commits it, "
           "so the student's later events overtake it"),
    Defect("worker-two-attempts", "W7",
           "the worker is deployed with retry attempts set to 2: transient failures are dead-lettered a try early"),
    Defect("retry-backoff-subsecond", "W7",
           "the worker is deployed with the development backoff of 0.5 s then 1 s between attempts"),
    Defect("malformed-student-id-html-500", "I4",
           "a malformed student id reaches the database lookup, which raises, and the framework's default "
           "HTML error page answers 500 instead of the documented problem+json 400"),
    Defect("confirm-ignores-unknown-fields", "P2",
           "the gateway callback is parsed leniently: unknown fields are dropped instead of refused, so a "
           "confirmation carrying fields the gateway never sends still changes the payment"),
    Defect("cache-ttl-in-milliseconds", "S2",
           "the student service is deployed with the cache TTL written in milliseconds (300000) in a setting "
           "read as seconds: a learning view stays cached for three and a half days"),
    Defect("worker-dies-on-bad-session-count", "W2",
           "the worker reads the tier from the raw event before validating it: a non-numeric sessionCount "
           "raises, nothing catches it, and the worker process dies instead of dead-lettering the event"),
    Defect("worker-ignores-event-student", "W3",
           "a payment not found for the event's student is looked up by id and status alone (\"the id is unique "
           "anyway\"): an event naming a paid payment and another student grants that student the course"),
    Defect("purchase-course-from-event", "W3",
           "the purchase takes its course from the event, not from the paid payment: an event naming a paid "
           "payment and another course grants that course"),
    Defect("cancelled-payment-can-succeed", "P4",
           "a cancelled payment may still become succeeded (\"the gateway may capture late\"): statuses move back"),
    Defect("confirm-invalidates-payment-key", "P5",
           "the confirmation invalidates the cache key built from the payment id instead of the student id"),
    Defect("relay-skips-refused-row", "P3",
           "when the broker refuses one outbox row the relay goes on with the rest of the batch, so a student's "
           "later event overtakes the refused one"),
    Defect("merge-drops-falsy-payment-values", "W4",
           "the merge tests the payment's value for truth instead of null: an empty string, 0 or false chosen at "
           "checkout loses to the event's value, or is lost"),
    Defect("invalidator-gives-up-on-cache-error", "S3",
           "the cache invalidator logs a cache error and moves on (\"the TTL will clean it up\"): the student's "
           "cached view stays stale for up to 300 s"),
    Defect("succeeded-payment-can-be-cancelled", "P4",
           "a succeeded payment can still be cancelled (\"customers may cancel any time\"): the course it granted "
           "stays granted, a purchase without a succeeded payment"),
    Defect("create-checks-required-fields-only", "P1",
           "the create validation is a hand-written check of the five required fields and their types: an "
           "unknown time zone, an impossible schedule, 0 or 500 sessions and an empty class type are stored"),
    Defect("confirm-checks-body-before-signature", "P2",
           "the confirmation validates its body and looks its payment up before it checks the signature: an "
           "unsigned callback learns 422 or 404, so anyone can probe which payment ids exist"),
    Defect("store-error-500", "I4",
           "the payment service answers a payments_db outage with a 500 instead of the documented 503 with "
           "Retry-After: the gateway and the checkout page do not retry"),
    Defect("outbox-separate-transaction", "P3",
           "the confirmation saves the payment and then writes its outbox row in a second transaction: when "
           "the second fails the payment is succeeded with no event, and the gateway's retry is a no-op"),
    Defect("confirm-retry-updates-provider-id", "P4",
           "a repeated confirmation overwrites the provider payment id with the retry's (\"keep the latest\"): "
           "a retry is not a no-op"),
    Defect("merge-nested-event-wins", "W4",
           "the merge is a \"deep merge\": inside a nested object such as the schedule the event's fields win, "
           "so a forged or stale event moves the class to another time slot"),
    Defect("fallback-keeps-schema-keys-only", "W5",
           "the fallback copies only the metadata keys the schema names (\"the fields the purchase needs\"): a "
           "promotion code or a gift note chosen at checkout is dropped"),
    Defect("invalidator-lowercases-key", "S3",
           "the PURCHASE_CREATED invalidator lowercases the student id of the cache key: a student whose id "
           "has a capital letter keeps the view cached before the purchase for up to 300 s"),
    Defect("confirm-invalidates-lowercased-key", "P5",
           "the confirmation invalidates the cache key of the lowercased student id: a student whose id has a "
           "capital letter keeps the old view cached"),
    Defect("view-first-page-only", "S1",
           "the learning view answers the first page of a paginated query (10 purchases): an eleventh course "
           "bought is never shown"),
    Defect("view-query-ignores-case", "S1",
           "the learning view selects the student's purchases case-insensitively (ILIKE): amy's view lists "
           "Amy's courses"),
    Defect("event-amount-in-major-units", "P3",
           "PURCHASE_CONFIRMED carries the amount in euros where its field says cents (4900 becomes 49): "
           "revenue reports and refunds downstream are off by a factor of 100"),
    Defect("event-id-per-student", "W6",
           "PURCHASE_CONFIRMED's event id is derived from the student and the event type, not from its "
           "idempotency key: a student's second purchase reuses the first one's event id, and a consumer "
           "deduplicating by event id drops it"),
    Defect("refund-overwrites-confirmed-at", "P2",
           "a refund stamps the payment's confirmedAt with the refund's time: when the payment was confirmed "
           "is lost, and the reconciler's grace is counted from the refund"),
    Defect("worker-accepts-refunded", "W3",
           "the worker takes a refunded payment for a paid one (\"it was paid at some point\"): a payment "
           "refunded before its event was handled still grants the course"),
    Defect("invalidator-commits-before-delete", "S3",
           "the cache invalidator commits PURCHASE_CREATED's offset before it deletes the key (\"acknowledge "
           "early, deleting is cheap\"): an invalidator that dies in between never deletes it, and the view "
           "cached before the purchase stays for up to 300 s"),
    Defect("reconciler-republishes-once", "I1",
           "the reconciler re-publishes each orphan once (\"the worker has it now\"): a copy lost to the same "
           "outage that lost the first confirmation leaves the payment paid without its course for good"),
    Defect("purchase-time-local-as-utc", "S1",
           "the worker stamps a purchase with the server's local time (Europe/Berlin, winter) and stores it as "
           "UTC (\"the servers run in Berlin anyway\"): every purchase date is an hour in the future"),
    Defect("decision-sets-confirmed-at", "P2",
           "a failed or cancelled callback stamps confirmedAt (\"when the gateway answered\"): a payment that was "
           "never paid says when it was confirmed, and anything that reads confirmedAt as \"paid at\" is wrong"),
    Defect("failed-payment-announced", "P3",
           "a failed payment writes a PURCHASE_CONFIRMED too (\"announce every gateway decision\"): the worker "
           "retries it three times and dead-letters it, and a consumer that trusts the event grants the course"),
    Defect("letter-first-failed-at-last-try", "W7",
           "each failed attempt stamps firstFailedAt again (\"the time it failed\"): a dead letter says its "
           "event first failed when it was given up, and whoever replays the DLQ cannot tell how long the "
           "outage lasted"),
    Defect("cache-status-always-stored", "S2",
           "every miss answers Cache-Status `fwd=miss; stored` (\"we always cache a miss\"), also when the store "
           "failed or the version guard refused it: the header tells operators the view is cached when it is not"),
    Defect("frontend-schedule-first", "F1",
           "the app takes startDate and classTime from the purchase's schedule first and the student's own "
           "choice only when the schedule has none (\"the schedule is where class times live\"): a schedule "
           "that disagrees with the checkout shows the student another start date and class time"),
    Defect("view-created-at-is-read-time", "S1",
           "the learning view shows each purchase's createdAt as the time the view was loaded: every course "
           "seems bought just now, and the order of purchases is lost to the screen"),
    Defect("validation-reports-first-error-only", "P1",
           "the create validation stops at the first error (\"fail fast\"): a checkout form with two bad fields "
           "is told about one, fixes it, and is refused again for the other"),
    Defect("reconciler-grace-from-created", "I1",
           "the reconciler counts its grace from the payment's creation, not its confirmation: a payment "
           "confirmed minutes after checkout is re-published at once, racing the worker"),
    Defect("hit-age-always-zero", "S2",
           "a cache hit answers Age: 0 (\"we just served it\"): a view cached minutes ago claims to be fresh, "
           "and nothing downstream can tell how stale it may be"),
    Defect("relay-marks-whole-batch", "P3",
           "the relay marks every row of its batch published once the batch is through, refused ones included: "
           "an event the broker refused after an earlier one went out is never published"),
    Defect("dead-letter-marker-ignores-partition", "W2",
           "the worker remembers a dead-lettered record by topic and offset only: a second poison message at the "
           "same offset of another partition is taken for one already sent, committed, and never dead-lettered"),
    Defect("created-outbox-separate-transaction", "W6",
           "the worker writes PURCHASE_CREATED's outbox row after the purchase's transaction: when that write "
           "fails the purchase exists and is never announced, so the view cached before it stays for 300 s"),
    Defect("worker-commits-while-retrying", "W1",
           "the worker commits an event's offset when it schedules a retry (\"so the broker does not redeliver "
           "it\"): a worker that dies during the backoff loses the event"),
    Defect("reconciler-skips-owned-course", "I1",
           "the reconciler leaves alone a payment whose student already owns its course (\"nothing to "
           "heal\"): a repurchase whose event was lost is paid and never granted"),
    Defect("cache-lookup-error-503", "S5",
           "a Redis error while looking up the cached view is answered 503 (\"the cache is part of the read "
           "path\") instead of falling back to the database"),
    Defect("cache-store-error-500", "S5",
           "a Redis error while storing the loaded view escapes the read as a 500: the lookup falls back to "
           "the database, the store does not"),
    Defect("learning-view-anonymous-allowed", "S1",
           "the student service checks who the caller is only when a bearer token is sent: a request without "
           "one reads any student's learning view and invalidates any cache"),
    Defect("token-signature-unverified", "S1",
           "bearer tokens are decoded without verifying their signature (\"the gateway verified it already\"): "
           "anyone can write a token for any student, or for an admin"),
    Defect("token-expiry-ignored", "S1",
           "the bearer token's expiry is never checked: a token that leaked once reads the view forever"),
    Defect("authz-ignores-case", "S1",
           "the learning view compares student ids case-insensitively: amy reads Amy's courses"),
    Defect("confirm-assumes-payment-exists", "I4",
           "the confirmation reads the payment without checking it exists (\"the gateway signed it\"): a "
           "callback for an unknown payment fails with a 500 instead of the documented 404"),
    Defect("created-correlated-by-purchase", "I4",
           "PURCHASE_CREATED carries the purchase id as its correlationId, not the payment id it descends from"),
    Defect("create-skips-date-format", "P1",
           "checkout validates startDate's pattern but not its format: 2026-02-30 is accepted, and the worker "
           "later dead-letters the paid purchase"),
    Defect("create-accepts-zero-amount", "P1", "checkout accepts an amount of 0 (\"free courses are allowed\")"),
    Defect("fallback-source-not-marked", "W5",
           "a purchase made from the event's metadata during a payments_db outage is marked metadataSource payment"),
    Defect("fallback-at-first-failure", "W7",
           "the worker falls back to a complete event's metadata at the first payments_db failure instead of after "
           "every attempt: one blip lets a forged event for an unpaid payment grant the course"),
    Defect("admin-invalidate-lowercases-id", "S4",
           "the admin invalidation lower-cases the student id in the cache key: Amy's view stays cached"),
    Defect("admin-invalidate-ignores-cache-down", "S4",
           "the admin invalidation answers 204 when the cache refused the delete, so the old view stays cached"),
    Defect("reconciler-grace-five-seconds", "I1",
           "the reconciler is deployed with the development grace of 5 s: it re-publishes a confirmation the worker "
           "has merely not reached yet, a second record for nothing"),
    Defect("cache-ttl-three-minutes", "S2",
           "the student service is deployed with a 180 s cache TTL where the rule says 300 s"),
)

# Defects that break no rule and only cost time. No scenario can catch them, so the kill matrix leaves
# them out (the targets describe them with `slowdown`); `kcverify bench --defect NAME` shows them
# instead: its percentiles must move by the known amount, or the bench is not measuring what it says
# (docs/bench.md).
SLOWDOWNS: tuple[Defect, ...] = (
    Defect("relay-sleeps-before-publish", "P3",
           "the payment relay sleeps 0.25 s before publishing each batch of outbox rows (\"to let the "
           "transaction settle\"): every purchase reaches the worker a quarter of a second later", slowdown=True),
)

# The defects that are a wrong setting shipped with a correct program: `deployed_settings` applies them.
MISCONFIGURED: dict[str, dict[str, object]] = {
    "worker-two-attempts": {"retry_attempts": 2},
    "retry-backoff-subsecond": {"retry_backoff": (0.5, 1.0)},
    "cache-ttl-in-milliseconds": {"cache_ttl": 300_000.0},
    "cache-ttl-three-minutes": {"cache_ttl": 180.0},
    "reconciler-grace-five-seconds": {"reconcile_grace": 5.0},
}

BY_NAME: dict[str, Defect] = {d.name: d for d in CATALOGUE + SLOWDOWNS}


class UnknownDefect(ValueError):
    pass


class Defects:
    """The set of defects switched on for one system. Immutable once built."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        chosen = frozenset(names)
        unknown = sorted(chosen - BY_NAME.keys())
        if unknown:
            raise UnknownDefect(f"unknown defect(s): {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
        self.names = chosen

    def on(self, name: str) -> bool:
        if name not in BY_NAME:  # a typo here would silently disable a mutant
            raise UnknownDefect(name)
        return name in self.names

    def __repr__(self) -> str:
        return f"Defects({sorted(self.names)!r})"


NONE = Defects()
