"""Templates of a profile: request bodies, paths, claims, signature payloads and keys, filled from
kcverify's canonical fields. One rule everywhere: a string that is exactly one placeholder `{name}` is
replaced by the field's value with its own type (so `amountCents: "{amountCents}"` stays a number and
`metadata: "{metadata}"` an object); in any other string each `{name}` is replaced by its text. An
object's `$spread` key lays its keys under the object's own, as JavaScript's `...` does: `metadata:
{$spread: "{metadata}", courseId: "{courseId}"}` sends the checkout metadata with the course id inside."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

_ONE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


SPREAD = "$spread"


class TemplateError(ValueError):
    """A placeholder names a field the operation does not have."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def render_text(template: str, fields: Mapping[str, Any], encode: Callable[[str], str] = lambda s: s) -> str:
    """Every `{name}` of `template` replaced by the field's text (passed through `encode`, e.g. URL quoting)."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in fields:
            raise TemplateError(f"unknown placeholder {{{name}}} (known: {', '.join(sorted(fields))})")
        return encode(_text(fields[name]))
    return _ONE.sub(one, template)


def render(template: Any, fields: Mapping[str, Any]) -> Any:
    """A JSON template (any nesting of objects, lists and scalars) filled from `fields`."""
    if isinstance(template, str):
        whole = _ONE.fullmatch(template)
        if whole:
            name = whole.group(1)
            if name not in fields:
                raise TemplateError(f"unknown placeholder {{{name}}} (known: {', '.join(sorted(fields))})")
            return fields[name]
        return render_text(template, fields)
    if isinstance(template, dict):
        rendered = {str(k): render(v, fields) for k, v in template.items() if k != SPREAD}
        if SPREAD not in template:
            return rendered
        spread = render(template[SPREAD], fields)
        if not isinstance(spread, dict):
            raise TemplateError(f"{SPREAD} needs an object, got {_text(spread)}")
        return {**spread, **rendered}
    if isinstance(template, list):
        return [render(v, fields) for v in template]
    return template


def placeholders(template: Any) -> set[str]:
    """Every placeholder name a template uses (for `kcverify profile check`)."""
    if isinstance(template, str):
        return set(_ONE.findall(template))
    if isinstance(template, dict):
        return set().union(*(placeholders(v) for v in template.values())) if template else set()
    if isinstance(template, list):
        return set().union(*(placeholders(v) for v in template)) if template else set()
    return set()
