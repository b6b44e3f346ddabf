"""Targets found by name: the `kcverify.targets` entry-point group.

A target is a plug-in. Any installed distribution may add one by declaring, in its pyproject.toml,

    [project.entry-points."kcverify.targets"]
    acme = "acme_target:AcmeTarget"

and the built-in `embedded` and `processes` register the same way (kcverify's own pyproject.toml), so
there is no table of target names anywhere else. The object an entry point names is a *factory*: a
class or callable that builds a Target from `TargetOptions` (its `from_options` classmethod when it has
one, else the object itself, called with the options). What it declares as class attributes, all
optional, is read without building it, so `kcverify targets` can list a target whose system is not up:

- `description: str` - one line (default: the first line of its docstring);
- `capabilities: Iterable[str]` - what its instances will offer (the instance's `info` is authoritative);
- `defect_names: Iterable[str]` - the named defects `--defect` may switch on; none: it takes no --defect;
- `defect_catalogue: Iterable` - the same defects described, each with `name`, `rule` and `description`
  (what `kcverify defects` shows); its names stand for `defect_names` when that is not declared;
- `isolated: bool` - each instance is its own system inside this process, so several can run side by
  side (the kill matrix then runs its defects in a pool); default False: one shared system.

Only names are read to list the choices (`kcverify run --help`): nothing is imported until a target is
used, so a plug-in that imports heavy clients costs nothing to the others. A plug-in that cannot be
loaded, or names something that is not a factory, is a PluginError (exit 2) naming the entry point."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from kcverify.core.errors import InputError, PluginError
from kcverify.core.extras import missing_extra
from kcverify.targets.base import CAPABILITIES, Target

GROUP = "kcverify.targets"

# What every target must have to be driven by the engine (the rest of the protocol is checked by use).
REQUIRED = ("info", "start", "stop", "http", "settle", "snapshot")


@dataclass(frozen=True)
class TargetOptions:
    """How to build a target: fixed for a whole run, unlike the seed (given to every `start`).

    `defects` are named defects to switch on (only for a target that declares `defect_names`);
    `settings` are free, target-specific values (a state directory, a profile path...) that the target
    reads and documents itself."""

    defects: frozenset[str] = frozenset()
    settings: Mapping[str, Any] = field(default_factory=dict)

    def reproduce_args(self) -> tuple[str, ...]:
        """The `kcverify run` words that build a target with these options again (`--defect NAME`...);
        settings are not among them: they come from the same configuration as in this run."""
        return tuple(word for name in sorted(self.defects) for word in ("--defect", name))


TargetFactory = Callable[[TargetOptions], Target]


@dataclass(frozen=True)
class DefectInfo:
    """One named defect a target can switch on, as the kill matrix shows it: the rule it breaks and what
    it does. The verifier's own copy, so nothing above the targets imports a system's catalogue."""

    name: str
    rule: str = ""
    description: str = ""
    slowdown: bool = False  # breaks no rule, only costs time: the kill matrix leaves it out, `kcverify bench` shows it


@dataclass(frozen=True)
class TargetPlugin:
    """One loaded entry point: the factory and what it declares."""

    name: str
    distribution: str  # "name version" of the distribution that registers it
    value: str  # "module:attribute"
    factory: TargetFactory
    description: str
    capabilities: frozenset[str] | None  # None: not declared (known once an instance exists)
    defect_names: tuple[str, ...]
    isolated: bool
    defect_catalogue: tuple[DefectInfo, ...] = ()  # in the target's order; names only when not described

    @property
    def accepts_defects(self) -> bool:
        return bool(self.defect_names)

    def check_defects(self, names: Iterable[str]) -> frozenset[str]:
        """The names, or InputError: a target without named defects, or a name it does not know (with the
        nearest known ones), would otherwise run the unchanged system and prove nothing."""
        wanted = frozenset(names)
        if not wanted:
            return wanted
        if not self.accepts_defects:
            raise InputError(f"target {self.name} has no named defects: --defect {sorted(wanted)[0]} does not "
                             "apply to it", hint="`kcverify targets` lists the targets that accept --defect")
        for name in sorted(wanted):
            if name not in self.defect_names:
                raise InputError(f"unknown defect {name!r} for target {self.name}",
                                 hint=_did_you_mean(name, self.defect_names, "its defects"))
        return wanted

    def create(self, options: TargetOptions | None = None) -> Target:
        """A new target. Errors of the target itself (TargetUnreachable: no stack) pass through; an object
        that is not a target is a PluginError."""
        options = options or TargetOptions()
        self.check_defects(options.defects)
        try:
            target = self.factory(options)
        except ModuleNotFoundError as exc:  # a client it imports on use: name the extra that installs it
            extra = missing_extra(exc, f"target {self.name}")
            if extra is None:
                raise
            raise extra from exc
        missing = [a for a in REQUIRED if not hasattr(target, a)]
        if missing:
            raise PluginError(f"target plug-in {self.name!r} ({self.value}, from {self.distribution}) built "
                              f"something that is not a target ({type(target).__name__}: no {', '.join(missing)})")
        return target


def _entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=GROUP), key=lambda ep: ep.name)


def names() -> tuple[str, ...]:
    """The registered target names, without importing any of them (cheap enough for `--help`)."""
    return tuple(dict.fromkeys(ep.name for ep in _entry_points()))


def _distribution(ep: EntryPoint) -> str:
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"


def _did_you_mean(name: str, known: Iterable[str], what: str) -> str:
    known = list(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
    listing = f"{what}: {', '.join(known) or 'none'}"
    return f"did you mean {' or '.join(repr(c) for c in close)}? {listing}" if close else listing


def lookup(name: str) -> TargetPlugin:
    """The plug-in registered as `name`. Unknown: InputError listing the names ("did you mean")."""
    found = [ep for ep in _entry_points() if ep.name == name]
    if not found:
        raise InputError(f"unknown target {name!r}", hint=_did_you_mean(name, names(), "registered targets"))
    dists = sorted({_distribution(ep) for ep in found})
    if len({ep.value for ep in found}) > 1:
        raise PluginError(f"target {name!r} is registered more than once ({', '.join(dists)}): uninstall one")
    return load(found[0])


def load(ep: EntryPoint) -> TargetPlugin:
    """Import one entry point and read its declarations; any failure is one PluginError line."""
    where = f"target plug-in {ep.name!r} ({ep.value}, from {_distribution(ep)})"
    try:
        obj = ep.load()
    except Exception as exc:  # an import error, a typo in the value, an error while importing
        extra = missing_extra(exc, f"target {ep.name}")
        if extra is not None:  # kcverify's own optional clients (kcverify[stack]) are not installed
            raise extra from exc
        raise PluginError(f"{where} failed to load: {type(exc).__name__}: {_first_line(exc)}") from exc
    factory = getattr(obj, "from_options", None)
    if not callable(factory):
        factory = obj
    if not callable(factory):
        raise PluginError(f"{where} is a {type(obj).__name__}, not a target factory: name a class or a "
                          "callable that takes TargetOptions")
    try:
        capabilities = _declared_capabilities(obj)
        catalogue = tuple(DefectInfo(str(d.name), str(getattr(d, "rule", "")), str(getattr(d, "description", "")),
                                     bool(getattr(d, "slowdown", False)))
                          for d in getattr(obj, "defect_catalogue", ()))
        defect_names = tuple(str(n) for n in getattr(obj, "defect_names", ())) or tuple(d.name for d in catalogue)
        described = {d.name: d for d in catalogue}
        catalogue = tuple(described.get(name) or DefectInfo(name) for name in defect_names)
        description = getattr(obj, "description", None)
        if not isinstance(description, str) or not description.strip():
            description = _first_line_of(inspect.getdoc(obj) or "")
        isolated = bool(getattr(obj, "isolated", False))
    except (TypeError, ValueError, AttributeError) as exc:
        raise PluginError(f"{where} declares something unusable: {exc}") from exc
    return TargetPlugin(ep.name, _distribution(ep), ep.value, factory, description.strip(), capabilities,
                        defect_names, isolated, catalogue)


def _declared_capabilities(obj: Any) -> frozenset[str] | None:
    declared = getattr(obj, "capabilities", None)
    if declared is None:
        return None
    if isinstance(declared, str) or not isinstance(declared, Iterable):
        raise TypeError(f"capabilities must be a set of names, not {type(declared).__name__}")
    capabilities = frozenset(str(c) for c in declared)
    unknown = sorted(capabilities - set(CAPABILITIES))
    if unknown:
        raise ValueError(f"unknown capabilities {', '.join(unknown)} (known: {', '.join(CAPABILITIES)})")
    return capabilities


def discover() -> tuple[list[TargetPlugin], list[PluginError]]:
    """Every registered target, loaded; the broken ones are returned as errors, not raised, so a listing
    still shows the others."""
    plugins: list[TargetPlugin] = []
    errors: list[PluginError] = []
    for name in names():
        try:
            plugins.append(lookup(name))
        except PluginError as exc:
            errors.append(exc)
    return plugins, errors


def create(name: str, options: TargetOptions | None = None) -> Target:
    """The target registered as `name`, built with `options`."""
    return lookup(name).create(options)


def _first_line(exc: BaseException) -> str:
    return _first_line_of(str(exc)) or type(exc).__name__


def _first_line_of(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else ""
