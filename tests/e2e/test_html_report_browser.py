"""The HTML report of a run with one failure, opened in headless Chromium (Debian's, installed by the
test command's prerequisites; never a downloaded browser): it opens with the verdict and the failures,
each linking to its card, above the first card of a scenario that passed; status marks are CSS badges,
not emoji; the browser logs no error (the page's Content-Security-Policy included).

Chromium is driven through the DevTools protocol over a pipe (--remote-debugging-pipe: JSON messages
ended by NUL on file descriptors 3 and 4), so nothing but the standard library is needed."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kcverify import api
from kcverify.core.status import Status
from kcverify.report.html import render

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# Needed on a closed network: no first-run, component, sync or QUIC traffic to wait for.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-pipe", "--window-size=1280,900"]
# Emoji and the pictographs browsers draw as emoji: the report must carry none of them.
EMOJI = [(0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0x2B00, 0x2BFF), (0x2300, 0x23FF), (0xFE0F, 0xFE0F)]


class Browser:
    """A headless Chromium and one page, spoken to over the DevTools pipe."""

    def __init__(self, profile: Path) -> None:
        to_child, self._to_browser = os.pipe()
        self._from_browser, from_child = os.pipe()

        def wire() -> None:  # in the child: the protocol's fds are exactly 3 (in) and 4 (out)
            high_in, high_out = os.dup(to_child), os.dup(from_child)
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        self.process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                        # close_fds would close 3 and 4 after wire(); Python's own fds
                                        # are close-on-exec anyway, and dup2 makes 3 and 4 inheritable.
                                        preexec_fn=wire, close_fds=False,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        self.session = ""

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True,
             timeout: float = 30.0) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next:
                assert "error" not in reply, (method, reply["error"])
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = self._read(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            assert time.monotonic() < deadline, "Chromium did not answer in time"
            chunk = os.read(self._from_browser, 65536)
            assert chunk, "Chromium closed the DevTools pipe: " + self._stderr()
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def _stderr(self) -> str:
        self.process.kill()
        return (self.process.communicate()[1] or b"").decode(errors="replace")[-2000:]

    def close(self) -> None:
        try:
            os.write(self._to_browser, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            os.close(self._to_browser)
            os.close(self._from_browser)
            if self.process.stderr is not None:
                self.process.stderr.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    assert shutil.which("chromium") or Path(CHROMIUM).exists(), \
        "chromium is missing: `make prerequisites` installs it (apt-get install chromium)"
    with tempfile.TemporaryDirectory(prefix="kcverify-chromium-") as profile:
        opened = Browser(Path(profile))
        try:
            yield opened
        finally:
            opened.close()


def _one_failure_report(folder: Path) -> Path:
    """A real run: two scenarios that pass and, with the stale-set-race defect on, one that fails; the
    passing ones run first, so a report in run order would show them first."""
    scenarios = [ROOT / "scenarios" / f"{name}.yaml" for name in ("happy-path", "unsigned-confirm", "stale-set-race")]
    result = api.run(scenarios, defects=["stale-set-race"])
    assert [s.status for s in result.scenarios] == [Status.PASSED, Status.PASSED, Status.FAILED]
    path = folder / "report.html"
    path.write_text(render(result), encoding="utf-8")
    return path


LAYOUT = """(() => {
  const top = (el) => el ? el.getBoundingClientRect().top + window.scrollY : null;
  const failures = document.querySelector('#failures');
  const failedBadge = document.querySelector('.badge.failed');
  return JSON.stringify({
    header: top(document.querySelector('header')),
    failures: top(failures),
    firstPassedCard: top(document.querySelector('article.passed')),
    overview: top(document.querySelector('#scenarios')),
    failureLinks: failures ? [...failures.querySelectorAll('a')].map(a => a.getAttribute('href')) : [],
    failedCards: [...document.querySelectorAll('article.failed')].map(a => '#' + a.id),
    badges: document.querySelectorAll('.badge').length,
    badgeBackground: failedBadge ? getComputedStyle(failedBadge).backgroundColor : null,
    text: document.body.innerText,
  });
})()"""


def test_the_report_opens_with_the_verdict_and_failures_in_chromium(browser: Browser, tmp_path: Path) -> None:
    report = _one_failure_report(tmp_path)
    target = browser.send("Target.createTarget", {"url": "about:blank"}, session=False)
    attached = browser.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True},
                            session=False)
    browser.session = attached["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        browser.send(f"{domain}.enable")
    browser.send("Page.navigate", {"url": report.as_uri()})
    browser.wait_for("Page.loadEventFired")

    layout = json.loads(browser.send("Runtime.evaluate", {"expression": LAYOUT, "returnByValue": True})
                        ["result"]["value"])
    shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    screenshot = tmp_path / "report.png"
    screenshot.write_bytes(base64.b64decode(shot["data"]))

    assert screenshot.stat().st_size > 1000 and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    errors = [event for event in browser.events
              if (event.get("method") == "Runtime.consoleAPICalled" and event["params"]["type"] in ("error", "assert"))
              or event.get("method") == "Runtime.exceptionThrown"
              or (event.get("method") == "Log.entryAdded" and event["params"]["entry"]["level"] == "error")]
    assert errors == []
    # verdict, then the failures, then everything that passed
    assert layout["header"] is not None and layout["failures"] is not None
    assert layout["header"] < layout["failures"] < layout["overview"] < layout["firstPassedCard"]
    assert layout["text"].lstrip().startswith("kcverify: FAIL FAILED")
    # every failure links to its card
    assert layout["failedCards"] and set(layout["failureLinks"]) == set(layout["failedCards"])
    # status marks: CSS badges, no emoji anywhere in the page
    assert layout["badges"] >= 3 and layout["badgeBackground"] == "rgb(207, 34, 46)"
    emoji = [c for c in layout["text"] if any(lo <= ord(c) <= hi for lo, hi in EMOJI)]
    assert emoji == []


def test_the_browser_check_sees_a_console_error(browser: Browser, tmp_path: Path) -> None:
    """The error capture above is real: a page whose inline script the CSP refuses logs an error."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'
                    "<p>x</p><script>console.log(1)</script>", encoding="utf-8")
    target = browser.send("Target.createTarget", {"url": "about:blank"}, session=False)
    browser.session = browser.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True},
                                   session=False)["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        browser.send(f"{domain}.enable")
    browser.send("Page.navigate", {"url": page.as_uri()})
    browser.wait_for("Page.loadEventFired")
    entry = browser.wait_for("Log.entryAdded", timeout=10)
    assert entry["params"]["entry"]["level"] == "error"
