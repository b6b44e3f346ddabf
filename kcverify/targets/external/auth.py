"""The two kinds of credential a profile describes, made per call: bearer tokens for students and
admins (a JWT minted from a secret and a claims template, or a static token), and the payment gateway's
HMAC signature of a confirmation callback (of the raw body, or of a payload template such as
`{t}.{paymentId}.{body}`, in hex or base64, in a header with an optional prefix)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from typing import Any

import jwt

from kcverify.targets.base import EXPIRED_FOR
from kcverify.targets.external.profile import Profile
from kcverify.targets.external.templates import render, render_text

DEFAULT_SIGNATURE_HEADER = "X-Signature"
DEFAULT_TTL = 3600.0


class Credentials:
    """Tokens and signatures for one profile; secrets are read from the environment once, here."""

    def __init__(self, profile: Profile) -> None:
        self._tokens = profile.section("auth", "tokens")
        self._secrets: dict[str, str] = {}
        for role, spec in self._tokens.items():
            if spec["kind"] == "jwt":
                self._secrets[role] = profile.secret("auth", "tokens", role, "secret")
            elif spec["kind"] == "bearer":
                self._secrets[role] = profile.secret("auth", "tokens", role, "token")
        self._signature = profile.section("auth", "signature")
        self._signing_secret = profile.secret("auth", "signature", "secret") if self._signature else ""

    @property
    def signature_header(self) -> str:
        return str(self._signature.get("header", DEFAULT_SIGNATURE_HEADER))

    @property
    def signs(self) -> bool:
        return bool(self._signature)

    def token(self, subject: str, role: str, now: float, *, expired: bool = False) -> str:
        """A bearer token for `subject` as `role` ("" when the profile gives that role none); `expired`: one
        issued so long ago that it expired a minute before `now` (a JWT whose claims carry `{exp}`)."""
        spec = self._tokens.get(role)
        if spec is None or spec["kind"] == "none":
            return ""
        if spec["kind"] == "bearer":
            return self._secrets[role]
        ttl = math.floor(float(spec.get("ttl", DEFAULT_TTL)))
        iat = math.floor(now) - (ttl + EXPIRED_FOR if expired else 0)
        claims: dict[str, Any] = render(spec["claims"], {"subject": subject, "role": role, "iat": iat,
                                                          "exp": iat + ttl})
        return str(jwt.encode(claims, self._secrets[role], algorithm=spec.get("algorithm", "HS256")))

    def sign(self, payment_id: str, body: bytes, at: float) -> str:
        """The header value a genuine gateway sends with `body` for `payment_id` at time `at`."""
        spec = self._signature
        t = math.floor(at)
        template = str(spec.get("payload", "{body}"))
        head, marker, tail = template.partition("{body}")
        payload = render_text(head, {"t": t, "paymentId": payment_id}).encode()
        if marker:
            payload += body + render_text(tail, {"t": t, "paymentId": payment_id}).encode()
        mac = hmac.new(self._signing_secret.encode(), payload, getattr(hashlib, spec.get("algorithm", "sha256")))
        digest = mac.hexdigest() if spec.get("encoding", "hex") == "hex" else base64.b64encode(mac.digest()).decode()
        value = render_text(str(spec.get("value", "{signature}")), {"t": t, "signature": digest})
        return str(spec.get("prefix", "")) + value
