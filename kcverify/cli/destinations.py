"""Where a command will write, checked before it does any work: a report folder that cannot be created,
a step summary that cannot be appended to or a state folder that cannot be written must stop a run at
once (exit 2, naming it), not after minutes of scenarios whose results are then lost."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from kcverify.core.errors import InputError

STEP_SUMMARY = "GITHUB_STEP_SUMMARY"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def writable_dir(path: Path, what: str) -> None:
    """Creates the folder (and its parents) and writes and removes a probe file in it: the only test
    that holds for every user, root included, and every file system, read-only mounts included."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".kcverify-probe-", dir=path)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot write there ({_reason(exc)})") from exc


def creatable_dir(path: Path, what: str) -> None:
    """For a folder only written to later, if at all: it, or the nearest folder above it that exists,
    must be a writable folder. Leaves nothing behind."""
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{what} {path}: cannot write there ({existing} is not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path}: cannot write there ({existing} is not writable)")
    try:  # os.access says yes to root everywhere, /proc and read-only mounts included: try it
        handle, probe = tempfile.mkstemp(prefix=".kcverify-probe-", dir=existing)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot write there ({_reason(exc)})") from exc


def appendable_file(path: Path, what: str) -> None:
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot append to it ({_reason(exc)})") from exc


def report_destinations(report_dir: Path, reports: list[str], environ: dict[str, str] | None = None) -> None:
    """The report folder when a report will be written; $GITHUB_STEP_SUMMARY when the Markdown report
    (which appends to it) will be."""
    if reports:
        writable_dir(report_dir, "report dir")
    summary = (os.environ if environ is None else environ).get(STEP_SUMMARY)
    if "markdown" in reports and summary:
        appendable_file(Path(summary), STEP_SUMMARY)
