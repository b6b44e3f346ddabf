"""Cache conformance: values with a TTL (S2), per-key versions bumped by delete (S3, S4), and the
compare-and-set that closes the stale-set race (S3). Time passes through the kit (`advance`), so a
real server can wait for real; TTLs are short."""

from __future__ import annotations

import pytest

from kcverify.reference.ports import Cache
from tests.adapters.factories import CacheKit

TTL = 0.4


@pytest.fixture
def key(unique: str) -> str:
    return f"student:learning:{unique}"


def test_get_of_a_missing_key_is_none(cache: Cache, key: str) -> None:
    assert cache.get(key) is None
    assert cache.version(key) == 0


def test_set_then_get_returns_value_and_stored_at(cache_kit: CacheKit, key: str) -> None:
    cache = cache_kit.cache
    now = cache_kit.now()
    cache.set(key, b'{"purchases":[]}\x00\xff', TTL, now)
    entry = cache.get(key)
    assert entry is not None
    assert entry.value == b'{"purchases":[]}\x00\xff'
    assert entry.stored_at == now  # S2: the Age header is computed from it


def test_set_overwrites_value_and_stored_at(cache_kit: CacheKit, key: str) -> None:
    cache = cache_kit.cache
    cache.set(key, b"old", TTL, cache_kit.now())
    cache_kit.advance(TTL / 4)
    later = cache_kit.now()
    cache.set(key, b"new", TTL, later)
    entry = cache.get(key)
    assert entry is not None and (entry.value, entry.stored_at) == (b"new", later)


def test_s2_an_entry_expires_after_its_ttl(cache_kit: CacheKit, key: str) -> None:
    cache = cache_kit.cache
    cache.set(key, b"v", TTL, cache_kit.now())
    cache_kit.advance(TTL / 4)
    assert cache.get(key) is not None
    cache_kit.advance(TTL)
    assert cache.get(key) is None


@pytest.mark.needs_trait("manual_clock")
def test_s2_expiry_is_exact_at_stored_at_plus_ttl(cache_kit: CacheKit, key: str) -> None:
    """S2's 300 s: present until the instant stored_at + ttl, gone at it."""
    cache = cache_kit.cache
    cache.set(key, b"v", 300.0, cache_kit.now())
    cache_kit.advance(299.5)
    assert cache.get(key) is not None
    cache_kit.advance(0.5)
    assert cache.get(key) is None


@pytest.mark.parametrize("ttl", [0.0, -1.0])
def test_a_non_positive_ttl_is_refused(cache_kit: CacheKit, key: str, ttl: float) -> None:
    with pytest.raises(ValueError):
        cache_kit.cache.set(key, b"v", ttl, cache_kit.now())
    with pytest.raises(ValueError):
        cache_kit.cache.set_if_version(key, b"v", ttl, 0, cache_kit.now())
    assert cache_kit.cache.get(key) is None


def test_s4_delete_removes_the_value_and_bumps_the_version(cache_kit: CacheKit, key: str) -> None:
    cache = cache_kit.cache
    cache.set(key, b"v", TTL, cache_kit.now())
    before = cache.version(key)
    cache.delete(key)
    assert cache.get(key) is None
    assert cache.version(key) == before + 1


def test_delete_of_a_missing_key_still_bumps_the_version(cache: Cache, key: str) -> None:
    """An invalidation that finds nothing cached must still fence off readers already loading (S3)."""
    assert cache.version(key) == 0
    cache.delete(key)
    cache.delete(key)
    assert cache.version(key) == 2


def test_set_does_not_change_the_version(cache_kit: CacheKit, key: str) -> None:
    cache = cache_kit.cache
    cache.delete(key)
    cache.set(key, b"v", TTL, cache_kit.now())
    assert cache.set_if_version(key, b"w", TTL, 1, cache_kit.now())
    assert cache.version(key) == 1


def test_versions_are_per_key(cache: Cache, key: str) -> None:
    cache.delete(key)
    assert cache.version(key + ":other") == 0


def test_version_survives_expiry(cache_kit: CacheKit, key: str) -> None:
    cache = cache_kit.cache
    cache.delete(key)
    cache.set(key, b"v", TTL, cache_kit.now())
    cache_kit.advance(TTL * 1.5)
    assert cache.get(key) is None
    assert cache.version(key) == 1


def test_set_if_version_stores_while_the_version_holds(cache_kit: CacheKit, key: str) -> None:
    cache = cache_kit.cache
    version = cache.version(key)
    now = cache_kit.now()
    assert cache.set_if_version(key, b"fresh", TTL, version, now) is True
    entry = cache.get(key)
    assert entry is not None and (entry.value, entry.stored_at) == (b"fresh", now)
    # a second reader that saw the same version may store too: nothing was invalidated in between
    assert cache.set_if_version(key, b"fresh too", TTL, version, cache_kit.now()) is True


def test_s3_set_if_version_fails_after_an_invalidation(cache_kit: CacheKit, key: str) -> None:
    """S3's stale-set race: a read loads the old rows, the purchase commits and PURCHASE_CREATED
    invalidates, then the read tries to store: refused, so the old list is not cached for 300 s."""
    cache = cache_kit.cache
    seen = cache.version(key)  # the slow read starts: version first, then the database
    cache.delete(key)  # the invalidation lands while it loads
    assert cache.set_if_version(key, b"stale", TTL, seen, cache_kit.now()) is False
    assert cache.get(key) is None
    fresh = cache.version(key)  # the next read
    assert cache.set_if_version(key, b"fresh", TTL, fresh, cache_kit.now()) is True
    entry = cache.get(key)
    assert entry is not None and entry.value == b"fresh"


def test_set_if_version_with_a_future_version_fails(cache: Cache, key: str, cache_kit: CacheKit) -> None:
    assert cache.set_if_version(key, b"v", TTL, 5, cache_kit.now()) is False
    assert cache.get(key) is None
