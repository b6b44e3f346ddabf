"""The passes: for each selected operation of each service's OpenAPI document, a positive pass
(schema-valid input: the document's examples, coverage, fuzzing) and a negative pass (input that breaks
the contract: coverage, fuzzing), each of `max_examples` generated cases at least, sent through the
target (transport.py), aimed at real ids (aims.py), judged by Schemathesis' checks and kcverify's
(judge.py).

A failing case does not stop its pass: the fuzzer is a search for every distinct failure within the
budget, so each is recorded (once per operation, mode, check and status) with the curl line that sends
the same request again, and the pass goes on. No shrinking: the seed and the budget replay a pass."""

from __future__ import annotations

import difflib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation import derive_operation_seed
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test

from kcverify.core.errors import InputError
from kcverify.fuzz.aims import Aims
from kcverify.fuzz.judge import SCHEMATHESIS_CHECKS, Verdict, judge, rules_of
from kcverify.fuzz.transport import SIGNATURE_HEADER, base_url, route_through, session_for
from kcverify.targets.base import Target

MODES = ("positive", "negative")
DEFAULT_MAX_EXAMPLES = 500  # per operation and mode: 1000 cases per operation with both modes
MAX_FINDINGS_PER_PASS = 10  # distinct findings kept per pass; the count of failing cases is kept whole


@dataclass(frozen=True)
class ServiceDocument:
    """One service of the target and the OpenAPI document it is fuzzed from."""

    service: str  # the name the target's http() knows it by
    openapi: Path
    curl_base: str = ""  # the base URL the curl lines name (default: a placeholder per service)
    direct: bool = False  # sent straight to curl_base over HTTP, not through the target's http()
    signature_header: str = SIGNATURE_HEADER  # where the gateway's signature goes (a profile may rename it)
    problem_errors: bool = True  # errors are RFC 9457 problems (a profile's `conventions.errors: json`: plain JSON)


@dataclass(frozen=True)
class FuzzOptions:
    max_examples: int = DEFAULT_MAX_EXAMPLES
    seed: int = 0
    operations: tuple[str, ...] = ()  # labels ("GET /health") or operationIds; empty: all
    modes: tuple[str, ...] = MODES


@dataclass(frozen=True)
class Finding:
    """One distinct failure: a check that failed on one answer, and how to send that request again."""

    service: str
    operation: str
    mode: str
    check: str
    rules: tuple[str, ...]
    title: str
    message: str
    status: int | None
    curl: str
    case: int  # 1-based: the case of its pass that first showed it


@dataclass(frozen=True)
class PassResult:
    """One operation in one mode."""

    service: str
    operation: str
    mode: str
    cases: int
    failing_cases: int
    statuses: Mapping[int, int]
    findings: tuple[Finding, ...]
    duration: float
    error: str = ""  # the pass could not run (an operation Schemathesis cannot generate for)


@dataclass
class _Pass:
    service: str
    operation: str
    mode: str
    cases: int = 0
    failing_cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    findings: dict[tuple[str, str, int | None], Finding] = field(default_factory=dict)


Progress = Callable[[PassResult], None]


def _config(mode: str, options: FuzzOptions) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "seed": options.seed,
        "generation": {"mode": mode, "max-examples": options.max_examples},
        "phases": {"examples": {"enabled": mode == "positive"}, "coverage": {"enabled": True},
                   "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
        "checks": SCHEMATHESIS_CHECKS,
        "output": {"sanitization": {"enabled": False}},  # the curl line must carry the credential it sent
    })


def load_schema(document: ServiceDocument, mode: str, options: FuzzOptions) -> Any:
    """The document as Schemathesis reads it (from its path, so relative $refs resolve); a document
    that is missing or unusable is an InputError naming it."""
    path = document.openapi
    if not path.is_file():
        raise InputError("no such OpenAPI document", str(path))
    try:
        schema = schemathesis.openapi.from_path(str(path), config=_config(mode, options))
        operations = list(schema.get_all_operations())
    except Exception as exc:  # Schemathesis' loader errors have no common base worth naming
        raise InputError(f"not a usable OpenAPI document: {_first_line(exc)}", str(path)) from exc
    for result in operations:
        error = getattr(result, "err", lambda: None)()
        if error is not None:
            raise InputError(f"an operation of the document is unusable: {_first_line(error)}", str(path))
    if not operations:
        raise InputError("the OpenAPI document has no operations", str(path))
    return schema


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _names(operation: Any) -> set[str]:
    names = {operation.label}
    operation_id = operation.definition.raw.get("operationId")
    if operation_id:
        names.add(str(operation_id))
    return names


def select(schemas: Mapping[str, Any], wanted: Sequence[str]) -> dict[str, list[Any]]:
    """service -> its operations named in `wanted` (all when empty); an unknown name is an InputError."""
    chosen: dict[str, list[Any]] = {}
    known: list[str] = []
    matched: set[str] = set()
    for service, schema in schemas.items():
        for result in schema.get_all_operations():
            operation = result.ok()
            names = _names(operation)
            known.extend(sorted(names))
            if not wanted or names & set(wanted):
                chosen.setdefault(service, []).append(operation)
                matched |= names & set(wanted)
    for name in wanted:
        if name not in matched:
            close = difflib.get_close_matches(name, known, n=2, cutoff=0.5)
            hint = f"did you mean {' or '.join(map(repr, close))}?" if close else f"operations: {', '.join(known)}"
            raise InputError(f"unknown operation {name!r}", hint=hint)
    return chosen


def has_input(operation: Any) -> bool:
    """Whether a negative pass can break anything: parameters or a body (GET /health has neither)."""
    parts = (operation.path_parameters, operation.query, operation.headers, operation.cookies)
    return any(len(part) for part in parts if part is not None) or bool(operation.body)


class Fuzzer:
    """Runs the passes against one target, started by the caller."""

    def __init__(self, target: Target, documents: Sequence[ServiceDocument], options: FuzzOptions,
                 progress: Progress | None = None) -> None:
        self.target = target
        self.documents = {d.service: d for d in documents}
        self.options = options
        self.progress = progress
        # Loaded (and operations selected) before anything is sent: bad input fails fast.
        self.schemas = {mode: {d.service: load_schema(d, mode, options) for d in documents}
                        for mode in options.modes}
        self.chosen = {mode: select(schemas, options.operations) for mode, schemas in self.schemas.items()}

    def run(self) -> list[PassResult]:
        aims = Aims(self.target, frozenset(d.signature_header for d in self.documents.values()))
        session = session_for(self.target, self.documents.values())
        for schemas in self.schemas.values():
            for schema in schemas.values():
                route_through(schema, session)
        results: list[PassResult] = []
        try:
            for mode in self.options.modes:
                for service, operations in self.chosen[mode].items():
                    for operation in operations:
                        if mode == "negative" and not has_input(operation):
                            continue
                        result = self._pass(service, operation, mode, aims, session)
                        results.append(result)
                        if self.progress is not None:
                            self.progress(result)
        finally:
            session.close()
        return results

    def _pass(self, service: str, operation: Any, mode: str, aims: Aims, session: requests.Session) -> PassResult:
        state = _Pass(service, operation.label, mode)
        url = base_url(service)
        curl_base = self.documents[service].curl_base or url

        def test(case: Any) -> None:
            aims.prepare(case, state.cases)
            state.cases += 1
            verdicts: list[Verdict] = []
            try:
                response = case.call(base_url=url, session=session)
            except requests.ConnectionError as exc:
                self._record(state, case, None, [Verdict("no_response", "No answer", _first_line(exc))], curl_base, {})
                return
            try:
                case.validate_response(response, transport_kwargs={"base_url": url, "session": session})
            except FailureGroup as group:
                verdicts.extend(_from_schemathesis(group.exceptions))
            except Failure as failure:
                verdicts.extend(_from_schemathesis([failure]))
            content_type = ", ".join(response.headers.get("content-type", []))
            verdicts.extend(judge(case, response.status_code, content_type, response.content,
                                  problem_errors=self.documents[service].problem_errors))
            state.statuses[response.status_code] += 1
            if verdicts:
                self._record(state, case, response.status_code, verdicts, curl_base,
                             dict(response.request.headers))

        started = time.monotonic()
        error = ""
        try:
            self._hypothesis_test(operation, mode, test)()
        except hypothesis.errors.Unsatisfiable as exc:
            error = f"no case could be generated: {_first_line(exc)}"
        return PassResult(service, operation.label, mode, state.cases, state.failing_cases, dict(state.statuses),
                          tuple(state.findings.values()), time.monotonic() - started, error)

    def _hypothesis_test(self, operation: Any, mode: str, test: Callable[[Any], None]) -> Callable[[], None]:
        project = operation.schema.config
        settings = hypothesis.settings(
            max_examples=self.options.max_examples, deadline=None, database=None, derandomize=False,
            print_blob=False, phases=(Phase.explicit, Phase.generate),
            suppress_health_check=list(HealthCheck))
        modes = [HypothesisTestMode.FUZZING, HypothesisTestMode.COVERAGE]
        if mode == "positive":
            modes.insert(0, HypothesisTestMode.EXAMPLES)
        built: Callable[[], None] = create_test(operation=operation, test_func=test, config=HypothesisTestConfig(
            project=project, modes=modes, settings=settings, apply_ci_profile=False,
            explicit_setting_names={"max_examples", "deadline", "database", "derandomize", "phases",
                                    "suppress_health_check", "print_blob"},
            seed=derive_operation_seed(self.options.seed, f"{mode} {operation.label}"),
            feedback=FeedbackSources()))
        return built

    def _record(self, state: _Pass, case: Any, status: int | None, verdicts: list[Verdict], curl_base: str,
                headers: dict[str, str]) -> None:
        state.failing_cases += 1
        for verdict in verdicts:
            key = (verdict.check, verdict.title.split(":")[0], status)
            if key in state.findings or len(state.findings) >= MAX_FINDINGS_PER_PASS:
                continue
            state.findings[key] = Finding(state.service, state.operation, state.mode, verdict.check,
                                          rules_of(verdict.check), verdict.title, verdict.message, status,
                                          _curl(case, headers, curl_base), state.cases)


def _from_schemathesis(failures: Sequence[BaseException]) -> list[Verdict]:
    verdicts = []
    for failure in failures:
        if isinstance(failure, Failure):
            check = next(iter(type(failure).checks), "") or _check_name(failure)
            verdicts.append(Verdict(check, failure.title, failure.message))
        else:
            verdicts.append(Verdict("schemathesis", type(failure).__name__, _first_line(failure)))
    return verdicts


def _check_name(failure: Failure) -> str:
    return type(failure).__name__


def _curl(case: Any, headers: dict[str, str], curl_base: str) -> str:
    try:
        command: str = case.as_curl_command(headers=headers, base_url=curl_base)
    except Exception as exc:  # a request Schemathesis cannot render as curl: say so, keep the finding
        return f"(no curl line: {_first_line(exc)})"
    return command.split("\n\n")[0]
