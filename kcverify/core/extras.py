"""Optional dependencies, grouped as the package's extras. Embedded use (the reference in one process,
the verifier, the public API, the pytest plugin) needs none of them; the clients of the real
infrastructure (Kafka, PostgreSQL, Redis) come with `kcverify[stack]` and are needed only by the
processes target, the external target's Kafka/Redis/PostgreSQL parts and `kcverify stack`; matplotlib
comes with `kcverify[plots]`, for the charts of HTML reports. A missing one is bad input to fix with one
pip command (exit 2), never a traceback."""

from __future__ import annotations

from kcverify.core.errors import InputError, PluginError

# top-level module -> (the distribution that provides it, the extra that installs it)
EXTRA_MODULES: dict[str, tuple[str, str]] = {
    "confluent_kafka": ("confluent-kafka", "stack"),
    "psycopg": ("psycopg", "stack"),
    "psycopg_pool": ("psycopg-pool", "stack"),
    "redis": ("redis", "stack"),
    "matplotlib": ("matplotlib", "plots"),
}


class MissingExtra(InputError, PluginError):
    """A feature needs an optional client that is not installed: names the extra to install (exit 2). A
    PluginError too, so a listing of targets shows the target it disables instead of stopping."""

    def __init__(self, module: str, what: str | None = None) -> None:
        distribution, extra = EXTRA_MODULES[module]
        self.module = module
        self.extra = extra
        needs = f"{what} needs" if what else "this needs"
        super().__init__(f"{needs} {distribution}, which is not installed",
                         hint=f"install the {extra} extra: pip install 'kcverify[{extra}]'")


def missing_extra(exc: BaseException, what: str | None = None) -> MissingExtra | None:
    """The MissingExtra an import failure stands for, or None when it is not an optional client's."""
    if isinstance(exc, MissingExtra):
        return exc
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        if top in EXTRA_MODULES:
            return MissingExtra(top, what)
    cause = exc.__cause__ or exc.__context__
    return missing_extra(cause, what) if cause is not None and cause is not exc else None
