"""The real cache (`RedisCache`): the twin of memory_cache.py on Redis, held to the same conformance
suite.

- A value is one Redis string under `{prefix}{key}`: an envelope of a format byte, `stored_at` (an
  IEEE double, so it comes back exactly as given) and the value's bytes, stored with `SET ... PX`.
- The key's version is a counter under `{prefix}{key}:version` (absent = 0). It has no TTL, so it
  outlives the value it guards, as in the embedded cache. (So a cache key ending in ":version" would
  share a Redis key with another key's counter: the learning keys `student:learning:{id}` never do.)
- `delete` is one Lua script: DEL the value and INCR the version, atomically. `set_if_version` is one
  Lua script: compare the version, then SET with PX; no reader can slip between the two (S3).
- Time: callers pass `now` (the `stored_at` shown as the Age header), but Redis expires entries by its
  own clock: an entry set with `ttl` lives `ttl` seconds from the moment Redis runs the SET, rounded up
  to the millisecond, whatever `now` said. On the real stack `now` is the system clock, so the two
  agree to within the call's latency; with a manual clock they do not (tests of exact TTL boundaries
  need the embedded cache).
- Failures: one connection pool, short socket timeouts and no retries (redis-py retries by default),
  so a dead or hung Redis is a `CacheUnavailable` within `socket_timeout` and readers fall back to
  the database at once (S5). Errors that mean "this server cannot serve now" (connection, timeout,
  loading, read-only replica, OOM) are CacheUnavailable; anything else is a bug and propagates.
- Cluster: the value and version keys of one cache key must live in one slot for the scripts; give
  keys a hash tag (`{student:learning:42}`) before pointing this at a Redis Cluster."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from kcverify.core.errors import CacheUnavailable
from kcverify.reference.ports import CacheEntry

VERSION_SUFFIX = ":version"
_FORMAT = b"\x01"
_STORED_AT = struct.Struct(">d")
_HEADER = len(_FORMAT) + _STORED_AT.size

# KEYS[1] value key, KEYS[2] version key; ARGV[1] expected version, ARGV[2] envelope, ARGV[3] ttl ms
_SET_IF_VERSION = """
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if current ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

# KEYS[1] value key, KEYS[2] version key
_DELETE = """
redis.call('DEL', KEYS[1])
return redis.call('INCR', KEYS[2])
"""

# Errors that mean "this server cannot serve now", not "the request was wrong". ConnectionError covers
# refused/reset connections, LOADING (BusyLoadingError), failed AUTH and an exhausted pool.
_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError, redis.exceptions.TryAgainError, redis.exceptions.ClusterDownError,
    redis.exceptions.MasterDownError,
)


class RedisCache:
    """The Cache port on Redis (see the module docstring). `prefix` namespaces every Redis key this
    cache touches (tests use one per test). Helpers beyond the port: `flush()`, `keys()`, `close()`."""

    def __init__(self, url: str, *, prefix: str = "", socket_timeout: float = 0.5,
                 connect_timeout: float = 0.5, max_connections: int = 16) -> None:
        self._prefix = prefix
        self._url = url
        self._client = redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 0), retry_on_timeout=False, max_connections=max_connections,
            health_check_interval=0,
        )
        self._set_if_version = self._client.register_script(_SET_IF_VERSION)
        self._delete = self._client.register_script(_DELETE)

    # --- Cache --------------------------------------------------------------------------------------

    def get(self, key: str) -> CacheEntry | None:
        """A value that is not one of our envelopes (written by something else) reads as a miss: the
        caller then loads from the database, which is always safe for a cache."""
        with self._errors():
            raw = cast(bytes | None, self._client.get(self._value_key(key)))
        if raw is None or len(raw) < _HEADER or raw[:1] != _FORMAT:
            return None
        (stored_at,) = _STORED_AT.unpack_from(raw, len(_FORMAT))
        return CacheEntry(bytes(raw[_HEADER:]), stored_at)

    def version(self, key: str) -> int:
        with self._errors():
            raw = cast(bytes | None, self._client.get(self._version_key(key)))
        return 0 if raw is None else int(raw)

    def set_if_version(self, key: str, value: bytes, ttl: float, version: int, now: float) -> bool:
        ms = _ttl_ms(ttl)
        with self._errors():
            stored = self._set_if_version(keys=[self._value_key(key), self._version_key(key)],
                                          args=[int(version), _envelope(value, now), ms])
        return int(cast(int, stored)) == 1

    def set(self, key: str, value: bytes, ttl: float, now: float) -> None:
        ms = _ttl_ms(ttl)
        with self._errors():
            self._client.set(self._value_key(key), _envelope(value, now), px=ms)

    def delete(self, key: str) -> None:
        with self._errors():
            self._delete(keys=[self._value_key(key), self._version_key(key)])

    # --- helpers beyond the port --------------------------------------------------------------------

    def flush(self) -> None:
        """Like deleting every key this cache ever versioned or stored: values dropped, versions bumped,
        so a reader that loaded before the flush cannot store afterwards. Key by key (each atomic),
        not one atomic sweep as in the embedded cache."""
        for key in self._all_keys():
            self.delete(key)

    def keys(self) -> list[str]:
        """The keys holding a live (unexpired) value, sorted (without the prefix)."""
        with self._errors():
            found = self._scan()
        return sorted(k for k in found if not k.endswith(VERSION_SUFFIX))

    def close(self) -> None:
        self._client.close()

    # --- internals ----------------------------------------------------------------------------------

    def _value_key(self, key: str) -> str:
        return self._prefix + key

    def _version_key(self, key: str) -> str:
        return self._prefix + key + VERSION_SUFFIX

    def _scan(self) -> frozenset[str]:
        # (`set` is a method here: the builtin is not in scope for annotations)
        pattern = _glob_escape(self._prefix) + "*"
        names: Iterator[bytes] = self._client.scan_iter(match=pattern, count=500)
        return frozenset(name.decode("utf-8", "surrogateescape")[len(self._prefix):] for name in names)

    def _all_keys(self) -> frozenset[str]:
        with self._errors():
            found = self._scan()
        return frozenset(k[: -len(VERSION_SUFFIX)] if k.endswith(VERSION_SUFFIX) else k for k in found)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except _UNAVAILABLE as exc:
            raise CacheUnavailable(f"redis at {self._where()}: {type(exc).__name__}: {exc}") from exc
        except redis.exceptions.ResponseError as exc:
            if str(exc).startswith("BUSY"):  # a long script runs: no class of its own in redis-py
                raise CacheUnavailable(f"redis at {self._where()}: {exc}") from exc
            raise

    def _where(self) -> str:
        kwargs: dict[str, Any] = self._client.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


def _ttl_ms(ttl: float) -> int:
    # Redis rejects a non-positive expiry too; refuse it before any I/O, as MemoryCache does.
    if not ttl > 0 or math.isinf(ttl):
        raise ValueError(f"ttl must be positive and finite, got {ttl}")
    return max(1, math.ceil(ttl * 1000))  # never expire earlier than asked


def _envelope(value: bytes, stored_at: float) -> bytes:
    return _FORMAT + _STORED_AT.pack(stored_at) + bytes(value)


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)

