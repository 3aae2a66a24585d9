"""Open a local HTML file in headless Chromium and report what a person's browser would see.

Minimal driver over the DevTools protocol on ``--remote-debugging-pipe`` (file descriptors 3 and 4,
NUL-separated JSON messages), so no websocket library is needed. :func:`open_page` loads the page,
records console messages, exceptions and every network request, and returns the visible text, the size
and load state of every ``<img>``/``<svg>`` and (optionally) a PNG screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PageReport", "chromium_path", "open_page"]

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@dataclass
class PageReport:
    console: list[str]  # console messages of level error/warning, uncaught exceptions, log errors
    failed_requests: list[str]
    network_requests: list[str]  # every URL requested (the page's own file:// URL included)
    screenshot: Path | None
    text: str
    images: list[dict]  # {"src", "width", "height", "complete"} per <img>/<svg>


def chromium_path() -> str | None:
    """The Chromium executable, or None (callers skip; with env CI=true they should fail instead)."""
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class _Pipe:
    def __init__(self, proc: subprocess.Popen, write_fd: int, read_fd: int) -> None:
        self.proc, self.w, self.r = proc, write_fd, read_fd
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def _read_one(self, deadline: float) -> dict:
        import select

        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30) -> dict:
        wanted = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read_one(deadline)
            if msg.get("id") == wanted:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        for i, e in enumerate(self.events):
            if e["method"] == method:
                return self.events.pop(i)
        while True:
            msg = self._read_one(deadline)
            if msg.get("method") == method:
                return msg
            if "method" in msg:
                self.events.append(msg)

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while True:
                msg = self._read_one(deadline)
                if "method" in msg:
                    self.events.append(msg)
        except TimeoutError:
            pass


_PAGE_STATE = """(() => {
  const out = [];
  for (const el of document.querySelectorAll('img, svg')) {
    const r = el.getBoundingClientRect();
    const isImg = el.tagName.toLowerCase() === 'img';
    out.push({src: isImg ? el.currentSrc || el.src : '<svg>', width: r.width, height: r.height,
              complete: isImg ? (el.complete && el.naturalWidth > 0) : true});
  }
  return JSON.stringify({text: document.body ? document.body.innerText : '', images: out});
})()"""


def open_page(html: Path, screenshot: Path | None = None, width: int = 1280, height: int = 2000,
              timeout: float = 60) -> PageReport:
    """Load ``html`` in headless Chromium; return console errors, requests, text, images, screenshot."""
    exe = chromium_path()
    if exe is None:
        raise FileNotFoundError("Chromium is not installed")
    url = Path(html).resolve().as_uri()
    import fcntl

    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()
    for name in ("to_chrome_r", "from_chrome_w"):  # the child's ends away from fds 3 and 4
        fd = locals()[name]
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        if name == "to_chrome_r":
            to_chrome_r = high
        else:
            from_chrome_w = high
    profile = tempfile.mkdtemp(prefix="ambiseg-chromium-")
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-crash-reporter", "--disable-breakpad",
             f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"]
    # bash (dash refuses fds >= 10) puts the two pipe ends on fds 3 (commands in) and 4 (answers out),
    # then becomes Chromium
    script = f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w} {to_chrome_r}<&- {from_chrome_w}>&-'
    shell = shutil.which("bash") or "/bin/bash"
    proc = subprocess.Popen([shell, "-c", script, exe, *flags], pass_fds=(to_chrome_r, from_chrome_w),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    pipe = _Pipe(proc, to_chrome_w, from_chrome_r)
    try:
        target = pipe.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
        session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            pipe.call(f"{domain}.enable", session=session)
        pipe.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
        pipe.events.clear()
        pipe.call("Page.navigate", {"url": url}, session, timeout=timeout)
        pipe.wait_event("Page.loadEventFired", timeout)
        pipe.drain(0.5)  # late console messages / requests
        state = json.loads(pipe.call("Runtime.evaluate", {"expression": _PAGE_STATE, "returnByValue": True},
                                     session)["result"]["value"])
        shot = None
        if screenshot is not None:
            data = pipe.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False},
                             session, timeout=timeout)["data"]
            shot = Path(screenshot)
            shot.write_bytes(base64.b64decode(data))
        console, requests, failed = [], [], []
        for e in pipe.events:
            m, p = e["method"], e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                console.append(f"{p['type']}: " + " ".join(str(a.get("value", a.get("description", "")))
                                                          for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                console.append("exception: " + str(p.get("exceptionDetails", {}).get("text", "")))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
                console.append(f"log {p['entry']['level']}: {p['entry'].get('text', '')}")
            elif m == "Network.requestWillBeSent":
                requests.append(p.get("request", {}).get("url", ""))
            elif m == "Network.loadingFailed":
                failed.append(f"{p.get('requestId')}: {p.get('errorText', '')}")
        return PageReport(console, failed, requests, shot, state["text"], state["images"])
    finally:
        for fd in (to_chrome_w, from_chrome_r):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)
