"""The payment gateway's side of P2, written from the rule's text and not from any implementation: the
`X-Signature` a gateway sends with its callback. The targets that stand in for the gateway sign with this,
so a service whose verification departs from P2 (an HMAC that leaves out `t`, or the payment id) refuses
the gateway's genuine callbacks instead of agreeing with a signer that shares its mistake.

P2: `X-Signature: t=<unix seconds>,v1=<hex HMAC of "{t}.{paymentId}.{raw body}">`, HMAC-SHA256 keyed with
the deployment's webhook secret."""

from __future__ import annotations

import hashlib
import hmac
import math


def callback_signature(secret: str, payment_id: str, body: bytes, at: float) -> str:
    """The header value for a callback about `payment_id` with this exact body, sent at `at` (seconds)."""
    timestamp = math.floor(at)
    signed = f"{timestamp}.{payment_id}.".encode() + body
    return f"t={timestamp},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"
