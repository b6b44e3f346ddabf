"""requests' transport adapter over `Target.http`: Schemathesis sends with a requests session, and
this adapter hands each prepared request to the target, so the fuzzer reaches the system exactly as
scenarios do (in-process ASGI on embedded, real HTTP on the others), re-sends by Schemathesis' own
checks included.

The payment gateway signs the raw body it sends; a generated case cannot know those bytes, so it
carries the placeholder `SIGN_ME` and the adapter replaces it with `Target.sign` over the body as
serialised, for the payment the path names."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
import requests.structures
from requests.adapters import BaseAdapter, HTTPAdapter
from schemathesis.transport.requests import REQUESTS_TRANSPORT
from urllib3 import HTTPHeaderDict, HTTPResponse

from kcverify.targets.base import Target

# A well-formed signature (it satisfies the header's schema) that no gateway would send.
SIGN_ME = "t=0,v1=" + "0" * 64
SIGNATURE_HEADER = "X-Signature"
# Hop-by-hop or transport headers the target's own client sets itself.
_DROP_REQUEST = frozenset({"connection", "content-length", "accept-encoding", "host"})
# The target's client already decoded the body: a content-encoding header would make requests decode again.
_DROP_RESPONSE = frozenset({"content-encoding", "transfer-encoding", "content-length"})


def base_url(service: str) -> str:
    """The URL the fuzzer's requests name for `service`: only a routing key of the session."""
    return f"http://{service}"


def payment_id_of(path: str) -> str:
    """The payment a callback path names: the segment before the last (/api/v1/payments/{paymentId}/confirm,
    or a user's own, such as /v2/checkout/payments/{paymentId}/callback)."""
    parts = path.rstrip("/").rsplit("/", 2)
    return unquote(parts[-2] if len(parts) == 3 else parts[-1])


class TargetAdapter(BaseAdapter):
    """Sends a prepared request to one service of the target."""

    def __init__(self, target: Target, service: str, direct_to: str = "",
                 signature_header: str = SIGNATURE_HEADER) -> None:
        """`direct_to`: a base URL to send to over HTTP instead of through `target.http` (a user's service,
        fuzzed from its own document); `signature_header`: the header the gateway's signature goes in
        (a profile's `auth.signature.header` for a user's service)."""
        super().__init__()
        self.signature_header = signature_header
        self.target = target
        self.service = service
        self.direct_to = direct_to.rstrip("/")
        self._build = HTTPAdapter()

    def _direct(self, request: requests.PreparedRequest, headers: dict[str, str], raw: bytes,
                timeout: Any) -> requests.Response:
        sent = request.copy()
        sent.prepare_url(self.direct_to + request.path_url, None)
        sent.headers = requests.structures.CaseInsensitiveDict(headers)
        sent.prepare_body(raw or None, None)
        response = self._build.send(sent, timeout=timeout or 30)
        response.request = request
        return response

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Mapping[str, str] | None = None) -> requests.Response:
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else b""
        path = request.path_url
        # A field value's leading and trailing whitespace is not part of it (RFC 9110, 5.5): no HTTP client
        # sends `Bearer ` with its space (the generated garbage token may be empty), so neither does this one.
        headers = {k: (v if isinstance(v, str) else v.decode("latin-1")).strip(" \t")
                   for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST}
        for name, value in headers.items():
            if name in request.headers:
                request.headers[name] = value  # the curl line shows what was sent
        signed = self.signature_header
        if request.headers.get(signed) == SIGN_ME:
            headers = {k: v for k, v in headers.items() if k.lower() != signed.lower()}
            headers[signed] = self.target.sign(payment_id_of(urlsplit(path).path), raw)
            request.headers[signed] = headers[signed]  # the curl line shows what was sent
        if self.direct_to:
            return self._direct(request, headers, raw, timeout)
        reply = self.target.http(self.service, request.method or "GET", path, body=raw or None, headers=headers)
        if reply.status is None:
            raise requests.ConnectionError(reply.error or "no response", request=request)
        fields = HTTPHeaderDict()
        for name, value in reply.headers.items():
            if name.lower() not in _DROP_RESPONSE:
                fields.add(name, value)
        answer = HTTPResponse(body=io.BytesIO(reply.body), headers=fields, status=reply.status, version=11,
                              reason=_reason(reply.status), preload_content=False, decode_content=False)
        response = self._build.build_response(request, answer)
        response._content = reply.body  # read once, here: the target gave the whole body
        return response

    def close(self) -> None:
        self._build.close()


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def session_for(target: Target, documents: Iterable[Any]) -> requests.Session:
    """A session whose requests to `base_url(service)` go to that service of `target` (each document
    names a service; a `direct` one is sent to its `curl_base` over HTTP)."""
    session = requests.Session()
    session.trust_env = False  # no proxy or .netrc of the user's environment between fuzzer and target
    for document in documents:
        direct = document.curl_base if document.direct else ""
        session.mount(base_url(document.service) + "/",
                      TargetAdapter(target, document.service, direct, document.signature_header))
    return session


class _TargetTransport:
    """Schemathesis' requests transport (its serializers included) with our session as the default: its
    own probes (the `ignored_auth` check re-sends without credentials, and without the session it was
    given) reach the target too, instead of resolving a service name as a host."""

    def __init__(self, session: requests.Session) -> None:
        self._session = session

    def send(self, case: Any, *, session: requests.Session | None = None, **kwargs: Any) -> Any:
        return REQUESTS_TRANSPORT.send(case, session=session or self._session, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(REQUESTS_TRANSPORT, name)


def route_through(schema: Any, session: requests.Session) -> None:
    """Make every request of `schema`'s operations, Schemathesis' probes included, go through `session`.
    The transport is a read-only property of the schema, so the schema gets a subclass that answers it."""
    transport = _TargetTransport(session)
    schema.__class__ = type(f"Targeted{type(schema).__name__}", (type(schema),),
                            {"transport": property(lambda self: transport)})
