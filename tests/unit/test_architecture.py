"""ARCHITECTURE.md's layer map is the truth about kcverify/: it lists every top-level package and
module and nothing else, its arrows point down only, and the code imports only along its arrows
(plus the two rules the map states in words: only the reference targets import the reference)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "kcverify"
ARCHITECTURE = ROOT / "ARCHITECTURE.md"

_ROW = re.compile(r"^(\d+)\s+([a-z_][a-z0-9_]*)(/|\.py)\s+->\s+(.*)$")
# The only verifier-side modules that may import the reference (ARCHITECTURE.md, below the map).
REFERENCE_TARGETS = ("kcverify/targets/embedded.py", "kcverify/targets/explore_embedded.py",
                     "kcverify/targets/processes/")


@dataclass(frozen=True)
class Layer:
    name: str
    level: int
    imports: frozenset[str]


def layer_map(text: str) -> dict[str, Layer]:
    """The rows of the fenced block after the `layer-map` marker."""
    after = text.split("<!-- layer-map", 1)[1]
    block = after.split("```", 2)[1]
    layers: dict[str, Layer] = {}
    for line in block.splitlines()[1:]:  # the first line is the fence's info string
        if not line.strip():
            continue
        row = _ROW.match(line.strip())
        assert row, f"ARCHITECTURE.md layer map: cannot read {line!r}"
        level, name, _, imports = row.groups()
        assert name not in layers, f"{name} is listed twice"
        targets = frozenset(p.strip().rstrip("/") for p in imports.split(",") if p.strip() != "(nothing)")
        layers[name] = Layer(name, int(level), targets)
    return layers


def real_top_level() -> set[str]:
    """Top-level packages (folders with __init__.py) and modules of kcverify/, without __init__.py."""
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    return packages | modules


def kcverify_imports(path: Path) -> set[str]:
    """The top-level kcverify packages a module imports (absolute imports; relative ones stay inside)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "kcverify":  # `from kcverify import spec`, not `from kcverify import __version__`
                names = [f"kcverify.{alias.name}" for alias in node.names if not alias.name.startswith("__")]
        for name in names:
            parts = name.split(".")
            if parts[0] == "kcverify" and len(parts) > 1:
                found.add(parts[1])
    return found


def _map() -> dict[str, Layer]:
    return layer_map(ARCHITECTURE.read_text(encoding="utf-8"))


def test_the_layer_map_lists_exactly_the_top_level_packages() -> None:
    listed = set(_map())
    real = real_top_level()
    assert not real - listed, f"in kcverify/ but not in ARCHITECTURE.md's layer map: {sorted(real - listed)}"
    assert not listed - real, f"in ARCHITECTURE.md's layer map but not in kcverify/: {sorted(listed - real)}"


def test_the_arrows_of_the_map_point_down() -> None:
    layers = _map()
    for layer in layers.values():
        for target in layer.imports:
            assert target in layers, f"{layer.name} -> {target}: not a package of the map"
            assert layers[target].level < layer.level, (
                f"{layer.name} (layer {layer.level}) -> {target} (layer {layers[target].level}) points up")


def test_the_code_imports_only_along_the_arrows() -> None:
    layers = _map()
    wrong: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        parts = path.relative_to(PACKAGE).parts
        owner = parts[0].removesuffix(".py") if len(parts) > 1 or parts[0] != "__init__.py" else None
        if owner is None or owner not in layers:
            continue
        for target in sorted(kcverify_imports(path) - {owner}):
            if target not in layers[owner].imports:
                wrong.append(f"{relative} imports kcverify.{target}: no arrow {owner} -> {target}")
            elif target == "reference" and owner != "cli" and not relative.startswith(REFERENCE_TARGETS):
                wrong.append(f"{relative} imports kcverify.reference: only the reference targets may")
    assert not wrong, "\n".join(wrong)


def test_the_reader_finds_rows_and_rejects_what_it_cannot_read() -> None:
    text = "x\n<!-- layer-map -->\n```text\n1 core/ -> (nothing)\n2 cli/  -> core\n```\n"
    assert _layers_as_tuples(layer_map(text)) == [("core", 1, ()), ("cli", 2, ("core",))]
    try:
        layer_map("<!-- layer-map -->\n```text\ncore -> nothing\n```\n")
    except AssertionError as error:
        assert "cannot read" in str(error)
    else:
        raise AssertionError("a row without a layer number was accepted")


def _layers_as_tuples(layers: dict[str, Layer]) -> list[tuple[str, int, tuple[str, ...]]]:
    return [(layer.name, layer.level, tuple(sorted(layer.imports))) for layer in layers.values()]
