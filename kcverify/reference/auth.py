"""Authentication of the two kinds of caller: the payment gateway signs its confirmation callback (P2)
and students/admins present a bearer JWT (HS256, S1).

The callback's signature is bound to the payment and to time, as payment providers sign webhooks:
`X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{paymentId}.{raw body}">`. A signature made
for one payment is worthless on another, and one older (or newer) than the tolerance is refused, so a
captured or published signature cannot confirm anything else, or anything later. Within the tolerance a
resent callback verifies again: that is the gateway's retry, which P4 makes a no-op."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import jwt

ROLES = ("student", "admin")
DEFAULT_TOLERANCE = 300.0  # seconds a callback's `t` may differ from the receiver's clock (P2)
DEFAULT_TOKEN_TTL = 3600.0  # seconds an issued bearer token stays valid

_HEADER = re.compile(r"t=([0-9]{1,12}),v1=([0-9a-fA-F]{64})")


def signed_payload(payment_id: str, body: bytes, timestamp: int) -> bytes:
    """What the gateway's HMAC covers: `{t}.{paymentId}.{raw body}`."""
    return f"{timestamp}.{payment_id}.".encode() + body


def digest(secret: str, payment_id: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), signed_payload(payment_id, body, timestamp), hashlib.sha256).hexdigest()


def sign_callback(secret: str, payment_id: str, body: bytes, at: float) -> str:
    """The X-Signature value a gateway sends for this payment's callback at time `at` (whole seconds)."""
    timestamp = math.floor(at)
    return f"t={timestamp},v1={digest(secret, payment_id, body, timestamp)}"


@dataclass(frozen=True)
class ParsedSignature:
    timestamp: int
    v1: str


def parse_signature(header: str | None) -> ParsedSignature | None:
    """`t=<seconds>,v1=<64 hex digits>`, or None when the header is missing or malformed."""
    if not header:
        return None
    match = _HEADER.fullmatch(header)
    if match is None:
        return None
    return ParsedSignature(int(match.group(1)), match.group(2).lower())


def signature_problem(secret: str, payment_id: str, body: bytes, header: str | None, *, now: float,
                      tolerance: float = DEFAULT_TOLERANCE) -> str | None:
    """Why the callback's signature is not acceptable, or None when it is. The digest is compared in
    constant time; the timestamp is checked only once the digest proves the gateway chose it."""
    parsed = parse_signature(header)
    if parsed is None:
        return "X-Signature is missing or not of the form t=<unix seconds>,v1=<hex HMAC-SHA256>"
    expected = digest(secret, payment_id, body, parsed.timestamp)
    if not hmac.compare_digest(parsed.v1.encode(), expected.encode()):
        return "X-Signature is not the HMAC-SHA256 of \"{t}.{paymentId}.{body}\" for this payment"
    if abs(now - parsed.timestamp) > tolerance:
        return f"X-Signature's timestamp is outside the {tolerance:g} s tolerance"
    return None


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str

    def may_read(self, student_id: str) -> bool:
        return self.role == "admin" or self.subject == student_id


def issue_token(secret: str, subject: str, role: str = "student", *, now: float,
                ttl: float = DEFAULT_TOKEN_TTL) -> str:
    """A bearer token that expires `ttl` seconds after `now` (the issuer's clock)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    return jwt.encode({"sub": subject, "role": role, "iat": math.floor(now), "exp": math.floor(now + ttl)}, secret,
                      algorithm="HS256")


class InvalidToken(Exception):
    pass


@lru_cache(maxsize=1024)
def _claims(secret: str, token: str) -> MappingProxyType[str, Any]:
    """The verified claims of a token (signature and required claims; expiry is judged by the caller on
    its own clock). A pure function of the token and the secret, and the same few tokens recur on every
    request, so it is remembered: a signature check and two JSON decodes were half of a learning read.
    A token that does not verify is not remembered; it raises each time."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"],
                            options={"require": ["sub", "exp"], "verify_exp": False, "verify_iat": False})
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    return MappingProxyType(claims)


def unverified_principal(authorization: str | None) -> Principal:
    """The token-signature-unverified defect: the claims read without checking the signature or the expiry
    ("the API gateway verified it already"), so anyone can write their own token."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise InvalidToken("missing bearer token")
    try:
        claims = jwt.decode(authorization[7:].strip(), options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    role, subject = claims.get("role", "student"), claims.get("sub")
    if role not in ROLES or not isinstance(subject, str):
        raise InvalidToken("bad claims")
    return Principal(subject, role)


def principal_from_header(secret: str, authorization: str | None, *, now: float) -> Principal:
    """The caller of a bearer token. Expiry is judged on the service's clock (`now`), not the host's, so
    the embedded reference on a manual clock expires tokens exactly as the real services do."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise InvalidToken("missing bearer token")
    claims = _claims(secret, authorization[7:].strip())
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise InvalidToken("bad claims")
    if now >= expires:
        raise InvalidToken("token has expired")
    role = claims.get("role", "student")
    subject = claims.get("sub")
    if role not in ROLES or not isinstance(subject, str):
        raise InvalidToken("bad claims")
    return Principal(subject, role)
