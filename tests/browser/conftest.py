"""Fixtures for the real-browser tests: headless Chromium (Playwright) against a real Bokeh server.

Playwright drives Debian's ``chromium`` (``/usr/bin/chromium``, installed by
``scripts/test.sh``); Playwright's own browser downloads are not used.  Set
``DLVIZ_CHROMIUM`` to use another Chromium binary.

When Chromium cannot start, the tests are skipped with the reason, except
under ``CI`` (the environment variable set), where they fail: a CI run must
never pass by quietly not looking at the browser.
"""

from __future__ import annotations

import logging
import socket
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from dataclasses import dataclass, field

import pytest

#: Chromium switches: no sandbox (containers, root), software rendering, and no
#: background traffic to Google services (the machines have no internet).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: One size for every page, so plot geometry does not depend on the machine.
VIEWPORT = {"width": 1100, "height": 760}
#: Generous: the machines are slow and shared.  No test asserts on time.
TIMEOUT_MS = 300_000

# Console errors that say nothing about the page under test.  Each entry is a
# substring of the message text; keep every entry commented with its reason.
CONSOLE_ALLOW: tuple[str, ...] = ()

# Server-side log records (WARNING and above) that are not failures.  A
# DynamicMap callback that raises only shows up here ("Callable raised ...",
# logged by param at WARNING), never in the browser console.
SERVER_LOG_ALLOW: tuple[str, ...] = ()


def chromium_path() -> str | None:
    """The Chromium binary to drive: ``$DLVIZ_CHROMIUM``, Debian's, or on the PATH."""
    for cand in (os.environ.get("DLVIZ_CHROMIUM"), "/usr/bin/chromium",
                 shutil.which("chromium"), shutil.which("chromium-browser")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def _unavailable(reason: str):
    """Skip, or fail under CI: the browser tests must not silently vanish there."""
    reason = f"headless Chromium unavailable: {reason}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping; "
                    "scripts/test.sh installs Debian's chromium)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session (Playwright sync API)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        _unavailable(f"the playwright package is not installed ({err}); "
                     "pip install -e '.[test]'")
    exe = chromium_path()
    if exe is None:
        _unavailable("no chromium binary at /usr/bin/chromium or on the PATH "
                     "(apt-get install -y chromium, or set DLVIZ_CHROMIUM)")
    failure = None
    try:
        pw = sync_playwright().start()
    except Exception as err:  # e.g. called inside a running asyncio loop
        failure = f"Playwright did not start: {err}"
    else:
        try:
            chrome = pw.chromium.launch(executable_path=exe, headless=True,
                                        args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
        except Exception as err:
            pw.stop()
            failure = f"{exe} did not launch: {str(err).strip().splitlines()[0]}"
    if failure is not None:
        _unavailable(failure)
    yield chrome
    chrome.close()
    pw.stop()


@dataclass
class Tab:
    """A fresh page and everything its console and JavaScript said."""

    page: object
    console: list = field(default_factory=list)      # (type, text, url:line)
    page_errors: list = field(default_factory=list)  # uncaught exceptions

    def errors(self) -> list[str]:
        """Console errors and uncaught exceptions, less the allow-list."""
        out = [f"console {kind}: {text} ({where})" for kind, text, where in self.console
               if kind == "error" and not any(a in text or a in where for a in CONSOLE_ALLOW)]
        return out + [f"page error: {e}" for e in self.page_errors]

    def assert_clean(self) -> None:
        errors = self.errors()
        assert not errors, "the browser reported errors:\n" + "\n".join(errors)


@pytest.fixture
def tab(browser):
    """A new browser context and page per test, console and page errors recorded."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    t = Tab(page)

    def on_console(msg):
        loc = msg.location or {}
        t.console.append((msg.type, msg.text, f"{loc.get('url', '')}:{loc.get('lineNumber', '')}"))

    page.on("console", on_console)
    page.on("pageerror", lambda err: t.page_errors.append(str(err)))
    yield t
    context.close()


class ServerLog(logging.Handler):
    """Log records (WARNING and above) of the Bokeh server thread and its libraries."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def problems(self) -> list[str]:
        out = []
        for r in self.records:
            msg = r.getMessage()
            if not any(a in msg for a in SERVER_LOG_ALLOW):
                out.append(f"{r.levelname} {r.name}: {msg}")
        return out

    def assert_clean(self) -> None:
        problems = self.problems()
        assert not problems, "the server logged problems:\n" + "\n".join(problems)


@pytest.fixture
def server_log():
    """Collect server-side warnings and errors during one test (all threads)."""
    handler = ServerLog()
    root = logging.getLogger()
    root.addHandler(handler)
    # loggers that do not propagate to the root get the handler directly
    extra = [logging.getLogger(n) for n in ("bokeh", "tornado", "panel", "param", "holoviews")
             if not logging.getLogger(n).propagate]
    for lg in extra:
        lg.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    for lg in extra:
        lg.removeHandler(handler)


@pytest.fixture
def serve_view(server_log):
    """``serve_view(obj) -> url``: serve a view with ``dv.serve``; stopped after the test."""
    import dlviz_gpu as dv

    urls = []

    def start(obj, **kwargs):
        url = dv.serve(obj, **kwargs)
        urls.append(url)
        return url

    yield start
    for url in urls:
        url.stop()


# --------------------------------------------------------------------------
# dlviz commands as subprocesses
# --------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
#: Lines of a server's log that fail a test.
LOG_PROBLEMS = ("Traceback", "ERROR", "Exception", "Error:")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server subprocess (``dlviz``, ``bokeh serve``, ``panel serve``) and its log."""

    def __init__(self, cmd: list, log: Path, env: dict | None = None):
        self.log = log
        self._out = open(log, "w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([str(a) for a in cmd], cwd=ROOT, stdout=self._out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env)

    def text(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")

    def assert_clean(self) -> None:
        bad = [line for line in self.text().splitlines() if any(p in line for p in LOG_PROBLEMS)]
        assert not bad, "the server logged problems:\n" + self.text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._out.close()


class Command(ServerProcess):
    """A ``dlviz`` command serving on a free port."""

    def __init__(self, args: list, log: Path):
        self.port = free_port()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("DISPLAY", None)
        super().__init__([sys.executable, "-m", "dlviz_gpu.cli", *args, "--port", self.port,
                          "--no-browser"], log, env)

    def wait_ready(self, timeout_s: float = 300) -> str:
        """The URL the command announces once its first page is ready."""
        deadline = time.monotonic() + timeout_s
        while True:
            m = re.search(r"is at (http://\S+) \(ready in ([\d.]+) s", self.text())
            if m:
                self.ready_s = float(m.group(2))
                return m.group(1)
            if self.proc.poll() is not None:
                pytest.fail(f"dlviz exited with {self.proc.returncode}:\n{self.text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"dlviz announced no page in {timeout_s:.0f} s:\n{self.text()}")
            time.sleep(0.2)


def status_step(locator, pattern: str):
    """The step number a status line shows (``pattern`` has one group), or None."""
    if locator.count() == 0:
        return None
    m = re.search(pattern, locator.first.inner_text())
    return int(m.group(1).replace(",", "")) if m else None


@pytest.fixture
def command(tmp_path):
    started = []

    def start(*args):
        c = Command(list(args), tmp_path / f"dlviz-{len(started)}.log")
        started.append(c)
        return c

    yield start
    for c in started:
        if c.proc.poll() is None:
            print(f"--- dlviz output ---\n{c.text()}")
        c.stop()
