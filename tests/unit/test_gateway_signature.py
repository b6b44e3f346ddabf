"""The gateway's signature, as the targets make it, is P2's recipe: checked against a value computed
outside Python (`printf '%s' '1767603600.<id>.<body>' | openssl dgst -sha256 -hmac whsec_test`), and
accepted by the reference's verification."""

from __future__ import annotations

from kcverify.reference.auth import signature_problem
from kcverify.spec.gateway import callback_signature

PAYMENT = "3f0c2a1e-8b7d-4c55-9a40-2f6b1d9e7c11"
BODY = b'{"status":"succeeded"}'


def test_the_signature_is_the_hmac_of_t_payment_and_body() -> None:
    assert callback_signature("whsec_test", PAYMENT, BODY, 1767603600.9) == (
        "t=1767603600,v1=747f6832fc536ad0c81158bef71ebb838514994126286d4d2a3cf702c372eccb")


def test_the_reference_accepts_it_and_nothing_else_in_its_place() -> None:
    header = callback_signature("whsec_test", PAYMENT, BODY, 1767603600)
    assert signature_problem("whsec_test", PAYMENT, BODY, header, now=1767603610) is None
    assert signature_problem("whsec_test", PAYMENT, BODY + b" ", header, now=1767603610) is not None
    other = callback_signature("whsec_test", PAYMENT.replace("3f", "4f", 1), BODY, 1767603600)
    assert signature_problem("whsec_test", PAYMENT, BODY, other, now=1767603610) is not None
