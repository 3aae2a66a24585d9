"""Open a local HTML file in headless Chromium, with the network off, and report what a reader would meet.

Shared by the browser tests (the built documentation, the HTML report). Chromium is the Debian package
``chromium`` (``.ci/run`` installs it); no browser is downloaded. It is driven over the Chrome DevTools
Protocol in pipe mode (``--remote-debugging-pipe``: JSON messages separated by NUL bytes, commands written
to the browser's fd 3, answers and events read from its fd 4), so no websocket client is needed.

The network is cut three ways: the page's network is emulated offline (CDP), every connection goes to a
proxy that does not exist (``127.0.0.1:9``), and every host name resolves to nothing. Every request the
page makes is still recorded, so a page that *tries* to load anything from the network is seen.

The browser runs in its own process group with its own temporary profile; the whole group is killed when
the page is done, on error and on timeout.
"""

from __future__ import annotations

import atexit
import base64
import fcntl
import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

#: Executable names tried in turn when the ``CHROMIUM`` environment variable does not name one.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
#: URL schemes that never touch the network; every other scheme except ``file:`` counts as a network request.
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
_TRAMPOLINE = (
    "import os, sys; r, w = int(sys.argv[1]), int(sys.argv[2]); os.dup2(r, 3); os.dup2(w, 4); "
    "os.close(r); os.close(w); os.execv(sys.argv[3], sys.argv[3:])"
)
#: Milliseconds without a new request after which a loaded page counts as settled.
QUIET_MS = 300

# Waits until the page's own work is done: the load event, MathJax typesetting (when the page uses MathJax),
# web fonts and images (including lazy ones, which are made eager first).
_SETTLE_JS = """
(async () => {
  if (document.readyState !== 'complete') {
    await new Promise(r => window.addEventListener('load', r, {once: true}));
  }
  document.querySelectorAll('img[loading="lazy"]').forEach(img => { img.loading = 'eager'; });
  if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) {
    await window.MathJax.startup.promise;
  }
  if (document.fonts && document.fonts.ready) { await document.fonts.ready; }
  await Promise.all(Array.from(document.images).map(img => img.complete ? null : new Promise(r => {
    img.addEventListener('load', r, {once: true});
    img.addEventListener('error', r, {once: true});
  })));
  return true;
})()
"""

# One entry per figure: every <img>, and every outermost <svg> that is displayed and is neither math
# (MathJax output) nor an icon (an <svg> that only references a sprite with <use>, as the theme's icons do).
_IMAGES_JS = """
(() => {
  const out = [];
  for (const img of document.images) {
    const r = img.getBoundingClientRect();
    out.push({tag: 'img', src: img.currentSrc || img.src, width: r.width, height: r.height,
              complete: img.complete && img.naturalWidth > 0});
  }
  document.querySelectorAll('svg').forEach((svg, i) => {
    if (svg.parentElement && svg.parentElement.closest('svg')) return;   // part of a larger svg
    if (svg.closest('mjx-container')) return;                            // an equation
    if (svg.getClientRects().length === 0) return;                       // not displayed (sprites)
    const drawn = Array.from(svg.children)
      .filter(c => !['use', 'title', 'desc', 'defs', 'symbol'].includes(c.localName));
    if (drawn.length === 0) return;                                      // an icon
    const r = svg.getBoundingClientRect();
    out.push({tag: 'svg', src: svg.id ? '#' + svg.id : 'svg[' + i + ']', width: r.width, height: r.height,
              complete: true});
  });
  return out;
})()
"""


@dataclass
class PageReport:
    """What opening one page produced."""

    console: list[str] = field(default_factory=list)  # console messages of level error/warning (text)
    failed_requests: list[str] = field(default_factory=list)  # URLs that failed or were blocked
    network_requests: list[str] = field(default_factory=list)  # every URL requested that is not local
    screenshot: Path | None = None
    text: str = ""  # document.body.innerText
    #: one per <img>/<svg> figure: {"src", "width", "height", "complete"} (and "tag": "img" or "svg")
    images: list[dict] = field(default_factory=list)


def chromium_path() -> str | None:
    """The Chromium executable: ``$CHROMIUM`` if set, else the first of :data:`CHROMIUM_NAMES` on the PATH;
    ``None`` when there is none."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env if Path(env).is_file() and os.access(env, os.X_OK) else shutil.which(env)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_chromium() -> str:
    """For tests: the Chromium executable, or skip with the reason; under CI (``CI=true``) fail instead,
    since there a missing browser is a broken install step, not a developer's choice."""
    import pytest

    path = chromium_path()
    if path is None:
        reason = ("no Chromium found (looked for $CHROMIUM and " + ", ".join(CHROMIUM_NAMES)
                  + "); install it with `apt-get install chromium`")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " -- CI=true, so this is an error, not a skip")
        pytest.skip(reason)
    return path


def group_members(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that still run (zombies excluded), read from ``/proc``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


class BrowserError(RuntimeError):
    """Chromium did not start, died, or answered a command with an error."""


class _Chromium:
    """One headless Chromium process, spoken to over the DevTools pipe."""

    def __init__(self, executable: str, width: int, height: int) -> None:
        self.profile = tempfile.mkdtemp(prefix="ambiseg-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The child's ends go to descriptors >= 10 so that moving them to 3 and 4 cannot clobber each other.
        child_r, child_w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
                            for fd in (to_browser_r, from_browser_w))
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)
        args = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
            f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars",
            "--force-color-profile=srgb", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
            "--host-resolver-rules=MAP * ~NOTFOUND", "about:blank",
        ]
        self.stderr = tempfile.TemporaryFile()
        try:
            # The browser reads commands on fd 3 and writes answers on fd 4: a tiny trampoline puts the pipe
            # ends there and execs it (no preexec_fn, which is unsafe in a threaded test process).
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _TRAMPOLINE, str(child_r), str(child_w), executable, *args],
                pass_fds=(child_r, child_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=self.stderr, start_new_session=True,  # its own process group: killed whole in close()
            )
        finally:
            os.close(child_r)
            os.close(child_w)
        self._ids = itertools.count(1)
        self._answers: dict[int, dict] = {}
        self._events: queue.Queue[dict | None] = queue.Queue()
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        _LIVE.add(self)

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._from_browser, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(1 << 16)
                if not chunk:
                    break
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        with self._cond:
                            self._answers[message["id"]] = message
                            self._cond.notify_all()
                    else:
                        self._events.put(message)
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        self._events.put(None)

    closed = False

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             deadline: float | None = None) -> dict:
        """Run one CDP command and return its result (raises on an error answer or at the deadline)."""
        ident = next(self._ids)
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        with self._cond:
            while ident not in self._answers:
                if self.closed:
                    raise BrowserError(f"Chromium exited during {method}: {self.stderr_tail()}")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"Chromium did not answer {method} in time")
                self._cond.wait(left)
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise BrowserError(f"{method} failed: {answer['error']}")
        return answer.get("result", {})

    def event(self, timeout: float) -> dict | None:
        """The next event, or ``None`` when none came within ``timeout`` seconds."""
        try:
            return self._events.get(timeout=max(timeout, 0))
        except queue.Empty:
            return None

    def stderr_tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-2000:].decode(errors="replace")

    def close(self) -> None:
        """Kill the browser's whole process group, wait until none of it runs, remove its profile."""
        _LIVE.discard(self)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        stop = time.monotonic() + 10
        while group_members(self.proc.pid) and time.monotonic() < stop:
            time.sleep(0.02)
        try:
            os.close(self._to_browser)
        except OSError:
            pass
        self._reader.join(timeout=10)
        self.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)


_LIVE: weakref.WeakSet[_Chromium] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    """A test process that exits in the middle of a page still takes its browsers with it."""
    for browser in list(_LIVE):
        try:
            os.killpg(browser.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _is_local(url: str) -> bool:
    return url.startswith(LOCAL_SCHEMES)


def _console_text(level: str, text: str, url: str | None = None, line: int | None = None) -> str:
    where = f" ({url}{'' if line is None else f':{line + 1}'})" if url else ""  # CDP lines count from 0
    return f"{level}: {text}{where}"


class _Page:
    """One page of a browser: CDP commands go to its session, its events are recorded into a report."""

    def __init__(self, browser: _Chromium, deadline: float) -> None:
        self.browser, self.deadline = browser, deadline
        self.report = PageReport()
        self.urls: dict[str, str] = {}
        target = browser.send("Target.createTarget", {"url": "about:blank"}, deadline=deadline)["targetId"]
        self.session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                    deadline=deadline)["sessionId"]

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, session=self.session, deadline=self.deadline)

    def evaluate(self, expression: str, wait: bool = False):
        """The value of a JavaScript expression in the page (``wait``: await the promise it returns)."""
        result = self.send("Runtime.evaluate",
                           {"expression": expression, "returnByValue": True, "awaitPromise": wait})
        if "exceptionDetails" in result:
            raise BrowserError(f"evaluating in the page failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def record(self, message: dict) -> None:
        """Keep what one CDP event says about requests and console messages."""
        method, params, report = message.get("method"), message.get("params", {}), self.report
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            self.urls[params["requestId"]] = url
            if not _is_local(url):
                report.network_requests.append(url)
        elif method == "Network.loadingFailed":
            url = self.urls.get(params["requestId"], params["requestId"])
            reason = params.get("blockedReason") or params.get("errorText", "")
            report.failed_requests.append(f"{url} ({reason})" if reason else url)
        elif method == "Network.responseReceived" and params["response"].get("status", 200) >= 400:
            response = params["response"]
            report.failed_requests.append(f"{response['url']} (HTTP {response['status']})")
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            frame = ((params.get("stackTrace") or {}).get("callFrames") or [{}])[0]
            report.console.append(_console_text(params["type"], text, frame.get("url"),
                                                frame.get("lineNumber")))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = (details.get("exception") or {}).get("description") or details.get("text", "")
            report.console.append(_console_text("error", text, details.get("url"), details.get("lineNumber")))
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            entry = params["entry"]
            report.console.append(_console_text(entry["level"], entry["text"], entry.get("url"),
                                                entry.get("lineNumber")))

    def drain(self, quiet: float) -> None:
        """Record events until none has come for ``quiet`` seconds."""
        while (message := self._next(min(quiet, self.deadline - time.monotonic()))) is not None:
            self.record(message)

    def wait_for_load(self) -> None:
        """Record events until the load event of the document navigated to (not of the first about:blank)."""
        navigated = False
        while True:
            message = self._next(self.deadline - time.monotonic(), waiting=True)
            self.record(message)
            method, params = message.get("method"), message.get("params", {})
            if method == "Page.frameNavigated" and not params["frame"].get("parentId"):
                navigated = params["frame"].get("url", "").startswith("file:")
            elif method == "Page.loadEventFired" and navigated:
                return

    def _next(self, wait: float, waiting: bool = False) -> dict | None:
        """The next event within ``wait`` seconds; ``None`` if none came (an error if ``waiting`` for one)."""
        if wait <= 0 and time.monotonic() >= self.deadline:
            raise TimeoutError("the page was still loading" if waiting else "events kept coming")
        message = self.browser.event(max(wait, 0))
        if message is None and self.browser.closed:
            raise BrowserError(f"Chromium exited: {self.browser.stderr_tail()}")
        if message is None and waiting:
            raise TimeoutError("the page was still loading")
        return message


def open_page(html: Path, screenshot: Path | None = None, width: int = 1280, height: int = 2000,
              timeout: float = 60) -> PageReport:
    """Open ``html`` (a local file) in headless Chromium with the network off and report on it.

    Waits for the load event, MathJax's typesetting, fonts, images and a moment without new requests. With
    ``screenshot``, saves a PNG of the first ``width`` x ``height`` pixels of the page there.
    Raises ``FileNotFoundError`` for a missing file, ``RuntimeError`` when no Chromium is installed and
    ``TimeoutError`` when the page is not settled within ``timeout`` seconds (the browser is killed all
    the same).
    """
    html = Path(html).resolve()
    if not html.is_file():
        raise FileNotFoundError(f"open_page: no such HTML file: {html}")
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("open_page: no Chromium found; install it with `apt-get install chromium`")
    browser = _Chromium(executable, width, height)
    try:
        page = _Page(browser, time.monotonic() + timeout)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        page.send("Network.emulateNetworkConditions",
                  {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        page.send("Network.setCacheDisabled", {"cacheDisabled": True})
        page.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        answer = page.send("Page.navigate", {"url": html.as_uri()})
        if answer.get("errorText"):
            raise BrowserError(f"open_page: Chromium could not open {html}: {answer['errorText']}")
        page.wait_for_load()
        page.evaluate(_SETTLE_JS, wait=True)
        page.drain(QUIET_MS / 1000)
        report = page.report
        report.text = page.evaluate("document.body ? document.body.innerText : ''") or ""
        report.images = page.evaluate(_IMAGES_JS) or []
        if screenshot is not None:
            data = page.send("Page.captureScreenshot", {"format": "png"})["data"]
            screenshot = Path(screenshot)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(data))
            report.screenshot = screenshot
        page.drain(0.05)  # anything the evaluation itself set off
    except TimeoutError as exc:
        raise TimeoutError(f"open_page: {html} did not settle within {timeout} s: {exc}") from None
    finally:
        browser.close()
    return report
