"""What only the Redis cache promises (the port suite covers the rest): a dead or hung Redis is a
CacheUnavailable well within a second (S5: readers fall back at once), stored_at round-trips exactly,
foreign values read as misses, TTLs become milliseconds rounded up, and the helpers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import redis

from kcverify.core.errors import CacheUnavailable
from kcverify.reference.adapters.redis_cache import RedisCache
from tests.adapters.conftest import Services

pytestmark = pytest.mark.integration


@pytest.fixture
def url(services: Services) -> str:
    return services.address("redis")


@pytest.fixture
def cache(url: str, unique: str) -> Iterator[RedisCache]:
    prefix = f"kcverify-test:{unique}:"
    made = RedisCache(url, prefix=prefix)
    yield made
    made.close()
    client = redis.Redis.from_url(url)
    for name in client.scan_iter(match=prefix + "*"):
        client.delete(name)
    client.close()


def _every_call(cache: RedisCache) -> list[object]:
    return [lambda: cache.get("k"), lambda: cache.version("k"), lambda: cache.set("k", b"v", 1, 0),
            lambda: cache.set_if_version("k", b"v", 1, 0, 0), lambda: cache.delete("k")]


def test_a_dead_redis_is_cache_unavailable_at_once() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        cache = RedisCache(f"redis://127.0.0.1:{port}/0")
        for call in _every_call(cache):
            started = time.monotonic()
            with pytest.raises(CacheUnavailable):
                call()  # type: ignore[operator]
            assert time.monotonic() - started < 0.5


def test_a_hung_redis_is_cache_unavailable_within_the_socket_timeout() -> None:
    """A server that accepts connections but never answers (SIGSTOPped, overloaded)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)  # the kernel completes handshakes; nobody reads
        cache = RedisCache(f"redis://127.0.0.1:{sock.getsockname()[1]}/0", socket_timeout=0.2)
        started = time.monotonic()
        with pytest.raises(CacheUnavailable):
            cache.get("k")
        assert time.monotonic() - started < 0.9  # one timeout, no retries


def test_stored_at_round_trips_exactly(cache: RedisCache) -> None:
    for now in (0.1, 1_767_603_600.123456789, 1e-300, 2.0**60 + 0.5):
        cache.set("k", b"v", 5, now)
        entry = cache.get("k")
        assert entry is not None and entry.stored_at == now


def test_a_value_not_written_by_the_cache_reads_as_a_miss(cache: RedisCache, url: str, unique: str) -> None:
    client = redis.Redis.from_url(url)
    client.set(f"kcverify-test:{unique}:k", b"plain")
    client.close()
    assert cache.get("k") is None


def test_ttl_is_milliseconds_rounded_up(cache: RedisCache, url: str, unique: str) -> None:
    cache.set("k", b"v", 0.0004, 0.0)
    cache.set("j", b"v", 300, 0.0)
    client = redis.Redis.from_url(url)
    assert client.pttl(f"kcverify-test:{unique}:k") in (-2, 0, 1)  # 0.4 ms -> 1 ms, likely gone already
    assert 299_000 < client.pttl(f"kcverify-test:{unique}:j") <= 300_000
    client.close()


def test_keys_and_flush(cache: RedisCache) -> None:
    cache.set("b", b"v", 5, 0)
    cache.set("a", b"v", 5, 0)
    cache.delete("gone")
    assert cache.keys() == ["a", "b"]
    cache.flush()
    assert cache.keys() == []
    assert (cache.version("a"), cache.version("b"), cache.version("gone")) == (1, 1, 2)


def test_the_prefix_isolates_two_caches(cache: RedisCache, url: str, unique: str) -> None:
    other = RedisCache(url, prefix=f"kcverify-test:{unique}:other:")
    try:
        cache.set("k", b"mine", 5, 0)
        assert other.get("k") is None
        other.delete("k")
        assert cache.version("k") == 0
    finally:
        other.close()
