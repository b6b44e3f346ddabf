"""The error tree. Four outcomes are kept apart, each with its own exit code: a check failed, the input is wrong, the
target could not be reached, kcverify itself broke. The reference has its own small set below."""

from __future__ import annotations


class KcverifyError(Exception):
    """Base of every error kcverify raises on purpose."""

    exit_code = 3


class InputError(KcverifyError):
    """A scenario, config or target file is wrong. Rendered as `file:line:col: message`, exit 2."""

    exit_code = 2

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 col: int | None = None, hint: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.col = col
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.col is not None:
                    where += f":{self.col}"
            where += ": "
        text = where + self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class TargetUnreachable(KcverifyError):
    """The system under test could not be reached; says what was tried. Exit 2."""

    exit_code = 2


class PluginError(KcverifyError):
    """An installed plug-in (a target registered by another distribution) cannot be used: it does not
    import, or names something that is not what its entry-point group expects. Says which entry point.
    Exit 2: the installation is wrong, not kcverify."""

    exit_code = 2


class InternalError(KcverifyError):
    """kcverify itself broke. Exit 3, 'please report'."""

    exit_code = 3


# --- errors raised inside the reference implementation -------------------------------------------


class ReferenceError_(Exception):
    """Base for errors of the reference system (named with a trailing _ to avoid the builtin)."""


class StoreUnavailable(ReferenceError_):
    """A transient storage failure (connection refused, timeout): the caller may retry."""


class CacheUnavailable(ReferenceError_):
    """The cache cannot be reached; readers fall back to the database (S5)."""


class BusUnavailable(ReferenceError_):
    """The broker cannot be reached; outbox rows stay pending and are published later (P3)."""


class SimulatedCrash(BaseException):
    """Raised at an armed crash point. A BaseException so no `except Exception` in a component can
    swallow it: a crash must abandon the component exactly where it stands, like SIGKILL."""

    def __init__(self, point: str) -> None:
        self.point = point
        super().__init__(f"crash at {point}")
