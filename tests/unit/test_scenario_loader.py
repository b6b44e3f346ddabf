"""The scenario loader: valid files become frozen Scenarios with defaults filled in; every kind of bad
input is one InputError whose `file:line:col: message (hint)` points at the exact key or value, with
"did you mean" for misspelt names. The schema's enums must agree with the reference they name."""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path

import pytest

from kcverify.contracts import contracts_dir, schema
from kcverify.core.errors import InputError
from kcverify.reference.bootstrap import COMPONENTS
from kcverify.reference.domain import DeadLetterReason
from kcverify.reference.instrument import CRASH_POINTS
from kcverify.scenario.loader import load_scenario, load_scenarios, port_operations
from kcverify.scenario.model import STEP_CAPABILITIES, FrozenDict, Scenario
from kcverify.spec.names import crash_point_owner

HEAD = "title: T\ncovers: [P1]\nsteps:\n"  # steps then start on line 4


def write(directory: Path, text: str, name: str = "s.yaml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def steps(directory: Path, *lines: str, name: str = "s.yaml") -> Path:
    """A file with the minimal header and these step lines (line 4 onwards)."""
    return write(directory, HEAD + "".join(f"  - {line}\n" for line in lines), name)


def error_of(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        load_scenario(path)
    return caught.value.render()


EVERY_KIND = """\
name: every-kind
title: Every step kind once
description: |
  Exercises the whole vocabulary.
covers: [P3, W6, S3]
tags: [smoke, metadata]
requires: [read_cache]
freshness_bound: 1
steps:
  - create_payment: {as: p1, metadata_patch: {classTime: 18:30, startDate: 2026-02-02, timezone: null}}
  - create_payment:
      as: p2
      student: s2
      course: c2
      amount_cents: 19900
      currency: USD
      metadata: {startDate: "2026-03-02", classTime: "09:00", classTypeId: x, scheduleType: daily, sessionCount: 5}
      expect: {status: 201}
      note: a second purchase
  - confirm: {payment: p1, times: 2, expect: {status: 200, payment_status: succeeded}}
  - confirm: {payment: p2, status: failed, signed: false, body: {providerPaymentId: x}}
  - publish: {payment: p1, copies: 3}
  - publish: {raw: "not json", key: s1}
  - publish: {forged: {student: s1, course: c9}}
  - run: {component: payment-relay, times: 2, expect: {created_events: {count: 0}}}
  - crash: {at: worker.after_commit}
  - kill: {component: course-relay}
  - stop: {component: cache-invalidator}
  - restart: {component: purchase-worker}
  - fail: {resource: payments_db, times: 3, op: find_succeeded}
  - read: {student: s1, expect: {status: 200, shows: [p1], purchases: 1, cache: miss}}
  - begin_read: {student: s1, as: r1}
  - finish_read: {read: r1, expect: {shows: [p1]}}
  - advance_clock: {seconds: 301}
  - settle: {timeout: 30, expect: {purchases: {payment: p1, count: 1}}}
  - invalidate_cache: {student: s1, expect: {status: 204}}
  - replay_dlq: {expect: {replayed: 1}}
  - wait: {seconds: 1.5}
  - expect:
      purchases: {count: 1}
      dlq: {count: 2, reason: schema_violation, attempts: 1}
      payment: {payment: p2, status: failed}
      created_events: {payment: p1, count: 1}
      note: the end
"""


# --- valid files -------------------------------------------------------------------------------------


def test_every_step_kind_loads_with_positions_and_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, EVERY_KIND, "every.yaml")
    scenario = load_scenario(path)

    assert scenario.name == "every-kind"
    assert scenario.title == "Every step kind once"
    assert scenario.description == "Exercises the whole vocabulary.\n"
    assert scenario.covers == ("P3", "W6", "S3")
    assert scenario.tags == ("smoke", "metadata")
    assert scenario.requires == ("read_cache",)
    assert scenario.freshness_bound == 1.0 and isinstance(scenario.freshness_bound, float)
    assert scenario.path == str(path)
    kinds = {step.kind for step in scenario.steps}
    assert kinds == set(schema("schemas/scenario")["$defs"]["step"]["properties"])

    first, second = scenario.steps[0], scenario.steps[1]
    assert (first.number, first.line, first.col) == (1, 10, 5)
    assert (second.number, second.line, second.col) == (2, 11, 5)
    # schema defaults are filled in; YAML 1.2 scalars keep checkout metadata as strings
    assert first.args == {"as": "p1", "student": "s1", "course": "c1", "amount_cents": 4900, "currency": "EUR",
                          "metadata_patch": {"classTime": "18:30", "startDate": "2026-02-02", "timezone": None}}
    assert second.expect == {"status": 201} and second.note == "a second purchase"
    assert "expect" not in second.args and "note" not in second.args

    by_number = {step.number: step for step in scenario.steps}
    assert by_number[3].args == {"payment": "p1", "status": "succeeded", "signed": True, "times": 2}
    assert [by_number[n].title for n in (3, 9, 13)] == [
        "confirm p1 succeeded x2", "crash purchase-worker at worker.after_commit", "fail payments_db.find_succeeded x3"]
    assert by_number[7].args["forged"] == {"payment": "unknown", "student": "s1", "course": "c9"}
    assert by_number[9].args == {"at": "worker.after_commit", "component": "purchase-worker"}
    assert by_number[14].args == {"student": "s1", "by": "s1", "role": "student"}
    assert by_number[14].expect == {"status": 200, "shows": ("p1",), "purchases": 1, "cache": "miss"}
    assert by_number[19].args == {"student": "s1", "by": "admin"}
    last = scenario.steps[-1]
    assert last.kind == "expect" and last.args == {} and last.note == "the end"
    assert last.expect is not None and set(last.expect) == {"purchases", "dlq", "payment", "created_events"}


def test_capabilities_are_derived_from_steps_plus_requires(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, EVERY_KIND, "every.yaml"))
    by_kind = {step.kind: step for step in scenario.steps}
    assert by_kind["publish"].capabilities_needed() == {"produce_events"}
    assert by_kind["fail"].capabilities_needed() == {"inject_faults"}
    assert by_kind["advance_clock"].capabilities_needed() == {"control_clock"}
    assert by_kind["wait"].capabilities_needed() == set()  # every target has a time that passes
    assert by_kind["begin_read"].capabilities_needed() == {"split_reads"}
    assert by_kind["crash"].capabilities_needed() == {"control_components", "crash_components"}
    assert by_kind["kill"].capabilities_needed() == {"control_components"}
    assert by_kind["run"].capabilities_needed() == {"control_components", "read_bus"}  # its expect reads events
    assert by_kind["settle"].capabilities_needed() == {"read_db"}
    assert scenario.capabilities_needed() == {
        "http", "produce_events", "read_db", "read_bus", "read_cache", "inject_faults", "control_clock",
        "split_reads", "control_components", "crash_components"}


def test_the_model_is_deeply_read_only_but_serialises(tmp_path: Path) -> None:
    step = load_scenario(write(tmp_path, EVERY_KIND, "every.yaml")).steps[0]
    with pytest.raises(TypeError):
        step.args["as"] = "p9"  # type: ignore[index]
    with pytest.raises(TypeError):
        step.args["metadata_patch"]["classTime"] = "x"
    assert isinstance(step.args["metadata_patch"], FrozenDict)
    assert json.loads(json.dumps(step.args["metadata_patch"]))["classTime"] == "18:30"
    assert copy.deepcopy(step.args) == step.args
    assert {**step.args, "as": "p2"}["as"] == "p2"


def test_name_defaults_to_the_file_stem_and_locations_survive(tmp_path: Path) -> None:
    scenario = load_scenario(steps(tmp_path, "settle: {}", name="quiet-flow.yaml"))
    assert scenario.name == "quiet-flow"
    assert scenario.locate(("steps", 0, "settle")) == (4, 13)  # the value `{}`
    assert scenario.locate(("steps", 0, "settle", "timeout")) == (4, 13)  # not in the file: its parent
    assert scenario.locate(("steps",)) == (3, 1)  # a block list: its key
    assert isinstance(scenario, Scenario)
    assert scenario.error("target cannot do this", ("steps", 0)).render() == (
        f"{tmp_path / 'quiet-flow.yaml'}:4:5: target cannot do this")


def test_yaml_1_1_surprises_stay_strings(tmp_path: Path) -> None:
    path = steps(tmp_path, "create_payment: {as: p1, metadata: {a: 18:30, b: 2026-02-02, c: yes, d: on, e: 007, "
                           "f: 0o17, g: 1_000, h: 10, i: 2.5, j: true, k: ~}}")
    metadata = load_scenario(path).steps[0].args["metadata"]
    assert metadata == {"a": "18:30", "b": "2026-02-02", "c": "yes", "d": "on", "e": "007", "f": "0o17",
                        "g": "1_000", "h": 10, "i": 2.5, "j": True, "k": None}


# --- schema errors -----------------------------------------------------------------------------------


def test_wrong_type_points_at_the_value(tmp_path: Path) -> None:
    path = steps(tmp_path, "create_payment: {as: p1}", 'confirm: {payment: p1, times: "2"}')
    assert error_of(path) == f"{path}:5:35: step 2: 'times' must be an integer, got '2'"


def test_misspelt_step_kind_suggests_the_right_one(tmp_path: Path) -> None:
    path = steps(tmp_path, "create_payment: {as: p1}", "confrim: {payment: p1}")
    assert error_of(path) == f"{path}:5:5: step 2: unknown step 'confrim' (did you mean 'confirm'?)"


def test_unknown_step_kind_without_a_near_match_lists_them_all(tmp_path: Path) -> None:
    path = steps(tmp_path, "teleport: {}")
    assert error_of(path).startswith(f"{path}:4:5: step 1: unknown step 'teleport' (steps are: create_payment, "
                                     "confirm, publish, run, crash, ")


def test_misspelt_field_points_at_the_key_and_suggests(tmp_path: Path) -> None:
    path = steps(tmp_path, "create_payment: {as: p1}", "confirm: {paymnet: p1}")
    assert error_of(path) == f"{path}:5:15: step 2: unknown field 'paymnet' in 'confirm' (did you mean 'payment'?)"


def test_misspelt_field_in_a_block_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "  - create_payment:\n      as: p1\n      ammount_cents: 100\n")
    assert error_of(path) == (f"{path}:6:7: step 1: unknown field 'ammount_cents' in 'create_payment' "
                              "(did you mean 'amount_cents'?)")


def test_misspelt_field_inside_expect(tmp_path: Path) -> None:
    path = steps(tmp_path, "read: {student: s1, expect: {stauts: 200}}")
    assert error_of(path) == f"{path}:4:34: step 1: unknown field 'stauts' in 'expect' (did you mean 'status'?)"


def test_missing_argument_points_at_the_mapping(tmp_path: Path) -> None:
    path = steps(tmp_path, "confirm: {}")
    assert error_of(path) == f"{path}:4:14: step 1: 'confirm' needs 'payment'"


def test_missing_top_level_field_points_at_the_top(tmp_path: Path) -> None:
    path = write(tmp_path, "# a comment\ncovers: [P1]\nsteps:\n  - settle: {}\n")
    assert error_of(path) == f"{path}:2:1: missing required field 'title'"


def test_misspelt_top_level_field(tmp_path: Path) -> None:
    path = write(tmp_path, "title: T\ncovers: [P1]\ntags: [a]\nsteps: [{settle: {}}]\nfreshnes_bound: 2\n")
    assert error_of(path) == f"{path}:5:1: unknown field 'freshnes_bound' (did you mean 'freshness_bound'?)"


def test_unknown_enum_values_suggest(tmp_path: Path) -> None:
    crash = steps(tmp_path, "crash: {at: worker.after_comit}", name="a.yaml")
    assert error_of(crash) == (f"{crash}:4:17: step 1: unknown crash point 'worker.after_comit' "
                               "(did you mean 'worker.after_commit'?)")
    run = steps(tmp_path, "run: {component: purchase_worker}", name="b.yaml")
    assert error_of(run) == (f"{run}:4:22: step 1: unknown component 'purchase_worker' "
                             "(did you mean 'purchase-worker'?)")
    fail = steps(tmp_path, "fail: {resource: redis}", name="c.yaml")
    assert error_of(fail) == (f"{fail}:4:22: step 1: unknown resource 'redis' "
                              "(one of: payments_db, courses_db, cache, bus)")
    confirm = steps(tmp_path, "create_payment: {as: p1}", "confirm: {payment: p1, status: succeded}", name="d.yaml")
    assert error_of(confirm) == (f"{confirm}:5:36: step 2: 'status' must be one of succeeded, failed, cancelled, "
                                 "refunded, got 'succeded' (did you mean 'succeeded'?)")


def test_rule_ids_and_capabilities(tmp_path: Path) -> None:
    rule = write(tmp_path, "title: T\ncovers: [P1, W9]\nsteps: [{settle: {}}]\n", "a.yaml")
    assert error_of(rule) == (f"{rule}:2:14: invalid 'covers[1]': 'W9' "
                              "(SPEC rule ids are P1-P5, W1-W8, S1-S5, F1-F2, I1-I4)")
    twice = write(tmp_path, "title: T\ncovers: [P1, W2, P1]\nsteps: [{settle: {}}]\n", "b.yaml")
    assert error_of(twice) == f"{twice}:2:18: 'covers' lists 'P1' twice"
    capability = write(tmp_path, "title: T\ncovers: [P1]\nrequires: [inject_fault]\nsteps: [{settle: {}}]\n",
                       "c.yaml")
    assert error_of(capability) == (f"{capability}:3:12: unknown capability 'inject_fault' "
                                    "(did you mean 'inject_faults'?)")
    empty = write(tmp_path, "title: T\ncovers: []\nsteps: [{settle: {}}]\n", "d.yaml")
    assert error_of(empty) == f"{empty}:2:9: 'covers' must not be empty"


def test_bad_names_and_numbers(tmp_path: Path) -> None:
    name = steps(tmp_path, "create_payment: {as: P1}", name="a.yaml")
    assert error_of(name) == (f"{name}:4:26: step 1: invalid 'as': 'P1' "
                              "(names are lower-case letters, digits and _, starting with a letter)")
    seconds = steps(tmp_path, "advance_clock: {seconds: 0}", name="b.yaml")
    assert error_of(seconds) == f"{seconds}:4:30: step 1: 'seconds' must be greater than 0, got 0"
    times = steps(tmp_path, "fail: {resource: bus, times: 0}", name="c.yaml")
    assert error_of(times) == f"{times}:4:34: step 1: 'times' must be at least 1, got 0"
    status = steps(tmp_path, "read: {student: s1, expect: {status: 99}}", name="d.yaml")
    assert error_of(status) == f"{status}:4:42: step 1: 'expect.status' must be at least 100, got 99"
    title = write(tmp_path, "title: |\n  two\n  lines\ncovers: [P1]\nsteps: [{settle: {}}]\n", "e.yaml")
    assert error_of(title) == f"{title}:1:8: 'title' must be one line"


def test_steps_that_are_not_one_key_mappings(tmp_path: Path) -> None:
    bare = steps(tmp_path, "settle", name="a.yaml")
    assert error_of(bare) == (f"{bare}:4:5: step 1: a step must be a mapping with one key, the step kind, "
                              "got 'settle' (write `- settle: {}`)")
    null = steps(tmp_path, "settle:", name="b.yaml")
    assert error_of(null) == (f"{null}:4:12: step 1: 'settle' takes a mapping of arguments, got null "
                              "(write `settle: {}` when it has none)")
    empty = steps(tmp_path, "{}", name="c.yaml")
    assert error_of(empty) == (f"{empty}:4:5: step 1: empty step "
                               "(a step is a mapping with one key, the step kind, e.g. `- settle: {}`)")
    sibling = write(tmp_path, HEAD + "  - read: {student: s1}\n    expect: {status: 200}\n", "d.yaml")
    assert error_of(sibling) == (f"{sibling}:5:5: step 1: a step has exactly one kind, found 'read' and 'expect' "
                                 "(put expect: and note: inside the step's arguments, e.g. "
                                 "`- read: {..., expect: ...}`)")
    two = write(tmp_path, HEAD + "  - settle: {}\n    restart: {component: reconciler}\n", "e.yaml")
    assert error_of(two) == (f"{two}:5:5: step 1: a step has exactly one kind, found 'settle' and 'restart' "
                             "(write each step as its own list item)")
    none = write(tmp_path, "title: T\ncovers: [P1]\nsteps: []\n", "f.yaml")
    assert error_of(none) == f"{none}:3:8: 'steps' must not be empty"
    nothing = steps(tmp_path, "read: {student: s1, expect: {}}", name="g.yaml")
    assert error_of(nothing) == (f"{nothing}:4:33: step 1: 'expect' asserts nothing "
                                 "(leave it out, or say what to expect, e.g. `expect: {status: 200}`)")


def test_the_earliest_error_in_the_file_is_reported(tmp_path: Path) -> None:
    path = steps(tmp_path, "confirm: {payment: p1, times: x}", "confrim: {}", "run: {component: nope}")
    assert error_of(path) == f"{path}:4:35: step 1: 'times' must be an integer, got 'x'"


def test_an_unknown_field_is_reported_before_the_missing_one_it_explains(tmp_path: Path) -> None:
    path = steps(tmp_path, "begin_read: {student: s1, ass: r1}")
    assert error_of(path) == f"{path}:4:31: step 1: unknown field 'ass' in 'begin_read' (did you mean 'as'?)"


# --- errors across steps -------------------------------------------------------------------------------


def test_a_name_used_before_any_binding(tmp_path: Path) -> None:
    path = steps(tmp_path, "create_payment: {as: p1}", "confirm: {payment: p9}")
    assert error_of(path) == (f"{path}:5:24: step 2: unknown payment 'p9': no earlier step binds it "
                              "(bind it first with `create_payment: {as: p9}`)")
    near = steps(tmp_path, "create_payment: {as: first}", "confirm: {payment: frist}", name="b.yaml")
    assert error_of(near) == (f"{near}:5:24: step 2: unknown payment 'frist': no earlier step binds it "
                              "(did you mean 'first'?)")


def test_a_name_used_before_its_binding_further_down(tmp_path: Path) -> None:
    path = steps(tmp_path, "read: {student: s1, expect: {shows: [p1]}}", "create_payment: {as: p1}")
    assert error_of(path) == (f"{path}:4:42: step 1: payment 'p1' is used before it is bound "
                              "(`as: p1` is at step 2 (line 5))")


def test_a_name_bound_twice(tmp_path: Path) -> None:
    path = steps(tmp_path, "create_payment: {as: p1}", "settle: {}", "begin_read: {student: s1, as: p1}")
    assert error_of(path) == (f"{path}:6:35: step 3: name 'p1' is already bound at step 1 (line 4) "
                              "(each `as:` needs a new name)")


def test_reads_must_be_begun_and_finished_once(tmp_path: Path) -> None:
    unknown = steps(tmp_path, "begin_read: {student: s1, as: r1}", "finish_read: {read: r2}", name="a.yaml")
    assert error_of(unknown) == (f"{unknown}:5:25: step 2: unknown read 'r2': no earlier step binds it "
                                 "(bind it first with `begin_read: {student: s1, as: r2}`)")
    twice = steps(tmp_path, "begin_read: {student: s1, as: r1}", "finish_read: {read: r1}",
                  "finish_read: {read: r1}", name="b.yaml")
    assert error_of(twice) == f"{twice}:6:25: step 3: read 'r1' was already finished at step 2"
    wrong = steps(tmp_path, "create_payment: {as: p1}", "finish_read: {read: p1}", name="c.yaml")
    assert error_of(wrong) == f"{wrong}:5:25: step 2: 'p1' is a payment (step 1), not a read"
    swapped = steps(tmp_path, "begin_read: {student: s1, as: r1}", "confirm: {payment: r1}", name="d.yaml")
    assert error_of(swapped) == f"{swapped}:5:24: step 2: 'r1' is a read (step 1), not a payment"


def test_names_inside_expectations_are_checked(tmp_path: Path) -> None:
    path = steps(tmp_path, "create_payment: {as: p1}", "expect: {payment: {payment: p2, status: succeeded}}")
    assert error_of(path) == (f"{path}:5:33: step 2: unknown payment 'p2': no earlier step binds it "
                              "(bind it first with `create_payment: {as: p2}`)")
    reserved = steps(tmp_path, "create_payment: {as: unknown}", name="b.yaml")
    assert error_of(reserved) == (f"{reserved}:4:26: step 1: 'unknown' is reserved "
                                  "(`confirm: {payment: unknown}` and `publish: {forged: {payment: unknown}}` "
                                  "mean a payment that does not exist)")


def test_publish_needs_exactly_one_source(tmp_path: Path) -> None:
    none = steps(tmp_path, "publish: {copies: 2}", name="a.yaml")
    assert error_of(none) == (f"{none}:4:14: step 1: 'publish' needs exactly one of 'payment', 'raw', 'forged', "
                              "found none")
    two = steps(tmp_path, "create_payment: {as: p1}", "publish: {payment: p1, raw: x}", name="b.yaml")
    assert error_of(two) == (f"{two}:5:14: step 2: 'publish' needs exactly one of 'payment', 'raw', 'forged', "
                             "found 'payment' and 'raw'")


def test_confirm_signature_and_replay_name_bound_payments_and_do_not_mix(tmp_path: Path) -> None:
    ok = steps(tmp_path, "create_payment: {as: p1}", "create_payment: {as: p2}", "confirm: {payment: p1}",
               "confirm: {payment: p2, replay: p1, expect: {status: 401}}",
               "confirm: {payment: p2, signature: {payment: p1, age: 600}, expect: {status: 401}}", name="ok.yaml")
    loaded = load_scenario(ok)
    assert [s.title for s in loaded.steps[3:]] == ["confirm p2 replaying p1's callback",
                                                   "confirm p2 succeeded (signed for p1) (signed 600 s ago)"]
    unbound = steps(tmp_path, "create_payment: {as: p1}", "confirm: {payment: p1, replay: p3}", name="a.yaml")
    assert error_of(unbound).startswith(f"{unbound}:5:36: step 2: unknown payment 'p3'")
    signer = steps(tmp_path, "create_payment: {as: p1}", "confirm: {payment: p1, signature: {payment: p9}}",
                   name="b.yaml")
    assert error_of(signer).startswith(f"{signer}:5:49: step 2: unknown payment 'p9'")
    mixed = steps(tmp_path, "create_payment: {as: p1}", "confirm: {payment: p1, replay: p1, status: failed}",
                  name="c.yaml")
    assert "'replay' resends an earlier callback exactly; it cannot be combined with 'status'" in error_of(mixed)
    unsigned = steps(tmp_path, "create_payment: {as: p1}", "confirm: {payment: p1, signed: false, signature: {age: 1}}",
                     name="d.yaml")
    assert "'signed: false' sends no signature" in error_of(unsigned)
    empty = steps(tmp_path, "create_payment: {as: p1}", "confirm: {payment: p1, signature: {}}", name="e.yaml")
    assert error_of(empty).startswith(f"{empty}:5:")


def test_crash_point_must_belong_to_the_component(tmp_path: Path) -> None:
    path = steps(tmp_path, "crash: {component: course-relay, at: worker.after_commit}")
    assert error_of(path) == (f"{path}:4:24: step 1: crash point 'worker.after_commit' is in 'purchase-worker', "
                              "not 'course-relay' (leave out component, or write `component: purchase-worker`)")


def test_fault_operation_must_exist_on_the_port(tmp_path: Path) -> None:
    path = steps(tmp_path, "fail: {resource: payments_db, op: find_succeded}")
    assert error_of(path) == (f"{path}:4:39: step 1: 'payments_db' has no operation 'find_succeded' "
                              "(did you mean 'find_succeeded'?)")


def test_an_expect_step_must_assert_something(tmp_path: Path) -> None:
    path = steps(tmp_path, "expect: {note: hm}")
    assert error_of(path) == (f"{path}:4:13: step 1: 'expect' asserts nothing "
                              "(name at least one of purchases, dlq, payment, created_events)")


# --- files that are not scenarios at all -----------------------------------------------------------------


def test_yaml_syntax_error_gives_the_parser_position(tmp_path: Path) -> None:
    path = write(tmp_path, "title: T\ncovers: [P1\nsteps: []\n")
    assert error_of(path) == (f"{path}:3:6: invalid YAML: expected ',' or ']', but got ':' "
                              "(while parsing a flow sequence at line 2)")
    colon = write(tmp_path, "title: a: b\n", "b.yaml")
    assert error_of(colon) == f"{colon}:1:9: invalid YAML: mapping values are not allowed here"


def test_tabs_and_control_characters(tmp_path: Path) -> None:
    tab = write(tmp_path, HEAD + "\t- settle: {}\n", "a.yaml")
    assert error_of(tab) == (f"{tab}:4:1: invalid YAML: found character '\\t' that cannot start any token "
                             "(indent with spaces: YAML does not allow tabs)")
    bell = write(tmp_path, "title: T\a\ncovers: [P1]\nsteps: [{settle: {}}]\n", "b.yaml")
    assert error_of(bell) == f"{bell}:1:9: invalid YAML: special characters are not allowed (character U+0007)"


def test_yaml_tags_and_recursive_aliases_are_refused(tmp_path: Path) -> None:
    binary = write(tmp_path, "title: !!binary aGk=\ncovers: [P1]\nsteps: [{settle: {}}]\n", "a.yaml")
    assert error_of(binary) == f"{binary}:1:8: unsupported YAML tag '!!binary' (quote the value to make it a string)"
    loop = write(tmp_path, "title: T\ncovers: &a [P1, *a]\nsteps: [{settle: {}}]\n", "b.yaml")
    assert error_of(loop) == f"{loop}:2:9: an alias refers to a value that contains it"


def test_duplicate_keys_are_an_error_not_a_silent_overwrite(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "  - confirm: {payment: p1, payment: p2}\n")
    assert error_of(path) == f"{path}:4:28: step 1: duplicate key 'payment' (first at line 4)"


def test_empty_and_non_mapping_files(tmp_path: Path) -> None:
    empty = write(tmp_path, "", "a.yaml")
    assert error_of(empty) == (f"{empty}:1:1: empty scenario file "
                               "(a scenario needs at least title, covers and steps; see docs/scenarios.md)")
    comments = write(tmp_path, "# nothing yet\n", "b.yaml")
    assert error_of(comments).startswith(f"{comments}:1:1: empty scenario file")
    listing = write(tmp_path, "- settle: {}\n", "c.yaml")
    assert error_of(listing) == (f"{listing}:1:1: a scenario file must be a mapping of fields "
                                 "(title, covers, steps, ...), got a list")
    scalar = write(tmp_path, "hello\n", "d.yaml")
    assert error_of(scalar).startswith(f"{scalar}:1:1: a scenario file must be a mapping")
    two_docs = write(tmp_path, "title: a\n---\ntitle: b\n", "e.yaml")
    assert error_of(two_docs) == (f"{two_docs}:2:1: invalid YAML: expected a single document in the stream, "
                                  "but found another document")


def test_non_utf8_file_points_at_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("title: T\ncovers: [P1]\n# caf\u00e9\n".encode("latin-1"))
    assert error_of(path) == f"{path}:3:6: not UTF-8 text: byte 0xe9 cannot be decoded (save the file as UTF-8)"


def test_file_stem_must_make_a_valid_name_unless_name_is_given(tmp_path: Path) -> None:
    path = steps(tmp_path, "settle: {}", name="Happy_Path.yaml")
    assert error_of(path) == (f"{path}:1:1: the file name 'Happy_Path' is not a valid scenario name "
                              "(add a `name:` (lower-case letters, digits and -) or rename the file)")
    named = write(tmp_path, "name: happy-path\n" + HEAD + "  - settle: {}\n", "Happy_Path2.yaml")
    assert load_scenario(named).name == "happy-path"


# --- many files --------------------------------------------------------------------------------------------


def test_directories_load_recursively_sorted(tmp_path: Path) -> None:
    steps(tmp_path, "settle: {}", name="b.yaml")
    steps(tmp_path, "settle: {}", name="a.yml")
    steps(tmp_path, "settle: {}", name="sub/c.yaml")
    steps(tmp_path, "settle: {}", name=".hidden/d.yaml")
    (tmp_path / "notes.txt").write_text("not a scenario")
    loaded = load_scenarios([tmp_path, tmp_path / "b.yaml"])
    assert [s.name for s in loaded] == ["a", "b", "c"]


def test_missing_paths_and_empty_directories(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load_scenarios([tmp_path / "nope.yaml"])
    assert caught.value.render() == f"{tmp_path / 'nope.yaml'}: no such file or directory"
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError) as caught:
        load_scenarios([tmp_path / "empty"])
    assert caught.value.render() == f"{tmp_path / 'empty'}: no scenario files (*.yaml, *.yml) in this directory"
    assert caught.value.exit_code == 2


def test_duplicate_names_across_files_name_both(tmp_path: Path) -> None:
    first = write(tmp_path, "title: T\nname: same\ncovers: [P1]\nsteps: [{settle: {}}]\n", "a.yaml")
    second = write(tmp_path, "title: T\ncovers: [P1]\nname: same\nsteps: [{settle: {}}]\n", "b.yaml")
    with pytest.raises(InputError) as caught:
        load_scenarios([tmp_path])
    assert caught.value.render() == (f"{second}:3:7: duplicate scenario name 'same', also in {first}:2:7 "
                                     "(names must be unique: set a different `name:` in one of them)")


# --- the schema agrees with what it names ---------------------------------------------------------------


def test_schema_enums_match_the_reference() -> None:
    defs = schema("schemas/scenario")["$defs"]
    assert tuple(defs["component"]["enum"]) == COMPONENTS
    assert set(defs["crash"]["properties"]["component"]["enum"]) == {*COMPONENTS, "payment-service"}
    assert list(defs["crash_point"]["enum"]) == list(CRASH_POINTS)
    assert set(defs["dlq_assertion"]["properties"]["reason"]["enum"]) == {r.value for r in DeadLetterReason}
    assert set(defs["step"]["properties"]) == set(STEP_CAPABILITIES)
    every_capability = set().union(*STEP_CAPABILITIES.values())
    assert every_capability <= set(defs["capability"]["enum"])
    for point in CRASH_POINTS:
        assert crash_point_owner(point) in defs["crash"]["properties"]["component"]["enum"]
    assert "find_succeeded" in port_operations("payments_db")
    assert "record_purchase" in port_operations("courses_db")


def test_fault_operations_are_exactly_what_the_reference_ports_offer() -> None:
    """The loader's list is the verifier's own; the reference's Protocols must offer exactly it, so a
    port method added or renamed in the reference shows up here rather than as an unusable fault."""
    from kcverify.reference import ports
    from kcverify.scenario.loader import FAULT_OPERATIONS

    by_resource = {"payments_db": ports.PaymentStore, "courses_db": ports.CourseStore, "cache": ports.Cache,
                   "bus": ports.Bus}
    assert set(FAULT_OPERATIONS) == set(by_resource)
    for resource, port in by_resource.items():
        offered = {n for n in dir(port) if not n.startswith("_") and callable(getattr(port, n))}
        assert set(FAULT_OPERATIONS[resource]) == offered, resource


def test_the_user_guide_documents_every_step_kind_and_its_example_loads(tmp_path: Path) -> None:
    guide = (contracts_dir().parent / "docs" / "scenarios.md").read_text(encoding="utf-8")
    for kind in schema("schemas/scenario")["$defs"]["step"]["properties"]:
        assert f"### `{kind}`" in guide, kind
    example = guide.split("```yaml\n", 1)[1].split("```", 1)[0]
    scenario = load_scenario(write(tmp_path, example, "crash-after-commit.yaml"))
    assert scenario.steps
