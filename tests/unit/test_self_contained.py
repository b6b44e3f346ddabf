"""The project is self-contained: code, docs, contracts, scenarios, build files and every `--help` text
name only files that are in the repository.

A scanner finds what looks like a repository path: markdown links, relative paths that start with a
top-level folder (kcverify/, contracts/, docs/, ...), other relative paths with a known extension, and
upper-case document names (README.md). Each must exist, relative to the repository root, to the
package (kcverify/: code and ARCHITECTURE.md name modules as `reference/ports.py`) or to the citing
file's folder (markdown links). Names of documents that are not shipped are forbidden outright.

What is not a repository file is allowed explicitly: paths kcverify generates (kcverify-report/,
.kcverify/, ~/.cache/kcverify), paths under absolute or home folders, placeholders (`<name>`,
`{x}`, `...`), URLs, and examples of a user's own files, which carry the marker `my-` at the start of a
folder (`my-service/openapi.yaml`)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kcverify.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "kcverify"

TOP_FOLDERS = ("kcverify", "contracts", "scenarios", "profiles", "docs", "tests", ".ci", ".github")
EXTENSIONS = ("md", "py", "yaml", "yml", "json", "toml", "sql", "txt", "sh", "cfg", "ini", "lock")

# Documents and folders that are not shipped: naming them sends a reader to nothing.
FORBIDDEN = re.compile(r"SPEC\.md|DESIGN\.md|KAFKA_LOCAL\.md|KC_BACKEND_FACTS\.md|PERF_NOTES\.md|\.\./shared"
                       r"|(?<![\w.-])seed/")

# Paths kcverify or its tools generate at run time, and a user's files in examples: not in the repository.
# kcverify/_contracts, _scenarios, _profiles: the copies the wheel build makes (pyproject.toml).
GENERATED = ("kcverify-report/", ".kcverify/", "explore-findings/", "out/", "build/", "dist/", ".venv/",
             "kcverify/_")
# A user's own files in examples carry `my-` at the start of a folder or file name: my-service/openapi.yaml,
# ../my-app/profile.yaml, scenarios/my-first.yaml.
USER_MARKER = re.compile(r"(?:^|/)my-[\w.-]*")

_EXT = "|".join(EXTENSIONS)
_TOP = "|".join(re.escape(folder) for folder in TOP_FOLDERS)
# A path: a run of path characters, including brace lists and globs. Not preceded by a path character
# or '/', so absolute paths (/tmp/x.yaml), URLs and home paths (~/...) never match in the middle.
_PATH_CHARS = r"[\w.*{},/-]"
TOP_PATH = re.compile(rf"(?<![\w./~$:-])(?:\./)?(?:{_TOP})/{_PATH_CHARS}*")
EXT_PATH = re.compile(rf"(?<![\w./~$:{{<-])(?:\.\./|\./)?[\w.-]+/{_PATH_CHARS}*?\.(?:{_EXT})(?![\w-])")
DOC_NAME = re.compile(r"(?<![\w./-])[A-Z][A-Z0-9_]*\.md\b")
MD_LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


@dataclass(frozen=True)
class Reference:
    source: str  # where it was found: a file path (relative) or "kcverify run --help"
    line: int
    text: str
    problem: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.problem}: {self.text}"


def scanned_files() -> list[Path]:
    patterns = ["kcverify/**/*.py", "docs/**/*.md", "README.md", "ARCHITECTURE.md", "contracts/**/*",
                "scenarios/**/*", "pyproject.toml", "Makefile", "claims.yaml", ".ci/*"]
    found = {p for pattern in patterns for p in ROOT.glob(pattern) if p.is_file()}
    return sorted(p for p in found if "__pycache__" not in p.parts and p.suffix not in (".pyc",))


def help_texts() -> Iterator[tuple[str, str]]:
    """(command line, --help output) for the group and every command and subcommand, recursively."""
    runner = CliRunner()

    def walk(command: click.Command, words: list[str]) -> Iterator[tuple[str, str]]:
        result = runner.invoke(cli, [*words, "--help"], terminal_width=200)
        assert result.exit_code == 0, (words, result.output)
        yield " ".join(["kcverify", *words, "--help"]), result.output
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, name
                yield from walk(sub, [*words, name])

    yield from walk(cli, [])


def _expand(path: str) -> list[str]:
    """`contracts/db/{sqlite,postgres}/x.sql` -> both paths."""
    match = re.search(r"\{([^{}]*)\}", path)
    if match is None:
        return [path]
    return list(itertools.chain.from_iterable(
        _expand(path[:match.start()] + option + path[match.end():]) for option in match.group(1).split(",")))


def _allowed(path: str) -> bool:
    placeholder = re.search(r"\{[^{},]*\}", path) is not None  # an f-string field, not a brace list
    return (path.startswith(GENERATED) or USER_MARKER.search(path) is not None or placeholder
            or "..." in path or "<" in path or "$" in path)


def _in_repository(path: Path) -> bool:
    """Exists and lies inside the repository: a file beside a checkout (../anything) is not shipped."""
    return path.exists() and path.resolve().is_relative_to(ROOT.resolve())


def _exists(path: str, folder: Path) -> bool:
    path = path.removeprefix("./")
    for base in (ROOT, PACKAGE, folder):
        if "*" in path:
            if any(_in_repository(found) for found in base.glob(path)):
                return True
        elif _in_repository(base / path):
            return True
    return False


def _clean(token: str) -> str:
    token = token.rstrip(".,:;")
    if token.count("}") > token.count("{"):  # a path closing an f-string or a set: `{x}/a.py}`
        token = token[: token.rindex("}")]
    return token


def references(source: str, text: str, folder: Path, markdown: bool) -> Iterator[Reference]:
    for number, line in enumerate(text.splitlines(), start=1):
        for match in FORBIDDEN.finditer(line):
            yield Reference(source, number, match.group(), "names a file that is not shipped")
        if markdown:
            for match in MD_LINK.finditer(line):
                target = match.group(1)
                if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                    continue  # a URL or an anchor in the same page
                target = target.split("#", 1)[0]
                if not _in_repository(folder / target):
                    yield Reference(source, number, target, "markdown link to a missing file")
        seen: set[str] = set()
        for pattern in (TOP_PATH, EXT_PATH, DOC_NAME):
            for match in pattern.finditer(line):
                token = _clean(match.group())
                if token in seen or not token or (token.endswith("/") and pattern is EXT_PATH):
                    continue
                seen.add(token)
                if _allowed(token):
                    continue
                for path in _expand(token):
                    if not _exists(path.rstrip("/"), folder):
                        yield Reference(source, number, path, "no such file in the repository")


def all_references() -> list[Reference]:
    found: list[Reference] = []
    for path in scanned_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        relative = path.relative_to(ROOT).as_posix()
        found.extend(references(relative, text, path.parent, markdown=path.suffix == ".md"))
    for command, text in help_texts():
        found.extend(references(command, text, ROOT, markdown=False))
    return found


def test_no_dangling_file_reference() -> None:
    dangling = all_references()
    assert not dangling, "\n".join(map(str, dangling))


def test_the_help_of_every_command_is_scanned() -> None:
    commands = [command for command, _ in help_texts()]
    assert "kcverify --help" in commands and "kcverify run --help" in commands
    assert "kcverify stack up --help" in commands  # subcommands of groups, too
    assert len(commands) >= 10


# --- the scanner itself: it must find what it exists for, and stay quiet on what is fine ----------


@pytest.mark.parametrize(("line", "expected"), [
    ("the rules are in SPEC.md", ["SPEC.md", "SPEC.md"]),  # forbidden, and not in the repository either
    ("see /work/shared/DESIGN.md", ["DESIGN.md"]),
    ("copied from seed/000_x.txt", ["seed/", "seed/000_x.txt"]),
    ("read ../shared/KAFKA_LOCAL.md", ["../shared", "KAFKA_LOCAL.md", "../shared/KAFKA_LOCAL.md"]),
    ("see docs/nowhere.md for more", ["docs/nowhere.md"]),
    ("the module kcverify/report/checklist.py", ["kcverify/report/checklist.py"]),
    ("DDL in contracts/db/{sqlite,mysql}/payments_db.sql", ["contracts/db/mysql/payments_db.sql"]),
    ("the notes in NOTES.md", ["NOTES.md"]),
    ("in lib/helpers.py", ["lib/helpers.py"]),
])
def test_the_scanner_finds_dangling_references(line: str, expected: list[str]) -> None:
    assert [r.text for r in references("x.py", line, ROOT, markdown=False)] == expected


@pytest.mark.parametrize("line", [
    "see docs/scenarios.md and ARCHITECTURE.md, README.md",
    "the DDL: contracts/db/{sqlite,postgres}/{payments_db,courses_db}.sql",
    "modules reference/ports.py and stack/daemons.py (under kcverify/)",
    "written to kcverify-report/report.md and .kcverify/stack.json",
    "cached under ~/.cache/kcverify/jars and /tmp/x/SPEC_NOTES.txt",
    "your own service: my-service/openapi.yaml, ../my-app/profile.yaml and scenarios/my-first.yaml",
    "f'{BASE_URI}openapi/{service}.yaml', the wheel's kcverify/_contracts",
    "f'{report_dir}/junit.xml' and <name>.yaml, scenarios/*.yaml, scenarios/",
    "https://example.org/a/b.md and seedless/runs",
])
def test_the_scanner_accepts_real_generated_and_example_paths(line: str) -> None:
    assert list(references("x.py", line, ROOT, markdown=False)) == []


def test_markdown_links_resolve_from_the_documents_folder() -> None:
    docs = ROOT / "docs"
    ok = "[guide](scenarios.md#format), [arch](../ARCHITECTURE.md), [web](https://example.org), [top](#top)"
    assert list(references("docs/x.md", ok, docs, markdown=True)) == []
    bad = "[gone](stack-notes.md) [wrong folder](docs/scenarios.md)"
    assert [r.text for r in references("docs/x.md", bad, docs, markdown=True)] == [
        "stack-notes.md", "docs/scenarios.md"]
