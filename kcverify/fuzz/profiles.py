"""The services a profile (--target external) names OpenAPI documents for: `http.services.NAME.openapi`,
a path relative to the profile's folder. Those services are fuzzed directly at their base URL, from
their own document; real ids and credentials still come through the target (its profile's operations,
tokens and signature recipe)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kcverify.core.errors import InputError
from kcverify.fuzz.runner import ServiceDocument
from kcverify.fuzz.transport import SIGNATURE_HEADER


def documents_of(target: Any) -> list[ServiceDocument] | None:
    """The documents a target's profile names; None for a target without a profile."""
    profile = getattr(target, "profile", None)
    if profile is None:
        return None
    folder = Path(profile.file).parent
    found = []
    header = str(profile.section("auth", "signature").get("header") or SIGNATURE_HEADER)
    for name, spec in profile.section("http", "services").items():
        if isinstance(spec, dict) and spec.get("openapi"):
            base = profile.resolve(spec["base_url"], "http", "services", name, "base_url").rstrip("/")
            found.append(ServiceDocument(name, folder / str(spec["openapi"]), base, direct=True,
                                         signature_header=header))
    if not found:
        raise InputError("the profile names no OpenAPI document to fuzz", profile.file,
                         hint="add `openapi: FILE` to a service under http.services (docs/fuzz.md)")
    return found
