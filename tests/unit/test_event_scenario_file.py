"""The scenario file a consumer pass writes for its shrunk failure reads back, through the scenario loader,
as exactly the records and metadata the pass sent: every character outside printable ASCII is escaped, so
quotes, control characters, non-BMP characters and huge strings survive the YAML."""

from __future__ import annotations

import json
from pathlib import Path

from kcverify.fuzz.consumer import PROPERTIES, EventPassResult, Shrunk
from kcverify.fuzz.event_scenario import write
from kcverify.fuzz.events import Draft, EventCase
from kcverify.scenario.loader import load_scenario

AWKWARD = 'a "quoted" \\ back\nline\ttab \x00\x1f\x7f\x85\u2028 \U0001d11e e\u0301 \u05e9 \ufeff' + "x" * 5000


def test_the_written_file_carries_the_records_and_metadata_verbatim(tmp_path: Path) -> None:
    metadata = {"startDate": "2026-03-02", "classTime": "18:30", "classTypeId": AWKWARD, "scheduleType": "weekly",
                "sessionCount": 10, "extra key: yes": [None, True, 1.5, {"null": None}]}
    drafts = (Draft("not JSON", text=AWKWARD, copies=2),
              Draft("valid", metadata={"fuzzNote": AWKWARD, "sessionCount": 200}, for_payment=True))
    result = EventPassResult(PROPERTIES[1], shrunk=Shrunk(EventCase(metadata, drafts), ("record 1 was lost",)))
    path = write(result, tmp_path, ["header"])
    path.read_text(encoding="ascii")  # plain ASCII
    scenario = load_scenario(path)
    steps = [(step.kind, dict(step.args)) for step in scenario.steps]
    assert steps[0][0] == "create_payment" and json.loads(json.dumps(steps[0][1]["metadata"])) == metadata
    assert steps[2][0] == "publish" and steps[2][1]["raw"] == AWKWARD and steps[2][1]["copies"] == 2
    assert steps[3][0] == "publish" and dict(steps[3][1]["forged"]["metadata"]) == drafts[1].metadata
    assert [kind for kind, _ in steps] == ["create_payment", "confirm", "publish", "publish", "settle",
                                           "create_payment", "confirm", "settle"]
    settle = scenario.steps[4].expect or {}
    assert settle["dlq"]["count"] == 2 and settle["purchases"]["count"] == 1  # each copy of the raw dead-lettered
    assert set(scenario.covers) == set(PROPERTIES[1].rules)


def test_a_whole_record_names_the_student_the_case_runs_as() -> None:
    from kcverify.fuzz.events import STUDENT, Draft, _encode, envelope, standard_metadata

    event = envelope("00000000-0000-4000-8000-000000000001", STUDENT, "c1", standard_metadata())
    for ascii_only in (True, False):
        draft = Draft("unknown payment", text=_encode(event, ascii_only))
        sent = json.loads(draft.value("ignored", "kabc-1-s1"))
        assert sent["payload"]["studentId"] == "kabc-1-s1"  # within the target's namespace: its rows are seen
        assert {k: v for k, v in sent["payload"].items() if k != "studentId"} == \
            {k: v for k, v in event["payload"].items() if k != "studentId"}
    broken = Draft("not JSON", text='{"payload": {"studentId":"s1", ')
    assert broken.value("ignored", STUDENT) == broken.text.encode()  # the case's own name: as drawn


def test_a_valid_record_for_an_unknown_payment_is_written_as_a_forged_step(tmp_path: Path) -> None:
    from kcverify.fuzz.events import STUDENT, _encode, envelope, standard_metadata

    event = envelope("00000000-0000-4000-8000-000000000001", STUDENT, "unknown-course", standard_metadata())
    drafts = (Draft("unknown payment (course unknown-course)", text=_encode(event, True)),)
    result = EventPassResult(PROPERTIES[1], shrunk=Shrunk(EventCase(standard_metadata(), drafts), ("granted",)))
    scenario = load_scenario(write(result, tmp_path, ["header"]))
    kind, args = scenario.steps[2].kind, dict(scenario.steps[2].args)
    assert kind == "publish" and "raw" not in args  # raw text would name `s1` itself, outside a target's namespace
    assert dict(args["forged"]) == {"payment": "unknown", "student": STUDENT, "course": "unknown-course",
                                    "metadata": event["payload"]["metadata"]}
    assert (scenario.steps[3].expect or {})["dlq"]["count"] == 1
