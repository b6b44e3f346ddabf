"""What `kcverify fuzz` takes from a profile that names OpenAPI documents: each document fuzzed directly at
its service's base URL, signed in the header the profile's signature recipe names, for the payment the
callback path names."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from kcverify.fuzz.profiles import documents_of
from kcverify.fuzz.runner import FuzzOptions, load_schema
from kcverify.fuzz.transport import SIGNATURE_HEADER, payment_id_of
from kcverify.targets.external.profile import load_profile

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "profiles" / "examples" / "production-shaped.yaml"
ENV = {"OTHERSYS_DSN": "postgresql://x@127.0.0.1:1/x", "OTHERSYS_JWT_SECRET": "j", "OTHERSYS_WEBHOOK_SECRET": "w",
       "OTHERSYS_PAYMENT_URL": "http://127.0.0.1:1/", "OTHERSYS_STUDENT_URL": "http://127.0.0.1:2"}


def test_the_payment_of_a_callback_path_is_the_segment_before_the_last() -> None:
    assert payment_id_of("/api/v1/payments/p-1/confirm") == "p-1"
    assert payment_id_of("/v2/checkout/payments/p%2D2/callback") == "p-2"


def test_the_other_systems_profile_names_usable_documents_signed_in_its_own_header() -> None:
    profile = load_profile(PROFILE, environ=ENV)
    documents = documents_of(SimpleNamespace(profile=profile))
    assert documents is not None
    assert {(d.service, d.curl_base, d.direct) for d in documents} == {
        ("checkout", "http://127.0.0.1:1", True), ("students", "http://127.0.0.1:2", True)}
    assert {d.signature_header for d in documents} == {"X-Checkout-Signature"} != {SIGNATURE_HEADER}
    for document in documents:  # each loads, every operation usable (the fuzzer's own loader)
        schema = load_schema(document, "negative", FuzzOptions(max_examples=1))
        assert list(schema.get_all_operations())
    callback = next(r.ok() for r in load_schema(documents[0], "positive", FuzzOptions()).get_all_operations()
                    if r.ok().path.endswith("/callback"))
    assert [p.name for p in callback.headers] == ["X-Checkout-Signature"]
