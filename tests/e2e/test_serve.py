"""`kcverify serve embedded` as a person runs it: the installed command in its own process, real
ports, real time. Buys a course over HTTP and sees it in the learning view (F2), is refused without a
signature (P2) or as another student (S1), and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from kcverify.reference.auth import issue_token, sign_callback
from kcverify.reference.frontend import DISPLAY_FIELDS, display
from kcverify.reference.settings import AUTH_SECRET_ENV, DEV_AUTH_SECRET, DEV_WEBHOOK_SECRET, WEBHOOK_SECRET_ENV

METADATA: dict[str, Any] = {"startDate": "2026-04-06", "classTime": "07:45", "classTypeId": "private-1on1",
                            "scheduleType": "weekdays", "sessionCount": 24, "timezone": "Europe/Vienna"}
JSON = {"Content-Type": "application/json"}


def kcverify_command() -> str:
    """The console script of this environment (what `pip install` put next to the interpreter)."""
    beside = Path(sys.executable).parent / "kcverify"
    found = str(beside) if beside.is_file() else shutil.which("kcverify")
    assert found, "the kcverify console script is not installed (pip install -e .)"
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    payment: httpx.Client
    student: httpx.Client
    stdout: Path
    stderr: Path

    def logs(self) -> str:
        return f"stdout:\n{self.stdout.read_text()}\nstderr:\n{self.stderr.read_text()}"


def wait_healthy(served: Served, deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    for client in (served.payment, served.student):
        while True:
            if served.process.poll() is not None:
                pytest.fail(f"kcverify serve exited early with {served.process.returncode}\n{served.logs()}")
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no /health answer from {client.base_url} within {deadline_s}s\n{served.logs()}")
            time.sleep(0.02)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from serve_embedded(tmp_path)


def serve_embedded(tmp_path: Path, env: dict[str, str] | None = None) -> Iterator[Served]:
    payment_port, student_port = free_port(), free_port()
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [kcverify_command(), "serve", "embedded", "--payment-port", str(payment_port),
             "--student-port", str(student_port), "--data-dir", str(tmp_path / "data")],
            stdout=out, stderr=err, env=env,
        )
    payment = httpx.Client(base_url=f"http://127.0.0.1:{payment_port}", timeout=5)
    student = httpx.Client(base_url=f"http://127.0.0.1:{student_port}", timeout=5)
    result = Served(process, payment, student, stdout, stderr)
    try:
        wait_healthy(result)
        yield result
    finally:
        payment.close()
        student.close()
        if process.poll() is None:
            process.kill()
            process.wait()


def create(served: Served, student: str = "s1") -> dict[str, Any]:
    response = served.payment.post("/api/v1/payments", json={
        "studentId": student, "courseId": "course-german-a2", "amountCents": 24900, "currency": "EUR",
        "metadata": METADATA})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def confirm(served: Served, payment_id: str, *, signed: bool, secret: str = DEV_WEBHOOK_SECRET) -> httpx.Response:
    body = json.dumps({"status": "succeeded", "providerPaymentId": "pi_e2e"}).encode()
    signature = sign_callback(secret, payment_id, body, time.time())
    headers = {**JSON, "X-Signature": signature} if signed else JSON
    return served.payment.post(f"/api/v1/payments/{payment_id}/confirm", content=body, headers=headers)


def learning(served: Served, student: str, as_: str, secret: str = DEV_AUTH_SECRET) -> httpx.Response:
    token = issue_token(secret, as_, now=time.time())
    return served.student.get(f"/api/v1/students/{student}/learning", headers={"Authorization": f"Bearer {token}"})


@pytest.mark.timeout(30)
def test_serve_embedded_buys_a_course_over_http_and_stops_on_sigterm(served: Served) -> None:
    banner = served.stdout.read_text()
    assert str(served.payment.base_url).rstrip("/") in banner and "openssl dgst -sha256 -hmac" in banner

    payment = create(served)
    confirmed_at = time.monotonic()
    response = confirm(served, payment["id"], signed=True)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"

    # The components run in the background on real time: poll until the purchase shows (bounded).
    deadline = confirmed_at + 3.0
    purchases: list[dict[str, Any]] = []
    while not purchases:
        view = learning(served, "s1", as_="s1")
        assert view.status_code == 200, view.text
        purchases = [p for p in view.json()["purchases"] if p["paymentId"] == payment["id"]]
        if not purchases:
            assert time.monotonic() < deadline, f"no purchase 3 s after confirm\n{served.logs()}"
            time.sleep(0.01)
    latency = time.monotonic() - confirmed_at
    print(f"confirm -> purchase visible: {latency * 1000:.0f} ms")
    [purchase] = purchases
    assert display(purchase).to_json() == {field: METADATA[field] for field in DISPLAY_FIELDS}  # F2

    # P2: unsigned confirm is refused and changes nothing
    other = create(served)
    refused = confirm(served, other["id"], signed=False)
    assert refused.status_code == 401, refused.text
    assert served.payment.get(f"/api/v1/payments/{other['id']}").json()["status"] == "initiated"
    # S1: another student may not read s1's view
    assert learning(served, "s1", as_="s2").status_code == 403

    started = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=5) == 0, served.logs()
    print(f"SIGTERM -> exit 0: {(time.monotonic() - started) * 1000:.0f} ms")
    assert "purchase-worker   stopped" in served.stderr.read_text()


def test_serve_component_without_a_stack_says_what_is_missing(tmp_path: Path) -> None:
    result = subprocess.run([kcverify_command(), "serve", "worker", "--dev", "--state-dir", str(tmp_path / "none")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "no running stack" in result.stderr and "kcverify stack up" in result.stderr


def test_serve_component_without_secrets_refuses_naming_them(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in (WEBHOOK_SECRET_ENV, AUTH_SECRET_ENV)}
    result = subprocess.run([kcverify_command(), "serve", "worker", "--state-dir", str(tmp_path / "none")],
                            capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 2
    assert WEBHOOK_SECRET_ENV in result.stderr and AUTH_SECRET_ENV in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(30)
def test_serve_embedded_uses_the_environments_secrets_and_prints_neither(tmp_path: Path) -> None:
    webhook, auth = "w-" + "9" * 40, "a-" + "8" * 40
    env = {**os.environ, WEBHOOK_SECRET_ENV: webhook, AUTH_SECRET_ENV: auth}
    for served in serve_embedded(tmp_path, env):
        banner = served.stdout.read_text()
        assert webhook not in banner and auth not in banner
        assert DEV_WEBHOOK_SECRET not in banner and "$KCVERIFY_WEBHOOK_SECRET" in banner
        payment = create(served)
        assert confirm(served, payment["id"], signed=True).status_code == 401  # the development key
        assert confirm(served, payment["id"], signed=True, secret=webhook).status_code == 200
        assert learning(served, "s1", as_="s1").status_code == 401
        assert learning(served, "s1", as_="s1", secret=auth).status_code == 200
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=5) == 0, served.logs()
        assert webhook not in served.logs() and auth not in served.logs()


def test_the_printed_walkthrough_buys_a_course(served: Served) -> None:
    """The banner's bash lines, run as printed: they sign for the payment they create, now."""
    if shutil.which("openssl") is None or shutil.which("bash") is None:
        pytest.fail("the walkthrough needs bash and openssl on the PATH")
    banner = served.stdout.read_text()
    lines = banner.split("Try it (bash):", 1)[1].split("Ctrl-C stops", 1)[0]
    assert not re.search(r"[0-9a-fA-F]{64}", banner)  # no ready-made signature (or digest) to copy
    result = subprocess.run(["bash", "-c", lines + "\necho PAYMENT_ID=$PAYMENT_ID"], capture_output=True,
                            text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    payment_id = result.stdout.rsplit("PAYMENT_ID=", 1)[1].strip()
    payment = served.payment.get(f"/api/v1/payments/{payment_id}").json()
    assert payment["status"] == "succeeded", result.stdout
