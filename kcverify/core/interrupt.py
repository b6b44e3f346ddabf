"""Ctrl-C: every command stops within a second with exit 130 and one line, "interrupted".

A KeyboardInterrupt raised by Python's default handler can be lost: raised inside a garbage-collector
callback or a `__del__` (Hypothesis registers one, so `kcverify explore` sometimes ran on after Ctrl-C and
exited 0), in a thread that is not the main one, or while the main thread waits in C code. So the handler
installed here does three things: it records the request (long loops call `check()` between units of
work), raises KeyboardInterrupt in the main thread so `finally` blocks stop what was started, and wakes a
watchdog that ends the process with exit 130 if unwinding has not finished within the grace. A second
Ctrl-C ends the process at once."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

EXIT_CODE = 130  # 128 + SIGINT, what shells report for a process ended by Ctrl-C
MESSAGE = "interrupted"
GRACE_SECONDS = 0.8  # unwinding (stopping children, closing files) gets this long, then the watchdog exits

_requested = threading.Event()
_watching = False


class Interrupted(KeyboardInterrupt):
    """Raised by `check()` when Ctrl-C was pressed and the KeyboardInterrupt itself got lost."""


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """Raise Interrupted when Ctrl-C was pressed: long loops call this between units of work."""
    if _requested.is_set():
        raise Interrupted


def finish() -> None:
    """Print the one line and exit 130 (the caller has unwound what it started)."""
    _say()
    sys.exit(EXIT_CODE)


def leave(code: int) -> None:
    """For the program's entry point, after the command returned `code`: when Ctrl-C ended it, end the
    process now. Tearing down a large heap at interpreter exit took up to half a second, and everything
    the command started has been stopped by then."""
    if code == EXIT_CODE and _requested.is_set():
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(EXIT_CODE)


def _say() -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    with contextlib.suppress(OSError):
        os.write(2, f"{MESSAGE}\n".encode())


def _hard_exit() -> None:
    _say()
    os._exit(EXIT_CODE)


def _watchdog() -> None:
    _requested.wait()
    # Event.wait on a fresh event: the grace is a plain timeout that nothing in the process can swallow.
    threading.Event().wait(GRACE_SECONDS)
    _hard_exit()


def _handler(signum: int, frame: FrameType | None) -> None:
    if _requested.is_set():
        _hard_exit()
    _requested.set()
    raise KeyboardInterrupt


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Within this block Ctrl-C is handled as above; the previous handler comes back afterwards (a test
    running commands in-process keeps its own). Only the main thread receives signals, so elsewhere this
    does nothing."""
    global _watching
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if not _watching:
        threading.Thread(target=_watchdog, name="kcverify-interrupt", daemon=True).start()
        _watching = True
    previous = signal.signal(signal.SIGINT, _handler)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_about_interrupts(previous_hook)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = previous_hook


def _quiet_about_interrupts(hook: Callable[[Any], object]) -> Callable[[Any], object]:
    """An interrupt lost in a gc callback or `__del__` is reported by Python as "Exception ignored in"
    with a traceback; `check()` and the watchdog act on it instead, so it is not shown."""

    def quiet(unraisable: Any) -> object:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            return None
        return hook(unraisable)

    return quiet
