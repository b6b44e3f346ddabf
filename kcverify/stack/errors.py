"""Errors of the local stack. They carry everything a person needs to act (the install command, the
tail of a service's log), so the CLI prints them as they are, without a traceback."""

from __future__ import annotations

from kcverify.core.errors import KcverifyError


class StackError(KcverifyError):
    """The local stack could not be started, stopped or read. Exit 2: the environment is at fault,
    not a check and not kcverify itself."""

    exit_code = 2


class PrerequisiteMissing(StackError):
    """A program the stack needs is not installed. The message names the apt-get command that fixes it."""

    def __init__(self, missing: list[tuple[str, str]]) -> None:
        # (what is missing, the Debian package that provides it)
        self.missing = missing
        packages = sorted({package for _, package in missing})
        lines = [f"  - {what}" for what, _ in missing]
        super().__init__(
            "missing prerequisite(s) for `kcverify stack`:\n"
            + "\n".join(lines)
            + f"\ninstall with: apt-get install -y {' '.join(packages)}"
            + "\n(or run `kcverify stack up --install` as root)"
        )

    @property
    def packages(self) -> list[str]:
        return sorted({package for _, package in self.missing})


class ServiceStartError(StackError):
    """A service did not become ready in time or exited while starting; says what was tried."""

    def __init__(self, service: str, reason: str, log_tail: str = "", log_path: str = "") -> None:
        self.service = service
        message = f"{service}: {reason}"
        if log_tail:
            message += f"\n--- last lines of {log_path or 'its log'} ---\n{log_tail.rstrip()}"
        super().__init__(message)


class StackNotRunning(StackError):
    """No running stack in this state directory (never started, or stopped)."""
