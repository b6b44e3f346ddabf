"""The embedded cache (`MemoryCache`): a dict with TTLs read from a Clock, and per-key versions.

An entry stored at `now` with `ttl` is gone once `clock.now() >= now + ttl` (so "advance 300 s" on a
manual clock expires a 300 s entry). Every key has a version, 0 until its first `delete`; `delete`
bumps it whether or not a value was stored, and `set_if_version` stores only while the version is
the one the reader saw before loading from the database (S3's stale-set race). Versions outlive the
values they guard (TTL expiry does not reset them). A lock makes each call atomic."""

from __future__ import annotations

import threading

from kcverify.core.clock import Clock
from kcverify.reference.ports import CacheEntry


class MemoryCache:
    """The Cache port in process. Helpers beyond the port: `flush()`, `keys()`."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, tuple[CacheEntry, float]] = {}  # key -> (entry, expires_at)
        self._versions: dict[str, int] = {}

    # --- Cache --------------------------------------------------------------------------------------

    def get(self, key: str) -> CacheEntry | None:
        with self._lock:
            return self._live(key)

    def version(self, key: str) -> int:
        with self._lock:
            return self._versions.get(key, 0)

    def set_if_version(self, key: str, value: bytes, ttl: float, version: int, now: float) -> bool:
        _check_ttl(ttl)
        with self._lock:
            if self._versions.get(key, 0) != version:
                return False
            self._store(key, value, ttl, now)
            return True

    def set(self, key: str, value: bytes, ttl: float, now: float) -> None:
        _check_ttl(ttl)
        with self._lock:
            self._store(key, value, ttl, now)

    def delete(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)
            self._versions[key] = self._versions.get(key, 0) + 1

    # --- helpers beyond the port --------------------------------------------------------------------

    def flush(self) -> None:
        """Drops every value and bumps the version of every key ever seen: like deleting them all, so
        a reader that loaded before the flush cannot store afterwards."""
        with self._lock:
            for key in set(self._values) | set(self._versions):
                self._versions[key] = self._versions.get(key, 0) + 1
            self._values.clear()

    def keys(self) -> list[str]:
        """The keys holding a live (unexpired) value, sorted."""
        with self._lock:
            return sorted(key for key in list(self._values) if self._live(key) is not None)

    def expires_in(self, key: str) -> float | None:
        """Seconds until `key`'s live value expires; None when there is none (what Redis' PTTL tells a
        verifier looking at a real cache: the embedded target shows its key the same way)."""
        with self._lock:
            if self._live(key) is None:
                return None
            return self._values[key][1] - self._clock.now()

    # --- internals ----------------------------------------------------------------------------------

    def _store(self, key: str, value: bytes, ttl: float, now: float) -> None:
        self._values[key] = (CacheEntry(bytes(value), now), now + ttl)

    def _live(self, key: str) -> CacheEntry | None:
        stored = self._values.get(key)
        if stored is None:
            return None
        entry, expires_at = stored
        if self._clock.now() >= expires_at:
            del self._values[key]
            return None
        return entry


def _check_ttl(ttl: float) -> None:
    # Redis rejects a non-positive expiry too; an entry that is born expired is a caller's bug.
    if not ttl > 0:
        raise ValueError(f"ttl must be positive, got {ttl}")
