"""The skip policy of the real adapters' suites (conftest.Services): an address variable wins; without
it a stack is started once; if that fails, tests FAIL with the reason, never skip, CI or not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kcverify import stack
from kcverify.stack.errors import PrerequisiteMissing
from tests.adapters.conftest import Services


class _Tmp:
    def __init__(self, root: Path) -> None:
        self.root = root

    def mktemp(self, name: str) -> Path:
        path = self.root / name
        path.mkdir()
        return path


def _services(tmp_path: Path) -> Services:
    return Services(_Tmp(tmp_path))  # type: ignore[arg-type]


def test_an_address_variable_is_used_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCVERIFY_TEST_REDIS_URL", "redis://example:1/0")
    monkeypatch.setattr(stack, "up", lambda *a, **k: pytest.fail("no stack may start"))
    assert _services(tmp_path).address("redis") == "redis://example:1/0"


@pytest.mark.parametrize("ci", ["", "true"])
def test_a_stack_that_cannot_start_fails_the_test_once_with_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.delenv("KCVERIFY_TEST_KAFKA_BOOTSTRAP", raising=False)
    calls: list[Any] = []

    def broken_up(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise PrerequisiteMissing([("java", "openjdk-17-jre-headless")])

    monkeypatch.setattr(stack, "up", broken_up)
    monkeypatch.setattr(stack, "down", lambda *a, **k: None)
    services = _services(tmp_path)
    for _ in range(2):
        with pytest.raises(pytest.fail.Exception, match=r"(?s)KCVERIFY_TEST_KAFKA_BOOTSTRAP is unset.*openjdk"):
            services.address("kafka")
    assert len(calls) == 1  # the second test fails at once, with the same reason
    services.close()


def test_a_started_stack_serves_every_service_and_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("KCVERIFY_TEST_POSTGRES_DSN", "KCVERIFY_TEST_KAFKA_BOOTSTRAP", "KCVERIFY_TEST_REDIS_URL"):
        monkeypatch.delenv(variable, raising=False)
    settings = {"payments_dsn": "postgresql://p", "kafka_bootstrap": "k:1", "redis_url": "redis://r"}
    ups: list[Any] = []
    downs: list[Any] = []

    def up(state_dir: Path, **kwargs: Any) -> stack.UpResult:
        ups.append(state_dir)
        return stack.UpResult(settings, ("postgres",), False, 0.0)

    monkeypatch.setattr(stack, "up", up)
    monkeypatch.setattr(stack, "down", lambda state_dir, purge=False, **k: downs.append((state_dir, purge)))
    services = _services(tmp_path)
    addresses = [services.address(s) for s in ("postgres", "kafka", "redis")]
    assert addresses == ["postgresql://p", "k:1", "redis://r"]
    services.close()
    assert len(ups) == 1 and downs == [(ups[0], True)]
