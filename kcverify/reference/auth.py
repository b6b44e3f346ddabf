"""Authentication of the two kinds of caller: the payment gateway signs its confirmation callback
(HMAC-SHA256 over the raw body, P2) and students/admins present a bearer JWT (HS256, S1)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import jwt

ROLES = ("student", "admin")


def sign_body(secret: str, body: bytes) -> str:
    """The X-Signature value a gateway sends: `sha256=<hex digest>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check; accepts the digest with or without the `sha256=` prefix."""
    if not header:
        return False
    given = header.strip().removeprefix("sha256=")
    expected = sign_body(secret, body).removeprefix("sha256=")
    # compared as bytes: compare_digest refuses non-ASCII text, and a header may carry anything
    return hmac.compare_digest(given.lower().encode("utf-8", "replace"), expected.encode())


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str

    def may_read(self, student_id: str) -> bool:
        return self.role == "admin" or self.subject == student_id


def issue_token(secret: str, subject: str, role: str = "student") -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    return jwt.encode({"sub": subject, "role": role}, secret, algorithm="HS256")


class InvalidToken(Exception):
    pass


def principal_from_header(secret: str, authorization: str | None) -> Principal:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise InvalidToken("missing bearer token")
    token = authorization[7:].strip()
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["sub"]})
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    role = claims.get("role", "student")
    subject = claims.get("sub")
    if role not in ROLES or not isinstance(subject, str):
        raise InvalidToken("bad claims")
    return Principal(subject, role)
