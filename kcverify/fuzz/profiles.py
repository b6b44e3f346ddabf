"""The services a profile (--target external) names OpenAPI documents for: `http.services.NAME.openapi`,
a path relative to the profile's folder, or `kcverify:contracts/PATH` for a contract kcverify ships (the
reference's profile names the reference's own documents that way, so it works from a checkout and from an
installed wheel alike). Those services are fuzzed directly at their base URL, from
their own document; real ids and credentials still come through the target (its profile's operations,
tokens and signature recipe)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kcverify.core.errors import InputError
from kcverify.core.resources import shipped_dir
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
    problem_errors = profile.section("conventions").get("errors", "problem") == "problem"
    for name, spec in profile.section("http", "services").items():
        if isinstance(spec, dict) and spec.get("openapi"):
            base = profile.resolve(spec["base_url"], "http", "services", name, "base_url").rstrip("/")
            found.append(ServiceDocument(name, document_path(folder, str(spec["openapi"])), base, direct=True,
                                         signature_header=header, problem_errors=problem_errors))
    if not found:
        raise InputError("the profile names no OpenAPI document to fuzz", profile.file,
                         hint="add `openapi: FILE` to a service under http.services (docs/fuzz.md)")
    return found


SHIPPED_CONTRACTS = "kcverify:contracts/"


def document_path(folder: Path, value: str) -> Path:
    """Where an `openapi` value points: a shipped contract, or a path relative to the profile's folder."""
    if value.startswith(SHIPPED_CONTRACTS):
        return shipped_dir("contracts") / value[len(SHIPPED_CONTRACTS):]
    return folder / value
