"""The HTTP side of the external target: the engine calls the canonical routes of kcverify's model
(kcverify.engine.steps: `POST /api/v1/payments`, `POST /api/v1/payments/{id}/confirm`, `GET
/api/v1/payments/{id}`, `GET /api/v1/students/{id}/learning`, `DELETE .../learning/cache`); each is
recognised here as one of the profile's operations, sent as the profile describes it (base URL, method,
path template, body template, credentials), and its answer translated back into the canonical JSON
shape the checks read (the payment of contracts/schemas/payment.schema.json, the learning view of
learning-view.schema.json): located with JMESPath, fields picked with JMESPath, a success status
reported as the canonical one. Any other answer (a refusal, a problem) is passed on as it came."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import jmespath

from kcverify.targets.base import HttpReply
from kcverify.targets.external.auth import DEFAULT_SIGNATURE_HEADER, Credentials
from kcverify.targets.external.profile import Profile, check_base_url
from kcverify.targets.external.templates import SPREAD, TemplateError, render, render_text
from kcverify.targets.http_client import HttpClient

# The canonical success status of each operation (what the engine's steps expect by default).
CANONICAL_STATUS = {"create_payment": 201, "confirm": 200, "read_payment": 200, "learning_view": 200,
                    "invalidate_cache": 204}
DEFAULT_AUTH = {"create_payment": "none", "confirm": "none", "read_payment": "none", "learning_view": "caller",
                "invalidate_cache": "caller"}
_ID = r"([^/]+)"
ROUTES: tuple[tuple[str, re.Pattern[str], str, str], ...] = (
    ("POST", re.compile(r"/api/v1/payments"), "create_payment", ""),
    ("POST", re.compile(rf"/api/v1/payments/{_ID}/confirm"), "confirm", "paymentId"),
    ("GET", re.compile(rf"/api/v1/payments/{_ID}"), "read_payment", "paymentId"),
    ("GET", re.compile(rf"/api/v1/students/{_ID}/learning"), "learning_view", "studentId"),
    ("DELETE", re.compile(rf"/api/v1/students/{_ID}/learning/cache"), "invalidate_cache", "studentId"),
)


@dataclass(frozen=True)
class Call:
    """One canonical request recognised as an operation of the profile."""

    operation: str
    fields: dict[str, Any]  # the canonical fields of the request (ids from the path, values of the body)


def recognise(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The operation a canonical route is, with the id it carries; None for any other route."""
    route = path.split("?", 1)[0]
    for verb, pattern, operation, field in ROUTES:
        match = pattern.fullmatch(route)
        if verb == method.upper() and match:
            return operation, ({field: match.group(1)} if field else {})
    return None


class HttpSide:
    """Sends canonical operations to the system through the profile, answers in canonical shapes."""

    def __init__(self, profile: Profile, credentials: Credentials, client: HttpClient) -> None:
        self._profile = profile
        self._credentials = credentials
        self._client = client
        self._base = {name: profile.resolve(spec["base_url"], "http", "services", name, "base_url").rstrip("/")
                      for name, spec in profile.section("http", "services").items()}
        for name, url in self._base.items():
            check_base_url(profile, url, name)
        self._tucked = tucked_into_metadata(profile.operation("create_payment") or {})

    def base_url(self, service: str) -> str:
        return self._base[service]

    def translated_body(self, operation: str, fields: dict[str, Any], body: bytes) -> bytes:
        """The bytes the system receives for a canonical body: the profile's body template filled from the
        canonical fields, or the canonical body unchanged. Deterministic, so a signature made over it by
        `Credentials.sign` holds for the request `send` makes."""
        op = self._profile.operation(operation) or {}
        if "body" not in op:
            return body
        try:
            canonical = json.loads(body) if body else {}
        except ValueError:
            return body  # not JSON: the system is sent what the scenario wrote
        values = {**(canonical if isinstance(canonical, dict) else {}), **fields}
        return json.dumps(render(op["body"], values), separators=(",", ":")).encode()

    def send(self, method: str, path: str, *, body: bytes | None, headers: dict[str, str],
             token: Any) -> HttpReply:
        """`token(subject, role)` mints a bearer for operations whose auth is `student` or `admin`."""
        found = recognise(method, path)
        if found is None:
            return HttpReply(None, {}, b"", error=f"the profile maps no operation for {method} {path}")
        operation, fields = found
        op = self._profile.operation(operation)
        if op is None:
            return HttpReply(None, {}, b"", error=f"the profile does not configure http.operations.{operation}")
        raw = body or b""
        if operation in ("create_payment", "confirm"):
            raw = self.translated_body(operation, fields, raw)
            with contextlib.suppress(ValueError, TypeError):
                fields = {**json.loads(body or b"{}"), **fields}
        try:
            url = self._base[op["service"]] + render_text(op["path"], fields, lambda s: quote(s, safe=""))
        except TemplateError as exc:
            return HttpReply(None, {}, b"", error=f"http.operations.{operation}.path: {exc}")
        sent = self._headers(operation, op, headers, fields, token)
        try:
            response = self._client.request(op["method"], url, content=raw if raw else None, headers=sent)
        except httpx.HTTPError as exc:
            return HttpReply(None, {}, b"", error=f"no response from {url}: {type(exc).__name__}: {exc}")
        return normalise(operation, op, response.status_code, {k.lower(): v for k, v in response.headers.items()},
                         response.content, tucked=self._tucked)

    def _headers(self, operation: str, op: dict[str, Any], given: dict[str, str], fields: dict[str, Any],
                 token: Any) -> dict[str, str]:
        signed = DEFAULT_SIGNATURE_HEADER.lower()
        headers = {k: v for k, v in given.items() if k.lower() not in ("authorization", signed)}
        signature = next((v for k, v in given.items() if k.lower() == signed), None)
        if signature is not None:
            headers[self._credentials.signature_header] = signature
        auth = op.get("auth", DEFAULT_AUTH[operation])
        bearer = ""
        if auth == "caller":
            bearer = next((v for k, v in given.items() if k.lower() == "authorization"), "")
        elif auth == "student":
            minted = token(str(fields.get("studentId", "")), "student")
            bearer = f"Bearer {minted}" if minted else ""
        elif auth == "admin":
            minted = token("admin", "admin")
            bearer = f"Bearer {minted}" if minted else ""
        if bearer and bearer.strip() != "Bearer":
            headers["Authorization"] = bearer
        return headers


def tucked_into_metadata(create: dict[str, Any]) -> frozenset[str]:
    """The keys a create body template lays over the checkout metadata (`metadata: {$spread: "{metadata}",
    courseId: "{courseId}"}`): the system keeps them inside its metadata, but they are not checkout
    metadata, so its answers are read without them."""
    body = create.get("body")
    found: set[str] = set()
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get(SPREAD) == "{metadata}":
                found.update(str(k) for k in node if k != SPREAD)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return frozenset(found)


def normalise(operation: str, op: dict[str, Any], status: int, headers: dict[str, str], body: bytes, *,
              tucked: frozenset[str] = frozenset()) -> HttpReply:
    """The system's answer in the canonical shape: a success status among `statuses` becomes the canonical
    one and its body is unwrapped (without the keys `tucked` into a payment's metadata); anything else is
    passed on unchanged."""
    canonical = CANONICAL_STATUS[operation]
    if status not in op.get("statuses", [canonical]):
        return HttpReply(status, headers, body)
    if operation == "invalidate_cache":
        return HttpReply(canonical, headers, b"")
    try:
        answer = json.loads(body)
    except ValueError:
        return HttpReply(canonical, headers, body)  # not JSON: the contract check says so
    if operation != "learning_view" and "payment" in op and jmespath.search(op["payment"], answer) is None:
        # a success without the payment where the profile says it is: the profile's path or the system is
        # wrong, and which one the answer shows; not a payment of nulls for the checks to blame
        return HttpReply(None, headers, body, error=f"the {status} answer has nothing at {op['payment']!r} (the "
                         f"profile's http.operations.{operation}.payment): {body[:200].decode(errors='replace')}")
    shaped = _view(op, answer) if operation == "learning_view" else _payment(op, answer)
    if tucked and operation != "learning_view" and isinstance(shaped, dict) \
            and isinstance(shaped.get("metadata"), dict):
        shaped = {**shaped, "metadata": {k: v for k, v in shaped["metadata"].items() if k not in tucked}}
    if shaped is answer:
        return HttpReply(canonical, headers, body)
    headers = {**headers, "content-type": "application/json"}
    headers.pop("content-length", None)
    return HttpReply(canonical, headers, json.dumps(shaped).encode())


def _pick(obj: Any, fields: dict[str, str] | None) -> Any:
    if not fields:
        return obj
    return {name: jmespath.search(expression, obj) for name, expression in fields.items()}


def _payment(op: dict[str, Any], answer: Any) -> Any:
    if "payment" not in op and not op.get("fields"):
        return answer
    located = jmespath.search(op.get("payment", "@"), answer)
    return _pick(located, op.get("fields"))


def _view(op: dict[str, Any], answer: Any) -> Any:
    if not any(key in op for key in ("purchases", "fields", "view_fields")):
        return answer
    items = jmespath.search(op.get("purchases", "purchases"), answer)
    purchases = [_pick(item, op.get("fields")) for item in items] if isinstance(items, list) else items
    view_fields = {"studentId": "studentId", "generatedAt": "generatedAt", **(op.get("view_fields") or {})}
    view: dict[str, Any] = {name: jmespath.search(expression, answer) for name, expression in view_fields.items()
                            if expression is not None}
    view = {name: value for name, value in view.items() if value is not None}
    view["purchases"] = purchases
    return view
