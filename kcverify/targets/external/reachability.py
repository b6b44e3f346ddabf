"""Is the user's system there at all? Checked before the first scenario and again whenever a call gets
no answer, so that a service, database, broker or cache that is not running stops the run at once with
one line naming every part that is missing (exit 2), instead of failing each step of each scenario (or
ending in a traceback) as if the system were wrong.

Every probe is read-only and short: an HTTP GET of each service's base URL (any answer counts: the
service is up, whatever it says about `/`), a connection to each database, the broker's metadata, and a
PING of the cache."""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from kcverify.targets.external.profile import Profile
from kcverify.targets.http_client import HttpClient

TIMEOUT = 5.0


def service_down(client: HttpClient, name: str, base_url: str) -> str | None:
    """Why service `name` does not answer at all, or None when it answers anything."""
    try:
        client.get(base_url + "/", timeout=TIMEOUT)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        return f"service {name} at {base_url}: {type(exc).__name__}: {exc}"
    except httpx.HTTPError:
        return None  # it accepted the connection: up, whatever went wrong after
    return None


def missing_parts(profile: Profile, client: HttpClient, base_urls: dict[str, str],
                  services: Iterable[str] | None = None) -> list[str]:
    """Every configured part that does not answer, each named with what failed. `services`: only those
    HTTP services (and nothing else), for the check after one call got no answer."""
    names = list(base_urls) if services is None else [s for s in services if s in base_urls]
    parts = [why for name in names if (why := service_down(client, name, base_urls[name])) is not None]
    if services is not None:
        return parts
    parts.extend(_databases_down(profile))
    if profile.section("kafka").get("bootstrap"):
        parts.extend(_broker_down(profile))
    if profile.section("cache").get("key"):
        parts.extend(_cache_down(profile))
    return parts


def _databases_down(profile: Profile) -> list[str]:
    from kcverify.targets.external.db import Databases, QueryError

    databases = Databases(profile)
    found = []
    try:
        for name in profile.section("databases", "connections"):
            try:
                databases.ping(name)
            except QueryError as exc:
                found.append(f"database {name}: {exc}")
    finally:
        databases.close()
    return found


def _broker_down(profile: Profile) -> list[str]:
    from kcverify.targets.external.bus import Bus, BusError
    from kcverify.targets.external.envelope import topic_maps

    bootstrap = profile.secret("kafka", "bootstrap")
    bus = Bus(bootstrap, topic_maps(profile), {})
    try:
        bus.partitions_of_cluster()
    except BusError as exc:
        return [f"Kafka: {exc}"]
    finally:
        bus.close()
    return []


def _cache_down(profile: Profile) -> list[str]:
    from kcverify.targets.external.cache import Cache, CacheError

    cache = Cache(profile.secret("cache", "url"), str(profile.section("cache")["key"]))
    try:
        cache.ping()
    except CacheError as exc:
        return [f"cache: {exc}"]
    finally:
        cache.close()
    return []
