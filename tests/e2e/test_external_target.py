"""The external target against a real system: the reference served over real HTTP on real time
(`kcverify serve embedded`, SQLite files), described by profiles/reference.yaml without its kafka, cache
and control sections (the embedded system has no broker and no Redis, and runs every component in one
process). The scenarios that need
only HTTP and the databases pass on the correct reference and fail on a named defect; `kcverify profile
check` answers for a running system, a stopped one, a typo and a query with the wrong columns, with one
line and exit 2, never a traceback."""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_serve import free_port, kcverify_command

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "profiles" / "reference.yaml"


def http_and_db(text: str) -> str:
    """The reference profile without its `kafka`, `cache` and `control` sections (they come in that order,
    before `conventions`)."""
    start, end = text.index("\nkafka:\n"), text.index("\nconventions:\n")
    return text[:start] + text[end:]


PROFILE = Path(tempfile.mkdtemp(prefix="kcverify-e2e-")) / "reference-http-db.yaml"
PROFILE.write_text(http_and_db(REFERENCE.read_text()))
SCENARIOS = [ROOT / "scenarios" / f"{name}.yaml" for name in
             ("happy-path", "unsigned-confirm", "payment-validation", "illegal-transitions")]


def embedded_profile(directory: Path) -> Path:
    """profiles/reference.yaml without its control section, as docs/external.md says for the embedded
    reference: its components cannot be started, stopped or held one by one."""
    path = directory / "reference-embedded.yaml"
    path.write_text(PROFILE.read_text())
    assert "\ncontrol:" not in path.read_text()
    return path


def served_env(tmp_path: Path, defects: tuple[str, ...] = ()) -> Iterator[dict[str, str]]:
    """A `kcverify serve embedded` with fresh secrets; yields the environment the profile reads."""
    payment_port, student_port = free_port(), free_port()
    data = tmp_path / "data"
    env = {**os.environ, "KCVERIFY_AUTH_SECRET": secrets.token_hex(32),
           "KCVERIFY_WEBHOOK_SECRET": secrets.token_hex(32),
           "KCVERIFY_PAYMENT_URL": f"http://127.0.0.1:{payment_port}",
           "KCVERIFY_STUDENT_URL": f"http://127.0.0.1:{student_port}",
           "KCVERIFY_PAYMENTS_DSN": f"sqlite://{data}/payments.sqlite3",
           "KCVERIFY_COURSES_DSN": f"sqlite://{data}/courses.sqlite3",
           "TEST_EXTERNAL_PROFILE": str(embedded_profile(tmp_path))}
    words = [kcverify_command(), "serve", "embedded", "--payment-port", str(payment_port), "--student-port",
             str(student_port), "--data-dir", str(data), "--no-trace"]
    for defect in defects:
        words += ["--defect", defect]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(words, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 20
        for url in (env["KCVERIFY_PAYMENT_URL"], env["KCVERIFY_STUDENT_URL"]):
            while True:
                assert process.poll() is None, log.read_text()
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        yield env
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def correct(tmp_path: Path) -> Iterator[dict[str, str]]:
    yield from served_env(tmp_path)


@pytest.fixture
def unsigned(tmp_path: Path) -> Iterator[dict[str, str]]:
    yield from served_env(tmp_path, ("unsigned-confirm",))


def kcverify(env: dict[str, str], *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([kcverify_command(), *words], env=env, capture_output=True, text=True, timeout=300,
                          cwd=ROOT)


def run(env: dict[str, str], *paths: Path) -> subprocess.CompletedProcess[str]:
    return kcverify(env, "run", "--target", "external", "--profile", env["TEST_EXTERNAL_PROFILE"], "--no-color",
                    *(str(p) for p in paths))


def test_the_correct_reference_passes_through_its_profile(correct: dict[str, str]) -> None:
    checked = kcverify(correct, "profile", "check", correct["TEST_EXTERNAL_PROFILE"], "--no-color")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "query purchases" in checked.stdout
    assert "capabilities: caller_credentials, expiring_tokens, http, read_db" in checked.stdout
    result = run(correct, *SCENARIOS, ROOT / "scenarios" / "triple-delivery.yaml")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert f"{len(SCENARIOS)} passed, 1 skipped" in out
    assert "needs control_components, produce_events, read_bus (target external lacks it)" in " ".join(out.split())


def test_a_named_defect_is_found_through_the_profile(unsigned: dict[str, str]) -> None:
    result = run(unsigned, ROOT / "scenarios" / "unsigned-confirm.yaml")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "FAIL  unsigned-confirm" in out and "P2" in out
    assert "Traceback" not in out


def test_profile_check_of_a_stopped_system_names_the_first_unreachable_item(tmp_path: Path) -> None:
    env = {**os.environ, "KCVERIFY_AUTH_SECRET": "a" * 32, "KCVERIFY_WEBHOOK_SECRET": "w" * 32,
           "KCVERIFY_PAYMENT_URL": f"http://127.0.0.1:{free_port()}",
           "KCVERIFY_STUDENT_URL": f"http://127.0.0.1:{free_port()}",
           "KCVERIFY_PAYMENTS_DSN": f"sqlite://{tmp_path}/none.sqlite3",
           "KCVERIFY_COURSES_DSN": f"sqlite://{tmp_path}/none.sqlite3"}
    result = kcverify(env, "profile", "check", str(PROFILE), "--no-color")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"kcverify profile check: {PROFILE}: service payment: ")
    assert "unreachable" in result.stderr and "Traceback" not in result.stderr + result.stdout


def test_a_run_against_a_stopped_system_stops_at_once_naming_every_missing_part(tmp_path: Path) -> None:
    env = {**os.environ, "KCVERIFY_AUTH_SECRET": "a" * 32, "KCVERIFY_WEBHOOK_SECRET": "w" * 32,
           "KCVERIFY_PAYMENT_URL": f"http://127.0.0.1:{free_port()}",
           "KCVERIFY_STUDENT_URL": f"http://127.0.0.1:{free_port()}",
           "KCVERIFY_PAYMENTS_DSN": f"sqlite://{tmp_path}/none.sqlite3",
           "KCVERIFY_COURSES_DSN": f"sqlite://{tmp_path}/none.sqlite3", "TEST_EXTERNAL_PROFILE": str(PROFILE)}
    result = run(env, *SCENARIOS)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: the system of {PROFILE} is not reachable: service payment at "), line
    for part in ("service student at", "database payments_db:", "database courses_db:", "in scenario 1 of 4"):
        assert part in line, (part, line)
    assert "Traceback" not in result.stdout + result.stderr


def test_profile_check_of_a_typo_points_at_it_with_a_suggestion(tmp_path: Path) -> None:
    broken = tmp_path / "typo.yaml"
    broken.write_text(PROFILE.read_text().replace("    learning_view:", "    learning_veiw:"))
    result = kcverify(dict(os.environ), "profile", "check", str(broken))
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.startswith(f"kcverify profile check: {broken}:") and "did you mean 'learning_view'" in line
    assert len(line.splitlines()) == 1


def test_profile_check_names_the_query_and_the_missing_column(correct: dict[str, str], tmp_path: Path) -> None:
    courses = tmp_path / "wrong.sqlite3"
    with sqlite3.connect(courses) as conn:
        conn.execute("CREATE TABLE student_course_purchases (id TEXT, payment_id TEXT, student_id TEXT, "
                     "course_id TEXT, metadata TEXT, metadata_source TEXT, is_active INTEGER, created_at REAL)")
    profile = tmp_path / "wrong.yaml"
    profile.write_text(PROFILE.read_text().replace('purchase_tier AS "purchaseTier", ', ""))
    result = kcverify({**correct, "KCVERIFY_COURSES_DSN": f"sqlite://{courses}"}, "profile", "check", str(profile))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().endswith("query purchases: missing column purchaseTier")
    assert "Traceback" not in result.stderr + result.stdout
