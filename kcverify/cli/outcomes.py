"""One mapping from what went wrong to what a command prints and exits with, for every command: bad
input, an unreachable target or an unusable environment 2, a kcverify error its own code, anything
unexpected 3 ("please report"). Click's own usage errors stay click's (exit 2)."""

from __future__ import annotations

import sys
import traceback
from typing import NoReturn

import click

from kcverify.core.errors import InputError, KcverifyError, TargetUnreachable
from kcverify.core.extras import missing_extra


class Unusable(KcverifyError):
    """The machine cannot do what was asked (a port taken, a service down): exit 2, with the reason."""

    exit_code = 2


def exit_for(exc: BaseException, *, debug: bool = False, target: str | None = None,
             command: str | None = None) -> NoReturn:
    """Print one line for `exc` (prefixed with `command`, e.g. "kcverify stack", when given) and exit."""
    lead = f"{command}: " if command else ""
    extra = missing_extra(exc)  # an optional client not installed: name the extra (exit 2)
    if extra is not None:
        exc = extra
    if isinstance(exc, InputError):
        click.echo(lead + exc.render(), err=True)
        sys.exit(2)
    if isinstance(exc, TargetUnreachable):
        click.echo(f"{lead}error: {f'target {target}: ' if target else ''}{exc}", err=True)
        sys.exit(2)
    if isinstance(exc, KcverifyError):
        click.echo(f"{lead}error: {exc}", err=True)
        sys.exit(exc.exit_code)
    click.echo(f"{lead}kcverify failed internally: {type(exc).__name__}: {exc} (please report; "
               "KCVERIFY_DEBUG=1 or --debug shows more)",
               err=True)
    if debug:
        traceback.print_exception(exc)
    sys.exit(3)
