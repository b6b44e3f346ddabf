"""The version of every document under contracts/, as `kcverify --version` shows it: a user whose
system was built to these contracts can tell which ones a kcverify release checks against.

Each kind of document carries its version where its own format puts it: OpenAPI and AsyncAPI in
`info.version`, a JSON Schema in a top-level `version` (an annotation: validation ignores it), a SQL
file in a first line `-- version: X`. A document without one is reported as None (a test keeps every
shipped document versioned)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from kcverify.contracts import contracts_dir

_SQL_VERSION = re.compile(r"^--\s*version:\s*(\S+)\s*$", re.MULTILINE)


def document_version(path: Path) -> str | None:
    """The version `path` declares, or None."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".sql":
        found = _SQL_VERSION.search(text)
        return found.group(1) if found else None
    document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(document, dict):
        return None
    if "openapi" in document or "asyncapi" in document:
        info = document.get("info")
        version = info.get("version") if isinstance(info, dict) else None
    else:
        version = document.get("version")
    return str(version) if version is not None else None


def contract_versions(root: Path | None = None) -> dict[str, str | None]:
    """Every contract document (path under contracts/, sorted) and its version."""
    base = root or contracts_dir()
    return {path.relative_to(base).as_posix(): document_version(path)
            for path in sorted(base.rglob("*"))
            if path.is_file() and path.suffix in (".json", ".yaml", ".yml", ".sql")}


def version_text(package_version: str, root: Path | None = None) -> str:
    """What `kcverify --version` prints: the package, then each contract with its version."""
    versions = {f"contracts/{name}": version for name, version in contract_versions(root).items()}
    width = max((len(name) for name in versions), default=0)
    lines = [f"kcverify {package_version}"]
    lines += [f"  {name:<{width}}  {version or 'unversioned'}" for name, version in versions.items()]
    return "\n".join(lines)
