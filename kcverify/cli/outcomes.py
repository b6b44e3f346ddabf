"""One mapping from what went wrong to what a command prints and exits with: bad input
or an unreachable target 2, a kcverify error its own code, anything unexpected 3 ("please report")."""

from __future__ import annotations

import sys
import traceback
from typing import NoReturn

import click

from kcverify.core.errors import InputError, KcverifyError, TargetUnreachable


def exit_for(exc: Exception, *, debug: bool = False, target: str | None = None) -> NoReturn:
    if isinstance(exc, InputError):
        click.echo(exc.render(), err=True)
        sys.exit(2)
    if isinstance(exc, TargetUnreachable):
        click.echo(f"error: {f'target {target}: ' if target else ''}{exc}", err=True)
        sys.exit(2)
    if isinstance(exc, KcverifyError):
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    click.echo(f"kcverify failed internally: {type(exc).__name__}: {exc} (please report; --debug shows more)",
               err=True)
    if debug:
        traceback.print_exception(exc)
    sys.exit(3)
