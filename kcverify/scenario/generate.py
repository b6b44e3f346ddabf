"""Checkout metadata drawn from the metadata contract (contracts/schemas/purchase-metadata.schema.json),
for scenarios that say `create_payment: {generate: {...}}` instead of giving a fixed document.

One fixed document hides every bug that needs another one: extra keys, nulls under them, text outside
ASCII, a tier other than 10. The generator reads the schema (required and optional properties, enums,
ranges, formats, patterns, nested objects) and draws a document that is valid for P1 unless the
scenario patches it, covering what the options ask for:

- `extra_keys` (default true): one to three keys the schema does not list (they must be kept verbatim);
- `nulls` (default true): one of those extra keys holds null (nulls sit under extra keys: every
  property the schema lists is typed and may not be null);
- `unicode` (default true): the text holds characters outside the BMP, combining marks and
  right-to-left script, each at least once (in the required free-text field, and at random elsewhere);
- `optional`: `any` (default: each optional property present or absent at random), `all`, `none`;
- `tier`: the sessionCount: `any` (default: the schema's bounds, the usual packages 10/20/30, or any
  value in range), one integer, or a list to draw from.

The drawing is written once against a small `Source` (integers and choices) and runs two ways:
`draw(options, seed)` with a `random.Random` seeded from the run's `--seed`, the scenario and the step
(`seed_for`), which is what a run uses: reproducible by the seed alone, independent of the Hypothesis
version installed; and `strategy(options)`, the same generator as a Hypothesis strategy, for property
tests that want shrinking."""

from __future__ import annotations

import calendar
import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:  # imported where drawn: `kcverify run` and `explore` need only the seeded source
    from hypothesis import strategies as st

from kcverify import contracts

SCHEMA = "schemas/purchase-metadata"
TIER_FIELD = "sessionCount"
# The packages usually sold; `tier: any` draws them, the schema's bounds, or any value in range.
TYPICAL_TIERS = (10, 20, 30)
OPTIONAL_MODES = ("any", "all", "none")

# IANA zones with unusual offsets (half and quarter hours, +13:45, a 30-minute DST), all in tzdata.
TIMEZONES = ("Europe/Berlin", "UTC", "America/Argentina/Buenos_Aires", "Asia/Kolkata", "Asia/Kathmandu",
             "Pacific/Chatham", "America/St_Johns", "Australia/Lord_Howe", "Pacific/Kiritimati",
             "America/Los_Angeles")
ASCII_WORDS = ("group", "small", "conversation", "online", "in person", "Beginner A1", "exam-prep", "1:1")
NON_BMP = ("\U0001d11e", "\U0001f393", "\U0001f600", "\U0002070e")  # 𝄞 🎓 😀 𠜎
COMBINING = ("e\u0301", "n\u0303", "a\u0308", "o\u0302\u0323")  # decomposed é ñ ä ộ
RTL = ("\u05e9\u05dc\u05d5\u05dd", "\u0645\u0631\u062d\u0628\u0627", "\u200f\u05e2\u05d1\u05e8\u05d9\u05ea")
OTHER_UNICODE = ("K\u00f6ln", "\u65e5\u672c\u8a9e", "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac", "Stra\u00dfe")
UNICODE_CLASSES = (NON_BMP, COMBINING, RTL)
EXTRA_ASCII_KEYS = ("promoCode", "referrer", "giftNote", "seatPreference", "marketingOptIn", "notes")
EXTRA_UNICODE_KEYS = ("notiz\u00dcbersicht", "\u5907\u6ce8", "\u0645\u0644\u0627\u062d\u0638\u0629",
                      "\U0001f393level")

T = TypeVar("T")


class Source(Protocol):
    """Where the randomness comes from: a seeded `random.Random`, or a Hypothesis `draw`."""

    def integer(self, low: int, high: int) -> int: ...

    def choice(self, options: Sequence[T]) -> T: ...


class _RandomSource:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def integer(self, low: int, high: int) -> int:
        return self._rng.randint(low, high)

    def choice(self, options: Sequence[T]) -> T:
        return options[self._rng.randrange(len(options))]


class _HypothesisSource:
    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
        self._draw = draw

    def integer(self, low: int, high: int) -> int:
        from hypothesis import strategies as st

        value: int = self._draw(st.integers(low, high))
        return value

    def choice(self, options: Sequence[T]) -> T:
        from hypothesis import strategies as st

        return options[self._draw(st.integers(0, len(options) - 1))]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Options:
    """What a `generate:` mapping asks for (see the module docstring)."""

    extra_keys: bool = True
    nulls: bool = True
    unicode: bool = True
    optional: str = "any"
    tier: str | int | tuple[int, ...] = "any"

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> Options:
        tier = args.get("tier", "any")
        return cls(extra_keys=bool(args.get("extra_keys", True)), nulls=bool(args.get("nulls", True)),
                   unicode=bool(args.get("unicode", True)), optional=str(args.get("optional", "any")),
                   tier=tuple(tier) if isinstance(tier, list | tuple) else tier)

    def sold_only(self, sold: Sequence[int]) -> Options:
        """These options for a system that sells only the sessionCounts `sold` (its profile's declared
        `conventions.tiers`; empty: any count the schema allows, as the rules say): `any` draws from them,
        and a tier it does not sell becomes the closest one it does (the scenario asked for a tier other
        than the usual one; this is the nearest such system allows)."""
        if not sold:
            return self
        chosen = self.tier if isinstance(self.tier, tuple) else (self.tier,)
        if chosen == ("any",):
            return replace(self, tier=tuple(sorted(sold)))
        closest = tuple(dict.fromkeys(min(sorted(sold), key=lambda s: abs(s - int(t))) for t in chosen))
        return replace(self, tier=closest[0] if len(closest) == 1 else closest)

    def problem(self) -> str | None:
        """Why these options cannot be met, or None (the loader reports it on the scenario's line)."""
        if self.optional not in OPTIONAL_MODES:
            return f"optional must be one of {', '.join(OPTIONAL_MODES)}"
        if self.nulls and not self.extra_keys:
            return "nulls sit under extra keys (a property the schema lists may not be null): drop 'nulls' " \
                   "or set 'extra_keys: true'"
        low, high = tier_range()
        tiers = self.tier if isinstance(self.tier, tuple) else (self.tier,)
        for tier in tiers:
            if tier == "any" and not isinstance(self.tier, tuple):
                continue
            if isinstance(tier, bool) or not isinstance(tier, int) or not low <= tier <= high:
                return (f"tier must be 'any', or integers from {low} to {high} (the schema's sessionCount); "
                        "an invalid value is written with metadata_patch")
        return None


def _schema() -> dict[str, Any]:
    return contracts.schema(SCHEMA)


def tier_range() -> tuple[int, int]:
    prop = _schema()["properties"][TIER_FIELD]
    return int(prop["minimum"]), int(prop["maximum"])


def seed_for(run_seed: int, scenario: str, step: int) -> int:
    """The seed of one step's document: the run's seed, the scenario's name and the step's number, so
    that adding a scenario or a step elsewhere does not change this document, and `--seed` does."""
    digest = hashlib.sha256(f"{run_seed}\0{scenario}\0{step}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def draw(options: Options, seed: int) -> dict[str, Any]:
    """The document for `seed`: the same seed gives the same document, on any machine."""
    return generate(_RandomSource(random.Random(seed)), options)


def strategy(options: Options | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """The same generator as a Hypothesis strategy."""
    from hypothesis import strategies as st

    chosen = options or Options()

    @st.composite
    def metadata(draw_: st.DrawFn) -> dict[str, Any]:
        return generate(_HypothesisSource(draw_), chosen)

    result: st.SearchStrategy[dict[str, Any]] = metadata()
    return result


# --- drawing ---------------------------------------------------------------------------------------------


def generate(source: Source, options: Options) -> dict[str, Any]:
    schema = _schema()
    required = set(schema["required"])
    document: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        if name not in required and not _include(source, options):
            continue
        document[name] = _value(source, name, prop, options, top=True)
    if options.unicode:
        anchor = _unicode_anchor(schema)
        document[anchor] = _all_unicode_classes(source, str(document[anchor]))
    if options.extra_keys:
        document.update(_extra(source, options, set(schema["properties"]), options.nulls))
    return document


def _include(source: Source, options: Options) -> bool:
    if options.optional == "all":
        return True
    if options.optional == "none":
        return False
    return source.integer(0, 1) == 1


def _value(source: Source, name: str, prop: Mapping[str, Any], options: Options, *, top: bool = False) -> Any:
    """A valid value for one property, by what its schema says."""
    if "enum" in prop:
        return source.choice(prop["enum"])
    kind = prop.get("type")
    if kind == "integer":
        if top and name == TIER_FIELD:
            return _tier(source, options)
        low, high = int(prop.get("minimum", -(2**31))), int(prop.get("maximum", 2**31))
        return source.choice((low, high, source.integer(low, high)))
    if kind == "string":
        if prop.get("format") == "date":
            return _date(source)
        if prop.get("format") == "iana-timezone":
            return source.choice(TIMEZONES)
        if prop.get("pattern") == r"^([01]\d|2[0-3]):[0-5]\d$":
            return _time(source)
        if "pattern" in prop or "format" in prop:
            raise ValueError(f"the generator does not know how to draw {name!r} ({prop})")
        return _text(source, int(prop.get("minLength", 0)), options.unicode)
    if kind == "object":
        nested: dict[str, Any] = {}
        for key, sub in prop.get("properties", {}).items():
            if options.optional == "all" or source.integer(0, 3) > 0:
                nested[key] = _value(source, key, sub, options)
        if options.extra_keys and prop.get("additionalProperties", True) is not False and source.integer(0, 1):
            nested.update(_extra(source, options, set(prop.get("properties", {})), nulls=False))
        return nested
    raise ValueError(f"the generator does not know how to draw {name!r} ({prop})")


def _tier(source: Source, options: Options) -> int:
    if isinstance(options.tier, int):
        return options.tier
    if isinstance(options.tier, tuple):
        return source.choice(options.tier)
    low, high = tier_range()
    if source.integer(0, 1):
        return source.choice((low, high, *TYPICAL_TIERS))
    return source.integer(low, high)


def _date(source: Source) -> str:
    year = source.integer(2000, 2099)
    month = source.choice((1, 2, 2, 12, source.integer(1, 12)))  # February and year ends more often
    last = calendar.monthrange(year, month)[1]
    day = source.choice((1, last, source.integer(1, last)))
    return f"{year:04d}-{month:02d}-{day:02d}"


def _time(source: Source) -> str:
    hour = source.choice((0, 23, source.integer(0, 23)))
    minute = source.choice((0, 59, source.integer(0, 59)))
    return f"{hour:02d}:{minute:02d}"


def _text(source: Source, min_length: int, unicode: bool) -> str:
    pools: tuple[Sequence[str], ...] = (ASCII_WORDS, *UNICODE_CLASSES, OTHER_UNICODE) if unicode else (ASCII_WORDS,)
    count = source.integer(max(min_length, 0), 3)
    if count == 0:
        return ""
    return " ".join(source.choice(source.choice(pools)) for _ in range(count))


def _unicode_anchor(schema: Mapping[str, Any]) -> str:
    """The first required free-text property: where every unicode class is placed for sure."""
    for name in schema["required"]:
        prop = schema["properties"][name]
        if prop.get("type") == "string" and not {"enum", "pattern", "format"} & set(prop):
            return str(name)
    raise ValueError("the metadata schema has no required free-text property")


def _all_unicode_classes(source: Source, base: str) -> str:
    pieces = [source.choice(pool) for pool in UNICODE_CLASSES]
    order = [pieces.pop(source.integer(0, len(pieces) - 1)) for _ in range(len(pieces))]
    return "-".join([base or source.choice(ASCII_WORDS), *order])


def _extra(source: Source, options: Options, taken: set[str], nulls: bool) -> dict[str, Any]:
    """One to three keys the schema does not list, with JSON values of every kind; with `nulls`, the
    first holds null."""
    pool = [k for k in (*EXTRA_ASCII_KEYS, *(EXTRA_UNICODE_KEYS if options.unicode else ())) if k not in taken]
    extra: dict[str, Any] = {}
    for i in range(source.integer(1, 3)):
        key = pool.pop(source.integer(0, len(pool) - 1))
        extra[key] = None if nulls and i == 0 else _json_value(source, options, depth=0)
    return extra


def _json_value(source: Source, options: Options, depth: int) -> Any:
    """Any JSON value (null only with `nulls`), nested at most two levels."""
    kind = source.integer(0, 6 if depth < 2 else 4)
    if kind == 0 or (kind == 4 and not options.nulls):
        return _text(source, 0, options.unicode)
    if kind == 1:
        return source.choice((0, -1, 1, 2**31 - 1, 2**53, source.integer(-1000, 1000)))
    if kind == 2:
        return source.choice((True, False))
    if kind == 3:
        return source.choice((0.5, -12.25, 1e-3))
    if kind == 4:
        return None
    if kind == 5:
        return [_json_value(source, options, depth + 1) for _ in range(source.integer(0, 2))]
    return {source.choice(ASCII_WORDS): _json_value(source, options, depth + 1) for _ in range(source.integer(0, 2))}
