"""`python -m kcverify`: the same command line as the `kcverify` script, for environments where the
script is not on PATH (a virtualenv not activated, CI steps that call the interpreter)."""

from __future__ import annotations

from kcverify.cli.main import main

if __name__ == "__main__":
    main(prog_name="kcverify")
