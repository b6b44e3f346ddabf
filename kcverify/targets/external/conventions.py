"""A profile's `conventions` section as the `Conventions` the checks judge the system by.

Where the rules leave a choice to configuration (the retry schedule, the cache TTL, the name the cache
gives itself in `Cache-Status`), a user's system is judged by what its profile declares, and by the
rules' own numbers for whatever it does not declare. The section is the user's statement of intent, not
something read from the system: a system configured otherwise than it declares fails."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from kcverify.spec import names
from kcverify.spec.policy import SPEC_CONVENTIONS, Conventions
from kcverify.targets.external.profile import Profile


def conventions_of(profile: Profile) -> Conventions:
    """The declared conventions over the rules' defaults."""
    section = profile.section("conventions")
    changes: dict[str, Any] = {}
    if "retry_attempts" in section:
        changes["retry_attempts"] = int(section["retry_attempts"])
    if "retry_spacing" in section:
        changes["retry_backoff"] = tuple(float(s) for s in section["retry_spacing"])
    if "ttl" in section:
        changes["cache_ttl"] = float(section["ttl"])
    if "cache_status_name" in section:
        changes["cache_status_name"] = str(section["cache_status_name"])
    if "cache_headers" in section:
        changes["cache_headers"] = bool(section["cache_headers"])
    if "ids" in section:
        changes["uuid_ids"] = section["ids"] == "uuid"
    if "errors" in section:
        changes["problem_errors"] = section["errors"] == "problem"
    if "tiers" in section:
        pairs = []
        for count, tier in section["tiers"].items():
            if not str(count).isdigit():
                raise profile.error(f"a tier is declared for {count!r}: sessionCount values are whole numbers",
                                    "conventions", "tiers", count)
            pairs.append((int(count), int(tier)))
        changes["tiers"] = tuple(sorted(pairs))
    changes.update(_carried(profile))
    return replace(SPEC_CONVENTIONS, **changes) if changes else SPEC_CONVENTIONS


def _carried(profile: Profile) -> dict[str, Any]:
    """Per canonical topic whose profile entry maps `fields`: the fields it maps and the headers it carries
    (its `headers` list and the fields read from headers). A topic without `fields` is taken as canonical:
    it carries everything, and is not listed."""
    from kcverify.targets.external.envelope import ROLES, plain_path

    fields, headers = [], []
    for role, spec in profile.section("kafka", "topics").items():
        mapped = dict(spec.get("fields") or {})
        if role not in ROLES or not mapped:
            continue
        read_from_headers = {name for name, expression in mapped.items()
                             if (where := plain_path(str(expression))) is not None and where.root == "headers"}
        fields.append((ROLES[role], frozenset(mapped)))
        headers.append((ROLES[role], frozenset(str(h) for h in spec.get("headers") or ()) | read_from_headers))
    fields.extend(_answered(profile))
    return {"carried_fields": tuple(fields), "carried_headers": tuple(headers)} if fields else {}


def _answered(profile: Profile) -> list[tuple[str, frozenset[str]]]:
    """The canonical fields the system's HTTP answers carry, where the profile reshapes them (`fields`,
    `view_fields`): exactly the fields it maps. An answer the profile passes on as it comes is taken as
    canonical and carries everything."""
    payment_fields = [set(op["fields"]) for name in ("create_payment", "confirm", "read_payment")
                      if (op := profile.operation(name)) is not None and op.get("fields")]
    found = []
    if payment_fields:
        found.append((names.HTTP_PAYMENT, frozenset(set.union(*payment_fields))))
    view = profile.operation("learning_view")
    if view is not None and view.get("fields"):
        found.append((names.HTTP_LEARNING_PURCHASE, frozenset(view["fields"])))
    if view is not None and any(key in view for key in ("purchases", "fields", "view_fields")):
        view_fields = {"studentId": "studentId", "generatedAt": "generatedAt", **(view.get("view_fields") or {})}
        carried = {name for name, expression in view_fields.items() if expression is not None}
        found.append((names.HTTP_LEARNING_VIEW, frozenset({"purchases", *carried})))
    return found
