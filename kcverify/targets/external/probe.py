"""`kcverify profile check`: every item a profile configures, probed without changing the system, and
the capabilities that result. An item either answered as the profile says (ok), did not answer or
answered in the wrong shape (failed: the message names the item and what is wrong), or is described
but not driven by this version of the external target (not probed). Kafka: the bootstrap, every topic
(a missing topic fails, named) and every group; the cache: a PING."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import httpx

from kcverify.targets.external.auth import Credentials
from kcverify.targets.external.db import Databases, QueryError
from kcverify.targets.external.http import HttpSide
from kcverify.targets.external.profile import Profile
from kcverify.targets.http_client import HttpClient, http_client

PROBE_TIMEOUT = 5.0
OK, FAILED, NOT_PROBED = "ok", "failed", "not probed"


@dataclass(frozen=True)
class Probe:
    item: str  # e.g. "service payment", "operation learning_view", "query purchases"
    outcome: str  # OK, FAILED or NOT_PROBED
    detail: str


def probe(profile: Profile) -> list[Probe]:
    """Every configured item, in the profile's order. Missing environment variables raise InputError."""
    credentials = Credentials(profile)
    results: list[Probe] = []
    with http_client(PROBE_TIMEOUT) as client:
        http = HttpSide(profile, credentials, client)
        for name in profile.section("http", "services"):
            results.append(_service(client, name, http.base_url(name)))
        student = f"kcverify-probe-{uuid.uuid4().hex[:8]}"
        for name in profile.section("http", "operations"):
            results.append(_operation(http, credentials, name, student))
    if profile.section("databases", "queries"):
        databases = Databases(profile)
        try:
            for name in profile.section("databases", "queries"):
                results.append(_query(databases, name))
        finally:
            databases.close()
    if profile.section("kafka"):
        results.extend(_kafka(profile))
    if profile.section("cache"):
        results.append(_cache(profile))
    if profile.section("preconditions"):
        results.append(Probe("preconditions", NOT_PROBED, "not run: they would change the system (run before "
                                                          "the first payment of each student and course)"))
    if profile.section("control"):
        results.extend(_control(profile))
    return results


def _service(client: HttpClient, name: str, url: str) -> Probe:
    try:
        response = client.get(url + "/")
    except httpx.HTTPError as exc:
        return Probe(f"service {name}", FAILED, f"{url} unreachable: {type(exc).__name__}: {exc}")
    return Probe(f"service {name}", OK, f"{url} answered {response.status_code}")


def _operation(http: HttpSide, credentials: Credentials, name: str, student: str) -> Probe:
    item = f"operation {name}"
    if name in ("create_payment", "confirm", "invalidate_cache"):
        return Probe(item, NOT_PROBED, "not called: it would change the system (its service is probed)")
    if name == "read_payment":
        reply = http.send("GET", f"/api/v1/payments/{uuid.uuid4()}", body=None, headers={},
                          token=lambda s, r: credentials.token(s, r, 0.0))
        if reply.status is None:
            return Probe(item, FAILED, reply.error)
        return Probe(item, OK, f"an unknown payment answered {reply.status}")
    import time

    token = credentials.token(student, "student", time.time())
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = http.send("GET", f"/api/v1/students/{student}/learning", body=None, headers=headers,
                      token=lambda s, r: credentials.token(s, r, time.time()))
    if reply.status is None:
        return Probe(item, FAILED, reply.error)
    if reply.status != 200:
        return Probe(item, FAILED, f"a new student's view answered {reply.status}, expected a success: "
                                   f"{reply.body[:120].decode(errors='replace')}")
    try:
        view = json.loads(reply.body)
    except ValueError:
        return Probe(item, FAILED, "the answer is not JSON")
    if not isinstance(view, dict) or not isinstance(view.get("purchases"), list):
        return Probe(item, FAILED, "wrong shape: no list of purchases where `purchases` points (a service that "
                     "leaves an empty list out of its answers needs a default, e.g. "
                     "purchases: \"data.courses || `[]`\")")
    return Probe(item, OK, f"a new student's view: {len(view['purchases'])} purchase(s)")


def _query(databases: Databases, name: str) -> Probe:
    item = f"query {name}"
    try:
        missing = databases.missing_column(name, {"prefix": "kcverify-probe-", "student_id": "kcverify-probe",
                                                  "payment_id": str(uuid.UUID(int=0))})
    except QueryError as exc:
        return Probe(item, FAILED, str(exc))
    if missing is not None:
        return Probe(item, FAILED, f"missing column {missing}")
    return Probe(item, OK, "returns the canonical columns")


def _kafka(profile: Profile) -> list[Probe]:
    """The bootstrap servers, each topic the profile names (a missing one fails, by name), each group."""
    from kcverify.targets.external.bus import Bus, BusError
    from kcverify.targets.external.envelope import topic_maps

    bootstrap = profile.secret("kafka", "bootstrap")
    maps = topic_maps(profile)
    groups = {role: str(name) for role, name in profile.section("kafka", "groups").items()}
    bus = Bus(bootstrap, maps, groups)
    try:
        try:
            bus.partitions_of_cluster()
        except BusError as exc:
            skipped = [f"topic {role} ({m.name})" for role, m in maps.items()] + \
                [f"group {role} ({group})" for role, group in groups.items()]
            return [Probe("kafka bootstrap", FAILED, str(exc)),
                    *(Probe(item, NOT_PROBED, "the bootstrap servers did not answer") for item in skipped)]
        results = [Probe("kafka bootstrap", OK, f"{bootstrap} answered")]
        for role, topic_map in maps.items():
            item = f"topic {role} ({topic_map.name})"
            try:
                count = len(bus.partitions(topic_map.name))
            except BusError as exc:
                results.append(Probe(item, FAILED, str(exc)))
                continue
            results.append(Probe(item, OK, f"{count} partition(s); read as {topic_map.canonical_name}"))
        for role, group in groups.items():
            item = f"group {role} ({group})"
            try:
                known = bus.group_exists(group)
            except BusError as exc:
                results.append(Probe(item, FAILED, str(exc)))
                continue
            results.append(Probe(item, OK, "known to the broker" if known else
                                 "not known yet (no member, nothing committed): its offsets read as none"))
        return results
    finally:
        bus.close()


def _cache(profile: Profile) -> Probe:
    from kcverify.targets.external.cache import Cache, CacheError

    url = profile.secret("cache", "url")
    cache = Cache(url, str(profile.section("cache")["key"]))
    try:
        cache.ping()
    except CacheError as exc:
        return Probe("cache", FAILED, str(exc))
    finally:
        cache.close()
    return Probe("cache", OK, f"{url} answered PING; keys {cache.key('{studentId}')}")


def _control(profile: Profile) -> list[Probe]:
    """No command is run (each changes the system): what `control_components` lacks, and the readiness
    probes (http, group) of every component that has them, asked once."""
    from kcverify.targets.external.control import Control, missing

    lacking = missing(profile)
    if lacking:
        results = [Probe("control", NOT_PROBED, "commands not run; control_components absent: " + "; ".join(lacking))]
    else:
        results = [Probe("control", OK, "commands not run; every scenario component has pause, resume, stop, "
                                        "kill and start (or restart): control_components")]
    control = Control(profile)
    for name, spec in profile.section("control", "components").items():
        if not (spec.get("ready") or {}).keys() & {"http", "group"}:
            continue
        not_ready = control.not_ready(name)
        results.append(Probe(f"component {name}", FAILED if not_ready else OK,
                             "not ready: no " + "; no ".join(not_ready) if not_ready else "ready"))
    return results
