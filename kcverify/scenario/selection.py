"""`-k` selection of scenarios: by name (a substring of it) or by tag (the whole tag), `not:WORD`
excludes. The loader applies it before it validates a file, from the file's `name:` and `tags:` alone,
so a broken file that is not selected does not stop the run (docs/scenarios.md, "Selecting")."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Selection:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @classmethod
    def parse(cls, expressions: Iterable[str]) -> Selection:
        """Each expression is one or more comma-separated terms; `not:WORD` excludes WORD."""
        terms = [t.strip() for e in expressions for t in e.split(",") if t.strip()]
        return cls(tuple(t for t in terms if not t.startswith("not:")),
                   tuple(t[4:] for t in terms if t.startswith("not:")))

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def matches(self, name: str, tags: Sequence[str]) -> bool:
        def hit(term: str) -> bool:
            return term in name or term in tags

        return (not self.include or any(hit(t) for t in self.include)) and not any(hit(t) for t in self.exclude)

    def describe(self) -> str:
        return " ".join([*self.include, *(f"not:{t}" for t in self.exclude)])
