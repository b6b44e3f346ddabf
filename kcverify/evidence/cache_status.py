"""Reading a `Cache-Status` header (RFC 9211) as the structured field it is (RFC 8941): a list of caches,
each a name followed by `;` parameters (`hit`, `fwd=miss`, `stored`, `ttl=300`, ...), with or without
spaces around the `;`. `student-service; hit` and `student-service;hit;ttl=120` say the same thing; a
substring test on "; hit" told them apart."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CacheStatus:
    """One member of the list: the cache's name and its parameters (a bare parameter is True)."""

    cache: str
    params: dict[str, str | bool] = field(default_factory=dict)

    @property
    def hit(self) -> bool:
        return self.params.get("hit") is True or self.params.get("hit") == "?1"

    @property
    def stored(self) -> bool:
        return self.params.get("stored") is True or self.params.get("stored") == "?1"


def parse(value: str | None) -> list[CacheStatus]:
    """The members of a Cache-Status value, in order; [] for none. Lenient: a member that is not well
    formed is read as far as it goes (the contract check judges the header's form)."""
    members = []
    for member in (value or "").split(","):
        name, *params = (part.strip() for part in member.split(";"))
        if not name:
            continue
        parsed: dict[str, str | bool] = {}
        for param in params:
            key, sep, val = param.partition("=")
            if key.strip():
                parsed[key.strip().lower()] = val.strip().strip('"') if sep else True
        members.append(CacheStatus(name.strip('"'), parsed))
    return members


def ours(value: str | None, cache_name: str) -> list[CacheStatus]:
    """The members written by the cache named `cache_name` (the service's own), else every member."""
    members = parse(value)
    named = [m for m in members if m.cache.startswith(cache_name)]
    return named or members


def is_hit(value: str | None, cache_name: str) -> bool:
    return any(m.hit for m in ours(value, cache_name))


def was_stored(value: str | None, cache_name: str) -> bool:
    return any(m.stored for m in ours(value, cache_name))
