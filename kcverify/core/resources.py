"""Where the files kcverify ships next to its code are: `contracts/`, the example `scenarios/` and the
example `profiles/`. In a checkout (an editable install, the test suite) they are the repository's own
folders; in an installed wheel they are packaged as `kcverify/_<name>` (pyproject.toml's
`force-include`). One lookup for all of them, so an installed kcverify finds what a checkout finds."""

from __future__ import annotations

from pathlib import Path

SHIPPED = ("contracts", "scenarios", "profiles")
_PACKAGE = Path(__file__).resolve().parents[1]  # kcverify/


def shipped_dir(name: str) -> Path:
    """The folder `name` (one of SHIPPED): the checkout's, else the packaged copy. FileNotFoundError when
    neither exists (a broken installation)."""
    if name not in SHIPPED:
        raise ValueError(f"unknown shipped folder {name!r} (known: {', '.join(SHIPPED)})")
    root = _PACKAGE.parent
    # A checkout is recognised by its pyproject.toml: a stray `contracts/` folder next to an installed
    # kcverify in site-packages must not be taken for ours.
    checkout = root / name
    if (root / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    packaged = _PACKAGE / f"_{name}"
    if packaged.is_dir():
        return packaged
    raise FileNotFoundError(f"{name}/ not found next to the kcverify package (neither {checkout} nor {packaged})")
