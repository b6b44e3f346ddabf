"""`kcverify init [DIR]`: scaffold kcverify in a user's repository, so an installed kcverify has
something to run: `kcverify.toml`, `scenarios/` (copies of the packaged examples) and a profile skeleton
`profiles/my-system.yaml` (the reference's profile, with a header saying what to change). It never
overwrites a file: one that exists is skipped and named. Exit 0; 2 when DIR cannot be written."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click

from kcverify.cli.outcomes import exit_for
from kcverify.core.errors import InputError
from kcverify.core.resources import shipped_dir

SETTINGS = """\
# kcverify settings (docs/configuration.md lists every key; KCVERIFY_* variables and flags win over them).
paths = ["scenarios"]          # what `kcverify run` and `kcverify defects` replay
report_dir = "kcverify-report" # where --report writes
seed = 0

[run]
# report = ["junit", "markdown"]   # also json, html
# select = ["not:slow"]            # like -k
# profile = "profiles/my-system.yaml"  # for --target external: your own services
"""

PROFILE_HEADER = """\
# The profile of your system, for `kcverify run --target external --profile profiles/my-system.yaml`.
# It starts as a copy of the profile of kcverify's reference flow: change the base URLs, the operations'
# methods, paths, bodies and answers (JMESPath), the auth recipes and the named SQL queries to what your
# services do; leave out the kafka and cache sections if kcverify should not read your broker and cache.
# `kcverify profile check profiles/my-system.yaml` says what is reachable. Reference: docs/external.md
# in kcverify's source, and the profile schema packaged with it (contracts/schemas/profile.schema.json).
"""


def _without_header(text: str) -> str:
    """The reference profile without its leading comment block (it describes the reference, not yours)."""
    lines = text.splitlines(keepends=True)
    start = 0
    while start < len(lines) and lines[start].startswith("#"):
        start += 1
    return "".join(lines[start:])


def planned_files() -> Iterator[tuple[Path, str]]:
    """(path relative to DIR, content) of everything init writes."""
    yield Path("kcverify.toml"), SETTINGS
    for scenario in sorted(shipped_dir("scenarios").glob("*.yaml")):
        yield Path("scenarios") / scenario.name, scenario.read_text(encoding="utf-8")
    reference = (shipped_dir("profiles") / "reference.yaml").read_text(encoding="utf-8")
    body = _without_header(reference).replace("name: kcverify reference", "name: my system", 1)
    yield Path("profiles") / "my-system.yaml", PROFILE_HEADER + body


def scaffold(directory: Path) -> tuple[list[Path], list[Path]]:
    """Write the planned files under `directory`: (written, skipped because they exist)."""
    written: list[Path] = []
    skipped: list[Path] = []
    for relative, content in planned_files():
        path = directory / relative
        if path.exists():
            skipped.append(relative)
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as out:  # "x": never overwrite, even in a race
                out.write(content)
        except FileExistsError:
            skipped.append(relative)
            continue
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        written.append(relative)
    return written, skipped


@click.command("init")
@click.argument("directory", required=False, default=".", type=click.Path(file_okay=False, path_type=Path))
def init_command(directory: Path) -> None:
    """Scaffold kcverify.toml, scenarios/ (the examples) and profiles/my-system.yaml in DIRECTORY (default:
    here). Existing files are never overwritten."""
    try:
        written, skipped = scaffold(directory)
    except Exception as exc:
        exit_for(exc, command="kcverify init")
    scenarios = sum(1 for p in written if p.parts[0] == "scenarios")
    others = [p for p in written if p.parts[0] != "scenarios"]
    for path in others:
        click.echo(f"wrote {directory / path}")
    if scenarios:
        click.echo(f"wrote {scenarios} example scenario(s) to {directory / 'scenarios'}")
    for path in skipped:
        click.echo(f"skipped {directory / path}: it exists (never overwritten)")
    where = "" if directory == Path(".") else f"cd {directory} && "
    click.echo(f"next: {where}kcverify run   (the examples against the embedded reference)")
    sys.exit(0)
