"""The hand-written contracts in contracts/: every schema is a valid draft 2020-12 schema, the shapes the
reference emits (kcverify.reference.domain) conform to them, the bad inputs the SPEC names are rejected
at the right JSON path, and the OpenAPI and AsyncAPI documents parse and point only at files that exist.
Rule ids: P1-P4 (payment service), W1-W8 (worker), S1-S4 (student service), I3/I4 (invariants)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml
from jsonschema import Draft202012Validator

from kcverify import contracts
from kcverify.contracts import contracts_dir, validate
from kcverify.core.clock import MANUAL_EPOCH
from kcverify.core.ids import SeededIds
from kcverify.reference.domain import (
    INVALIDATOR_GROUP,
    TOPIC_CONFIRMED,
    TOPIC_CREATED,
    TOPIC_DLQ,
    TOPICS,
    WORKER_GROUP,
    DeadLetter,
    DeadLetterReason,
    Payment,
    PaymentStatus,
    Purchase,
    encode,
    event_message,
    purchase_confirmed,
    purchase_created,
)

ROOT = contracts_dir()
SCHEMA_FILES = sorted(ROOT.rglob("*.schema.json"))
OPENAPI_FILES = sorted((ROOT / "openapi").glob("*.yaml"))
ASYNCAPI_FILE = ROOT / "events" / "asyncapi.yaml"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
T0 = MANUAL_EPOCH


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix().removesuffix(".schema.json")


# --- realistic instances, built with the reference's own code ------------------------------------


def metadata(**overrides: Any) -> dict[str, Any]:
    md: dict[str, Any] = {
        "startDate": "2026-03-02",
        "classTime": "18:30",
        "classTypeId": "group-conversation",
        "scheduleType": "weekly",
        "sessionCount": 10,
        "timezone": "Europe/Berlin",
        "classTypeTitle": "Group conversation",
        "schedule": {"startDate": "2026-03-02", "timeSlot": "18:30", "mode": "online"},
        "teacherNote": "kept verbatim",  # an extra key: allowed and kept (SPEC Data)
    }
    md.update(overrides)
    return md


def payment(status: PaymentStatus = PaymentStatus.SUCCEEDED, **md: Any) -> Payment:
    ids = SeededIds(1)
    succeeded = status in (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED)
    return Payment(
        id=ids.uuid(),
        student_id="student-42",
        course_id="course-english-b1",
        amount_cents=19900,
        currency="EUR",
        status=status,
        provider="test",
        provider_payment_id="pi_3PqXyZ" if succeeded else None,
        metadata=metadata(**md),
        created_at=T0,
        confirmed_at=T0 + 5 if succeeded else None,
    )


def purchase(pay: Payment | None = None) -> Purchase:
    pay = pay or payment()
    return Purchase(
        id=SeededIds(2).uuid(),
        payment_id=pay.id,
        student_id=pay.student_id,
        course_id=pay.course_id,
        purchase_tier=pay.metadata["sessionCount"],
        metadata=pay.metadata,
        metadata_source="payment",
        is_active=True,
        created_at=T0 + 6,
    )


def learning_view(*purchases: Purchase) -> dict[str, Any]:
    return {
        "studentId": "student-42",
        "purchases": [p.to_json() for p in purchases],
        "generatedAt": "2026-01-05T09:00:07.000Z",
    }


def create_body(**md: Any) -> dict[str, Any]:
    return {
        "studentId": "student-42",
        "courseId": "course-english-b1",
        "amountCents": 19900,
        "currency": "EUR",
        "metadata": metadata(**md),
    }


def dead_letter(original: bytes, reason: str = DeadLetterReason.SCHEMA_VIOLATION) -> dict[str, Any]:
    return DeadLetter(
        original_event=original,
        original_topic=TOPIC_CONFIRMED,
        partition=2,
        offset=41,
        reason=str(reason),
        error="$.payload.metadata.sessionCount: '10' is not of type 'integer'",
        attempts=1,
        first_failed_at=T0 + 10,
        dead_lettered_at=T0 + 10,
    ).to_json()


def assert_violation(name: str, instance: object, path: str, fragment: str) -> None:
    violations = validate(name, instance)
    assert any(v.path == path and fragment in v.message for v in violations), (
        f"expected a violation at {path} containing {fragment!r}, got {[str(v) for v in violations]}"
    )


# --- the schema files themselves -----------------------------------------------------------------


def test_the_expected_schema_files_exist() -> None:
    assert {_name(p) for p in SCHEMA_FILES} >= {
        "schemas/purchase-metadata", "schemas/payment", "schemas/payment-create",
        "schemas/payment-confirm", "schemas/learning-view", "schemas/problem",
        "events/envelope", "events/purchase-confirmed", "events/purchase-created", "events/dead-letter",
    }


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=_name)
def test_schema_is_valid_draft_2020_12_with_header(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == DRAFT_2020_12
    assert doc.get("title")
    assert doc.get("description")


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=_name)
def test_schema_examples_conform_to_their_own_schema(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    for example in doc.get("examples", []):
        assert validate(_name(path), example) == []


# --- $ref walking, shared by JSON Schema, OpenAPI and AsyncAPI documents -------------------------


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def _pointer(doc: Any, fragment: str) -> Any:
    node = doc
    for raw in fragment.lstrip("/").split("/") if fragment.strip("/") else []:
        token = unquote(raw).replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def _refs(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_refs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_refs(item))
    return found


def _resolve(base: Path, ref: str) -> tuple[Path, Any]:
    """The file and node a $ref in `base` points to; raises when either does not exist."""
    file_part, _, fragment = ref.partition("#")
    assert "://" not in file_part, f"{base.name}: {ref} is not a relative reference"
    target = (base.parent / file_part).resolve() if file_part else base
    assert target.is_file(), f"{base.name}: {ref} -> {target} does not exist"
    return target, _pointer(_load(target), fragment)


def _assert_refs_resolve(path: Path) -> list[str]:
    refs = _refs(_load(path))
    for ref in refs:
        try:
            _resolve(path, ref)
        except (KeyError, IndexError, ValueError) as exc:
            pytest.fail(f"{path.name}: {ref} does not resolve ({exc!r})")
    return refs


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=_name)
def test_schema_refs_are_relative_and_resolve(path: Path) -> None:
    _assert_refs_resolve(path)


# --- valid instances, as the reference emits them (I4) -------------------------------------------


@pytest.mark.parametrize("status", list(PaymentStatus))
def test_payment_to_json_conforms_p3(status: PaymentStatus) -> None:
    assert validate("schemas/payment", payment(status).to_json()) == []


def test_payment_create_body_conforms_p1() -> None:
    assert validate("schemas/payment-create", create_body()) == []
    assert validate("schemas/payment-create", create_body() | {"provider": "stripe"}) == []


def test_minimal_metadata_conforms() -> None:
    minimal = {k: metadata()[k] for k in ("startDate", "classTime", "classTypeId", "scheduleType",
                                          "sessionCount")}
    assert validate("schemas/purchase-metadata", minimal) == []


@pytest.mark.parametrize("body", [
    {"status": "succeeded"},
    {"status": "failed", "providerPaymentId": "pi_1"},
    {"status": "refunded", "providerPaymentId": "pi_1", "provider": "test"},
])
def test_confirm_body_conforms_p2(body: dict[str, Any]) -> None:
    assert validate("schemas/payment-confirm", body) == []


def test_learning_view_conforms_s1() -> None:
    p = purchase()
    event_sourced = Purchase(**{**p.__dict__, "metadata_source": "event"})  # W5
    assert validate("schemas/learning-view", learning_view(p, event_sourced)) == []
    assert validate("schemas/learning-view", learning_view()) == []


def test_purchase_confirmed_event_conforms() -> None:
    event = purchase_confirmed(payment(), occurred_at=T0 + 5)
    assert validate("events/purchase-confirmed", event) == []
    assert validate("events/envelope", event) == []


def test_purchase_created_event_conforms_w6() -> None:
    event = purchase_created(purchase(), occurred_at=T0 + 6)
    assert validate("events/purchase-created", event) == []
    assert validate("events/envelope", event) == []


def test_dead_letter_conforms_for_json_and_unparseable_originals_w2_w3() -> None:
    event = purchase_confirmed(payment(sessionCount="10"), occurred_at=T0)
    assert validate("events/dead-letter", dead_letter(encode(event))) == []
    assert validate("events/dead-letter", dead_letter(b"\xff not json {")) == []
    for reason in DeadLetterReason:
        assert validate("events/dead-letter", dead_letter(b"{}", reason)) == []
    extra = dead_letter(b"{}") | {"consumerGroup": WORKER_GROUP}  # extra diagnostics are allowed
    assert validate("events/dead-letter", extra) == []


def test_problem_with_field_errors_conforms_p1() -> None:
    problem = {
        "type": "about:blank", "title": "Unprocessable Content", "status": 422,
        "errors": [{"field": "metadata.sessionCount", "message": "must be an integer"}],
    }
    assert validate("schemas/problem", problem) == []


# --- what the SPEC says must be rejected ---------------------------------------------------------


@pytest.mark.parametrize(("md", "path", "fragment"), [
    ({"sessionCount": "10"}, "$.metadata.sessionCount", "is not of type 'integer'"),
    ({"sessionCount": 0}, "$.metadata.sessionCount", "less than the minimum"),
    ({"sessionCount": 201}, "$.metadata.sessionCount", "greater than the maximum"),
    ({"classTime": None}, "$.metadata.classTime", "is not of type 'string'"),
    ({"classTime": "25:00"}, "$.metadata.classTime", "does not match"),
    ({"classTime": "9:30"}, "$.metadata.classTime", "does not match"),
    ({"scheduleType": "monthly"}, "$.metadata.scheduleType", "is not one of"),
    ({"startDate": "2026-02-30"}, "$.metadata.startDate", "is not a 'date'"),
    ({"startDate": "02/03/2026"}, "$.metadata.startDate", "does not match"),
    ({"classTypeId": ""}, "$.metadata.classTypeId", "should be non-empty"),
    ({"timezone": "Mars/Olympus_Mons"}, "$.metadata.timezone", "is not one of"),
    ({"timezone": "localtime"}, "$.metadata.timezone", "is not one of"),
    ({"schedule": {"timeSlot": "24:00"}}, "$.metadata.schedule.timeSlot", "does not match"),
])
def test_payment_create_rejects_bad_metadata_p1(md: dict[str, Any], path: str, fragment: str) -> None:
    assert_violation("schemas/payment-create", create_body(**md), path, fragment)


def test_payment_create_rejects_missing_class_time_p1() -> None:
    body = create_body()
    del body["metadata"]["classTime"]
    assert_violation("schemas/payment-create", body, "$.metadata.classTime",
                     "'classTime' is a required property")


def test_payment_create_reports_one_violation_per_field_p1() -> None:
    body = create_body(sessionCount="10", classTime="25:00")
    del body["metadata"]["scheduleType"]
    paths = {v.path for v in validate("schemas/payment-create", body)}
    assert paths == {"$.metadata.scheduleType", "$.metadata.sessionCount", "$.metadata.classTime"}


@pytest.mark.parametrize(("change", "path", "fragment"), [
    ({"amountCents": 0}, "$.amountCents", "less than the minimum"),
    ({"amountCents": "19900"}, "$.amountCents", "is not of type 'integer'"),
    ({"currency": "eur"}, "$.currency", "does not match"),
    ({"studentId": "../etc/passwd"}, "$.studentId", "does not match"),
    ({"status": "succeeded"}, "$", "Additional properties are not allowed"),
])
def test_payment_create_rejects_bad_fields_p1(change: dict[str, Any], path: str, fragment: str) -> None:
    assert_violation("schemas/payment-create", create_body() | change, path, fragment)


@pytest.mark.parametrize("field", ["courseId", "amountCents", "metadata"])
def test_confirm_rejects_immutable_fields_p2(field: str) -> None:
    body = {"status": "succeeded", field: create_body()[field]}
    assert_violation("schemas/payment-confirm", body, "$", f"'{field}' was unexpected")


def test_confirm_rejects_initiated_and_unknown_status_p4() -> None:
    assert_violation("schemas/payment-confirm", {"status": "initiated"}, "$.status", "is not one of")
    assert_violation("schemas/payment-confirm", {}, "$.status", "'status' is a required property")


def test_succeeded_payment_without_confirmed_at_is_rejected_p3() -> None:
    doc = payment().to_json() | {"confirmedAt": None}
    assert_violation("schemas/payment", doc, "$.confirmedAt", "is not of type 'string'")


def test_payment_with_string_session_count_is_rejected_i4() -> None:
    assert_violation("schemas/payment", payment(sessionCount="10").to_json(),
                     "$.metadata.sessionCount", "is not of type 'integer'")


def test_learning_view_rejects_inactive_and_mistyped_purchases_s1() -> None:
    view = learning_view(purchase())
    view["purchases"][0]["isActive"] = False
    assert_violation("schemas/learning-view", view, "$.purchases[0].isActive", "True was expected")
    view = learning_view(purchase())
    view["purchases"][0]["purchaseTier"] = "10"
    assert_violation("schemas/learning-view", view, "$.purchases[0].purchaseTier", "not of type 'integer'")
    view = learning_view(purchase())
    view["purchases"][0]["metadataSource"] = "cache"
    assert_violation("schemas/learning-view", view, "$.purchases[0].metadataSource", "is not one of")


def test_confirmed_event_with_string_session_count_is_a_schema_violation_w2() -> None:
    event = purchase_confirmed(payment(sessionCount="10"), occurred_at=T0)
    assert_violation("events/purchase-confirmed", event, "$.payload.metadata.sessionCount",
                     "is not of type 'integer'")


def test_confirmed_event_may_carry_incomplete_metadata_w5() -> None:
    """Completeness is checked on the payment row (W4) or, in the fallback, on the event's copy (W5),
    not at decode time: otherwise W5's "incomplete -> retries_exhausted" branch could never run."""
    event = purchase_confirmed(payment(), occurred_at=T0)
    del event["payload"]["metadata"]["sessionCount"]
    assert validate("events/purchase-confirmed", event) == []
    assert_violation("schemas/purchase-metadata", event["payload"]["metadata"], "$.sessionCount",
                     "'sessionCount' is a required property")


def test_created_event_requires_complete_merged_metadata_w4() -> None:
    event = purchase_created(purchase(), occurred_at=T0)
    del event["payload"]["metadata"]["classTime"]
    assert_violation("events/purchase-created", event, "$.payload.metadata.classTime",
                     "'classTime' is a required property")


def test_partial_metadata_lists_every_metadata_field() -> None:
    doc = json.loads((ROOT / "schemas" / "purchase-metadata.schema.json").read_text(encoding="utf-8"))
    assert "required" not in doc["$defs"]["partial"]
    assert doc["$defs"]["partial"]["properties"] == {
        name: {"$ref": f"#/properties/{name}"} for name in doc["properties"]
    }


@pytest.mark.parametrize("key", [
    "payment:not-a-uuid:PURCHASE_CONFIRMED",
    "PURCHASE_CONFIRMED",
    "purchase:{id}:PURCHASE_CREATED",
    "payment:{id}:purchase_confirmed",
])
def test_confirmed_event_rejects_wrong_idempotency_key_w6(key: str) -> None:
    pay = payment()
    event = purchase_confirmed(pay, occurred_at=T0) | {"idempotencyKey": key.format(id=pay.id)}
    assert_violation("events/purchase-confirmed", event, "$.idempotencyKey", "does not match")


def test_created_event_rejects_wrong_idempotency_key_and_type_w6() -> None:
    pur = purchase()
    event = purchase_created(pur, occurred_at=T0)
    bad_key = event | {"idempotencyKey": f"payment:{pur.payment_id}:PURCHASE_CONFIRMED"}
    assert_violation("events/purchase-created", bad_key, "$.idempotencyKey", "does not match")
    assert_violation("events/purchase-created", event | {"type": "PURCHASE_CONFIRMED"},
                     "$.type", "'PURCHASE_CREATED' was expected")
    bad_tier = copy.deepcopy(event)
    bad_tier["payload"]["purchaseTier"] = 0
    assert_violation("events/purchase-created", bad_tier, "$.payload.purchaseTier", "less than the minimum")


def test_events_are_closed_at_envelope_and_payload_w2() -> None:
    event = purchase_confirmed(payment(), occurred_at=T0)
    assert_violation("events/purchase-confirmed", event | {"extra": 1}, "$", "'extra' was unexpected")
    bad = copy.deepcopy(event)
    bad["payload"]["purchaseTier"] = 10
    assert_violation("events/purchase-confirmed", bad, "$.payload", "'purchaseTier' was unexpected")
    missing = copy.deepcopy(event)
    del missing["payload"]["metadata"]
    assert_violation("events/purchase-confirmed", missing, "$.payload.metadata", "'metadata' is a required")
    assert_violation("events/purchase-confirmed", event | {"eventId": "E1"}, "$.eventId", "does not match")
    assert_violation("events/purchase-confirmed", event | {"occurredAt": "yesterday"},
                     "$.occurredAt", "is not a 'date-time'")


def test_dead_letter_rejects_bad_reason_and_attempts_w7() -> None:
    bad_reason = dead_letter(b"{}", "Retries Exhausted")
    assert_violation("events/dead-letter", bad_reason, "$.reason", "does not match")
    assert_violation("events/dead-letter", dead_letter(b"{}") | {"attempts": 0}, "$.attempts",
                     "less than the minimum")
    doc = dead_letter(b"{}")
    del doc["originalTopic"]
    assert_violation("events/dead-letter", doc, "$.originalTopic", "'originalTopic' is a required property")


def test_problem_requires_status_in_error_range() -> None:
    assert_violation("schemas/problem", {"type": "about:blank", "title": "OK", "status": 200},
                     "$.status", "less than the minimum")


# --- OpenAPI (I4: every HTTP response conforms) --------------------------------------------------

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# operationId -> the statuses the SPEC requires it to document.
EXPECTED_OPERATIONS: dict[str, tuple[str, str, set[str]]] = {
    "createPayment": ("payment-service", "post /api/v1/payments", {"201", "400", "415", "422"}),  # P1
    "getPayment": ("payment-service", "get /api/v1/payments/{paymentId}", {"200", "400", "404"}),
    "confirmPayment": (  # P2, P4
        "payment-service", "post /api/v1/payments/{paymentId}/confirm",
        {"200", "400", "401", "404", "409", "422"},
    ),
    "paymentServiceHealth": ("payment-service", "get /health", {"200"}),
    "getLearningView": (  # S1, S2
        "student-service", "get /api/v1/students/{studentId}/learning", {"200", "400", "401", "403"},
    ),
    "invalidateLearningCache": (  # S4
        "student-service", "delete /api/v1/students/{studentId}/learning/cache", {"204", "401", "403"},
    ),
    "studentServiceHealth": ("student-service", "get /health", {"200"}),
}


def _operations(path: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    doc = _load(path)
    ops: dict[str, tuple[str, dict[str, Any]]] = {}
    for route, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                op = item[method]
                assert op["operationId"] not in ops, f"duplicate operationId {op['operationId']}"
                ops[op["operationId"]] = (f"{method} {route}", op)
    return ops


def _deref(base: Path, node: Any) -> tuple[Path, Any]:
    """Follow $ref chains (local or to other files) until a node without one."""
    for _ in range(20):
        if not (isinstance(node, dict) and "$ref" in node):
            return base, node
        base, node = _resolve(base, node["$ref"])
    raise AssertionError("$ref chain too long")


def test_openapi_files_exist() -> None:
    assert {p.stem for p in OPENAPI_FILES} == {"payment-service", "student-service"}


@pytest.mark.parametrize("path", OPENAPI_FILES, ids=lambda p: p.stem)
def test_openapi_declares_3_1_and_refs_resolve(path: Path) -> None:
    doc = _load(path)
    assert str(doc["openapi"]).startswith("3.1."), doc["openapi"]
    refs = _assert_refs_resolve(path)
    assert any(r.startswith("../schemas/") for r in refs)


@pytest.mark.parametrize("operation_id", sorted(EXPECTED_OPERATIONS))
def test_openapi_operation_documents_its_statuses(operation_id: str) -> None:
    service, route, statuses = EXPECTED_OPERATIONS[operation_id]
    ops = _operations(ROOT / "openapi" / f"{service}.yaml")
    assert operation_id in ops
    found_route, op = ops[operation_id]
    assert found_route == route
    assert set(op["responses"]) >= statuses


@pytest.mark.parametrize("path", OPENAPI_FILES, ids=lambda p: p.stem)
def test_every_error_response_is_a_problem_i4(path: Path) -> None:
    for operation_id, (_, op) in _operations(path).items():
        for status, response in op["responses"].items():
            if not status.startswith(("4", "5")):
                continue
            base, resolved = _deref(path, response)
            content = resolved.get("content", {})
            assert list(content) == ["application/problem+json"], (operation_id, status)
            schema_ref = content["application/problem+json"]["schema"]
            target = schema_ref
            while isinstance(target, dict) and "$ref" in target:
                file_part = target["$ref"].partition("#")[0]
                if file_part.endswith("problem.schema.json"):
                    break
                base, target = _resolve(base, target["$ref"])
            else:
                pytest.fail(f"{operation_id} {status}: schema is not the problem schema")


def test_confirm_requires_the_signature_header_p2() -> None:
    path = ROOT / "openapi" / "payment-service.yaml"
    _, op = _operations(path)["confirmPayment"]
    params = [_deref(path, p)[1] for p in op.get("parameters", [])]
    signature = [p for p in params if p["in"] == "header" and p["name"] == "X-Signature"]
    assert signature and signature[0]["required"] is True
    body_ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref == "../schemas/payment-confirm.schema.json"


def test_create_returns_location_p1() -> None:
    _, op = _operations(ROOT / "openapi" / "payment-service.yaml")["createPayment"]
    assert op["responses"]["201"]["headers"]["Location"]["required"] is True


def test_learning_view_carries_cache_headers_and_auth_s1_s2() -> None:
    path = ROOT / "openapi" / "student-service.yaml"
    doc = _load(path)
    _, op = _operations(path)["getLearningView"]
    headers = op["responses"]["200"]["headers"]
    assert headers["Age"]["required"] is True and headers["Age"]["schema"]["type"] == "integer"
    assert headers["Cache-Status"]["required"] is True
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert op.get("security", doc["security"]) == [{"bearerAuth": []}]
    _, delete = _operations(path)["invalidateLearningCache"]
    assert delete["security"] == [{"bearerAuth": ["admin"]}]
    _, health = _operations(path)["studentServiceHealth"]
    assert health["security"] == []


# --- AsyncAPI ------------------------------------------------------------------------------------


def test_asyncapi_parses_and_refs_resolve() -> None:
    doc = _load(ASYNCAPI_FILE)
    assert str(doc["asyncapi"]).startswith("3.0."), doc["asyncapi"]
    refs = _assert_refs_resolve(ASYNCAPI_FILE)
    files = {r.partition("#")[0] for r in refs} - {""}
    assert files == {
        "./purchase-confirmed.schema.json", "./purchase-created.schema.json", "./dead-letter.schema.json",
    }


def test_asyncapi_channels_are_the_reference_topics() -> None:
    doc = _load(ASYNCAPI_FILE)
    assert {c["address"] for c in doc["channels"].values()} == set(TOPICS)


def _receivers(doc: dict[str, Any]) -> dict[str, set[str]]:
    """channel address -> consumer groups receiving from it."""
    groups: dict[str, set[str]] = {}
    for op in doc["operations"].values():
        if op["action"] != "receive":
            continue
        _, channel = _resolve(ASYNCAPI_FILE, op["channel"]["$ref"])
        group = op["bindings"]["kafka"]["groupId"]["enum"]
        groups.setdefault(channel["address"], set()).update(group)
    return groups


def test_asyncapi_consumer_groups_w1_s3() -> None:
    assert _receivers(_load(ASYNCAPI_FILE)) == {
        TOPIC_CONFIRMED: {WORKER_GROUP},
        TOPIC_CREATED: {INVALIDATOR_GROUP},
    }


@pytest.mark.parametrize(("topic", "schema_file"), [
    (TOPIC_CONFIRMED, "./purchase-confirmed.schema.json"),
    (TOPIC_CREATED, "./purchase-created.schema.json"),
    (TOPIC_DLQ, "./dead-letter.schema.json"),
])
def test_asyncapi_messages_key_and_payload(topic: str, schema_file: str) -> None:
    doc = _load(ASYNCAPI_FILE)
    (channel,) = [c for c in doc["channels"].values() if c["address"] == topic]
    (message_ref,) = channel["messages"].values()
    _, message = _deref(ASYNCAPI_FILE, message_ref)
    assert message["payload"]["schema"]["$ref"] == schema_file
    assert "key" in message["bindings"]["kafka"]


def test_asyncapi_headers_are_those_the_reference_sends() -> None:
    doc = _load(ASYNCAPI_FILE)
    event = purchase_confirmed(payment(), occurred_at=T0)
    sent = dict(event_message(TOPIC_CONFIRMED, event["payload"]["studentId"], event).headers)
    for name in ("PurchaseConfirmed", "PurchaseCreated"):
        _, headers = _deref(ASYNCAPI_FILE, doc["components"]["messages"][name]["headers"])
        assert set(headers["required"]) == set(sent)
        assert Draft202012Validator(headers).is_valid(sent)
    _, key_schema = _deref(ASYNCAPI_FILE, doc["components"]["messages"]["PurchaseConfirmed"]["bindings"]
                           ["kafka"]["key"])
    assert Draft202012Validator(key_schema).is_valid(event["payload"]["studentId"])


def test_timezone_enum_is_the_zone_database() -> None:
    """metadata.timezone is an enum any JSON Schema tool can enforce, equal to the zone database's names
    (regenerate with `python -m kcverify.contracts.timezones`), and every name in it loads as a zone."""
    import zoneinfo

    from kcverify.contracts import timezones

    prop = contracts.schema(timezones.SCHEMA)["properties"]["timezone"]
    assert "format" not in prop
    assert prop["enum"] == timezones.zone_names()
    assert set(prop["enum"]) == zoneinfo.available_timezones() - timezones.NOT_ZONES
    for name in prop["enum"]:
        zoneinfo.ZoneInfo(name)


def test_no_custom_formats_in_contracts() -> None:
    """Every `format` a service contract uses is one standard JSON Schema tooling knows: a custom one is
    checked by kcverify's validator alone, and generators produce values the service then refuses."""
    standard = {"date", "date-time", "time", "duration", "email", "uri", "uuid", "ipv4", "ipv6", "hostname",
                "int32", "int64", "float", "double", "binary", "byte", "password", "regex", "uri-reference"}
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("format"), str):
                found.add(node["format"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    root = contracts.contracts_dir()
    own_inputs = {"settings", "scenario", "claims"}  # kcverify's own files; `format: path` is an annotation there
    for path in root.rglob("*.json"):
        if path.name.removesuffix(".schema.json") not in own_inputs:
            walk(json.loads(path.read_text(encoding="utf-8")))
    for path in root.rglob("*.yaml"):
        walk(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert found <= standard, found - standard


def test_a_huge_instance_is_judged_but_not_remembered() -> None:
    from kcverify import contracts
    from kcverify.contracts import openapi

    huge = {"studentId": "s" * (contracts.MEMO_LARGEST + 1)}
    before, answers = len(contracts._MEMO), len(openapi._RESPONSE_MEMO)
    assert contracts.validate("schemas/learning-view", huge)  # still judged: it lacks `purchases`
    body = json.dumps(huge).encode()
    assert openapi.validate_response("student-service", "GET", "/api/v1/students/s1/learning", 200,
                                     {"content-type": "application/json"}, body)
    assert (len(contracts._MEMO), len(openapi._RESPONSE_MEMO)) == (before, answers)
