"""The external target's profile and its translation layer, without a running system: the profile
loader's errors, templates, credentials made as the reference verifies them, wrapped answers translated
into the canonical shapes, and the reference documentation covering every key of the schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from kcverify import contracts
from kcverify.core.errors import InputError
from kcverify.reference.auth import principal_from_header, signature_problem
from kcverify.targets.external.auth import Credentials
from kcverify.targets.external.db import _postgres_sql
from kcverify.targets.external.http import normalise, recognise
from kcverify.targets.external.profile import load_profile
from kcverify.targets.external.templates import TemplateError, render

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "profiles" / "reference.yaml"
ENV = {"KCVERIFY_AUTH_SECRET": "auth-secret-for-tests-0123456789abcdef",
       "KCVERIFY_WEBHOOK_SECRET": "hook-secret-for-tests-0123456789abcdef",
       "KCVERIFY_PAYMENTS_DSN": "sqlite:///nowhere/p.sqlite3", "KCVERIFY_COURSES_DSN": "sqlite:///nowhere/c.sqlite3"}

MINIMAL = """\
profile: 1
name: tiny
http:
  services:
    api: {base_url: "http://127.0.0.1:1"}
  operations:
    create_payment: {service: api, method: POST, path: /payments}
    confirm: {service: api, method: POST, path: "/payments/{paymentId}/confirm"}
    learning_view: {service: api, method: GET, path: "/students/{studentId}/courses"}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    return path


def test_the_reference_profile_loads_and_configures_http_db_kafka_and_control() -> None:
    profile = load_profile(REFERENCE, ENV)
    assert profile.name == "kcverify reference"
    assert profile.capabilities == {"http", "read_db", "read_bus", "produce_events", "control_components",
                                    "inject_faults", "read_cache", "expiring_tokens", "caller_credentials"}


def test_expiring_tokens_need_jwts_whose_claims_carry_the_expiry(tmp_path: Path) -> None:
    """A static token, or a JWT without `{exp}`, cannot be made to expire: `credential: expired` is skipped."""
    def capabilities(tokens: str) -> frozenset[str]:
        return load_profile(write(tmp_path, MINIMAL + tokens), {"S": "x"}).capabilities

    jwt = "    {role}: {{kind: jwt, secret: {{env: S}}, claims: {{sub: \"{{subject}}\"{exp}}}}}\n"
    both = "auth:\n  tokens:\n" + jwt.format(role="student", exp=', exp: "{exp}"') + \
        jwt.format(role="admin", exp=', exp: "{exp}"')
    assert "expiring_tokens" in capabilities(both)
    assert "expiring_tokens" not in capabilities(both.replace(', exp: "{exp}"', "", 1))
    static = "auth:\n  tokens:\n    student: {kind: bearer, token: {env: S}}\n"
    assert "expiring_tokens" not in capabilities(static)


def test_a_minimal_profile_offers_http_only(tmp_path: Path) -> None:
    assert load_profile(write(tmp_path, MINIMAL), {}).capabilities == {"http"}


def test_a_typo_is_placed_on_its_key_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("    learning_view:", "    learning_veiw:"))
    with pytest.raises(InputError) as raised:
        load_profile(path, {})
    text = raised.value.render()
    assert text.startswith(f"{path}:9:5: ")
    assert "learning_view" in text and "did you mean" in text


def test_an_unknown_service_is_named_with_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("confirm: {service: api", "confirm: {service: apj"))
    with pytest.raises(InputError) as raised:
        load_profile(path, {})
    assert raised.value.line == 8 and "unknown service 'apj'" in raised.value.render()
    assert "did you mean 'api'" in raised.value.render()


def test_a_bad_jmespath_expression_is_refused_where_it_is(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('path: "/students/{studentId}/courses"}',
                                           'path: "/students/{studentId}/courses", purchases: "data.[["}'))
    with pytest.raises(InputError) as raised:
        load_profile(path, {})
    assert raised.value.line == 9 and "not a JMESPath expression" in raised.value.render()


def test_a_secret_cannot_be_written_in_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "auth:\n  signature: {secret: plain-text-secret}\n")
    with pytest.raises(InputError) as raised:
        load_profile(path, {})
    assert raised.value.line == 11


def test_a_missing_environment_variable_is_placed_on_the_value_that_names_it() -> None:
    profile = load_profile(REFERENCE, {})
    with pytest.raises(InputError) as raised:
        Credentials(profile)
    assert "KCVERIFY_AUTH_SECRET is not set" in raised.value.render()
    assert raised.value.file == str(REFERENCE) and raised.value.line is not None


@pytest.mark.parametrize(("change", "line", "expected"), [
    # a misspelt field name would make a field "not carried" and its checks quietly not judged
    (('path: "/students/{studentId}/courses"}', 'path: "/students/{studentId}/courses", fields: {purchaseID: id}}'),
     9, "'purchaseID' is not one of the learning-view purchase fields (did you mean 'purchaseId'?"),
    # an unknown placeholder would fail only when a scenario sends the request
    (('path: "/payments/{paymentId}/confirm"', 'path: "/payments/{payment_id}/confirm"'),
     8, "unknown placeholder {payment_id} (did you mean 'paymentId'?"),
    (("create_payment: {service: api, method: POST, path: /payments}",
      "create_payment: {service: api, method: POST, path: /payments, body: {sid: '{student_id}'}}"),
     7, "unknown placeholder {student_id} (did you mean 'studentId'?"),
])
def test_a_name_kcverify_does_not_know_is_placed_with_a_suggestion(tmp_path: Path, change: tuple[str, str],
                                                                     line: int, expected: str) -> None:
    assert change[0] in MINIMAL
    path = write(tmp_path, MINIMAL.replace(*change))
    with pytest.raises(InputError) as raised:
        load_profile(path, {})
    assert raised.value.line == line and expected in raised.value.render(), raised.value.render()


def test_a_misspelt_topic_field_query_parameter_or_cache_placeholder_is_refused(tmp_path: Path) -> None:
    text = REFERENCE.read_text()
    for old, new, expected in (
            ("eventId: value.eventId", "evntId: value.eventId", "'evntId' is not one of the canonical fields"),
            ("LIKE :prefix", "LIKE :prefx", "unknown query parameter :prefx (did you mean 'prefix'?"),
            ('key: "student:learning:{studentId}"', 'key: "student:learning:{student_id}"',
             "unknown placeholder {student_id}")):
        assert old in text, old
        broken = write(tmp_path, text.replace(old, new, 1))
        with pytest.raises(InputError) as raised:
            load_profile(broken, ENV)
        assert expected in raised.value.render(), raised.value.render()


def test_a_secret_written_as_a_name_is_told_how_to_write_it(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "auth:\n  signature: {secret: HOOK_SECRET}\n")
    with pytest.raises(InputError) as raised:
        load_profile(path, {})
    assert "write `{env: HOOK_SECRET}`" in raised.value.render()


def test_templates_keep_types_and_fill_text() -> None:
    fields = {"studentId": "s1", "amountCents": 4900, "metadata": {"sessionCount": 10}}
    body = render({"data": {"student": "{studentId}", "amount": "{amountCents}", "md": "{metadata}",
                            "ref": "pay-{studentId}-{amountCents}"}}, fields)
    assert body == {"data": {"student": "s1", "amount": 4900, "md": {"sessionCount": 10}, "ref": "pay-s1-4900"}}
    with pytest.raises(TemplateError, match="courseId"):
        render("{courseId}", fields)


def test_credentials_are_accepted_by_the_reference_and_bound_to_payment_and_time() -> None:
    credentials = Credentials(load_profile(REFERENCE, ENV))
    token = credentials.token("s1", "student", now=1000.0)
    principal = principal_from_header(ENV["KCVERIFY_AUTH_SECRET"], f"Bearer {token}", now=1001.0)
    assert (principal.subject, principal.role) == ("s1", "student")
    body = b'{"status":"succeeded"}'
    header = credentials.sign("pay-1", body, at=5000.0)
    assert signature_problem(ENV["KCVERIFY_WEBHOOK_SECRET"], "pay-1", body, header, now=5001.0) is None
    assert signature_problem(ENV["KCVERIFY_WEBHOOK_SECRET"], "pay-2", body, header, now=5001.0) is not None


def test_a_raw_body_signature_in_base64_with_a_prefix(tmp_path: Path) -> None:
    import base64
    import hashlib
    import hmac

    text = MINIMAL + ("auth:\n  signature: {secret: {env: HOOK}, header: X-Hub-Signature, algorithm: sha512, "
                      "encoding: base64, prefix: 'sha512='}\n")
    credentials = Credentials(load_profile(write(tmp_path, text), {"HOOK": "k"}))
    expected = base64.b64encode(hmac.new(b"k", b"{}", hashlib.sha512).digest()).decode()
    assert credentials.sign("p", b"{}", at=1.0) == f"sha512={expected}"
    assert credentials.signature_header == "X-Hub-Signature"


def test_canonical_routes_are_recognised() -> None:
    assert recognise("POST", "/api/v1/payments") == ("create_payment", {})
    assert recognise("POST", "/api/v1/payments/abc/confirm") == ("confirm", {"paymentId": "abc"})
    assert recognise("GET", "/api/v1/students/s1/learning") == ("learning_view", {"studentId": "s1"})
    assert recognise("DELETE", "/api/v1/students/s1/learning/cache") == ("invalidate_cache", {"studentId": "s1"})
    assert recognise("GET", "/api/v1/elsewhere") is None


def test_a_wrapped_payment_is_unwrapped_and_its_success_status_made_canonical() -> None:
    op: dict[str, Any] = {"statuses": [200], "payment": "data.payment",
                          "fields": {"id": "id", "studentId": "student.id", "status": "state"}}
    body = json.dumps({"success": True, "message": "ok",
                       "data": {"payment": {"id": "p1", "student": {"id": "s1"}, "state": "pending"}}}).encode()
    reply = normalise("create_payment", op, 200, {}, body)
    assert reply.status == 201
    assert reply.json() == {"id": "p1", "studentId": "s1", "status": "pending"}
    refused = normalise("create_payment", op, 422, {}, b'{"success":false}')
    assert (refused.status, refused.body) == (422, b'{"success":false}')


def test_a_success_without_a_payment_where_the_profile_says_names_the_profile_not_a_payment_of_nulls() -> None:
    op: dict[str, Any] = {"statuses": [200], "payment": "data.pay", "fields": {"id": "id", "status": "state"}}
    body = json.dumps({"success": True, "data": {"payment": {"id": "p1", "state": "succeeded"}}}).encode()
    reply = normalise("confirm", op, 200, {}, body)
    assert reply.status is None
    assert "nothing at 'data.pay' (the profile's http.operations.confirm.payment)" in reply.error, reply.error


def test_a_misspelt_canonical_value_or_a_base_url_without_scheme_is_refused_where_it_is(tmp_path: Path) -> None:
    shaped = ROOT / "profiles" / "examples" / "production-shaped.yaml"
    env = {"OTHERSYS_JWT_SECRET": "x", "OTHERSYS_WEBHOOK_SECRET": "y", "OTHERSYS_DSN": "postgresql://h/db"}
    text = shaped.read_text()
    old = "type: {payment.confirmed: PURCHASE_CONFIRMED}"
    assert old in text
    with pytest.raises(InputError) as raised:
        load_profile(write(tmp_path, text.replace(old, old.replace("CONFIRMED", "CONFIRMD"))), env)
    assert "'PURCHASE_CONFIRMD' is not a canonical type of the confirmed topic (did you mean 'PURCHASE_CONFIRMED'" \
        in raised.value.render(), raised.value.render()
    with pytest.raises(InputError) as raised:
        load_profile(write(tmp_path, MINIMAL.replace('"http://127.0.0.1:1"', '"127.0.0.1:1"')), {})
    assert "base_url '127.0.0.1:1' is not an http(s) URL with a host" in raised.value.render()
    with pytest.raises(InputError) as raised:  # read from the environment: refused once resolved
        from kcverify.targets.external import ExternalTarget
        ExternalTarget(load_profile(shaped, {**env, "OTHERSYS_PAYMENT_URL": "127.0.0.1:9081"}))
    assert "base_url '127.0.0.1:9081' is not an http(s) URL" in raised.value.render()


def test_a_wrapped_learning_view_is_unwrapped() -> None:
    op: dict[str, Any] = {"purchases": "data.courses[?purchase != null]",
                          "fields": {"paymentId": "purchase.paymentId", "courseId": "id",
                                     "metadata": "purchase._metadata"},
                          "view_fields": {"studentId": "data.studentId"}}
    body = json.dumps({"success": True, "data": {"studentId": "s1", "courses": [
        {"id": "c1", "purchase": {"paymentId": "p1", "_metadata": {"sessionCount": 10}}},
        {"id": "c2", "purchase": None}]}}).encode()
    reply = normalise("learning_view", op, 200, {"cache-status": "x; hit"}, body)
    assert reply.status == 200 and reply.headers["cache-status"] == "x; hit"
    assert reply.json() == {"studentId": "s1", "purchases": [
        {"paymentId": "p1", "courseId": "c1", "metadata": {"sessionCount": 10}}]}


def test_postgres_parameters_are_bound_not_pasted() -> None:
    sql = "SELECT x::text FROM t WHERE a LIKE :prefix || '%' AND b = :payment_id"
    assert _postgres_sql(sql) == "SELECT x::text FROM t WHERE a LIKE %(prefix)s || '%%' AND b = %(payment_id)s"


def _keys(schema: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> set[str]:
    if "$ref" in schema:
        schema = defs[schema["$ref"].split("/")[-1]]
    keys: set[str] = set()
    for variant in schema.get("oneOf", []):
        keys |= _keys(variant, defs, prefix)
    for name, sub in (schema.get("properties") or {}).items():
        keys.add(prefix + name)
        keys |= _keys(sub, defs, prefix + name + ".")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and extra.get("type") == "object":
        keys |= _keys(extra, defs, prefix + "*.")
    if isinstance(schema.get("items"), dict):
        keys |= _keys(schema["items"], defs, prefix + "[]" + ".")
    return keys


def test_every_key_of_the_profile_schema_is_documented() -> None:
    schema = contracts.schema("schemas/profile")
    keys = _keys(schema, schema["$defs"])
    assert len(keys) > 50
    documented = set(re.findall(r"^\| `([^`]+)` \|", (ROOT / "docs" / "external.md").read_text(), re.MULTILINE))
    assert sorted(keys - documented) == []
    assert sorted(documented - keys) == []


def test_sqlite_paths() -> None:
    from kcverify.targets.external.db import _sqlite_path

    assert _sqlite_path("sqlite:///tmp/a.sqlite3") == "/tmp/a.sqlite3"
    assert _sqlite_path("sqlite:////tmp/a.sqlite3") == "/tmp/a.sqlite3"
    assert _sqlite_path("sqlite:data/a.sqlite3") == "data/a.sqlite3"


def test_a_spread_lays_the_checkout_metadata_under_keys_of_the_systems_own_and_answers_are_read_without_them(
        ) -> None:
    from kcverify.targets.external.http import tucked_into_metadata
    from kcverify.targets.external.templates import TemplateError, render

    template = {"studentId": "{studentId}", "metadata": {"$spread": "{metadata}", "courseId": "{courseId}"}}
    fields = {"studentId": "s1", "courseId": "c-yoga", "metadata": {"sessionCount": 10, "courseId": "ignored"}}
    assert render(template, fields) == {"studentId": "s1", "metadata": {"sessionCount": 10, "courseId": "c-yoga"}}
    with pytest.raises(TemplateError):
        render({"$spread": "{studentId}"}, fields)
    op = {"service": "api", "method": "POST", "path": "/p", "body": template, "payment": "data",
          "statuses": [201]}
    tucked = tucked_into_metadata(op)
    assert tucked == {"courseId"}
    answer = {"data": {"id": "p1", "metadata": {"sessionCount": 10, "courseId": "c-yoga"}}}
    reply = normalise("create_payment", op, 201, {}, json.dumps(answer).encode(), tucked=tucked)
    assert json.loads(reply.body) == {"id": "p1", "metadata": {"sessionCount": 10}}
