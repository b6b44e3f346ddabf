"""The user's learning-view cache, observed read-only: whether a student's key is there and its TTL.

The freshness check judges a read by its `Cache-Status` and `Age` headers; a system whose answers carry
neither leaves it unable to say whether a read was served from the cache. The profile's `cache` section
(a Redis URL and the key template, `{studentId}`) lets the target look: `profile check` pings the URL, and
`observe(student)` says whether the key exists and for how long it will. Nothing here writes a key."""

from __future__ import annotations

from typing import Any

import redis

from kcverify.targets.base import CacheEntry

TIMEOUT = 5.0


class CacheError(RuntimeError):
    """The cache did not answer (unreachable, refused, not Redis): the message says which."""


class Cache:
    """One Redis database and the profile's key template."""

    def __init__(self, url: str, template: str) -> None:
        self.url = url
        self.template = template
        self._client: Any = redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)

    def key(self, student: str) -> str:
        return self.template.replace("{studentId}", student)

    def ping(self) -> None:
        try:
            if not self._client.ping():
                raise CacheError(f"{self.url} did not answer PING")
        except redis.RedisError as exc:
            raise CacheError(f"{self.url}: {type(exc).__name__}: {exc}") from exc

    def observe(self, student: str) -> CacheEntry:
        key = self.key(student)
        try:
            millis = int(self._client.pttl(key))
        except redis.RedisError as exc:
            raise CacheError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        if millis == -2:
            return CacheEntry(key, False, None)
        return CacheEntry(key, True, None if millis < 0 else millis / 1000.0)

    def close(self) -> None:
        self._client.close()
