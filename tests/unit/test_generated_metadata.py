"""Generated checkout metadata: every document is valid for P1; the same seed draws the same document and
another seed another one; the options are honoured; a scenario's document changes with `--seed` and is
shown whole in a failure; and the default library draws from the generator in at least a third of its
scenarios and, at every seed, covers extra keys, nulls under them, unicode of each hard kind, every
tier boundary and the usual packages, optional properties present and absent, and a `schedule`."""

from __future__ import annotations

import textwrap
import unicodedata
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kcverify import contracts
from kcverify.checks import select
from kcverify.core.errors import InputError
from kcverify.engine.runner import Runner, RunOptions
from kcverify.scenario import generate
from kcverify.scenario.loader import load_scenario, load_scenarios
from kcverify.targets.embedded import EmbeddedTarget
from kcverify.targets.registry import TargetOptions

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
SCHEMA = contracts.schema(generate.SCHEMA)
OPTIONAL = set(SCHEMA["properties"]) - set(SCHEMA["required"])

options_strategy = st.builds(
    generate.Options, extra_keys=st.booleans(), nulls=st.booleans(), unicode=st.booleans(),
    optional=st.sampled_from(generate.OPTIONAL_MODES),
    tier=st.one_of(st.just("any"), st.integers(1, 200), st.lists(st.integers(1, 200), min_size=1).map(tuple)),
).filter(lambda o: o.problem() is None)


def strings(value: Any) -> Iterator[str]:
    """Every key and string value in a JSON document."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def extra(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in SCHEMA["properties"]}


def has_non_bmp(text: str) -> bool:
    return any(ord(c) > 0xFFFF for c in text)


def has_combining(text: str) -> bool:
    return any(unicodedata.combining(c) for c in text)


def has_rtl(text: str) -> bool:
    return any(unicodedata.bidirectional(c) in ("R", "AL") for c in text)


# --- the generator -------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(options_strategy, st.data())
def test_every_generated_document_is_valid_for_p1(options: generate.Options, data: st.DataObject) -> None:
    document = data.draw(generate.strategy(options))
    assert contracts.validate(generate.SCHEMA, document) == []


@pytest.mark.parametrize("seed", range(200))
def test_drawn_documents_are_valid_and_json_clean(seed: int) -> None:
    document = generate.draw(generate.Options(), seed)
    assert contracts.validate(generate.SCHEMA, document) == []
    # nothing a store cannot keep: no NUL (PostgreSQL jsonb), no lone surrogate (not UTF-8)
    for text in strings(document):
        assert "\0" not in text
        text.encode("utf-8")


def test_the_same_seed_draws_the_same_document_and_other_seeds_others() -> None:
    options = generate.Options()
    assert generate.draw(options, 7) == generate.draw(options, 7)
    drawn = {repr(generate.draw(options, seed)) for seed in range(50)}
    assert len(drawn) == 50


def test_the_seed_of_a_step_depends_on_the_run_seed_the_scenario_and_the_step() -> None:
    base = generate.seed_for(0, "happy-path", 2)
    assert base == generate.seed_for(0, "happy-path", 2)
    assert len({base, generate.seed_for(1, "happy-path", 2), generate.seed_for(0, "cache-down", 2),
                generate.seed_for(0, "happy-path", 3)}) == 4


@pytest.mark.parametrize("seed", range(40))
def test_the_default_options_give_extra_keys_a_null_and_every_hard_kind_of_unicode(seed: int) -> None:
    document = generate.draw(generate.Options(), seed)
    keys = extra(document)
    assert 1 <= len(keys) <= 3 and None in keys.values()
    text = "".join(strings(document))
    assert has_non_bmp(text) and has_combining(text) and has_rtl(text)


@pytest.mark.parametrize("seed", range(40))
def test_plain_options_give_the_schema_fields_only_in_ascii(seed: int) -> None:
    plain = generate.Options(extra_keys=False, nulls=False, unicode=False, optional="none")
    document = generate.draw(plain, seed)
    assert set(document) == set(SCHEMA["required"])
    assert all(text.isascii() for text in strings(document))


@pytest.mark.parametrize("seed", range(40))
def test_optional_all_gives_every_optional_property_and_a_schedule(seed: int) -> None:
    document = generate.draw(generate.Options(optional="all", nulls=False), seed)
    assert set(document) >= OPTIONAL
    assert isinstance(document["schedule"], dict) and document["schedule"]
    assert None not in extra(document).values()


def test_the_tier_option_pins_or_chooses_and_any_reaches_the_bounds_and_the_packages() -> None:
    low, high = generate.tier_range()
    assert (low, high) == (SCHEMA["properties"]["sessionCount"]["minimum"],
                           SCHEMA["properties"]["sessionCount"]["maximum"])
    assert {generate.draw(generate.Options(tier=200), s)["sessionCount"] for s in range(10)} == {200}
    assert {generate.draw(generate.Options(tier=(1, 30)), s)["sessionCount"] for s in range(40)} == {1, 30}
    drawn = {generate.draw(generate.Options(), s)["sessionCount"] for s in range(300)}
    assert {low, high, *generate.TYPICAL_TIERS} <= drawn
    assert drawn - {low, high, *generate.TYPICAL_TIERS}  # and values in between


def test_every_time_zone_the_generator_draws_is_a_real_iana_zone() -> None:
    for name in generate.TIMEZONES:
        zoneinfo.ZoneInfo(name)


@pytest.mark.parametrize(("options", "words"), [
    (generate.Options(extra_keys=False), "nulls sit under extra keys"),
    (generate.Options(tier=0), "tier must be"),
    (generate.Options(tier=(10, 201)), "tier must be"),
    (generate.Options(tier="10"), "tier must be"),
])
def test_options_that_cannot_be_met_are_refused(options: generate.Options, words: str) -> None:
    assert words in (options.problem() or "")


# --- in scenarios --------------------------------------------------------------------------------------


def write(tmp_path: Path, step: str) -> Path:
    path = tmp_path / "g.yaml"
    path.write_text(textwrap.dedent(f"""\
        title: T
        covers: [W4]
        steps:
          - {step}
          - confirm: {{payment: p1}}
          - settle: {{}}
        """), encoding="utf-8")
    return path


@pytest.mark.parametrize(("step", "words"), [
    ("create_payment: {as: p1, generate: {}, metadata: {a: 1}}", "g.yaml:4:40: step 1: 'metadata' gives the document"),
    ("create_payment: {as: p1, generate: {extra_keys: false}}", "generate: nulls sit under extra keys"),
    ("create_payment: {as: p1, generate: {tier: 0}}", "generate: tier must be"),
    ("create_payment: {as: p1, generate: {tiers: any}}", "tiers"),
])
def test_the_loader_refuses_a_generate_it_cannot_meet_with_one_line(tmp_path: Path, step: str, words: str) -> None:
    with pytest.raises(InputError) as caught:
        load_scenario(write(tmp_path, step))
    assert words in caught.value.render()
    assert "\n" not in caught.value.render()


def failure_message(path: Path, seed: int) -> str:
    built = TargetOptions(defects=frozenset({"tier-from-package-table"}))
    runner = Runner(EmbeddedTarget.from_options(built), options=RunOptions(seed=seed), checks=select())
    [result] = runner.run([load_scenario(path)]).scenarios
    [failure] = [f for f in result.failures if f.check == "metadata"]
    return failure.message


def test_a_failure_shows_the_generated_document_and_the_seed_reproduces_it(tmp_path: Path) -> None:
    path = write(tmp_path, "create_payment: {as: p1, generate: {tier: [1, 2, 3, 199, 200]}}")
    first = failure_message(path, 0)
    assert "the checkout metadata was generated: {" in first
    assert first == failure_message(path, 0)  # the same seed, the same document
    assert first != failure_message(path, 1)  # another seed, another document


# --- the default library -------------------------------------------------------------------------------


def library_documents(seed: int) -> list[dict[str, Any]]:
    """What the library's generated create_payment steps draw at `seed`, as the engine draws it."""
    documents = []
    for scenario in load_scenarios([SCENARIOS]):
        for step in scenario.steps:
            if step.kind == "create_payment" and "generate" in step.args:
                options = generate.Options.from_args(step.args["generate"])
                documents.append(generate.draw(options, generate.seed_for(seed, scenario.name, step.number)))
    return documents


def test_at_least_a_third_of_the_library_draws_its_metadata_from_the_generator() -> None:
    scenarios = load_scenarios([SCENARIOS])
    drawing = [s for s in scenarios
               if any(step.kind == "create_payment" and "generate" in step.args for step in s.steps)]
    assert 3 * len(drawing) >= len(scenarios)


@pytest.mark.parametrize("seed", range(4))
def test_the_library_covers_every_hard_case_at_every_seed(seed: int) -> None:
    documents = library_documents(seed)
    low, high = generate.tier_range()
    tiers = {d["sessionCount"] for d in documents}
    assert {low, high} <= tiers and set(generate.TYPICAL_TIERS) & tiers
    assert any(extra(d) for d in documents)
    assert any(None in extra(d).values() for d in documents)
    text = "".join(t for d in documents for t in strings(d))
    assert has_non_bmp(text) and has_combining(text) and has_rtl(text)
    for name in OPTIONAL:
        assert any(name in d for d in documents) and any(name not in d for d in documents)
    assert any(isinstance(d.get("schedule"), dict) for d in documents)


def test_the_library_draws_other_documents_at_another_seed() -> None:
    assert library_documents(0) == library_documents(0)
    assert library_documents(0) != library_documents(1)


def test_a_system_that_sells_only_some_tiers_gets_those_and_the_closest_for_an_asked_one() -> None:
    from kcverify.scenario.generate import Options, draw

    sold = (10, 20, 30)
    assert Options().sold_only(()) == Options()  # the rules' own: any count the schema allows
    for seed in range(30):
        assert draw(Options().sold_only(sold), seed)["sessionCount"] in sold
    assert draw(Options(tier=1).sold_only(sold), 0)["sessionCount"] == 10
    assert draw(Options(tier=200).sold_only(sold), 0)["sessionCount"] == 30
    assert Options(tier=(1, 12, 29)).sold_only(sold).tier == (10, 30)
